"""What both command lines share: the command table, its parser, and printing an answer.

`psi_node.cli` and `coordinator.cli` each keep one `CommandTable` and register
every command on it with `@command("group name", "help", arg(...))`; the parser
is built from that table alone. A command's answer is one `Output`, worded in
that side's `present.py` and printed by `emit`, the same way on both sides.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kruispunt import login

if TYPE_CHECKING:
    _Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

__all__ = ["Arg", "Command", "CommandTable", "Handler", "Output", "arg", "emit", "operator_actor"]

Handler = Callable[[argparse.Namespace], int]


@dataclass(frozen=True)
class Arg:
    """One argument of a command, as `ArgumentParser.add_argument` takes it."""

    flags: tuple[str, ...]
    options: Mapping[str, Any] = field(default_factory=dict)


def arg(*flags: str, **options: Any) -> Arg:
    """An argument for `@command`: the same parameters as `add_argument`, written down for later."""
    return Arg(flags, options)


@dataclass(frozen=True)
class Command:
    """A registered command: its words (`audit verify`), help, arguments and handler."""

    words: tuple[str, ...]
    help: str
    handler: Handler
    args: tuple[Arg, ...] = ()
    #: Takes the node's or coordinator's directory (DIR) as its first argument.
    takes_dir: bool = True
    #: Has ``--json`` for machine-readable output (right after DIR).
    json_flag: bool = True
    #: The command's own --help text, when it says more than `help`.
    description: str | None = None


class CommandTable:
    """One program's commands, in the order they are registered (and listed by ``--help``)."""

    def __init__(self, groups: Mapping[str, str]) -> None:
        #: The words that group commands (``audit`` of ``audit verify``) and their help.
        self.groups = groups
        self.commands: list[Command] = []

    def command(
        self,
        name: str,
        help: str,
        /,
        *args: Arg,
        takes_dir: bool = True,
        json_flag: bool = True,
        description: str | None = None,
    ) -> Callable[[Handler], Handler]:
        """Register the decorated handler as the command `name` (one word, or group and word)."""
        words = tuple(name.split())
        if not 1 <= len(words) <= 2 or (len(words) == 2 and words[0] not in self.groups):
            raise ValueError(
                f"command {name!r}: one word, or a group of {sorted(self.groups)} and one"
            )

        def register(handler: Handler) -> Handler:
            self.commands.append(
                Command(words, help, handler, args, takes_dir, json_flag, description)
            )
            return handler

        return register

    def parser(
        self,
        prog: str,
        description: str,
        *,
        dir_help: str,
        command_required: bool = True,
        commands_title: str | None = None,
        actions_title: str | None = None,
    ) -> argparse.ArgumentParser:
        """The argument parser of every registered command; each sets `func` to its handler.

        Without `command_required` a bare `prog` parses, with no `func`: the
        program decides what that means. The titles head the ``--help`` lists of
        commands and of a group's actions (argparse's default heading when None).
        """
        parser = argparse.ArgumentParser(prog=prog, description=description)
        top = parser.add_subparsers(
            **_titled(commands_title), metavar="COMMAND", required=command_required
        )
        grouped: dict[str, _Subparsers] = {}
        for cmd in self.commands:
            *group, name = cmd.words
            subparsers = top
            if group:
                (word,) = group
                if word not in grouped:
                    grouped[word] = top.add_parser(word, help=self.groups[word]).add_subparsers(
                        **_titled(actions_title), metavar="ACTION", required=True
                    )
                subparsers = grouped[word]
            p = subparsers.add_parser(name, help=cmd.help, description=cmd.description or cmd.help)
            if cmd.takes_dir:
                p.add_argument("dir", metavar="DIR", help=dir_help)
            if cmd.json_flag:
                p.add_argument("--json", action="store_true", help="machine-readable output")
            for a in cmd.args:
                p.add_argument(*a.flags, **a.options)
            p.set_defaults(func=cmd.handler)
        return parser


def _titled(title: str | None) -> dict[str, str]:
    """`add_subparsers`' title keyword: absent, not None, for argparse's default heading."""
    return {} if title is None else {"title": title}


@dataclass(frozen=True)
class Output:
    """One command's answer both ways: `data` for ``--json``, `text` for a person."""

    data: Any
    text: str


def emit(output: Output, *, as_json: bool) -> None:
    """Print the answer on the stdout of the moment: sorted, indented JSON, or the text."""
    if as_json:
        json.dump(output.data, sys.stdout, indent=2, sort_keys=True, default=str)
        sys.stdout.write("\n")
    else:
        print(output.text)


def operator_actor() -> str:
    """Who the audit log says typed the command: the person (`kruispunt.login.actor`,
    SUDO_USER first), never a uid or the service account."""
    return login.actor(os.environ)
