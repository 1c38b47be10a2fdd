"""The ``psi-node`` command: one subcommand per operator task.

This module parses the command line and dispatches; what a command prints
is in `psi_node.present`. Every subcommand is a handler registered with
``@command("group name", "help", arg(...))``, which names it, gives its help and
its arguments, and puts it in `COMMANDS`; `build_parser` builds the parser from
that table alone (the machinery is `kruispunt.cli`, shared with the coordinator).
To add a subcommand, write its handler under the decorator.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path

from kruispunt.cli import (
    EXIT_OK,
    EXIT_USAGE,
    CommandTable,
    Output,
    arg,
    emit,
    label,
    operator_actor,
    run,
)
from kruispunt.errors import ConfigError, KruispuntError
from kruispunt.identifiers import FIELDS, KINDS
from kruispunt.logs import configure_logging
from psi_node import present
from psi_node.config import CONFIG_NAME, NodeConfig, load_node_config
from psi_node.inputs import (
    DEFAULT_COLUMNS,
    OBJECTION_FALSE,
    OBJECTION_TRUE,
    PROGRESS_EVERY,
    InputSpec,
    UnreadColumns,
    read_input,
)

#: Exit status when the input (or the command line) cannot be used.
EXIT_UNUSABLE = EXIT_USAGE
#: The node directory when a command is given no DIR.
DIR_ENV = "KRUISPUNT_NODE_DIR"

#: Help of the words that group subcommands (``psi-node audit verify``).
GROUPS: Mapping[str, str] = {
    "audit": "verify, export and cross-check the node's log",
    "roster": "accept and show the partner roster (the covenant's partners and their keys)",
}
TABLE = CommandTable(GROUPS)
#: Every subcommand, in the order ``psi-node --help`` lists them.
COMMANDS = TABLE.commands
#: Register the decorated handler as the subcommand it names, in `COMMANDS`.
command = TABLE.command


def main(argv: list[str] | None = None) -> int:
    """Run ``psi-node`` with ``argv`` (default: sys.argv[1:]); return the exit status."""
    parser = build_parser()

    def before(args: argparse.Namespace) -> int:
        if getattr(args, "func", None) is None:
            parser.print_help(sys.stderr)
            return EXIT_UNUSABLE
        if args.func is not _serve:
            # A command's output is stdout (--json is parsed); its log lines go to stderr.
            configure_logging(level="warning", stream=sys.stderr)
        return EXIT_OK

    return run(parser, argv, before=before)


def build_parser() -> argparse.ArgumentParser:
    """Return the parser with every registered subcommand."""
    return TABLE.parser(
        "psi-node",
        "Kruispunt partner node: check inputs and take part in rounds.",
        dir_help="the node directory",
        dir_env=DIR_ENV,
        command_required=False,
        commands_title="commands",
        actions_title="actions",
    )


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


def _parse_names(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError("expected HEADER[,HEADER...]")
    return names


def _check_input_help() -> str:
    """check-input's --help: both ways to call it, the default headers, objection values."""
    defaults = "; ".join(f"{f}: {', '.join(names)}" for f, names in DEFAULT_COLUMNS.items())
    truthy = ", ".join(sorted(OBJECTION_TRUE))
    falsy = ", ".join(v or "(empty)" for v in sorted(OBJECTION_FALSE))
    return (
        "Read a CSV export as a round would and report how many rows are valid, invalid "
        "(by line number and reason, never the value), duplicate, objected and excluded, "
        "and which header each field is read from. Give the node directory and --purpose "
        "to read the export exactly as node.toml [inputs.PURPOSE] configures it (flags "
        "given as well override node.toml), or a FILE and --kind. Exit status 0 when the "
        "file is usable, 2 when not. "
        f"Headers read by default (case, spaces, dashes and underscores ignored): {defaults}. "
        "A header no field reads that looks like an address part (Toev, Hlt, Letter, ...), a "
        "second BSN or an objection flag (Bezwaar, ...) stops the check with the fix: map it "
        "(--columns, --objection-column) or leave it out (--ignore-columns). "
        f"Objection values meaning the person objected: {truthy}; meaning no objection: "
        f"{falsy}; anything else makes the row invalid."
    )


@command(
    "check-input",
    "validate a client-list export and count what a round would use",
    arg(
        "file",
        type=Path,
        metavar="FILE|DIR",
        help="the CSV export (UTF-8), or the node directory with --purpose",
    ),
    arg("--purpose", metavar="PURPOSE", help="read DIR/node.toml [inputs.PURPOSE]"),
    arg(
        "--kind", choices=KINDS, help="identifier kind of the file (from node.toml with --purpose)"
    ),
    arg(
        "--columns",
        type=_parse_columns,
        default={},
        metavar="FIELD=HEADER,...",
        help="header name per field, e.g. bsn=BSN or postcode=Postcode,huisnummer=Huisnr",
    ),
    arg(
        "--delimiter",
        type=_parse_delimiter,
        default=None,
        metavar="CHAR",
        help="field delimiter (default: sniffed from the header; 'tab' for a tab)",
    ),
    arg("--objection-column", metavar="HEADER", help="column marking objections"),
    arg(
        "--ignore-columns",
        type=_parse_names,
        default=(),
        metavar="HEADER,...",
        help="columns deliberately not read, though they look like an address part or objection",
    ),
    arg("--exclusions", type=Path, metavar="FILE", help="CSV of identifiers that never leave"),
    arg("--strict", action="store_true", help="stop at the first invalid row"),
    arg("--json", action="store_true", help="print a JSON report on stdout"),
    takes_dir=False,
    json_flag=False,
    description=_check_input_help(),
)
def _check_input(args: argparse.Namespace) -> int:
    try:
        spec, strict = _input_spec(args)
    except KruispuntError as e:
        present.input_failure(args.file, args.kind or "", str(e), as_json=args.json)
        return EXIT_UNUSABLE
    kind = spec.kind
    unknown = sorted(set(spec.columns) - set(FIELDS[kind]))
    if unknown:
        present.input_failure(
            spec.path,
            kind,
            f"--columns: {', '.join(unknown)} is not a field of kind {kind}; "
            f"expected {', '.join(FIELDS[kind])}",
            as_json=args.json,
        )
        return EXIT_UNUSABLE
    progress = present.Progress(sys.stderr, every=PROGRESS_EVERY) if sys.stderr.isatty() else None
    try:
        found = read_input(spec, strict=strict, progress=progress)
    except UnreadColumns as e:
        present.input_failure(
            spec.path, kind, str(e), as_json=args.json, retry=_retry_command(args, spec, e)
        )
        return EXIT_UNUSABLE
    except KruispuntError as e:
        present.input_failure(spec.path, kind, str(e), as_json=args.json)
        return EXIT_UNUSABLE
    finally:
        if progress is not None:
            progress.clear()
    present.input_report(found.report, spec.exclusion_file, as_json=args.json)
    return 0 if found.report.usable else EXIT_UNUSABLE


def _input_spec(args: argparse.Namespace) -> tuple[InputSpec, bool]:
    """The export to check and whether to stop at the first invalid row.

    With --purpose, from DIR/node.toml; flags given on the command line override it, so a
    mapping can be tried before it is written down.
    """
    if args.purpose is None:
        if args.kind is None:
            raise ConfigError(
                "give --kind bsn|address with a FILE, or the node directory and --purpose "
                "PURPOSE to read node.toml"
            )
        spec = InputSpec(
            path=args.file,
            kind=args.kind,
            columns=args.columns,
            delimiter=args.delimiter,
            objection_column=args.objection_column,
            exclusion_file=args.exclusions,
            ignore_columns=args.ignore_columns,
        )
        return spec, args.strict
    config = load_node_config(args.file, env=os.environ)
    inp = config.inputs.get(args.purpose)
    if inp is None:
        known = ", ".join(sorted(config.inputs)) or "none"
        raise ConfigError(
            f"{args.file / CONFIG_NAME}: no [inputs.{args.purpose}] (configured: {known})"
        )
    base = inp.spec()
    if args.kind is not None and args.kind != base.kind:
        raise ConfigError(
            f"--kind {args.kind}: [inputs.{args.purpose}] in {CONFIG_NAME} reads {base.kind}"
        )
    spec = dataclasses.replace(
        base,
        columns={**base.columns, **args.columns},
        delimiter=args.delimiter or base.delimiter,
        objection_column=args.objection_column or base.objection_column,
        exclusion_file=args.exclusions or base.exclusion_file,
        ignore_columns=(*base.ignore_columns, *args.ignore_columns),
    )
    return spec, args.strict or config.strict_input


def _retry_command(args: argparse.Namespace, spec: InputSpec, error: UnreadColumns) -> str:
    """The check-input command line with the mapping the error suggests (unread columns read)."""
    words = ["psi-node", "check-input", str(args.file)]
    if args.purpose is not None:
        words += ["--purpose", args.purpose]
    else:
        words += ["--kind", spec.kind]
    columns = {**args.columns, **error.columns}
    if columns:
        words += ["--columns", ",".join(f"{f}={h}" for f, h in columns.items())]
    if args.delimiter is not None:
        words += ["--delimiter", args.delimiter]
    objection = args.objection_column or error.objection_column
    if objection:
        words += ["--objection-column", objection]
    if args.ignore_columns:
        words += ["--ignore-columns", ",".join(args.ignore_columns)]
    if args.exclusions is not None:
        words += ["--exclusions", str(args.exclusions)]
    if args.strict:
        words.append("--strict")
    return shlex.join(words)


# -- set-up, serving, audit, retention -------------------------------------------------------


@command(
    "init",
    "create a node: TLS key + CSR, signing key, node.toml",
    arg(
        "--partner",
        required=True,
        type=label("partner id"),
        help="this organisation's partner id",
    ),
    arg("--name", required=True, help="organisation name"),
    arg("--port", type=int, default=50051, help="port the node listens on"),
    arg(
        "--network",
        type=label("network name"),
        help="network name, if known (else taken from the CA later)",
    ),
)
def _init(args: argparse.Namespace) -> int:
    from psi_node.provision import init_node

    res = init_node(Path(args.dir), args.partner, args.name, port=args.port, network=args.network)
    emit(present.node_created(res, args.partner, args.dir), as_json=args.json)
    return 0


@command(
    "install-cert",
    "install the certificate, CA and coordinator key sent by the coordinator",
    arg("--cert", required=True, help="this node's certificate"),
    arg("--ca", required=True, help="the network CA certificate"),
    arg("--coordinator-key", required=True, help="the coordinator's signing key"),
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
    emit(present.certificate_installed(identity, args.dir), as_json=args.json)
    return 0


@command(
    "roster accept",
    "accept the partner roster by the digest written in the covenant",
    arg("roster_file", type=Path, metavar="ROSTER_FILE", help="the roster (roster.toml)"),
    arg(
        "--digest",
        required=True,
        metavar="HEX",
        help="the roster digest as written in the covenant (64 hex digits; spaces allowed)",
    ),
    description=(
        "Check that the roster lists this node with its own signing key, agreement key and "
        "TLS certificate, and names the coordinator key installed with the certificate; then "
        "store it as this node's roster if its digest is the one typed (a newer version "
        "replaces an older one, never the other way round)."
    ),
)
def _roster_accept(args: argparse.Namespace) -> int:
    from kruispunt.roster import ACCEPTED_ROSTER_FILE
    from psi_node.provision import accept_network_roster

    directory = Path(args.dir)
    roster, changes = accept_network_roster(
        directory, args.roster_file, args.digest, actor=operator_actor()
    )
    state_file = _node_config(args).state_dir / ACCEPTED_ROSTER_FILE
    emit(present.roster_accepted(roster, changes, state_file), as_json=args.json)
    return 0


@command(
    "rotate-signing-key",
    "replace this node's signing key, keeping the old one until the roster names the new",
    arg("--reason", help="why (audited in the handover)"),
    description=(
        "Draw a new Ed25519 signing key and hand this node's audit log over to it (a "
        "handover event sealed by the old key and endorsed by the new). The old key is kept "
        "as signing/node.ed25519.previous: rounds are signed with the key the accepted roster "
        "names, so they go on until the coordinator registers the new public key (psi-"
        "coordinator partner rotate-key) and this node accepts that roster."
    ),
)
def _rotate_signing_key(args: argparse.Namespace) -> int:
    from psi_node.signing_keys import rotate_signing_key

    done = rotate_signing_key(_node_config(args), actor=operator_actor(), reason=args.reason or "")
    emit(present.signing_key_rotated(done, args.dir), as_json=args.json)
    return 0


@command("roster show", "show the roster this node accepted")
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
    emit(present.roster_shown(roster, config.state_dir / ACCEPTED_ROSTER_FILE), as_json=args.json)
    return 0


@command("serve", "run the node until SIGTERM", json_flag=False)
def _serve(args: argparse.Namespace) -> int:
    from psi_node.server import serve

    config = _node_config(args)
    configure_logging(level=config.log_level)
    return serve(config)


@command("audit verify", "recompute the chain and signatures of the node log")
def _audit_verify(args: argparse.Namespace) -> int:
    from kruispunt import signing
    from psi_node.audit import verify_file

    config = _node_config(args)
    key = signing.load_signing_key(config.signing_key).public_key()
    report = verify_file(config.audit_log, key)
    emit(present.audit_verified(report), as_json=args.json)
    return 0 if report.ok else 1


@command(
    "audit export",
    "export the node log",
    arg("--format", choices=("jsonl", "csv"), default="jsonl"),
    arg("--round", help="only this round's events"),
    json_flag=False,
)
def _audit_export(args: argparse.Namespace) -> int:
    from kruispunt import signing
    from psi_node.audit import NodeAudit

    config = _node_config(args)
    audit = NodeAudit(config.audit_log, signing.load_signing_key(config.signing_key))
    audit.export(sys.stdout, fmt=args.format, round_id=args.round)
    return 0


_WITNESS_HELP = (
    "Verify, with public material only, every hash and signature of the coordinator's "
    "export, of this node's log and of each other node export given (keys from the roster "
    "this node accepted); that every coordinator audit head a node witnessed in a manifest "
    "lies on the coordinator's chain (a cut-off or rewritten and re-signed coordinator log "
    "lacks it); that every node head the coordinator recorded lies on that node's chain (a "
    "cut-off node log lacks it); and, per round, that node and coordinator agree on the "
    "manifest, purpose version, partners, threshold, consent, set sizes, flagged counts, "
    "deliveries and deletions. Names the first problem; exit status 0 only when all hold."
)
_NODE_EXPORTS = arg(
    "--node-export",
    dest="node_exports",
    action="append",
    type=Path,
    default=[],
    metavar="FILE",
    help="another node's audit export (psi-node audit export), checked too; repeatable",
)
_COORDINATOR_KEY = arg(
    "--coordinator-key",
    required=True,
    type=Path,
    metavar="FILE",
    help="the coordinator's audit public key (psi-coordinator audit export names it)",
)


@command(
    "audit verify-network",
    "verify the coordinator's export against this node's log, trusting neither",
    arg(
        "--coordinator-export",
        required=True,
        type=Path,
        metavar="FILE",
        help="the coordinator's full export (psi-coordinator audit export)",
    ),
    _COORDINATOR_KEY,
    _NODE_EXPORTS,
    description=_WITNESS_HELP,
)
def _audit_verify_network(args: argparse.Namespace) -> int:
    return _witness(args, args.coordinator_export)


@command(
    "audit cross-check",
    "the same checks as verify-network, the coordinator's export given by position",
    arg("coordinator_export", type=Path, help="output of psi-coordinator audit export"),
    _COORDINATOR_KEY,
    _NODE_EXPORTS,
    description=_WITNESS_HELP,
)
def _audit_cross_check(args: argparse.Namespace) -> int:
    return _witness(args, args.coordinator_export)


def _witness(args: argparse.Namespace, coordinator_export: Path) -> int:
    from psi_node.audit_check import verify_network_files

    report = verify_network_files(
        _node_config(args),
        coordinator_export=coordinator_export,
        coordinator_key=args.coordinator_key,
        node_exports=args.node_exports,
    )
    emit(Output(report.as_dict(), report.describe()), as_json=args.json)
    return 0 if report.ok else 1


@command("purge", "delete result files whose retention has ended")
def _purge(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from kruispunt import signing
    from psi_node.audit import NodeAudit
    from psi_node.deletions import purge_expired_results

    config = _node_config(args)
    audit = NodeAudit(config.audit_log, signing.load_signing_key(config.signing_key))
    deleted = purge_expired_results(config, audit, datetime.now(UTC), actor="psi-node purge")
    emit(present.purged(deleted), as_json=args.json)
    return 0


@command(
    "doctor",
    "check configuration, keys, certificates, inputs, results folder and audit log",
    arg("--offline", action="store_true", help="skip the health call to this node"),
)
def _doctor(args: argparse.Namespace) -> int:
    from psi_node.doctor import run_doctor

    report = run_doctor(Path(args.dir), check_coordinator=not args.offline, env=os.environ)
    emit(present.doctor(report), as_json=args.json)
    return int(report.exit_code)
