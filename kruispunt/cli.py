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
import re
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from kruispunt import login, pki
from kruispunt.errors import KruispuntError
from kruispunt.wording import plural

if TYPE_CHECKING:
    _Subparsers = argparse._SubParsersAction["_Parser"]

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "Arg",
    "Command",
    "CommandTable",
    "Handler",
    "Output",
    "arg",
    "emit",
    "label",
    "operator_actor",
    "plural",
    "run",
    "table",
    "version",
]

#: Exit statuses of both programs: done, failed (a check, a round, a refused action), and
#: a command line, file or flag that cannot be used.
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
#: Set to anything to see the traceback of an internal error (it may hold file contents).
DEBUG_ENV = "KRUISPUNT_DEBUG"

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
        dir_env: str,
        command_required: bool = True,
        commands_title: str | None = None,
        actions_title: str | None = None,
    ) -> argparse.ArgumentParser:
        """The argument parser of every registered command; each sets `func` to its handler.

        DIR may be left out when the environment variable `dir_env` names it
        (`run` says so when it is neither given nor set). Without
        `command_required` a bare `prog` parses, with no `func`: the program
        decides what that means. The titles head the ``--help`` lists of
        commands and of a group's actions (argparse's default heading when None).
        """
        parser = _Parser(prog=prog, description=description)
        parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
        parser.set_defaults(dir_env=dir_env)
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
                    grouped[word] = top.add_parser(
                        word, help=self.groups[word], description=self.groups[word]
                    ).add_subparsers(**_titled(actions_title), metavar="ACTION", required=True)
                subparsers = grouped[word]
            p = subparsers.add_parser(name, help=cmd.help, description=cmd.description or cmd.help)
            if cmd.takes_dir:
                p.add_argument(
                    "dir",
                    metavar="DIR",
                    nargs="?",
                    default=os.environ.get(dir_env) or None,
                    help=f"{dir_help} (default: ${dir_env})",
                )
            if cmd.json_flag:
                p.add_argument("--json", action="store_true", help="machine-readable output")
            for a in cmd.args:
                p.add_argument(*a.flags, **a.options)
            p.set_defaults(func=cmd.handler)
        return parser


class _Parser(argparse.ArgumentParser):
    """argparse with its sub-parsers of the same class and its usage errors one line long."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


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


def version() -> str:
    """The installed Kruispunt version, as ``pip`` knows it."""
    try:
        return metadata.version("kruispunt")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def label(kind: str) -> Callable[[str], str]:
    """An argparse `type` for a network name, partner id or operator name (a DNS label).

    A bad one is a usage error naming the argument and the rule, with a
    spelling that would do (``Den Bosch`` -> ``den-bosch``).
    """

    def check(value: str) -> str:
        try:
            pki.Identity.partner("network", value)
        except ValueError:
            hint = re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-")[:63].strip("-")
            raise argparse.ArgumentTypeError(
                f"{value!r} is not a valid {kind}: use 1 to 63 lowercase letters, digits and "
                "hyphens, starting and ending with a letter or digit"
                + (f" (for example {hint!r})" if hint else "")
            ) from None
        return value

    check.__name__ = kind  # argparse names the type in "invalid <type> value" errors
    return check


def table(header: Sequence[str], rows: Sequence[Sequence[object]], *, empty: str) -> str:
    """Rows under a header, each column as wide as its widest cell; `empty` when no rows."""
    if not rows:
        return empty
    cells = [list(map(str, header)), *([str(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]]).rstrip()
        for row in cells
    )


def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None, *, before: Handler) -> int:
    """Parse `argv`, run the chosen command, and turn every way it can end into an exit status.

    `before` runs first (it sets up logging and may refuse with a status of its
    own). A domain error, a file that cannot be read and a bad argument end in
    one line on stderr that names the program; a closed stdout (``| head``)
    ends quietly; anything else is a bug, reported without its message, which
    may hold a cell of an export (``KRUISPUNT_DEBUG=1`` prints the traceback).
    """
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help, --version, or a usage error already printed
        return done.code if isinstance(done.code, int) else EXIT_USAGE
    prog = parser.prog
    try:
        if getattr(args, "dir", "") is None:
            print(
                f"{prog}: DIR is missing: give the directory or set {args.dir_env}", file=sys.stderr
            )
            return EXIT_USAGE
        status = before(args)
        if status != EXIT_OK:
            return status
        return int(args.func(args))
    except KruispuntError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, ValueError) else EXIT_FAILED
    except BrokenPipeError:
        # The reader went away (`| head`): stop writing, and keep Python's own flush at
        # exit from raising again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"{prog}: {where}{exc.strerror or type(exc).__name__}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:  # the last word on a bug: never a traceback
        if os.environ.get(DEBUG_ENV):
            traceback.print_exc()
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        print(
            f"{prog}: internal error ({type(exc).__name__} at {Path(frame.filename).name}:"
            f"{frame.lineno}); this is a bug, please report it with this line "
            f"(set {DEBUG_ENV}=1 for the traceback)",
            file=sys.stderr,
        )
        return EXIT_FAILED
