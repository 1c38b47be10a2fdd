"""Generate the Python modules for proto/kruispunt/v1 into kruispunt/v1.

Run as `make proto`. The generated imports are rewritten to package-relative
ones so the modules work wherever the `kruispunt` package is installed.
`tests/test_proto_fresh.py` calls `generate()` into a temporary folder and
fails when the committed files differ.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
PACKAGE = "kruispunt/v1"


def generate(out_root: Path) -> list[Path]:
    """Generate _pb2, _pb2.pyi and _pb2_grpc modules under out_root/kruispunt/v1."""
    sources = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / PACKAGE).glob("*.proto"))
    out_root.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"--plugin=protoc-gen-mypy={Path(sys.executable).parent / 'protoc-gen-mypy'}",
        f"--python_out={out_root}",
        f"--mypy_out={out_root}",
        f"--grpc_python_out={out_root}",
        *sources,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    out_dir = out_root / PACKAGE
    written = sorted(out_dir.glob("*_pb2*.py*"))
    for path in written:
        text = path.read_text()
        text = re.sub(r"^from kruispunt\.v1 import", "from . import", text, flags=re.M)
        text = re.sub(r"^import kruispunt\.v1\.(\w+)", r"from . import \1", text, flags=re.M)
        path.write_text(text)
    init = out_dir / "__init__.py"
    init.write_text(
        '"""Generated protobuf and gRPC modules for wire protocol v1 (make proto)."""\n'
    )
    return [*written, init]


if __name__ == "__main__":
    files = generate(ROOT)
    sys.stdout.write("".join(f"wrote {p.relative_to(ROOT)}\n" for p in files))
