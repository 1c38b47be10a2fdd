"""Command-line conventions, checked on real processes: --version, a closed pipe, DIR from env."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def script(name: str) -> str:
    path = BIN / name
    assert path.exists(), f"the {name} console script is installed with the package"
    return str(path)


@pytest.mark.parametrize("name", ["psi-node", "psi-coordinator"])
def test_version_prints_the_installed_version(name: str) -> None:
    """`--version` names the program and the version pip installed."""
    done = subprocess.run(
        [script(name), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{name} {metadata.version('kruispunt')}"


#: A program on the shared runner whose one command writes far more than a pipe holds.
CHATTY = textwrap.dedent(
    """
    import sys
    from kruispunt.cli import CommandTable, run

    table = CommandTable({})

    @table.command("dump", "write a lot", takes_dir=False, json_flag=False)
    def dump(args):
        for n in range(200_000):
            print(f"line {n} of a long listing that nobody reads to the end")
        return 0

    sys.exit(run(table.parser("chatty", "x", dir_help="d", dir_env="CHATTY_DIR"), None,
                 before=lambda args: 0))
    """
)


def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path: Path) -> None:
    """`... | head -1`: the command stops when the pipe closes, with no BrokenPipeError."""
    program = tmp_path / "chatty.py"
    program.write_text(CHATTY, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    with subprocess.Popen(
        [sys.executable, str(program), "dump"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    ) as writer:
        assert writer.stdout is not None
        assert writer.stderr is not None
        head = subprocess.run(
            ["head", "-1"], stdin=writer.stdout, capture_output=True, timeout=60, check=True
        )
        writer.stdout.close()  # head has gone: the writer's next write meets a closed pipe
        stderr = writer.stderr.read().decode()
        assert writer.wait(timeout=60) != 0
    assert head.stdout == b"line 0 of a long listing that nobody reads to the end\n"
    assert stderr == "", stderr


def test_dir_comes_from_the_environment_in_a_real_process(tmp_path: Path) -> None:
    """`KRUISPUNT_COORDINATOR_DIR=... psi-coordinator partner list` needs no DIR."""
    directory = tmp_path / "co"
    init = subprocess.run(
        [script("psi-coordinator"), "init", str(directory), "--network", "den-bosch"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert init.returncode == 0, init.stderr
    env = {**os.environ, "KRUISPUNT_COORDINATOR_DIR": str(directory)}
    listed = subprocess.run(
        [script("psi-coordinator"), "operator", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["OPERATOR", "STATUS", "SINCE", "BY", "CERTIFICATE", "UNTIL"]
    assert len(rows) == 1
