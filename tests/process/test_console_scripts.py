"""The installed console scripts, run as the operator runs them: a process of their own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.samples import BSN_ARGS


class TestConsoleScript:
    def test_installed_psi_node_runs_check_input(self) -> None:
        """The installed psi-node script runs check-input with the same result and exit code."""
        script = Path(sys.executable).parent / "psi-node"
        assert script.exists(), "the psi-node console script is installed with the package"
        done = subprocess.run(
            [str(script), "check-input", *BSN_ARGS, "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["counts"]["valid"] == 5
        bad = subprocess.run(
            [str(script), "check-input", *BSN_ARGS[:5], "--strict"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert bad.returncode == 2
        assert "line 5: bsn: elfproef fails" in bad.stderr
