"""`make demo` end to end: the demo script as its own process, building and running a network."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.paths import REPO


class TestDemo:
    @pytest.mark.timeout(300)
    def test_make_demo_script_runs_a_real_network(self):
        """The demo builds a network with the CLIs, runs a round in real processes, exits 0."""
        proc = subprocess.run(
            [sys.executable, "-m", "scripts.demo"],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=REPO,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert "completed" in proc.stdout
        assert "audit log OK" in proc.stdout
