"""The ``psi-node`` command: one subcommand per operator task.

Each subcommand lives in a ``_register_<name>(subparsers)`` function that adds
its parser and sets ``func`` to the handler; ``main`` dispatches on
``args.func``. To add one, write the register function and the handler and
append the register function to ``_COMMANDS``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from kruispunt.errors import KruispuntError
from kruispunt.identifiers import FIELDS, KINDS, IdentifierKind
from psi_node.inputs import PROGRESS_EVERY, InputReport, InputSpec, read_input

#: Exit status when the input (or the command line) cannot be used.
EXIT_UNUSABLE = 2



def main(argv: list[str] | None = None) -> int:
    """Run ``psi-node`` with ``argv`` (default: sys.argv[1:]); return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return EXIT_UNUSABLE
    return func(args)


def build_parser() -> argparse.ArgumentParser:
    """Return the parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="psi-node", description="Kruispunt partner node: check inputs and take part in rounds."
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for register in _COMMANDS:
        register(subparsers)
    return parser


# --- check-input ---------------------------------------------------------------------------


def _register_check_input(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "check-input",
        help="validate a client-list export and count what a round would use",
        description=(
            "Read a CSV export as a round would and report how many rows are valid, invalid "
            "(by line number and reason, never the value), duplicate, objected and excluded. "
            "Exit status 0 when the file is usable, 2 when not."
        ),
    )
    p.add_argument("file", type=Path, metavar="FILE", help="the CSV export (UTF-8)")
    p.add_argument("--kind", required=True, choices=KINDS, help="identifier kind of the file")
    p.add_argument(
        "--columns",
        type=_parse_columns,
        default={},
        metavar="FIELD=HEADER,...",
        help="header name per field, e.g. bsn=BSN or postcode=Postcode,huisnummer=Huisnr",
    )
    p.add_argument(
        "--delimiter",
        type=_parse_delimiter,
        default=None,
        metavar="CHAR",
        help="field delimiter (default: sniffed from the header; 'tab' for a tab)",
    )
    p.add_argument("--objection-column", metavar="HEADER", help="column marking objections")
    p.add_argument(
        "--exclusions", type=Path, metavar="FILE", help="CSV of identifiers that never leave"
    )
    p.add_argument("--strict", action="store_true", help="stop at the first invalid row")
    p.add_argument("--json", action="store_true", help="print a JSON report on stdout")
    p.set_defaults(func=_check_input)


def _parse_columns(text: str) -> dict[str, str]:
    columns: dict[str, str] = {}
    for part in text.split(","):
        field, sep, header = part.partition("=")
        field, header = field.strip(), header.strip()
        if not sep or not field or not header:
            raise argparse.ArgumentTypeError(f"expected FIELD=HEADER, got {part!r}")
        columns[field] = header
    return columns


def _parse_delimiter(text: str) -> str:
    named = {"tab": "\t", "\\t": "\t", "semicolon": ";", "comma": ",", "pipe": "|"}
    value = named.get(text.lower(), text)
    if len(value) != 1:
        raise argparse.ArgumentTypeError("the delimiter is one character")
    return value


def _check_input(args: argparse.Namespace) -> int:
    kind: IdentifierKind = args.kind
    unknown = sorted(set(args.columns) - set(FIELDS[kind]))
    if unknown:
        return _fail(
            args,
            f"--columns: {', '.join(unknown)} is not a field of kind {kind}; "
            f"expected {', '.join(FIELDS[kind])}",
        )
    spec = InputSpec(
        path=args.file,
        kind=kind,
        columns=args.columns,
        delimiter=args.delimiter,
        objection_column=args.objection_column,
        exclusion_file=args.exclusions,
    )
    progress = _Progress(sys.stderr) if sys.stderr.isatty() else None
    try:
        found = read_input(spec, strict=args.strict, progress=progress)
    except KruispuntError as e:
        return _fail(args, str(e))
    finally:
        if progress is not None:
            progress.clear()
    report = found.report
    if args.json:
        json.dump({**report.as_dict(), "error": None}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print_report(report, args.exclusions, sys.stdout)
    return 0 if report.usable else EXIT_UNUSABLE


def _fail(args: argparse.Namespace, message: str) -> int:
    if args.json:
        json.dump({"file": str(args.file), "kind": args.kind, "usable": False, "error": message},
                  sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(f"psi-node check-input: error: {message}", file=sys.stderr)
    return EXIT_UNUSABLE


def _print_report(report: InputReport, exclusions: Path | None, out: TextIO) -> None:
    delimiter = "tab" if report.delimiter == "\t" else repr(report.delimiter)
    print(f"{report.path}: kind {report.kind}, delimiter {delimiter}", file=out)
    for label, n in (
        ("rows", report.rows),
        ("valid", report.valid),
        ("invalid", report.invalid),
        ("duplicate", report.duplicate),
        ("objected", report.objected),
        ("excluded", report.excluded),
        ("blank", report.blank),
    ):
        print(f"  {label:<10} {n:>10,}", file=out)
    if report.problems:
        print("invalid rows:", file=out)
        for line, reason in report.problems:
            print(f"  line {line}: {reason}", file=out)
        if report.problems_truncated:
            print(f"  ... and {report.invalid - len(report.problems):,} more", file=out)
    if exclusions is not None:
        print(
            f"exclusion file {exclusions}: {report.exclusion_entries:,} identifiers, "
            f"{report.exclusion_invalid:,} invalid",
            file=out,
        )
        for line, reason in report.exclusion_problems:
            print(f"  line {line}: {reason}", file=out)
    if report.usable:
        print(f"usable: {report.valid:,} records can take part in a round", file=out)
    else:
        print("not usable: no valid records", file=out)


class _Progress:
    """Rows-read counter on a terminal, redrawn in place."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.shown = False

    def __call__(self, rows: int) -> None:
        if rows >= PROGRESS_EVERY or self.shown:
            self.stream.write(f"\r  {rows:,} rows read")
            self.stream.flush()
            self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


_COMMANDS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = [
    _register_check_input,
]
