"""A second build of the native core with curve25519-dalek's AVX2 backend forced.

dalek chooses its backend at run time from those it was built with, and offers no
switch at run time: on a CPU with AVX-512 IFMA the installed `kruispunt.native` always
runs IFMA. To report what AVX2 alone gives on the same machine, in the same run, the
crate is built once more with `--cfg curve25519_dalek_backend="simd"` (AVX2 and serial
only) into its own target folder and loaded from there under its own module object.

    python -m benchmarks.native_variants     # builds if needed, prints the library's path
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

__all__ = ["AVX2_ENV", "build_avx2", "load_avx2"]

REPO = Path(__file__).resolve().parent.parent
CRATE = REPO / "native"
TARGET = CRATE / "target" / "avx2"
AVX2_ENV = "KRUISPUNT_NATIVE_AVX2"
"""Where `make bench` tells the benchmarks the AVX2 build is."""


def build_avx2() -> Path:
    """Build the AVX2-only variant (cargo, release, the committed Cargo.lock); its path."""
    env = dict(os.environ, RUSTFLAGS='--cfg=curve25519_dalek_backend="simd"')
    subprocess.run(
        [
            "cargo",
            "build",
            "--release",
            "--locked",
            "--quiet",
            "--manifest-path",
            str(CRATE / "Cargo.toml"),
            "--target-dir",
            str(TARGET),
        ],
        check=True,
        env=env,
    )
    return TARGET / "release" / "libnative.so"


def load_avx2(path: str | os.PathLike[str] | None = None) -> ModuleType | None:
    """The AVX2 build as a module, from `path` or $KRUISPUNT_NATIVE_AVX2; None if neither."""
    location = path if path is not None else os.environ.get(AVX2_ENV)
    if not location:
        return None
    # The module's init function is PyInit_native, so it loads under the name "native";
    # it is a separate library with its own types (its Secrets are its own).
    loader = importlib.machinery.ExtensionFileLoader("native", str(location))
    spec = importlib.util.spec_from_file_location("native", str(location), loader=loader)
    if spec is None:
        raise ImportError(f"cannot load {location}")
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


if __name__ == "__main__":
    built = build_avx2()
    variant = load_avx2(built)
    assert variant is not None
    print(built)
    print(f"backend of this build: {variant.backend()}", file=sys.stderr)
