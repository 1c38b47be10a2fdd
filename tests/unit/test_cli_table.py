"""`kruispunt.cli`: the command table both CLIs register on, its parser, and `emit`."""

from __future__ import annotations

import argparse
import os

import pytest

from kruispunt.cli import CommandTable, Output, arg, emit, operator_actor


def table() -> CommandTable:
    """A table with one plain command and one grouped command."""
    commands = CommandTable({"audit": "verify the log"})

    @commands.command("init", "create one", arg("--name", required=True), takes_dir=False)
    def init(args: argparse.Namespace) -> int:
        return 10

    @commands.command("audit verify", "check the chain", arg("--round"), description="Longer.")
    def verify(args: argparse.Namespace) -> int:
        return 11

    return commands


class TestCommandTable:
    def test_commands_are_listed_in_registration_order(self) -> None:
        """The table keeps every command's words, help and arguments as registered."""
        commands = table().commands
        assert [c.words for c in commands] == [("init",), ("audit", "verify")]
        assert [c.help for c in commands] == ["create one", "check the chain"]
        assert commands[1].args[0].flags == ("--round",)

    def test_parser_dispatches_to_the_handler_with_dir_and_json(self) -> None:
        """A grouped command takes DIR and --json; the parsed `func` is its handler."""
        parser = table().parser("prog", "A program.", dir_help="the directory", dir_env="PROG_DIR")
        args = parser.parse_args(["audit", "verify", "/d", "--json", "--round", "r1"])
        assert (args.dir, args.json, args.round) == ("/d", True, "r1")
        assert args.func(args) == 11
        args = parser.parse_args(["init", "--name", "x", "--json"])
        assert not hasattr(args, "dir")
        assert args.func(args) == 10

    @pytest.mark.parametrize(
        ("argv", "shown"),
        [
            ([], "commands:"),
            (["audit"], "actions:"),
            (["audit", "verify"], "Longer."),
            (["init"], "create one"),
        ],
    )
    def test_help_shows_descriptions_and_titles(
        self, capsys: pytest.CaptureFixture[str], argv: list[str], shown: str
    ) -> None:
        """--help shows a command's description (else its help) and the section titles given."""
        parser = table().parser(
            "prog",
            "A program.",
            dir_help="the directory",
            dir_env="PROG_DIR",
            commands_title="commands",
            actions_title="actions",
        )
        with pytest.raises(SystemExit):
            parser.parse_args([*argv, "--help"])
        assert shown in capsys.readouterr().out

    def test_a_missing_command_is_a_usage_error_only_when_required(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Without a command argparse stops (exit 2) unless the program handles it itself."""
        with pytest.raises(SystemExit) as info:
            table().parser("prog", "A program.", dir_help="d", dir_env="PROG_DIR").parse_args([])
        assert info.value.code == 2
        assert "required: COMMAND" in capsys.readouterr().err
        loose = table().parser(
            "prog", "A program.", dir_help="d", dir_env="PROG_DIR", command_required=False
        )
        assert not hasattr(loose.parse_args([]), "func")

    @pytest.mark.parametrize("name", ["", "round run now", "round run"])
    def test_a_command_outside_the_groups_is_refused(self, name: str) -> None:
        """A name of no word, of three words, or in an unknown group is refused at registration."""
        with pytest.raises(ValueError, match="one word, or a group of"):
            table().command(name, "help")


class TestEmit:
    def test_json_is_sorted_and_indented(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--json prints the data with sorted keys, two-space indents and one newline."""
        emit(Output({"b": 1, "a": {"d": 2, "c": 3}}, "text"), as_json=True)
        assert capsys.readouterr().out == (
            '{\n  "a": {\n    "c": 3,\n    "d": 2\n  },\n  "b": 1\n}\n'
        )

    def test_text_is_printed_as_is(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Without --json the text is printed with one newline."""
        emit(Output({"a": 1}, "two\nlines"), as_json=False)
        assert capsys.readouterr().out == "two\nlines\n"


class TestOperatorActor:
    def test_the_person_never_a_uid(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The actor is the person (SUDO_USER first, as kruispunt.login decides), never a uid."""
        monkeypatch.setenv("SUDO_USER", "beheer")
        assert operator_actor() == "operator:beheer"

        def no_login() -> str:
            raise OSError(6, "No such device or address")

        monkeypatch.delenv("SUDO_USER")
        monkeypatch.setattr(os, "getlogin", no_login)
        assert not operator_actor().startswith("operator:uid")
