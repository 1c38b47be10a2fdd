"""The native core built here runs on older CPUs: none with AVX-512, none with AVX2 at all.

The extension is built once, with every backend curve25519-dalek has (`.cargo/config.
toml`), and picks one at run time. A build that used an instruction the CPU lacks would
die of SIGILL on a partner's older server; this runs the installed build under qemu-user
emulating such CPUs (Haswell: AVX2, no AVX-512; Nehalem: neither) and checks that it
picks the backend the CPU has, answers exactly what the host answers, proves what the host
verifies, and passes the RFC 9497 vectors (mode 0 and mode 1, proofs byte for byte).

`.ci/run` installs qemu-user (Debian) and sets KRUISPUNT_CI=1, so in CI these
tests run or fail; elsewhere, without qemu-x86_64, they are skipped with that reason.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys

import pytest

from psi_node import oprf
from tests.support import cpu_probe
from tests.support.paths import REPO

QEMU = shutil.which("qemu-x86_64")
#: An emulated CPU model, and the backend the core must pick on it.
CPUS = {"Haswell": "avx2", "Nehalem": "serial"}

if QEMU is None and os.environ.get("KRUISPUNT_CI") == "1":
    raise RuntimeError(
        "KRUISPUNT_CI=1 (set by .ci/run) but qemu-x86_64 is not installed (Debian: qemu-user)"
    )
pytestmark = [
    pytest.mark.skipif(platform.machine() != "x86_64", reason="x86_64 CPU models only"),
    pytest.mark.skipif(QEMU is None, reason="qemu-x86_64 not installed (Debian: qemu-user)"),
]


def emulated(cpu: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    assert QEMU is not None
    return subprocess.run(
        [QEMU, "-cpu", cpu, sys.executable, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def host() -> dict[str, object]:
    return cpu_probe.answers()


@pytest.mark.parametrize(("cpu", "backend"), CPUS.items())
def test_the_core_answers_as_on_the_host(cpu, backend, host):
    ran = emulated(cpu, "-m", "tests.support.cpu_probe")
    assert ran.returncode == 0, ran.stderr[-2000:]
    got = json.loads(ran.stdout)
    assert got["backend"] == backend
    for field in ("hashed", "blinded", "evaluated", "public", "tags"):
        assert got[field] == host[field], field
    # The proofs are randomized: the host verifies what the older CPU proved.
    assert oprf.verify_chunks(
        bytes.fromhex(str(got["public"])),
        bytes.fromhex(str(got["blinded"])),
        bytes.fromhex(str(got["evaluated"])),
        [bytes.fromhex(p) for p in got["proofs"]],
        cpu_probe.CHUNK,
    )


@pytest.mark.parametrize("cpu", CPUS)
def test_the_rfc_9497_vectors_pass(cpu):
    ran = emulated(
        cpu, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/unit/test_oprf_vectors.py"
    )
    assert ran.returncode == 0, ran.stdout[-3000:]
    assert " passed" in ran.stdout
