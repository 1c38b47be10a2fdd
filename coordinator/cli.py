"""psi-coordinator: set up the network, register partners and purposes, run and audit rounds.

This module parses and dispatches only. Every command is registered the same
way, by `@command` (the table and parser are `kruispunt.cli`, shared with the
node); the work is done by the module it names (provision, operators, store,
rounds' admin service through `admin_client`, audit, report, doctor, renew), and
what it prints is worded in `coordinator.present`. Every action is the person's
who runs it (`kruispunt.login`), and the admin service is called with that
person's own operator certificate.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import grpc

from coordinator import present
from coordinator.config import CoordinatorConfig, load_coordinator_config
from kruispunt import pki
from kruispunt.audit.guard import safe_reason
from kruispunt.cli import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CommandTable,
    arg,
    emit,
    label,
    operator_actor,
    plural,
    run,
)
from kruispunt.errors import ConfigError
from kruispunt.logs import configure_logging
from kruispunt.purpose import load_purpose_file
from kruispunt.rpc import PeerError

if TYPE_CHECKING:
    from coordinator.admin_client import AdminClient
    from coordinator.store import PurposeVersion, Store


#: The coordinator directory when a command is given no DIR.
DIR_ENV = "KRUISPUNT_COORDINATOR_DIR"

__all__ = [
    "COMMANDS",
    "DIR_ENV",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "build_parser",
    "command",
    "main",
]


#: The command groups, in the order `--help` lists them among the commands.
GROUPS = {
    "partner": "register and list partners",
    "operator": "issue, remove and list the people's own operator certificates",
    "purpose": "register and list purposes",
    "round": "run and inspect matching rounds",
    "roster": "write and show the partner roster every node accepts",
    "audit": "verify and export the audit log",
}
TABLE = CommandTable(GROUPS)
#: Every command, in the order they are registered (and listed by `--help`).
COMMANDS = TABLE.commands
#: Register the decorated handler as `psi-coordinator NAME DIR ARGS...`.
command = TABLE.command


def _config(args: argparse.Namespace) -> CoordinatorConfig:
    return load_coordinator_config(Path(args.dir), env=os.environ)


def _store(args: argparse.Namespace) -> Store:
    """The coordinator database, read-only: for commands that only look."""
    from coordinator.store import Store

    return Store(_config(args).database, readonly=True)


def _admin_client(config: CoordinatorConfig) -> AdminClient:
    """The admin service's client, with the caller's own operator certificate."""
    from coordinator.admin_client import AdminClient
    from coordinator.operators import my_credentials

    mine = my_credentials(config, os.environ)
    return AdminClient(config, key=mine.key, cert=mine.cert)


def _fail(message: str) -> int:
    print(f"psi-coordinator: {message}", file=sys.stderr)
    return EXIT_FAILED


CA_KEY = arg(
    "--ca-key",
    help="the network CA key (required; kept on offline media, init wrote DIR/ca-offline/ca.key)",
)
DAYS = arg("--days", type=int, default=pki.LEAF_VALIDITY_DAYS)
PUBLIC_KEY = arg(
    "--public-key", help="audit public key (default: [audit] public_key, signing/audit.pub)"
)


# -- init / partners / purposes -------------------------------------------------------------


@command(
    "init",
    "create a coordinator: network CA, keys, database, config",
    arg(
        "--network",
        required=True,
        type=label("network name"),
        help="network name (lowercase, digits, hyphens, e.g. den-bosch)",
    ),
    arg("--port", type=int, default=50050, help="admin service port on loopback"),
    arg(
        "--operator",
        type=label("operator name"),
        help="name of the first operator (default: your login name)",
    ),
    arg(
        "--ca-key-dir",
        help="folder for the CA key, e.g. on removable media (default: DIR/ca-offline)",
    ),
)
def cmd_init(args: argparse.Namespace) -> int:
    from coordinator.provision import init_coordinator

    res = init_coordinator(
        Path(args.dir),
        args.network,
        port=args.port,
        operator=args.operator,
        ca_key_dir=Path(args.ca_key_dir) if args.ca_key_dir else None,
    )
    emit(present.initialised(res, args.dir), as_json=args.json)
    return EXIT_OK


@command(
    "partner add",
    "issue a partner certificate from its CSR",
    arg("id", type=label("partner id"), help="partner id (lowercase letters, digits, dashes)"),
    arg("--name", required=True, help="organisation name"),
    arg("--address", required=True, help="HOST:PORT where its node listens"),
    arg("--csr", required=True, help="the CSR the partner sent"),
    arg("--signing-key", required=True, help="the partner's Ed25519 public key"),
    arg(
        "--agreement-key",
        required=True,
        help="the partner's X25519 agreement public key (signing/node.x25519.pub)",
    ),
    CA_KEY,
)
def cmd_partner_add(args: argparse.Namespace) -> int:
    from coordinator.provision import add_partner

    config = _config(args)
    cert = add_partner(
        config,
        args.id,
        name=args.name,
        address=args.address,
        csr_path=Path(args.csr),
        signing_key_path=Path(args.signing_key),
        agreement_key_path=Path(args.agreement_key),
        ca_key_path=Path(args.ca_key) if args.ca_key else None,
        actor=operator_actor(),
    )
    emit(
        present.partner_added(
            args.id, args.address, cert, config.tls_ca, config.signing_public_key
        ),
        as_json=args.json,
    )
    return EXIT_OK


@command(
    "partner update",
    "change where a partner's node listens",
    arg("id", type=label("partner id"), help="partner id"),
    arg("--address", required=True, help="new HOST:PORT"),
)
def cmd_partner_update(args: argparse.Namespace) -> int:
    from coordinator.provision import update_partner_address

    update_partner_address(_config(args), args.id, args.address, actor=operator_actor())
    emit(present.partner_updated(args.id, args.address), as_json=args.json)
    return EXIT_OK


@command("partner list", "list registered partners")
def cmd_partner_list(args: argparse.Namespace) -> int:
    store = _store(args)
    partners = store.partners()
    store.close()
    emit(present.partner_list(partners), as_json=args.json)
    return EXIT_OK


@command(
    "partner renew",
    "re-issue a partner's certificate",
    arg("id", type=label("partner id"), help="partner id"),
    arg("--csr", help="a new CSR (key rotation); default: the same key"),
    DAYS,
    CA_KEY,
)
def cmd_partner_renew(args: argparse.Namespace) -> int:
    from coordinator.renew import renew_partner

    config = _config(args)
    cert = renew_partner(
        config,
        args.id,
        csr_path=Path(args.csr) if args.csr else None,
        days=args.days,
        ca_key_path=Path(args.ca_key) if args.ca_key else None,
        actor=operator_actor(),
    )
    emit(present.partner_renewed(args.id, cert), as_json=args.json)
    return EXIT_OK


REASON = arg("--reason", help="why (audited)")
OVERLAP = arg(
    "--overlap-days",
    type=int,
    default=14,
    metavar="N",
    help="days the old key still verifies (default 14, at most 90)",
)


@command(
    "partner rotate-key",
    "register a partner's new signing key; the old one verifies for an overlap window",
    arg("id", type=label("partner id"), help="partner id"),
    arg(
        "--signing-key",
        required=True,
        metavar="NEW.pub",
        help="the node's new public key (signing/node.pub after psi-node rotate-signing-key)",
    ),
    OVERLAP,
    REASON,
    description=(
        "Register the new key, keep the old one verifying until the overlap ends (audited as "
        "partner.key_rotated), then export the roster, which lists both keys with the date. "
        "Every partner accepts that roster; the rotating node signs with its new key from then."
    ),
)
def cmd_partner_rotate_key(args: argparse.Namespace) -> int:
    from coordinator.key_rotation import rotate_partner_key
    from coordinator.provision import export_roster, roster_path

    config = _config(args)
    actor = operator_actor()
    done = rotate_partner_key(
        config,
        args.id,
        Path(args.signing_key),
        overlap_days=args.overlap_days,
        actor=actor,
        reason=args.reason or "",
    )
    roster, changes = export_roster(config, actor=actor)
    emit(
        present.signing_key_rotated(done, roster_path(config), roster, changes),
        as_json=args.json,
    )
    return EXIT_OK


@command(
    "rotate-signing-key",
    "replace the manifest signing key; the old one verifies for an overlap window",
    OVERLAP,
    REASON,
    description=(
        "Draw a new manifest key, keep the old public key beside it, record the overlap "
        "(audited as signing.key_rotated) and export the roster, which names both keys. "
        "Rounds run once every partner accepted it; a running server reads the new key at "
        "the next round."
    ),
)
def cmd_rotate_signing_key(args: argparse.Namespace) -> int:
    from coordinator.key_rotation import rotate_manifest_key
    from coordinator.provision import export_roster, roster_path

    config = _config(args)
    actor = operator_actor()
    done = rotate_manifest_key(
        config, overlap_days=args.overlap_days, actor=actor, reason=args.reason or ""
    )
    roster, changes = export_roster(config, actor=actor)
    emit(
        present.signing_key_rotated(done, roster_path(config), roster, changes),
        as_json=args.json,
    )
    return EXIT_OK


@command(
    "partner deactivate",
    "suspend a partner: no round asks it, its certificate is denied",
    arg("id", type=label("partner id"), help="partner id"),
    REASON,
)
def cmd_partner_deactivate(args: argparse.Namespace) -> int:
    from coordinator.membership import deactivate_partner

    deactivate_partner(_config(args), args.id, actor=operator_actor(), reason=args.reason or "")
    emit(present.partner_deactivated(args.id), as_json=args.json)
    return EXIT_OK


@command(
    "partner reactivate",
    "let a deactivated partner take part again",
    arg("id", type=label("partner id"), help="partner id"),
    REASON,
)
def cmd_partner_reactivate(args: argparse.Namespace) -> int:
    from coordinator.membership import reactivate_partner

    reactivate_partner(_config(args), args.id, actor=operator_actor(), reason=args.reason or "")
    emit(present.partner_reactivated(args.id), as_json=args.json)
    return EXIT_OK


@command(
    "partner remove",
    "take a partner out of the registry and deny its certificates forever",
    arg("id", type=label("partner id"), help="partner id"),
    REASON,
)
def cmd_partner_remove(args: argparse.Namespace) -> int:
    from coordinator.membership import remove_partner

    fingerprint = remove_partner(
        _config(args), args.id, actor=operator_actor(), reason=args.reason or ""
    )
    emit(present.partner_removed(args.id, fingerprint), as_json=args.json)
    return EXIT_OK


@command(
    "purpose add",
    "register or change a purpose from a TOML file (an identical file changes nothing)",
    arg("file", help="purpose TOML file"),
)
def cmd_purpose_add(args: argparse.Namespace) -> int:
    from coordinator.provision import add_purpose

    config = _config(args)
    purpose = load_purpose_file(Path(args.file))
    emit(
        present.purpose_added(add_purpose(config, purpose, actor=operator_actor())),
        as_json=args.json,
    )
    return EXIT_OK


@command("purpose list", "list purposes")
def cmd_purpose_list(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        listed = [(p, store.retirement(p.id)) for p in store.purposes()]
    finally:
        store.close()
    emit(present.purpose_list(listed), as_json=args.json)
    return EXIT_OK


PURPOSE_ID = arg("purpose", type=label("purpose id"), help="purpose id")


@command(
    "purpose show",
    "show a purpose's definition: current version, or --version N",
    PURPOSE_ID,
    arg("--version", type=int, dest="version_number", metavar="N", help="an earlier version"),
)
def cmd_purpose_show(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        history = _history(store, args.purpose)
        retired = store.retirement(args.purpose)
    finally:
        store.close()
    wanted = args.version_number or history[-1].purpose.version
    version = next((v for v in history if v.purpose.version == wanted), None)
    if version is None:
        raise ConfigError(_no_version(args.purpose, wanted, history))
    emit(
        present.purpose_shown(version, retired, latest=history[-1].purpose.version),
        as_json=args.json,
    )
    return EXIT_OK


@command("purpose history", "every version of a purpose: when, by whom, what changed", PURPOSE_ID)
def cmd_purpose_history(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        history = _history(store, args.purpose)
        retired = store.retirement(args.purpose)
    finally:
        store.close()
    emit(present.purpose_history(history, retired), as_json=args.json)
    return EXIT_OK


@command(
    "purpose diff",
    "what changed between two versions of a purpose",
    PURPOSE_ID,
    arg("a", type=int, metavar="A", help="the older version"),
    arg("b", type=int, metavar="B", help="the newer version"),
)
def cmd_purpose_diff(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        history = {v.purpose.version: v for v in _history(store, args.purpose)}
    finally:
        store.close()
    for wanted in (args.a, args.b):
        if wanted not in history:
            raise ConfigError(_no_version(args.purpose, wanted, list(history.values())))
    older, newer = history[args.a].purpose, history[args.b].purpose
    emit(present.purpose_diff(older, newer), as_json=args.json)
    return EXIT_OK


@command(
    "purpose retire",
    "take a purpose out of use for good (audited): no round of it runs again",
    PURPOSE_ID,
    arg("--reason", required=True, help="why (kept in the audit log; no personal data)"),
)
def cmd_purpose_retire(args: argparse.Namespace) -> int:
    from coordinator.provision import retire_purpose

    config = _config(args)
    retired = retire_purpose(
        config, args.purpose, reason=safe_reason(args.reason), actor=operator_actor()
    )
    emit(present.purpose_retired(retired), as_json=args.json)
    return EXIT_OK


def _history(store: Store, purpose_id: str) -> list[PurposeVersion]:
    history = store.purpose_history(purpose_id)
    if not history:
        raise ConfigError(f"unknown purpose {purpose_id!r} (see: psi-coordinator purpose list)")
    return history


def _no_version(purpose_id: str, wanted: int, history: Sequence[PurposeVersion]) -> str:
    known = ", ".join(str(v.purpose.version) for v in history)
    return f"purpose {purpose_id!r} has no version {wanted} (versions kept: {known})"


@command("roster export", "write roster.toml from the registry (a new version if it changed)")
def cmd_roster_export(args: argparse.Namespace) -> int:
    from coordinator.provision import export_roster, roster_path

    config = _config(args)
    roster, changes = export_roster(config, actor=operator_actor())
    emit(present.roster_exported(roster_path(config), roster, changes), as_json=args.json)
    return EXIT_OK


@command("roster show", "show the exported roster: version, digest, partners")
def cmd_roster_show(args: argparse.Namespace) -> int:
    from coordinator.provision import load_exported_roster, roster_path

    config = _config(args)
    roster = load_exported_roster(config)
    if roster is None:
        return _fail(
            f"{roster_path(config)}: no roster yet; write it with "
            f"`psi-coordinator roster export {args.dir}`"
        )
    emit(present.roster_shown(roster_path(config), roster), as_json=args.json)
    return EXIT_OK


# -- operators --------------------------------------------------------------------------------


@command(
    "operator add",
    "issue a person their own operator certificate (key and cert in their folder)",
    arg(
        "name",
        type=label("operator name"),
        help="the person's operator name (their login name: lowercase, digits, dashes)",
    ),
    arg("--out", help="folder for operator.key and operator.crt (default: DIR/operators/NAME)"),
    DAYS,
    CA_KEY,
)
def cmd_operator_add(args: argparse.Namespace) -> int:
    from coordinator.operators import issue_operator

    issued = issue_operator(
        _config(args),
        args.name,
        actor=operator_actor(),
        out=Path(args.out) if args.out else None,
        ca_key_path=Path(args.ca_key) if args.ca_key else None,
        days=args.days,
    )
    emit(present.operator_added(issued), as_json=args.json)
    return EXIT_OK


@command(
    "operator remove",
    "remove an operator: the admin service refuses their certificates from now on",
    arg("name", type=label("operator name"), help="the operator's name"),
    arg("--reason", help="why (audited)"),
)
def cmd_operator_remove(args: argparse.Namespace) -> int:
    from coordinator.operators import remove_operator

    deleted = remove_operator(
        _config(args), args.name, actor=operator_actor(), reason=args.reason or ""
    )
    emit(present.operator_removed(args.name, deleted), as_json=args.json)
    return EXIT_OK


@command("operator list", "list operators: who may use the admin service, and who was removed")
def cmd_operator_list(args: argparse.Namespace) -> int:
    from coordinator.operators import list_operators

    emit(present.operator_list(list_operators(_config(args))), as_json=args.json)
    return EXIT_OK


# -- serving and health -----------------------------------------------------------------------


@command("serve", "run the coordinator (admin service and schedule)", json_flag=False)
def cmd_serve(args: argparse.Namespace) -> int:
    from coordinator.server import serve

    config = _config(args)
    configure_logging(level=config.log_level)
    return serve(config)


@command(
    "doctor",
    "check configuration, keys, certificates, database, schedule and partner nodes",
    arg("--offline", action="store_true", help="skip the partner health calls"),
)
def cmd_doctor(args: argparse.Namespace) -> int:
    from coordinator.doctor import run_doctor

    report = run_doctor(Path(args.dir), check_partners=not args.offline, env=os.environ)
    emit(present.Output(report.as_dict(), report.render()), as_json=args.json)
    return int(report.exit_code)


@command("renew", "re-issue the coordinator's TLS and operator certificates", DAYS, CA_KEY)
def cmd_renew(args: argparse.Namespace) -> int:
    from coordinator.renew import renew_coordinator

    paths = renew_coordinator(
        _config(args),
        days=args.days,
        ca_key_path=Path(args.ca_key) if args.ca_key else None,
        actor=operator_actor(),
    )
    emit(present.coordinator_renewed(paths), as_json=args.json)
    return EXIT_OK


# -- rounds -----------------------------------------------------------------------------------


@command(
    "round run",
    "run a round now (the coordinator must be serving)",
    arg("purpose", help="purpose id"),
    arg("--reason", help="why this round is run now (audited)"),
)
def cmd_round_run(args: argparse.Namespace) -> int:
    config = _config(args)
    summary = None
    round_id = ""
    with _admin_client(config) as client:
        try:
            for event in client.run_round(args.purpose, args.reason or ""):
                round_id = event.round_id or round_id
                if event.HasField("summary"):
                    summary = event.summary
                elif not args.json:
                    progress = f" [{event.done}/{event.total}]" if event.total else ""
                    print(f"[{event.phase}] {event.message}{progress}", file=sys.stderr, flush=True)
        except PeerError as exc:
            if round_id:
                return _fail(
                    f"lost the connection to the coordinator during round {round_id} "
                    f"({exc.status.name}); its outcome: "
                    f"`psi-coordinator round show {args.dir} {round_id}`"
                )
            if exc.status == grpc.StatusCode.UNAVAILABLE:
                return _fail(
                    f"cannot reach the coordinator at {config.listen}; is "
                    f"`psi-coordinator serve {args.dir}` running? ({exc.details})"
                )
            return _fail(exc.details)
    if summary is None:
        return _fail("the round ended without a summary")
    emit(present.round_run(summary), as_json=args.json)
    return EXIT_OK if summary.state == "completed" else EXIT_FAILED


@command(
    "round list",
    "list recent rounds",
    arg("--purpose", help="only this purpose"),
    arg("--limit", type=int, default=20),
)
def cmd_round_list(args: argparse.Namespace) -> int:
    from coordinator.store import Store

    store = Store(_config(args).database, readonly=True)
    rows = store.rounds(purpose_id=args.purpose, limit=args.limit)
    store.close()
    emit(present.round_list(rows), as_json=args.json)
    return EXIT_OK


@command("round show", "show one round: state, consents, aggregates", arg("round_id"))
def cmd_round_show(args: argparse.Namespace) -> int:
    from coordinator.store import Store

    store = Store(_config(args).database, readonly=True)
    row = store.round(args.round_id)
    consents = store.consents(args.round_id) if row else []
    store.close()
    if row is None:
        return _fail(f"no round {args.round_id!r}")
    emit(present.round_show(row, consents), as_json=args.json)
    return EXIT_OK


@command(
    "round cancel",
    "cancel a running round now (its calls end, every partner drops it)",
    arg("round_id"),
    arg("--reason", help="why (audited)"),
    json_flag=False,
)
def cmd_round_cancel(args: argparse.Namespace) -> int:
    with _admin_client(_config(args)) as client:
        try:
            answer = client.cancel_round(args.round_id, args.reason or "")
        except PeerError as exc:
            return _fail(exc.details)
    output = present.round_cancelled(answer.round_id, answer.state, args.dir)
    print(output.text)
    return EXIT_OK if answer.state in ("aborted", "cancelling") else EXIT_FAILED


# -- audit ------------------------------------------------------------------------------------


@command("audit verify", "recompute the hash chain and signatures", PUBLIC_KEY)
def cmd_audit_verify(args: argparse.Namespace) -> int:
    from coordinator.audit import verify_database
    from kruispunt import signing

    config = _config(args)
    key_path = Path(args.public_key) if args.public_key else config.audit_public_key
    report = verify_database(config.database, signing.read_public_key(key_path))
    emit(present.Output(report.as_dict(), report.describe()), as_json=args.json)
    return EXIT_OK if report.ok else EXIT_FAILED


@command(
    "audit rotate-key",
    "hand the audit log over to a new signing key (either key then verifies it)",
    arg("--reason", help="why (audited in the handover)"),
)
def cmd_audit_rotate_key(args: argparse.Namespace) -> int:
    from coordinator.audit_rotation import rotate_audit_key

    done = rotate_audit_key(_config(args), actor=operator_actor(), reason=args.reason or "")
    emit(present.audit_key_rotated(done), as_json=args.json)
    return EXIT_OK


@command(
    "audit export",
    "export events as JSON Lines or CSV",
    arg("--format", choices=("jsonl", "csv"), default="jsonl"),
    arg("--round", help="only this round's events"),
    arg("--out", help="write to this file instead of stdout"),
    json_flag=False,
)
def cmd_audit_export(args: argparse.Namespace) -> int:
    from coordinator.audit import read_database
    from kruispunt.audit import dump_csv, dump_jsonl

    # Read-only, no private key: the export is public data, and so is the key to check it.
    config = _config(args)
    events = read_database(config.database, args.round)
    dump = dump_csv if args.format == "csv" else dump_jsonl
    if args.out:
        with open(args.out, "w", encoding="utf-8", newline="") as fh:
            n = dump(events, fh)
        print(f"wrote {plural(n, 'event')} to {args.out}", file=sys.stderr)
    else:
        dump(events, sys.stdout)
    print(
        f"verify it with the audit public key {config.audit_public_key} "
        "(psi-node audit verify-network ... --coordinator-key FILE)",
        file=sys.stderr,
    )
    return EXIT_OK


@command(
    "audit report",
    "write the HTML report of one round",
    arg("--round", required=True, help="round id"),
    arg("--out", required=True, help="HTML file to write"),
    arg(
        "--lang",
        choices=("nl", "en"),
        default="nl",
        help="language of the report: nl (Nederlands, the default) or en",
    ),
    arg(
        "--pdf",
        nargs="?",
        const="",
        metavar="FILE",
        help="also print the report to PDF with headless Chromium (FILE, or OUT with .pdf)",
    ),
    PUBLIC_KEY,
)
def cmd_audit_report(args: argparse.Namespace) -> int:
    from coordinator.report import write_report
    from kruispunt import signing

    config = _config(args)
    key = signing.read_public_key(args.public_key) if args.public_key else None
    out = Path(args.out)
    pdf = None if args.pdf is None else Path(args.pdf) if args.pdf else out.with_suffix(".pdf")
    if pdf is not None and pdf.resolve() == out.resolve():
        raise ConfigError(f"--pdf {pdf}: the same file as --out; give the PDF its own name")
    res = write_report(config, args.round, out, public_key=key, lang=args.lang, pdf=pdf)
    emit(present.audit_report(res), as_json=args.json)
    return EXIT_OK if res.verified else EXIT_FAILED


# -- parser -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every registered command."""
    return TABLE.parser(
        "psi-coordinator",
        "Kruispunt coordinator: network CA, partners, purposes, rounds and audit.",
        dir_help="the coordinator directory",
        dir_env=DIR_ENV,
    )


def _before(args: argparse.Namespace) -> int:
    """Warnings only on stderr for every command but `serve`, which sets up its own logs."""
    if args.func is not cmd_serve:
        configure_logging(level="warning", stream=sys.stderr)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the psi-coordinator command."""
    return run(build_parser(), argv, before=_before)


if __name__ == "__main__":
    sys.exit(main())
