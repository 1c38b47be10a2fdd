"""psi-coordinator: set up the network, register partners and purposes, run and audit rounds."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc

from coordinator.config import CoordinatorConfig, load_coordinator_config
from kruispunt import pki, transport
from kruispunt.errors import KruispuntError
from kruispunt.logs import configure_logging
from kruispunt.purpose import load_purpose_file
from kruispunt.v1 import coordinator_pb2, coordinator_pb2_grpc

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
Handler = Callable[[argparse.Namespace], int]


def _config(args: argparse.Namespace) -> CoordinatorConfig:
    return load_coordinator_config(Path(args.dir), env=os.environ)


def _emit(args: argparse.Namespace, data: Any, text: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2, default=str))
    else:
        print(text)


def _actor() -> str:
    try:
        return f"operator:{os.getlogin()}"
    except OSError:
        return f"operator:uid{os.getuid()}"


# -- init / partners / purposes -------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    from coordinator.setup import init_coordinator

    res = init_coordinator(Path(args.dir), args.network, port=args.port)
    _emit(
        args,
        {
            "directory": str(res.directory),
            "network": res.network,
            "ca_certificate": str(res.ca_cert),
            "signing_public_key": str(res.signing_public_key),
        },
        f"Coordinator for network {res.network!r} created in {res.directory}\n"
        f"  configuration:        {res.config}\n"
        f"  network CA:           {res.ca_cert}  (key: ca/ca.key - keep it offline)\n"
        f"  manifest signing key: {res.signing_public_key} (public half)\n"
        f"Each partner needs {res.ca_cert.name} and {res.signing_public_key.name} together "
        f"with its certificate.\n"
        f"Next: register partners with `psi-coordinator partner add {args.dir} ID ...`",
    )
    return EXIT_OK


def cmd_partner_add(args: argparse.Namespace) -> int:
    from coordinator.setup import add_partner

    config = _config(args)
    cert = add_partner(
        config,
        args.id,
        name=args.name,
        address=args.address,
        csr_path=Path(args.csr),
        signing_key_path=Path(args.signing_key),
        ca_key_path=Path(args.ca_key) if args.ca_key else None,
        actor=_actor(),
    )
    _emit(
        args,
        {
            "partner": args.id,
            "certificate": str(cert),
            "ca": str(config.tls_ca),
            "coordinator_key": str(config.signing_public_key),
        },
        f"Partner {args.id!r} registered at {args.address}.\n"
        f"Send these three files back to the partner's IT team:\n"
        f"  {cert}\n  {config.tls_ca}\n  {config.signing_public_key}\n"
        f"They install them with: psi-node install-cert DIR --cert {cert.name} "
        f"--ca {config.tls_ca.name} --coordinator-key {config.signing_public_key.name}",
    )
    return EXIT_OK


def cmd_partner_update(args: argparse.Namespace) -> int:
    from coordinator.setup import update_partner_address

    update_partner_address(_config(args), args.id, args.address, actor=_actor())
    _emit(
        args,
        {"partner": args.id, "address": args.address},
        f"Partner {args.id!r} now reached at {args.address}.",
    )
    return EXIT_OK


def cmd_partner_list(args: argparse.Namespace) -> int:
    from coordinator.store import Store

    store = Store(_config(args).database, readonly=True)
    partners = store.partners()
    store.close()
    rows = [
        {
            "id": p.id,
            "name": p.name,
            "address": p.address,
            "active": p.active,
            "cert_fingerprint": p.cert_fingerprint,
            "added_at": p.added_at,
        }
        for p in partners
    ]
    text = "\n".join(f"{p.id:<20} {p.address:<24} {p.name}" for p in partners) or "no partners"
    _emit(args, rows, text)
    return EXIT_OK


def cmd_purpose_add(args: argparse.Namespace) -> int:
    from coordinator.setup import add_purpose

    config = _config(args)
    purpose = load_purpose_file(Path(args.file))
    stored = add_purpose(config, purpose, actor=_actor())
    _emit(
        args,
        stored.to_dict(),
        f"Purpose {stored.id!r} registered as version {stored.version}: "
        f"{stored.identifier_kind}, threshold {stored.threshold} of "
        f"{len(stored.partners)} partners, disclosure {stored.disclosure}.",
    )
    return EXIT_OK


def cmd_purpose_list(args: argparse.Namespace) -> int:
    from coordinator.store import Store

    store = Store(_config(args).database, readonly=True)
    purposes = store.purposes()
    store.close()
    text = (
        "\n".join(
            f"{p.id:<28} v{p.version:<3} {p.mode:<9} t={p.threshold} {p.disclosure:<9} "
            f"{', '.join(p.partners)}"
            for p in purposes
        )
        or "no purposes"
    )
    _emit(args, [p.to_dict() for p in purposes], text)
    return EXIT_OK


# -- serving and rounds -----------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from coordinator.server import serve

    config = _config(args)
    configure_logging(level=config.log_level)
    return serve(config)


def _admin_stub(
    config: CoordinatorConfig,
) -> tuple[grpc.Channel, coordinator_pb2_grpc.CoordinatorStub]:
    channel = transport.secure_channel(
        # A server bound to every interface is reached on loopback from the CLI.
        config.listen.replace("0.0.0.0", "127.0.0.1"),  # noqa: S104
        pki.Identity.coordinator(config.network),
        key_pem=pki.private_key_pem(pki.load_tls_key(config.operator_key)),
        cert_pem=config.operator_cert.read_bytes(),
        ca_pem=config.tls_ca.read_bytes(),
    )
    return channel, coordinator_pb2_grpc.CoordinatorStub(channel)


def _format_summary(s: coordinator_pb2.RoundSummary) -> str:
    lines = [
        f"round {s.round_id}  purpose {s.purpose_id}  state {s.state.upper()}  ({s.seconds:.1f} s)"
    ]
    if s.reason:
        lines.append(f"  reason: {s.reason}")
    if s.partners:
        lines.append(f"  {'partner':<20} {'records':>9} {'excluded':>9} {'flagged':>8}  results")
        for p in s.partners:
            lines.append(
                f"  {p.partner_id:<20} {p.set_size:>9} {p.excluded_count:>9} "
                f"{p.flagged_count:>8}  {p.result_path or '-'}"
            )
    if s.overlap_histogram:
        hist = ", ".join(f"{k} partners: {v}" for k, v in sorted(s.overlap_histogram.items()))
        lines.append(f"  households by number of partners holding them: {hist}")
    if s.phases:
        lines.append("  phases: " + ", ".join(f"{p.phase} {p.seconds:.2f}s" for p in s.phases))
    return "\n".join(lines)


def summary_to_dict(s: coordinator_pb2.RoundSummary) -> dict[str, Any]:
    from coordinator.orchestrator import summary_dict

    return {
        "round_id": s.round_id,
        "purpose": s.purpose_id,
        "state": s.state,
        "reason": s.reason,
        **summary_dict(s),
    }


def cmd_round_run(args: argparse.Namespace) -> int:
    config = _config(args)
    channel, stub = _admin_stub(config)
    summary = None
    round_id = ""
    try:
        for event in stub.RunRound(
            coordinator_pb2.RunRoundRequest(purpose_id=args.purpose, reason=args.reason or "")
        ):
            round_id = event.round_id or round_id
            if event.HasField("summary"):
                summary = event.summary
            elif not args.json:
                progress = f" [{event.done}/{event.total}]" if event.total else ""
                print(f"[{event.phase}] {event.message}{progress}", file=sys.stderr, flush=True)
    except grpc.RpcError as exc:
        if round_id:
            print(
                f"psi-coordinator: lost the connection to the coordinator during round "
                f"{round_id} ({exc.code().name}); its outcome: "
                f"`psi-coordinator round show {args.dir} {round_id}`",
                file=sys.stderr,
            )
        elif exc.code() == grpc.StatusCode.UNAVAILABLE:
            print(
                f"psi-coordinator: cannot reach the coordinator at {config.listen}; is "
                f"`psi-coordinator serve {args.dir}` running? ({exc.details()})",
                file=sys.stderr,
            )
        else:
            print(f"psi-coordinator: {exc.details()}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        channel.close()
    if summary is None:
        print("psi-coordinator: the round ended without a summary", file=sys.stderr)
        return EXIT_FAILED
    _emit(args, summary_to_dict(summary), _format_summary(summary))
    return EXIT_OK if summary.state == "completed" else EXIT_FAILED


def cmd_round_cancel(args: argparse.Namespace) -> int:
    config = _config(args)
    channel, stub = _admin_stub(config)
    try:
        stub.CancelRound(
            coordinator_pb2.CancelRoundRequest(round_id=args.round_id, reason=args.reason or "")
        )
    except grpc.RpcError as exc:
        print(f"psi-coordinator: {exc.details()}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        channel.close()
    print(f"round {args.round_id}: cancellation requested")
    return EXIT_OK


def cmd_round_list(args: argparse.Namespace) -> int:
    from coordinator.orchestrator import summary_from_row
    from coordinator.store import Store

    store = Store(_config(args).database, readonly=True)
    rows = store.rounds(purpose_id=args.purpose, limit=args.limit)
    store.close()
    data = [summary_from_row(r) for r in rows]
    text = (
        "\n".join(
            f"{r.id:<28} {r.purpose_id:<24} {r.state:<10} {r.created_at[:19]}  "
            f"{(r.phase + ' ' + r.progress) if r.state == 'running' else r.reason[:60]}"
            for r in rows
        )
        or "no rounds"
    )
    _emit(args, data, text)
    return EXIT_OK


def cmd_round_show(args: argparse.Namespace) -> int:
    from coordinator.orchestrator import summary_from_row
    from coordinator.store import Store

    store = Store(_config(args).database, readonly=True)
    row = store.round(args.round_id)
    consents = store.consents(args.round_id) if row else []
    store.close()
    if row is None:
        print(f"psi-coordinator: no round {args.round_id!r}", file=sys.stderr)
        return EXIT_FAILED
    data = summary_from_row(row)
    data["consents"] = {p: {"granted": g, "reason": r} for p, g, r, _c, _s in consents}
    lines = [
        f"round {row.id}",
        f"  purpose:   {row.purpose_id} v{row.purpose_version}",
        f"  state:     {row.state}" + (f" ({row.reason})" if row.reason else ""),
        f"  started:   {row.created_at} by {row.initiated_by}",
        f"  finished:  {row.finished_at or '-'}",
    ]
    if row.state == "running":
        lines.append(f"  progress:  {row.phase} {row.progress}")
    for p, g, r, _c, _s in consents:
        lines.append(f"  consent    {p:<20} {'given' if g else 'REFUSED: ' + r}")
    for p, v in row.summary.get("partners", {}).items():
        lines.append(
            f"  partner    {p:<20} records {v['set_size']:>8}  flagged {v['flagged_count']:>6}"
        )
    if row.summary.get("histogram"):
        lines.append(
            "  overlap:   "
            + ", ".join(f"{k} partners: {v}" for k, v in row.summary["histogram"].items())
        )
    if row.summary.get("phases"):
        lines.append(
            "  phases:    " + ", ".join(f"{k} {v:.2f}s" for k, v in row.summary["phases"].items())
        )
    _emit(args, data, "\n".join(lines))
    return EXIT_OK


# -- audit ------------------------------------------------------------------------------------


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from coordinator.audit import verify_database
    from kruispunt import signing

    config = _config(args)
    key_path = Path(args.public_key) if args.public_key else config.signing_public_key
    report = verify_database(config.database, signing.load_public_key(key_path.read_bytes()))
    _emit(args, report.as_dict(), report.describe())
    return EXIT_OK if report.ok else EXIT_FAILED


def cmd_audit_export(args: argparse.Namespace) -> int:
    from coordinator.audit import CoordinatorAudit
    from kruispunt import signing

    config = _config(args)
    audit = CoordinatorAudit(config.database, signing.load_signing_key(config.signing_key))
    if args.out:
        with open(args.out, "w", encoding="utf-8", newline="") as fh:
            n = audit.export(fh, fmt=args.format, round_id=args.round)
        print(f"wrote {n} events to {args.out}", file=sys.stderr)
    else:
        audit.export(sys.stdout, fmt=args.format, round_id=args.round)
    return EXIT_OK


def cmd_audit_report(args: argparse.Namespace) -> int:
    from coordinator.report import write_report
    from kruispunt import signing

    config = _config(args)
    key = signing.load_public_key(Path(args.public_key).read_bytes()) if args.public_key else None
    res = write_report(config, args.round, Path(args.out), public_key=key)
    data = {
        "path": str(res.path),
        "round_id": res.round_id,
        "state": res.round_state,
        "verified": res.verified,
        "warnings": list(res.warnings),
    }
    text = (
        f"wrote {res.path}: round {res.round_id} ({res.round_state}); audit chain and "
        f"consents {'verified' if res.verified else 'NOT verified - see the report'}"
        + "".join(f"\n  warning: {w}" for w in res.warnings)
    )
    _emit(args, data, text)
    return EXIT_OK if res.verified else EXIT_FAILED


def cmd_doctor(args: argparse.Namespace) -> int:
    from coordinator.doctor import run_doctor

    report = run_doctor(Path(args.dir), check_partners=not args.offline, env=os.environ)
    _emit(args, report.as_dict(), report.render())
    return int(report.exit_code)


def cmd_partner_renew(args: argparse.Namespace) -> int:
    from coordinator.renew import renew_partner

    config = _config(args)
    cert = renew_partner(
        config,
        args.id,
        csr_path=Path(args.csr) if args.csr else None,
        days=args.days,
        ca_key_path=Path(args.ca_key) if args.ca_key else None,
        actor=_actor(),
    )
    _emit(
        args,
        {"partner": args.id, "certificate": str(cert)},
        f"Renewed the certificate of {args.id!r}: send {cert} to the partner, who installs it "
        f"with `psi-node install-cert` and restarts the node.",
    )
    return EXIT_OK


def cmd_renew(args: argparse.Namespace) -> int:
    from coordinator.renew import renew_coordinator

    paths = renew_coordinator(
        _config(args),
        days=args.days,
        ca_key_path=Path(args.ca_key) if args.ca_key else None,
        actor=_actor(),
    )
    _emit(
        args,
        [str(p) for p in paths],
        "Renewed: " + ", ".join(map(str, paths)) + "\nRestart `psi-coordinator serve`.",
    )
    return EXIT_OK


# -- parser -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="psi-coordinator",
        description="Kruispunt coordinator: network CA, partners, purposes, rounds and audit.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        subparsers: Any, name: str, func: Handler, help_: str, *, json_flag: bool = True
    ) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = subparsers.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func)
        p.add_argument("dir", metavar="DIR", help="the coordinator directory")
        if json_flag:
            p.add_argument("--json", action="store_true", help="machine-readable output")
        return p

    p = add(sub, "init", cmd_init, "create a coordinator: network CA, keys, database, config")
    p.add_argument("--network", required=True, help="network name (lowercase, e.g. denbosch)")
    p.add_argument("--port", type=int, default=50050, help="admin service port on loopback")

    partner = sub.add_parser("partner", help="register and list partners").add_subparsers(
        dest="partner_command", required=True, metavar="ACTION"
    )
    p = add(partner, "add", cmd_partner_add, "issue a partner certificate from its CSR")
    p.add_argument("id", help="partner id (lowercase letters, digits, dashes)")
    p.add_argument("--name", required=True, help="organisation name")
    p.add_argument("--address", required=True, help="HOST:PORT where its node listens")
    p.add_argument("--csr", required=True, help="the CSR the partner sent")
    p.add_argument("--signing-key", required=True, help="the partner's Ed25519 public key")
    p.add_argument("--ca-key", help="network CA key, if kept elsewhere (offline media)")
    p = add(partner, "update", cmd_partner_update, "change where a partner's node listens")
    p.add_argument("id")
    p.add_argument("--address", required=True, help="new HOST:PORT")
    add(partner, "list", cmd_partner_list, "list registered partners")
    p = add(partner, "renew", cmd_partner_renew, "re-issue a partner's certificate")
    p.add_argument("id")
    p.add_argument("--csr", help="a new CSR (key rotation); default: the same key")
    p.add_argument("--days", type=int, default=pki.LEAF_VALIDITY_DAYS)
    p.add_argument("--ca-key", help="network CA key, if kept elsewhere (offline media)")

    purpose = sub.add_parser("purpose", help="register and list purposes").add_subparsers(
        dest="purpose_command", required=True, metavar="ACTION"
    )
    p = add(purpose, "add", cmd_purpose_add, "register or change a purpose from a TOML file")
    p.add_argument("file", help="purpose TOML file")
    add(purpose, "list", cmd_purpose_list, "list purposes")

    add(
        sub, "serve", cmd_serve, "run the coordinator (admin service and schedule)", json_flag=False
    )
    p = add(
        sub,
        "doctor",
        cmd_doctor,
        "check configuration, keys, certificates, database, schedule and partner nodes",
    )
    p.add_argument("--offline", action="store_true", help="skip the partner health calls")
    p = add(sub, "renew", cmd_renew, "re-issue the coordinator's TLS and operator certificates")
    p.add_argument("--days", type=int, default=pki.LEAF_VALIDITY_DAYS)
    p.add_argument("--ca-key", help="network CA key, if kept elsewhere (offline media)")

    rnd = sub.add_parser("round", help="run and inspect matching rounds").add_subparsers(
        dest="round_command", required=True, metavar="ACTION"
    )
    p = add(rnd, "run", cmd_round_run, "run a round now (the coordinator must be serving)")
    p.add_argument("purpose", help="purpose id")
    p.add_argument("--reason", help="why this round is run now (audited)")
    p = add(rnd, "list", cmd_round_list, "list recent rounds")
    p.add_argument("--purpose", help="only this purpose")
    p.add_argument("--limit", type=int, default=20)
    p = add(rnd, "show", cmd_round_show, "show one round: state, consents, aggregates")
    p.add_argument("round_id")
    p = add(rnd, "cancel", cmd_round_cancel, "cancel a running round", json_flag=False)
    p.add_argument("round_id")
    p.add_argument("--reason")

    aud = sub.add_parser("audit", help="verify and export the audit log").add_subparsers(
        dest="audit_command", required=True, metavar="ACTION"
    )
    p = add(aud, "verify", cmd_audit_verify, "recompute the hash chain and signatures")
    p.add_argument("--public-key", help="coordinator public key (default: signing/coordinator.pub)")
    p = add(aud, "export", cmd_audit_export, "export events as JSON Lines or CSV", json_flag=False)
    p.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    p.add_argument("--round", help="only this round's events")
    p.add_argument("--out", help="write to this file instead of stdout")
    p = add(aud, "report", cmd_audit_report, "write the HTML report of one round")
    p.add_argument("--round", required=True, help="round id")
    p.add_argument("--out", required=True, help="HTML file to write")
    p.add_argument("--public-key", help="coordinator public key (default: signing/coordinator.pub)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the psi-coordinator command."""
    args = build_parser().parse_args(argv)
    if args.func is not cmd_serve:
        configure_logging(level="warning", stream=sys.stderr)
    try:
        return int(args.func(args))
    except KruispuntError as exc:
        print(f"psi-coordinator: {exc}", file=sys.stderr)
        return EXIT_FAILED if not isinstance(exc, ValueError) else EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
