"""The ``psi-node`` command: one subcommand per operator task.

This module parses the command line and dispatches; what a command prints
is in `psi_node.present`. Every subcommand is a handler registered with
``@command(...)``, which names it, gives its help and its options, and puts
it in `COMMANDS`; `build_parser` builds the parser from that table alone.
To add a subcommand, write its handler under the decorator.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kruispunt import login
from kruispunt.errors import KruispuntError
from kruispunt.identifiers import FIELDS, KINDS, IdentifierKind
from kruispunt.logs import configure_logging
from psi_node import present
from psi_node.config import NodeConfig, load_node_config
from psi_node.inputs import PROGRESS_EVERY, InputSpec, read_input

if TYPE_CHECKING:
    _Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

#: Exit status when the input (or the command line) cannot be used.
EXIT_UNUSABLE = 2

Handler = Callable[[argparse.Namespace], int]


@dataclass(frozen=True)
class Option:
    """One argument of a subcommand, as given to `ArgumentParser.add_argument`."""

    flags: tuple[str, ...]
    settings: Mapping[str, Any] = field(default_factory=dict)


def option(*flags: str, **settings: Any) -> Option:
    """An argument of a subcommand: the `add_argument` call, written down for later."""
    return Option(flags, settings)


@dataclass(frozen=True)
class Command:
    """One subcommand: the words that name it, its help, its options and its handler."""

    words: tuple[str, ...]
    help: str
    run: Handler
    options: tuple[Option, ...] = ()
    #: Takes the node directory (DIR) as its first argument.
    node_dir: bool = True
    #: Has ``--json`` for machine-readable output (right after DIR).
    json_flag: bool = True
    #: The subcommand's own --help text, when it says more than `help`.
    description: str | None = None


#: Every subcommand, in the order ``psi-node --help`` lists them.
COMMANDS: list[Command] = []

#: Help of the words that group subcommands (``psi-node audit verify``).
GROUPS: Mapping[str, str] = {
    "audit": "verify, export and cross-check the node's log",
    "roster": "accept and show the partner roster (the covenant's partners and their keys)",
}


def command(
    *words: str,
    help: str,
    options: tuple[Option, ...] = (),
    node_dir: bool = True,
    json_flag: bool = True,
    description: str | None = None,
) -> Callable[[Handler], Handler]:
    """Register the decorated handler as the subcommand `words` in `COMMANDS`."""

    def register(run: Handler) -> Handler:
        COMMANDS.append(
            Command(words, help, run, options, node_dir, json_flag, description or help)
        )
        return run

    return register


def main(argv: list[str] | None = None) -> int:
    """Run ``psi-node`` with ``argv`` (default: sys.argv[1:]); return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Handler | None = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return EXIT_UNUSABLE
    try:
        return func(args)
    except KruispuntError as exc:
        print(f"psi-node: {exc}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    """Return the parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="psi-node", description="Kruispunt partner node: check inputs and take part in rounds."
    )
    top = parser.add_subparsers(title="commands", metavar="COMMAND")
    groups: dict[str, _Subparsers] = {}
    for cmd in COMMANDS:
        *group, name = cmd.words
        subparsers = top
        if group:
            (word,) = group
            if word not in groups:
                grouped = top.add_parser(word, help=GROUPS[word])
                groups[word] = grouped.add_subparsers(
                    title="actions", metavar="ACTION", required=True
                )
            subparsers = groups[word]
        p = subparsers.add_parser(name, help=cmd.help, description=cmd.description)
        if cmd.node_dir:
            p.add_argument("dir", metavar="DIR", help="the node directory")
        if cmd.json_flag:
            p.add_argument("--json", action="store_true", help="machine-readable output")
        for opt in cmd.options:
            p.add_argument(*opt.flags, **opt.settings)
        p.set_defaults(func=cmd.run)
    return parser


def _node_config(args: argparse.Namespace) -> NodeConfig:
    return load_node_config(Path(args.dir), env=os.environ)


# --- check-input ---------------------------------------------------------------------------


def _parse_columns(text: str) -> dict[str, str]:
    columns: dict[str, str] = {}
    for part in text.split(","):
        field_name, sep, header = part.partition("=")
        field_name, header = field_name.strip(), header.strip()
        if not sep or not field_name or not header:
            raise argparse.ArgumentTypeError(f"expected FIELD=HEADER, got {part!r}")
        columns[field_name] = header
    return columns


def _parse_delimiter(text: str) -> str:
    named = {"tab": "\t", "\\t": "\t", "semicolon": ";", "comma": ",", "pipe": "|"}
    value = named.get(text.lower(), text)
    if len(value) != 1:
        raise argparse.ArgumentTypeError("the delimiter is one character")
    return value


@command(
    "check-input",
    help="validate a client-list export and count what a round would use",
    description=(
        "Read a CSV export as a round would and report how many rows are valid, invalid "
        "(by line number and reason, never the value), duplicate, objected and excluded. "
        "Exit status 0 when the file is usable, 2 when not."
    ),
    node_dir=False,
    json_flag=False,
    options=(
        option("file", type=Path, metavar="FILE", help="the CSV export (UTF-8)"),
        option("--kind", required=True, choices=KINDS, help="identifier kind of the file"),
        option(
            "--columns",
            type=_parse_columns,
            default={},
            metavar="FIELD=HEADER,...",
            help="header name per field, e.g. bsn=BSN or postcode=Postcode,huisnummer=Huisnr",
        ),
        option(
            "--delimiter",
            type=_parse_delimiter,
            default=None,
            metavar="CHAR",
            help="field delimiter (default: sniffed from the header; 'tab' for a tab)",
        ),
        option("--objection-column", metavar="HEADER", help="column marking objections"),
        option(
            "--exclusions", type=Path, metavar="FILE", help="CSV of identifiers that never leave"
        ),
        option("--strict", action="store_true", help="stop at the first invalid row"),
        option("--json", action="store_true", help="print a JSON report on stdout"),
    ),
)
def _check_input(args: argparse.Namespace) -> int:
    kind: IdentifierKind = args.kind
    unknown = sorted(set(args.columns) - set(FIELDS[kind]))
    if unknown:
        present.input_failure(
            args.file,
            kind,
            f"--columns: {', '.join(unknown)} is not a field of kind {kind}; "
            f"expected {', '.join(FIELDS[kind])}",
            as_json=args.json,
        )
        return EXIT_UNUSABLE
    spec = InputSpec(
        path=args.file,
        kind=kind,
        columns=args.columns,
        delimiter=args.delimiter,
        objection_column=args.objection_column,
        exclusion_file=args.exclusions,
    )
    progress = present.Progress(sys.stderr, every=PROGRESS_EVERY) if sys.stderr.isatty() else None
    try:
        found = read_input(spec, strict=args.strict, progress=progress)
    except KruispuntError as e:
        present.input_failure(args.file, kind, str(e), as_json=args.json)
        return EXIT_UNUSABLE
    finally:
        if progress is not None:
            progress.clear()
    present.input_report(found.report, args.exclusions, as_json=args.json)
    return 0 if found.report.usable else EXIT_UNUSABLE


# -- set-up, serving, audit, retention -------------------------------------------------------


@command(
    "init",
    help="create a node: TLS key + CSR, signing key, node.toml",
    options=(
        option("--partner", required=True, help="this organisation's partner id"),
        option("--name", required=True, help="organisation name"),
        option("--port", type=int, default=50051, help="port the node listens on"),
        option("--network", help="network name, if known (else taken from the CA later)"),
    ),
)
def _init(args: argparse.Namespace) -> int:
    from psi_node.provision import init_node

    res = init_node(Path(args.dir), args.partner, args.name, port=args.port, network=args.network)
    present.emit(present.node_created(res, args.partner, args.dir), as_json=args.json)
    return 0


@command(
    "install-cert",
    help="install the certificate, CA and coordinator key sent by the coordinator",
    options=(
        option("--cert", required=True, help="this node's certificate"),
        option("--ca", required=True, help="the network CA certificate"),
        option("--coordinator-key", required=True, help="the coordinator's signing key"),
    ),
)
def _install_cert(args: argparse.Namespace) -> int:
    from kruispunt.tomlfile import read_toml, table
    from psi_node.provision import install_certificate

    directory = Path(args.dir)
    node = table(read_toml(directory / "node.toml"), "node", str(directory / "node.toml"))
    identity = install_certificate(
        directory,
        cert_path=Path(args.cert),
        ca_path=Path(args.ca),
        coordinator_key_path=Path(args.coordinator_key),
        partner_id=str(node["partner_id"]),
    )
    present.emit(present.certificate_installed(identity, args.dir), as_json=args.json)
    return 0


@command(
    "roster",
    "accept",
    help="accept the partner roster by the digest written in the covenant",
    description=(
        "Check that the roster lists this node with its own signing key, agreement key and "
        "TLS certificate, and names the coordinator key installed with the certificate; then "
        "store it as this node's roster if its digest is the one typed (a newer version "
        "replaces an older one, never the other way round)."
    ),
    options=(
        option("roster_file", type=Path, metavar="ROSTER_FILE", help="the roster (roster.toml)"),
        option(
            "--digest",
            required=True,
            metavar="HEX",
            help="the roster digest as written in the covenant (64 hex digits; spaces allowed)",
        ),
    ),
)
def _roster_accept(args: argparse.Namespace) -> int:
    from kruispunt.roster import ACCEPTED_ROSTER_FILE
    from psi_node.provision import accept_network_roster

    directory = Path(args.dir)
    roster, changes = accept_network_roster(
        directory, args.roster_file, args.digest, actor=_actor()
    )
    state_file = _node_config(args).state_dir / ACCEPTED_ROSTER_FILE
    present.emit(present.roster_accepted(roster, changes, state_file), as_json=args.json)
    return 0


@command("roster", "show", help="show the roster this node accepted")
def _roster_show(args: argparse.Namespace) -> int:
    from kruispunt.roster import ACCEPTED_ROSTER_FILE, load_accepted_roster

    config = _node_config(args)
    roster = load_accepted_roster(config.state_dir)
    if roster is None:
        print(
            f"psi-node: no roster accepted: psi-node roster accept {args.dir} ROSTER_FILE "
            "--digest HEX (the digest from the covenant)",
            file=sys.stderr,
        )
        return 1
    present.emit(
        present.roster_shown(roster, config.state_dir / ACCEPTED_ROSTER_FILE), as_json=args.json
    )
    return 0


def _actor() -> str:
    # The person, never the service account or a uid: SUDO_USER first (kruispunt.login).
    return login.actor(os.environ)


@command("serve", help="run the node until SIGTERM", json_flag=False)
def _serve(args: argparse.Namespace) -> int:
    from psi_node.server import serve

    config = _node_config(args)
    configure_logging(level=config.log_level)
    return serve(config)


@command("audit", "verify", help="recompute the chain and signatures of the node log")
def _audit_verify(args: argparse.Namespace) -> int:
    from kruispunt import signing
    from psi_node.audit import verify_file

    config = _node_config(args)
    key = signing.load_signing_key(config.signing_key).public_key()
    report = verify_file(config.audit_log, key)
    present.emit(present.audit_verified(report), as_json=args.json)
    return 0 if report.ok else 1


@command(
    "audit",
    "export",
    help="export the node log",
    json_flag=False,
    options=(
        option("--format", choices=("jsonl", "csv"), default="jsonl"),
        option("--round", help="only this round's events"),
    ),
)
def _audit_export(args: argparse.Namespace) -> int:
    from kruispunt import signing
    from psi_node.audit import NodeAudit

    config = _node_config(args)
    audit = NodeAudit(config.audit_log, signing.load_signing_key(config.signing_key))
    audit.export(sys.stdout, fmt=args.format, round_id=args.round)
    return 0


@command(
    "audit",
    "cross-check",
    help="hold the node log against the coordinator's export (JSON Lines)",
    options=(option("coordinator_export", help="output of psi-coordinator audit export"),),
)
def _audit_cross_check(args: argparse.Namespace) -> int:
    from kruispunt import signing
    from kruispunt.audit import load_jsonl
    from psi_node.audit import NodeAudit, cross_check

    config = _node_config(args)
    audit = NodeAudit(config.audit_log, signing.load_signing_key(config.signing_key))
    with open(args.coordinator_export, encoding="utf-8") as fh:
        theirs = list(load_jsonl(fh))
    mismatches = cross_check(audit.events(), theirs, partner=config.partner_id)
    present.emit(present.cross_checked(mismatches), as_json=args.json)
    return 1 if mismatches else 0


@command("purge", help="delete result files whose retention has ended")
def _purge(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from kruispunt import signing
    from psi_node.audit import NodeAudit
    from psi_node.rounds import purge_expired_results

    config = _node_config(args)
    audit = NodeAudit(config.audit_log, signing.load_signing_key(config.signing_key))
    deleted = purge_expired_results(config, audit, datetime.now(UTC), actor="psi-node purge")
    present.emit(present.purged(deleted), as_json=args.json)
    return 0


@command(
    "doctor",
    help="check configuration, keys, certificates, inputs, results folder and audit log",
    options=(option("--offline", action="store_true", help="skip the health call to this node"),),
)
def _doctor(args: argparse.Namespace) -> int:
    from psi_node.doctor import run_doctor

    report = run_doctor(Path(args.dir), check_coordinator=not args.offline, env=os.environ)
    present.emit(present.doctor(report), as_json=args.json)
    return int(report.exit_code)
