"""Every command of both programs, given bad input, ends in one clear line: never a traceback.

The sweep is built from the command tables themselves, so a command added
later is swept too. Each command is run with the arguments it requires (made
to parse), against directories that cannot be used: missing, a file, empty,
and holding a config that is not TOML. It must exit 1 or 2 with a message
naming the program, and neither a traceback nor the runner's "internal error"
(the last word on a bug) may appear.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import pytest

from coordinator import cli as coordinator_cli
from kruispunt.cli import EXIT_USAGE, Command
from psi_node import cli as node_cli

PROGRAMS: dict[str, tuple[list[Command], Callable[[list[str] | None], int], str]] = {
    "psi-coordinator": (coordinator_cli.COMMANDS, coordinator_cli.main, "coordinator.toml"),
    "psi-node": (node_cli.COMMANDS, node_cli.main, "node.toml"),
}


def parses(kind: object, value: str) -> bool:
    """Whether argparse's `type` (a name or id checker, say) takes `value`."""
    if not callable(kind):
        return True
    try:
        kind(value)
    except argparse.ArgumentTypeError:
        return False
    return True


def filler(flags: tuple[str, ...], options: dict[str, object], bad_file: Path) -> list[str]:
    """Arguments that parse for one declared argument: its first choice, a number, a file."""
    if options.get("action") in ("store_true", "store_false", "count"):
        return []
    choices = options.get("choices")
    if choices:
        value = str(next(iter(choices)))  # type: ignore[call-overload]
    elif options.get("type") in (int, float):
        value = "1"
    else:
        value = next(v for v in (str(bad_file), "bogus") if parses(options.get("type"), v))
    nargs = options.get("nargs")
    return [value, value] if nargs in ("+", 2) else [value]


def required_argv(cmd: Command, directory: Path, bad_file: Path) -> list[str]:
    """The command's words, DIR, and every argument it cannot run without."""
    argv = [*cmd.words]
    if cmd.takes_dir:
        argv.append(str(directory))
    for a in cmd.args:
        options = dict(a.options)
        positional = not a.flags[0].startswith("-")
        if positional and options.get("nargs") not in ("?", "*"):
            argv += filler(a.flags, options, bad_file)
        elif not positional and options.get("required"):
            argv += [a.flags[0], *filler(a.flags, options, bad_file)]
    return argv


def unusable_dirs(tmp: Path, config_name: str) -> dict[str, Path]:
    """Directories no command can work in, by what is wrong with them."""
    a_file = tmp / "a-file"
    a_file.write_text("not a directory\n", encoding="utf-8")
    empty = tmp / "empty"
    empty.mkdir()
    garbled = tmp / "garbled"
    garbled.mkdir()
    (garbled / config_name).write_text("[network\nname = = \n", encoding="utf-8")
    return {"missing": tmp / "missing" / "dir", "a file": a_file, "garbled": garbled}


CASES = [
    (prog, " ".join(cmd.words))
    for prog, (commands, _main, _cfg) in PROGRAMS.items()
    for cmd in commands
    if cmd.words != ("init",)
]


def find(prog: str, words: str) -> Command:
    commands = PROGRAMS[prog][0]
    return next(c for c in commands if " ".join(c.words) == words)


def assert_clean(prog: str, code: int, out: str, err: str, argv: list[str]) -> None:
    """Exit 1 or 2 with a message: one short stderr line naming the program, or (`doctor`)
    a report on stdout that says what failed."""
    assert code in (1, 2), f"{argv}: exit {code}\n{err}"
    for text in (out, err):
        assert "Traceback" not in text, f"{argv}:\n{text}"
        assert "internal error" not in text, f"{argv}:\n{text}"
    if err:
        assert err.startswith(f"{prog}"), f"{argv}: the message names the program\n{err}"
        assert len(err.strip().splitlines()) <= 3, f"{argv}: a short message, not a dump\n{err}"
    else:
        assert "FAIL" in out, f"{argv}: a failing run says why\n{out}"


@pytest.mark.parametrize(("prog", "words"), CASES)
def test_every_command_refuses_an_unusable_directory_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], prog: str, words: str
) -> None:
    """Missing, a file, or a config that is not TOML: a clear exit 1 or 2, never a traceback."""
    cmd = find(prog, words)
    _commands, main, config_name = PROGRAMS[prog]
    bad_file = tmp_path / "no-such-file.toml"
    for why, directory in unusable_dirs(tmp_path, config_name).items():
        argv = required_argv(cmd, directory, bad_file)
        code = main(argv)
        out, err = capsys.readouterr()
        assert_clean(prog, code, out, err, [why, *argv])


@pytest.mark.parametrize(("prog", "words"), CASES)
def test_every_command_refuses_an_unknown_flag_as_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], prog: str, words: str
) -> None:
    """An unknown flag is a usage error (exit 2) that points to --help."""
    cmd = find(prog, words)
    argv = [*required_argv(cmd, tmp_path, tmp_path / "x"), "--no-such-flag"]
    code = PROGRAMS[prog][1](argv)
    out, err = capsys.readouterr()
    assert code == EXIT_USAGE, err
    assert "unrecognized arguments: --no-such-flag" in err
    assert "--help" in err
    assert_clean(prog, code, out, err, argv)


@pytest.mark.parametrize("prog", list(PROGRAMS))
def test_init_refuses_a_directory_that_is_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], prog: str
) -> None:
    """`init` into a path that is a file says so; it does not half-create anything."""
    cmd = find(prog, "init")
    target = tmp_path / "taken"
    target.write_text("x", encoding="utf-8")
    argv = required_argv(cmd, target, tmp_path / "x")
    if prog == "psi-coordinator":
        argv[argv.index("--network") + 1] = "den-bosch"
    else:
        argv[argv.index("--partner") + 1] = "gemeente"
    code = PROGRAMS[prog][1](argv)
    out, err = capsys.readouterr()
    assert_clean(prog, code, out, err, argv)
    assert target.read_text(encoding="utf-8") == "x"


class TestLabels:
    @pytest.mark.parametrize(
        ("argv", "message"),
        [
            (
                ["init", "{dir}", "--network", "Den Bosch"],
                "argument --network: 'Den Bosch' is not a valid network name: use 1 to 63 "
                "lowercase letters, digits and hyphens, starting and ending with a letter or "
                "digit (for example 'den-bosch')",
            ),
            (
                ["init", "{dir}", "--network", "den-bosch", "--operator", "Kees de Vries"],
                "'Kees de Vries' is not a valid operator name",
            ),
            (
                ["partner", "add", "{dir}", "Woonstichting_Oost", "--address", "x:1"],
                "'Woonstichting_Oost' is not a valid partner id",
            ),
        ],
    )
    def test_a_name_a_certificate_cannot_carry_is_a_usage_error_with_a_spelling_that_would_do(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
    ) -> None:
        """The issue's `init --network "Den Bosch"` traceback: now one line with the fix."""
        argv = [a.replace("{dir}", str(tmp_path / "co")) for a in argv]
        code = coordinator_cli.main(argv)
        err = capsys.readouterr().err
        assert code == EXIT_USAGE
        assert message in err
        assert "Traceback" not in err
        assert not (tmp_path / "co").exists()


class TestDirectoryFromTheEnvironment:
    def test_dir_defaults_to_the_environment_and_is_named_when_missing(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """KRUISPUNT_COORDINATOR_DIR stands in for DIR; without either, the message names both."""
        monkeypatch.delenv(coordinator_cli.DIR_ENV, raising=False)
        assert coordinator_cli.main(["partner", "list"]) == EXIT_USAGE
        err = capsys.readouterr().err
        assert err.strip() == (
            "psi-coordinator: DIR is missing: give the directory or set KRUISPUNT_COORDINATOR_DIR"
        )
        directory = tmp_path / "co"
        assert coordinator_cli.main(["init", str(directory), "--network", "den-bosch"]) == 0
        capsys.readouterr()
        monkeypatch.setenv(coordinator_cli.DIR_ENV, str(directory))
        assert coordinator_cli.main(["partner", "list"]) == 0
        assert capsys.readouterr().out.strip() == "no partners"
        # An explicit DIR wins over the environment.
        assert coordinator_cli.main(["partner", "list", str(tmp_path / "elsewhere")]) == 1

    def test_the_node_reads_its_own_variable(
        self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        """psi-node takes KRUISPUNT_NODE_DIR (not the coordinator's)."""
        monkeypatch.delenv(node_cli.DIR_ENV, raising=False)
        monkeypatch.setenv(coordinator_cli.DIR_ENV, str(tmp_path))
        assert node_cli.main(["doctor"]) == EXIT_USAGE
        assert "set KRUISPUNT_NODE_DIR" in capsys.readouterr().err


def test_filler_covers_every_declared_argument_kind() -> None:
    """The sweep's own check: every argument of every command is one it knows how to fill."""
    known = {None, "store_true", "store_false", "count", "append", "store"}
    for commands, _main, _cfg in PROGRAMS.values():
        for cmd in commands:
            for a in cmd.args:
                assert a.options.get("action") in known, (cmd.words, a.flags)
