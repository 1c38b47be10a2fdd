"""Everything psi-coordinator prints, as text for an operator and as --json data.

Each command's result becomes one `Output` here; the CLI only chooses which
of the two to print. A round's aggregates (per-partner counts, overlap
histogram, phase timings) are worded by one set of functions, whether they
come from a live summary (`round run`) or from the stored row (`round show`),
so the same number carries the same label everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coordinator.phases import in_protocol_order
from coordinator.store import Partner, PurposeChange, PurposeVersion, Retirement, RoundRow
from kruispunt.agreement_file import agreement_key_id
from kruispunt.cli import Output, plural, table
from kruispunt.purpose import Purpose
from kruispunt.roster import Roster
from kruispunt.roster_text import roster_data, roster_lines
from kruispunt.v1 import coordinator_pb2

if TYPE_CHECKING:  # only the result types; the lifecycle imports this module for summary_dict
    from coordinator.audit_rotation import AuditKeyRotation
    from coordinator.key_rotation import KeyRotation
    from coordinator.operators import IssuedOperator, OperatorStatus
    from coordinator.provision import InitResult
    from coordinator.report import ReportSummary

__all__ = [
    "Output",
    "audit_report",
    "coordinator_renewed",
    "initialised",
    "operator_added",
    "operator_list",
    "operator_removed",
    "partner_added",
    "partner_list",
    "partner_renewed",
    "partner_updated",
    "purpose_added",
    "purpose_list",
    "roster_exported",
    "roster_shown",
    "round_cancelled",
    "round_list",
    "round_run",
    "round_show",
    "summary_dict",
    "summary_from_row",
    "summary_json",
]


# -- round summaries ------------------------------------------------------------------------


def summary_dict(summary: coordinator_pb2.RoundSummary) -> dict[str, Any]:
    """A round summary as JSON-ready aggregates (stored, and printed by `round run --json`)."""
    return {
        "threshold": summary.threshold,
        "seconds": round(summary.seconds, 3),
        "partners": {
            p.partner_id: {
                "set_size": p.set_size,
                "flagged_count": p.flagged_count,
                "excluded_count": p.excluded_count,
                # None: the partner's consent did not report objections apart (an older
                # node), so excluded_count holds them too.
                "objected_count": p.objected_count if p.HasField("objected_count") else None,
                "invalid_count": p.invalid_count,
                "result_path": p.result_path,
            }
            for p in summary.partners
        },
        "phases": {ph.phase: round(ph.seconds, 3) for ph in summary.phases},
        "histogram": {str(k): v for k, v in sorted(summary.overlap_histogram.items())},
    }


def summary_json(summary: coordinator_pb2.RoundSummary) -> dict[str, Any]:
    """A finished round as `round run --json` prints it: its ending and its aggregates."""
    return {
        "round_id": summary.round_id,
        "purpose": summary.purpose_id,
        "state": summary.state,
        "reason": summary.reason,
        **summary_dict(summary),
    }


def summary_from_row(row: RoundRow) -> dict[str, Any]:
    """The stored summary of a round (for `round show`), with its state and reason.

    A summary stored before objections were counted apart has no `objected_count`: it
    shows as None (not reported), like a consent that did not report it.
    """
    summary = dict(row.summary)
    if "partners" in summary:
        summary["partners"] = {
            pid: {"objected_count": None, **counts}
            for pid, counts in dict(summary["partners"]).items()
        }
    return {
        "round_id": row.id,
        "purpose": row.purpose_id,
        "state": row.state,
        "reason": row.reason,
        "created_at": row.created_at,
        "finished_at": row.finished_at,
        "initiated_by": row.initiated_by,
        "phase": row.phase,
        "progress": row.progress,
        **summary,
    }


def _aggregate_lines(aggregates: Mapping[str, Any]) -> list[str]:
    """Per-partner counts, overlap and phases of a summary_dict (live or stored)."""
    lines = []
    partners: Mapping[str, Mapping[str, Any]] = aggregates.get("partners") or {}
    if partners:
        lines.append(
            f"  {'partner':<20} {'records':>9} {'excluded':>9} {'objected':>9} {'flagged':>8}"
            "  results"
        )
        for pid, p in partners.items():
            objected = p.get("objected_count")
            lines.append(
                f"  {pid:<20} {p.get('set_size', 0):>9} {p.get('excluded_count', 0):>9} "
                f"{'-' if objected is None else objected:>9} "
                f"{p.get('flagged_count', 0):>8}  {p.get('result_path') or '-'}"
            )
        if any(p.get("objected_count") is None for p in partners.values()):
            lines.append(
                "  objected -: not reported apart by that partner (its excluded count holds them)"
            )
    histogram: Mapping[str, int] = aggregates.get("histogram") or {}
    if histogram:
        hist = ", ".join(f"{k} partners: {v}" for k, v in histogram.items())
        lines.append(f"  households by number of partners holding them: {hist}")
    phases: Mapping[str, float] = aggregates.get("phases") or {}
    if phases:
        lines.append(
            "  phases: " + ", ".join(f"{k} {phases[k]:.2f}s" for k in in_protocol_order(phases))
        )
    return lines


def round_run(summary: coordinator_pb2.RoundSummary) -> Output:
    """`round run`: how the round ended and who learned what."""
    s = summary
    lines = [
        f"round {s.round_id}  purpose {s.purpose_id}  state {s.state.upper()}  ({s.seconds:.1f} s)"
    ]
    if s.reason:
        lines.append(f"  reason: {s.reason}")
    lines += _aggregate_lines(summary_dict(s))
    return Output(summary_json(s), "\n".join(lines))


def round_show(row: RoundRow, consents: Sequence[tuple[str, bool, str, bytes, bytes]]) -> Output:
    """`round show`: one stored round, its consents and its aggregates."""
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
    lines += _aggregate_lines(row.summary)
    return Output(data, "\n".join(lines))


def round_cancelled(round_id: str, state: str, dir_arg: str) -> Output:
    """`round cancel`: whether the round has ended, is ending, or was too far to stop."""
    if state == "publishing":
        text = (
            f"round {round_id}: too late to cancel - it was publishing its results at the "
            "partners, and a published result cannot be taken back; it completes"
        )
    elif state == "cancelling":
        text = (
            f"round {round_id}: cancelled; its calls have ended and the partners are being "
            f"told to drop it (`psi-coordinator round show {dir_arg} {round_id}`)"
        )
    elif state == "aborted":
        text = f"round {round_id}: cancelled, aborted; every partner was told to drop it"
    else:
        text = f"round {round_id}: it was already ending by itself ({state}); not cancelled"
    return Output({"round_id": round_id, "state": state}, text)


def round_list(rows: Sequence[RoundRow]) -> Output:
    """`round list`: one line per round, newest first."""
    text = table(
        ("ROUND", "PURPOSE", "STATE", "CREATED", "PHASE / REASON"),
        [
            (
                r.id,
                r.purpose_id,
                r.state,
                r.created_at[:19],
                f"{r.phase} {r.progress}" if r.state == "running" else r.reason[:60],
            )
            for r in rows
        ],
        empty="no rounds",
    )
    return Output([summary_from_row(r) for r in rows], text)


# -- set-up, partners, purposes ---------------------------------------------------------------


def initialised(res: InitResult, dir_arg: str) -> Output:
    """`init`: where the new coordinator's files are, how to move the CA key offline, next steps."""
    ca_folder = res.ca_key.parent if res.ca_key is not None else "ca-offline"
    return Output(
        {
            "directory": str(res.directory),
            "network": res.network,
            "ca_certificate": str(res.ca_cert),
            "signing_public_key": str(res.signing_public_key),
            "operator": res.operator,
            "operator_certificate": str(res.operator_cert or ""),
            "ca_key": str(res.ca_key or ""),
        },
        f"Coordinator for network {res.network!r} created in {res.directory}\n"
        f"  configuration:        {res.config}\n"
        f"  network CA:           {res.ca_cert}\n"
        f"  network CA key:       {res.ca_key}\n"
        f"Move the CA key offline now: copy {ca_folder} to removable media (two copies, kept "
        f"apart), check the copies, then delete it here (shred -u {res.ca_key}; rmdir "
        f"{ca_folder}). Mount it only to issue certificates: partner add, partner renew, "
        f"operator add and renew take it as --ca-key PATH.\n"
        f"  manifest signing key: {res.signing_public_key} (public half)\n"
        f"  first operator:       {res.operator} ({res.operator_cert}); give every other "
        f"person their own with `psi-coordinator operator add {dir_arg} NAME`\n"
        f"Each partner needs {res.ca_cert.name} and {res.signing_public_key.name} together "
        f"with its certificate.\n"
        f"Next: register partners with `psi-coordinator partner add {dir_arg} ID ...`,\n"
        f"then write the partner roster with `psi-coordinator roster export {dir_arg}`.",
    )


def partner_added(
    partner: str, address: str, cert: Path, ca: Path, coordinator_key: Path
) -> Output:
    """`partner add`: the three files that go back to the partner, and how it installs them."""
    return Output(
        {
            "partner": partner,
            "certificate": str(cert),
            "ca": str(ca),
            "coordinator_key": str(coordinator_key),
        },
        f"Partner {partner!r} registered at {address}.\n"
        f"Send these three files back to the partner's IT team:\n"
        f"  {cert}\n  {ca}\n  {coordinator_key}\n"
        f"They install them with: psi-node install-cert DIR --cert {cert.name} "
        f"--ca {ca.name} --coordinator-key {coordinator_key.name}\n"
        f"Then write the new roster (`psi-coordinator roster export`): every node accepts it.",
    )


def partner_updated(partner: str, address: str) -> Output:
    """`partner update`: where the partner's node is reached now."""
    return Output(
        {"partner": partner, "address": address},
        f"Partner {partner!r} now reached at {address}.",
    )


def partner_list(partners: Sequence[Partner]) -> Output:
    """`partner list`: one line per registered partner."""
    rows = [
        {
            "id": p.id,
            "name": p.name,
            "address": p.address,
            "active": p.active,
            "cert_fingerprint": p.cert_fingerprint,
            # Empty for a partner registered before agreement keys: the roster refuses it.
            "agreement_key_id": agreement_key_id(p.agreement_key) if p.agreement_key else "",
            "added_at": p.added_at,
        }
        for p in partners
    ]
    text = table(
        ("PARTNER", "ADDRESS", "ORGANISATION", "STATUS"),
        [(p.id, p.address, p.name, "active" if p.active else "deactivated") for p in partners],
        empty="no partners",
    )
    return Output(rows, text)


def audit_key_rotated(done: AuditKeyRotation) -> Output:
    """`audit rotate-key`: the handover, the new public key and the retired one."""
    return Output(
        {
            "previous_key_id": done.previous_key_id,
            "new_key_id": done.new_key_id,
            "public_key": str(done.public_key),
            "retired_public_key": str(done.retired_public_key),
            "handover_seq": done.seq,
        },
        f"Audit log handed over at event {done.seq}: key {done.previous_key_id} -> "
        f"{done.new_key_id}.\n"
        f"  new public key:     {done.public_key} (give it to every privacy officer)\n"
        f"  retired public key: {done.retired_public_key} (still verifies the whole log)\n"
        f"Either key verifies every export; the retired key signs nothing more.",
    )


def partner_deactivated(partner: str) -> Output:
    """`partner deactivate`: the partner is not asked and its certificate is denied."""
    return Output(
        {"partner": partner, "active": False},
        f"Partner {partner!r} deactivated: no round asks it and its certificate is denied. "
        f"It stays in the roster; `psi-coordinator partner reactivate` brings it back.",
    )


def partner_reactivated(partner: str) -> Output:
    """`partner reactivate`: the partner takes part again."""
    return Output(
        {"partner": partner, "active": True},
        f"Partner {partner!r} reactivated: rounds of its purposes ask it again.",
    )


def partner_removed(partner: str, fingerprint: str) -> Output:
    """`partner remove`: out of the registry, its certificate denied; the roster to export."""
    return Output(
        {"partner": partner, "denied_fingerprint": fingerprint},
        f"Partner {partner!r} removed; its certificate {fingerprint[:16]}... is denied for good.\n"
        f"Write the new roster (`psi-coordinator roster export`) for every node to accept: "
        f"it leaves {partner!r} out.",
    )


def partner_renewed(partner: str, cert: Path) -> Output:
    """`partner renew`: the new certificate and how the partner installs it."""
    return Output(
        {"partner": partner, "certificate": str(cert)},
        f"Renewed the certificate of {partner!r}: send {cert} to the partner, who installs it "
        f"with `psi-node install-cert` and restarts the node.\n"
        f"Its TLS fingerprint changed: write the new roster (`psi-coordinator roster export`) "
        f"for every node to accept.",
    )


def coordinator_renewed(paths: Sequence[Path]) -> Output:
    """`renew`: the coordinator's renewed certificates."""
    return Output(
        [str(p) for p in paths],
        "Renewed: "
        + ", ".join(map(str, paths))
        + "\nNodes admit only the coordinator certificate their roster pins: write the new "
        "roster (`psi-coordinator roster export`), have every node accept it, then restart "
        "`psi-coordinator serve`.",
    )


def purpose_added(change: PurposeChange) -> Output:
    """`purpose add`: the version registered and what changed, or that nothing did."""
    stored = change.stored
    data = {**stored.to_dict(), "changed": sorted(change.changes), "unchanged": change.unchanged}
    if change.unchanged:
        return Output(
            data,
            f"Purpose {stored.id!r} is already registered as version {stored.version} with "
            "this definition: nothing changed.",
        )
    text = (
        f"Purpose {stored.id!r} registered as version {stored.version}: "
        f"{stored.identifier_kind}, threshold {stored.threshold} of "
        f"{plural(len(stored.partners), 'partner')}, disclosure {stored.disclosure}."
    )
    if change.previous is not None:
        text += "\nChanged since version {}:\n{}".format(
            change.previous.version, "\n".join(_difference_lines(change.changes))
        )
    return Output(data, text)


def purpose_list(purposes: Sequence[tuple[Purpose, Retirement | None]]) -> Output:
    """`purpose list`: one line per purpose, retired ones marked."""
    text = table(
        ("PURPOSE", "VERSION", "MODE", "THRESHOLD", "DISCLOSURE", "STATUS", "PARTNERS"),
        [
            (
                p.id,
                f"v{p.version}",
                p.mode,
                p.threshold,
                p.disclosure,
                f"retired {r.retired_at[:10]}" if r else "in use",
                ", ".join(p.partners),
            )
            for p, r in purposes
        ],
        empty="no purposes",
    )
    return Output([{**p.to_dict(), "retired": _retirement_data(r)} for p, r in purposes], text)


def purpose_shown(version: PurposeVersion, retired: Retirement | None, *, latest: int) -> Output:
    """`purpose show`: one version's whole definition, and whether it is current."""
    purpose = version.purpose
    status = (
        f"retired on {retired.retired_at[:10]} by {retired.retired_by}: {retired.reason}"
        if retired
        else ("current" if purpose.version == latest else f"superseded by version {latest}")
    )
    lines = [
        f"purpose {purpose.id!r} version {purpose.version} ({status})",
        f"  registered {version.changed_at[:19]}" + _by(version.changed_by),
    ]
    for key, value in purpose.to_dict().items():
        if key in ("id", "version"):
            continue
        if isinstance(value, dict):
            lines.append(f"  {key}:")
            lines += [f"    {k}: {v}" for k, v in value.items()]
        else:
            lines.append(f"  {key}: {value}")
    data = {
        **purpose.to_dict(),
        "changed_at": version.changed_at,
        "changed_by": version.changed_by,
        "current": purpose.version == latest and retired is None,
        "retired": _retirement_data(retired),
    }
    return Output(data, "\n".join(lines))


def purpose_history(history: Sequence[PurposeVersion], retired: Retirement | None) -> Output:
    """`purpose history`: every version, when and by whom, and the fields each one changed."""
    rows = []
    data = []
    previous: Purpose | None = None
    for version in history:
        changed = sorted(previous.differences(version.purpose)) if previous else []
        what = ", ".join(changed) if previous else "registered"
        rows.append(
            (
                f"v{version.purpose.version}",
                version.changed_at[:19],
                version.changed_by or "-",
                what,
            )
        )
        data.append(
            {
                "version": version.purpose.version,
                "changed_at": version.changed_at,
                "changed_by": version.changed_by,
                "changed": changed,
            }
        )
        previous = version.purpose
    text = table(("VERSION", "REGISTERED", "BY", "CHANGED"), rows, empty="no versions")
    if history and not history[0].changed_by:
        text += "\n(the history begins with the version current when it was first kept)"
    if retired:
        text += f"\nretired {retired.retired_at[:19]} by {retired.retired_by}: {retired.reason}"
    return Output({"versions": data, "retired": _retirement_data(retired)}, text)


def purpose_diff(older: Purpose, newer: Purpose) -> Output:
    """`purpose diff`: each field that differs between two versions, old value then new."""
    changes = older.differences(newer)
    head = f"purpose {older.id!r}: version {older.version} -> version {newer.version}"
    text = "\n".join([head, *_difference_lines(changes)]) if changes else f"{head}: the same"
    return Output(
        {
            "purpose": older.id,
            "from": older.version,
            "to": newer.version,
            "changes": {k: {"from": a, "to": b} for k, (a, b) in changes.items()},
        },
        text,
    )


def purpose_retired(purpose: Purpose) -> Output:
    """`purpose retire`: that no round of it runs again."""
    return Output(
        {"purpose": purpose.id, "version": purpose.version, "retired": True},
        f"Purpose {purpose.id!r} (version {purpose.version}) retired: no round of it runs "
        "again, and its id is not used for another purpose. Its rounds and audit events stay.",
    )


def _difference_lines(changes: Mapping[str, tuple[Any, Any]]) -> list[str]:
    return [f"  {key}: {_shown(a)} -> {_shown(b)}" for key, (a, b) in changes.items()]


def _shown(value: object) -> str:
    return "(none)" if value is None else repr(value) if isinstance(value, str) else str(value)


def _by(actor: str) -> str:
    return f" by {actor}" if actor else ""


def _retirement_data(retired: Retirement | None) -> dict[str, str] | None:
    if retired is None:
        return None
    return {"at": retired.retired_at, "by": retired.retired_by, "reason": retired.reason}


# -- operators --------------------------------------------------------------------------------


def operator_added(issued: IssuedOperator) -> Output:
    """`operator add`: where the person's key and certificate are, and how they use them."""
    return Output(
        {
            "operator": issued.name,
            "key": str(issued.key),
            "certificate": str(issued.cert),
            "cert_fingerprint": issued.fingerprint,
            "not_after": issued.not_after,
        },
        f"Operator {issued.name!r} registered; their own key and certificate are in "
        f"{issued.key.parent}:\n  {issued.key}  (private: for {issued.name} only)\n"
        f"  {issued.cert}  (valid until {issued.not_after[:10]})\n"
        f"The CLI uses them when {issued.name} runs it (sudo keeps their name in SUDO_USER); "
        f"a folder outside the coordinator directory is named with KRUISPUNT_OPERATOR_DIR.",
    )


def operator_removed(name: str, deleted: Sequence[Path]) -> Output:
    """`operator remove`: that the person's certificates are refused from now on."""
    files = "".join(f"\n  deleted {p}" for p in deleted)
    return Output(
        {"operator": name, "deleted": [str(p) for p in deleted]},
        f"Operator {name!r} removed: the admin service refuses their certificates from now on."
        + files,
    )


def operator_list(operators: Sequence[OperatorStatus]) -> Output:
    """`operator list`: one line per operator, active ones and removed ones."""
    rows = [
        {
            "operator": o.name,
            "active": o.active,
            "cert_fingerprint": o.fingerprint,
            "not_after": o.not_after,
            "added_at": o.added_at,
            "added_by": o.added_by,
            "removed_at": o.removed_at,
            "removed_by": o.removed_by,
            "certificates": o.certificates,
        }
        for o in operators
    ]
    text = table(
        ("OPERATOR", "STATUS", "SINCE", "BY", "CERTIFICATE UNTIL"),
        [
            (o.name, "active", o.added_at[:10], o.added_by, o.not_after[:10])
            if o.active
            else (o.name, "REMOVED", (o.removed_at or "")[:10], o.removed_by or "", "")
            for o in operators
        ],
        empty="no operators",
    )
    return Output(rows, text)


# -- the partner roster -----------------------------------------------------------------------


def roster_exported(path: Path, roster: Roster, changes: Sequence[str]) -> Output:
    """`roster export`: the file, its version and digest, and what changed since the last one."""
    data = {"path": str(path), **roster_data(roster), "changes": list(changes)}
    lines = [f"wrote {path}" if changes else f"{path} is up to date: nothing changed"]
    lines += roster_lines(roster)
    if changes:
        lines.append("changes:")
        lines += [f"  - {c}" for c in changes]
        lines.append(
            "Send the file to every partner; each writes the digest into the covenant (read it "
            "aloud or on paper, never only by e-mail) and accepts it with "
            "`psi-node roster accept DIR roster.toml --digest DIGEST`."
        )
    return Output(data, "\n".join(lines))


def signing_key_rotated(
    done: KeyRotation, path: Path, roster: Roster, changes: Sequence[str]
) -> Output:
    """`partner rotate-key` and `rotate-signing-key`: whose key, the overlap, the new roster."""
    exported = roster_exported(path, roster, changes)
    whose = (
        "the coordinator's manifest key"
        if done.retired_public_key is not None
        else f"partner {done.holder!r}'s signing key"
    )
    lines = [
        f"Rotated {whose}: {done.previous_key_id} -> {done.new_key_id}; the old key verifies "
        f"until {done.valid_until.isoformat()}, only the new one after."
    ]
    if done.public_key is not None and done.retired_public_key is not None:
        lines.append(
            f"  new public key: {done.public_key} (every partner accepts it with the roster)\n"
            f"  old public key: {done.retired_public_key}"
        )
    data: dict[str, Any] = {
        "holder": done.holder,
        "previous_key_id": done.previous_key_id,
        "new_key_id": done.new_key_id,
        "valid_until": done.valid_until.isoformat(),
        "roster": exported.data,
    }
    if done.public_key is not None:
        data["public_key"] = str(done.public_key)
    if done.retired_public_key is not None:
        data["retired_public_key"] = str(done.retired_public_key)
    return Output(data, "\n".join([*lines, exported.text]))


def roster_shown(path: Path, roster: Roster) -> Output:
    """`roster show`: the exported roster, digest and partners."""
    return Output(
        {"path": str(path), **roster_data(roster)}, "\n".join([str(path), *roster_lines(roster)])
    )


# -- audit ------------------------------------------------------------------------------------


def audit_report(res: ReportSummary) -> Output:
    """`audit report`: where the page is and whether chain and consents verified."""
    return Output(
        {
            "path": str(res.path),
            "round_id": res.round_id,
            "state": res.round_state,
            "verified": res.verified,
            "warnings": list(res.warnings),
            "lang": res.lang,
            "pdf": str(res.pdf) if res.pdf is not None else None,
        },
        f"wrote {res.path}"
        + (f" and {res.pdf}" if res.pdf is not None else "")
        + f": round {res.round_id} ({res.round_state}); audit chain and "
        f"consents {'verified' if res.verified else 'NOT verified - see the report'}"
        + "".join(f"\n  warning: {w}" for w in res.warnings),
    )
