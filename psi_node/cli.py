"""The ``psi-node`` command: one subcommand per operator task.

Each subcommand lives in a ``_register_<name>(subparsers)`` function that adds
its parser and sets ``func`` to the handler; ``main`` dispatches on
``args.func``. To add one, write the register function and the handler and
append the register function to ``_COMMANDS``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from kruispunt.errors import KruispuntError
from kruispunt.identifiers import FIELDS, KINDS, IdentifierKind
from kruispunt.logs import configure_logging
from psi_node.config import NodeConfig, load_node_config
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
        json.dump(
            {"file": str(args.file), "kind": args.kind, "usable": False, "error": message},
            sys.stdout,
            indent=2,
        )
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


# -- set-up, serving, audit, retention -------------------------------------------------------


def _node_config(args: argparse.Namespace) -> NodeConfig:
    return load_node_config(Path(args.dir), env=os.environ)


def _cmd_init(args: argparse.Namespace) -> int:
    from psi_node.provision import init_node

    res = init_node(Path(args.dir), args.partner, args.name, port=args.port, network=args.network)
    _print_result(
        args,
        {
            "directory": str(res.directory),
            "csr": str(res.csr),
            "signing_public_key": str(res.signing_public_key),
            "config": str(res.config),
        },
        f"Node {args.partner!r} created in {res.directory}\n"
        f"  private keys (never send these): tls/node.key, signing/node.ed25519\n"
        f"Send these two files to the network coordinator:\n"
        f"  {res.csr}\n  {res.signing_public_key}\n"
        f"together with the address (HOST:PORT) at which the coordinator reaches this node.\n"
        f"Then install what comes back with `psi-node install-cert {args.dir} ...`,\n"
        f"and configure inputs and policy in {res.config}.",
    )
    return 0


def _cmd_install_cert(args: argparse.Namespace) -> int:
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
    _print_result(
        args,
        {"identity": identity.uri, "network": identity.network},
        f"Installed: this node is {identity.uri} in network {identity.network!r}.\n"
        f"Start it with `psi-node serve {args.dir}`.",
    )
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from psi_node.server import serve

    config = _node_config(args)
    configure_logging(level=config.log_level)
    return serve(config)


def _cmd_audit_verify(args: argparse.Namespace) -> int:
    from kruispunt import signing
    from psi_node.audit import verify_file

    config = _node_config(args)
    key = signing.load_signing_key(config.signing_key).public_key()
    report = verify_file(config.audit_log, key)
    _print_result(args, report.as_dict(), report.describe("node audit log"))
    return 0 if report.ok else 1


def _cmd_audit_export(args: argparse.Namespace) -> int:
    from kruispunt import signing
    from psi_node.audit import NodeAudit

    config = _node_config(args)
    audit = NodeAudit(config.audit_log, signing.load_signing_key(config.signing_key))
    audit.export(sys.stdout, fmt=args.format, round_id=args.round)
    return 0


def _cmd_audit_crosscheck(args: argparse.Namespace) -> int:
    from kruispunt import signing
    from kruispunt.auditchain import load_jsonl
    from psi_node.audit import NodeAudit, cross_check

    config = _node_config(args)
    audit = NodeAudit(config.audit_log, signing.load_signing_key(config.signing_key))
    with open(args.coordinator_export, encoding="utf-8") as fh:
        theirs = list(load_jsonl(fh))
    mismatches = cross_check(audit.events(), theirs, partner=config.partner_id)
    data = [
        {"round_id": m.round_id, "field": m.field, "node": m.node, "coordinator": m.coordinator}
        for m in mismatches
    ]
    text = (
        "\n".join(
            f"{m.round_id}: {m.field}: node says {m.node!r}, coordinator says {m.coordinator!r}"
            for m in mismatches
        )
        or "node and coordinator logs agree on every round"
    )
    _print_result(args, data, text)
    return 1 if mismatches else 0


def _cmd_purge(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from kruispunt import signing
    from psi_node.audit import NodeAudit
    from psi_node.rounds import purge_expired_results

    config = _node_config(args)
    audit = NodeAudit(config.audit_log, signing.load_signing_key(config.signing_key))
    deleted = purge_expired_results(config, audit, datetime.now(UTC), actor="psi-node purge")
    _print_result(
        args,
        [str(p) for p in deleted],
        "\n".join(f"deleted {p}" for p in deleted) or "no results past retention",
    )
    return 0


def _print_result(args: argparse.Namespace, data: object, text: str) -> None:
    if getattr(args, "json", False):
        json.dump(data, sys.stdout, indent=2, sort_keys=True, default=str)
        sys.stdout.write("\n")
    else:
        print(text)


if TYPE_CHECKING:
    _Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def _add(
    subparsers: _Subparsers,
    name: str,
    func: Callable[[argparse.Namespace], int],
    help_: str,
    *,
    json_flag: bool = True,
) -> argparse.ArgumentParser:
    p = subparsers.add_parser(name, help=help_, description=help_)
    p.add_argument("dir", metavar="DIR", help="the node directory")
    if json_flag:
        p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=func)
    return p


def _register_init(subparsers: _Subparsers) -> None:
    p = _add(subparsers, "init", _cmd_init, "create a node: TLS key + CSR, signing key, node.toml")
    p.add_argument("--partner", required=True, help="this organisation's partner id")
    p.add_argument("--name", required=True, help="organisation name")
    p.add_argument("--port", type=int, default=50051, help="port the node listens on")
    p.add_argument("--network", help="network name, if known (else taken from the CA later)")


def _register_install_cert(subparsers: _Subparsers) -> None:
    p = _add(
        subparsers,
        "install-cert",
        _cmd_install_cert,
        "install the certificate, CA and coordinator key sent by the coordinator",
    )
    p.add_argument("--cert", required=True, help="this node's certificate")
    p.add_argument("--ca", required=True, help="the network CA certificate")
    p.add_argument("--coordinator-key", required=True, help="the coordinator's signing key")


def _register_serve(subparsers: _Subparsers) -> None:
    _add(subparsers, "serve", _cmd_serve, "run the node until SIGTERM", json_flag=False)


def _register_audit(subparsers: _Subparsers) -> None:
    audit = subparsers.add_parser("audit", help="verify, export and cross-check the node's log")
    sub = audit.add_subparsers(title="actions", metavar="ACTION", required=True)
    _add(sub, "verify", _cmd_audit_verify, "recompute the chain and signatures of the node log")
    p = _add(sub, "export", _cmd_audit_export, "export the node log", json_flag=False)
    p.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    p.add_argument("--round", help="only this round's events")
    p = _add(
        sub,
        "cross-check",
        _cmd_audit_crosscheck,
        "hold the node log against the coordinator's export (JSON Lines)",
    )
    p.add_argument("coordinator_export", help="output of psi-coordinator audit export")


def _cmd_doctor(args: argparse.Namespace) -> int:
    from psi_node.doctor import run_doctor

    report = run_doctor(Path(args.dir), check_coordinator=not args.offline, env=os.environ)
    _print_result(args, report.as_dict(), report.render())
    return int(report.exit_code)


def _register_doctor(subparsers: _Subparsers) -> None:
    p = _add(
        subparsers,
        "doctor",
        _cmd_doctor,
        "check configuration, keys, certificates, inputs, results folder and audit log",
    )
    p.add_argument("--offline", action="store_true", help="skip the health call to this node")


def _register_purge(subparsers: _Subparsers) -> None:
    _add(subparsers, "purge", _cmd_purge, "delete result files whose retention has ended")


_COMMANDS: list[Callable[[_Subparsers], None]] = [
    _register_check_input,
    _register_init,
    _register_install_cert,
    _register_serve,
    _register_audit,
    _register_purge,
    _register_doctor,
]
