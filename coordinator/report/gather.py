"""Gathering one round's report from the coordinator database: rows, checks, warnings.

Everything the privacy officer's page shows, read-only: the round and its
manifest, every stored consent checked against the partner's registered key
and this round's manifest, set sizes against the previous completed round of
the same purpose (the probing signal DESIGN.md asks for), the round's audit
rows (read as text, so a tampered row still shows) and the verdict on the
whole audit chain; per partner, its deletion receipt checked against its
registered key (or the date its results are due), and the audit heads each side
kept of the other's log. The database holds no identifiers, so neither does this.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from google.protobuf.message import DecodeError

from coordinator.audit import TABLE, verify_database
from coordinator.config import CoordinatorConfig
from coordinator.report.words import Notice
from coordinator.store import ABORTED, COMPLETED, FAILED, REFUSED, Partner, RoundRow, Store
from kruispunt import signing
from kruispunt.audit import ChainHead, VerifyReport, head_from_proto
from kruispunt.deletion import verify_deletion
from kruispunt.errors import ConfigError, KruispuntError, UnknownRound
from kruispunt.manifest import verify_consent
from kruispunt.purpose import Purpose
from kruispunt.v1 import common_pb2, node_pb2

__all__ = [
    "GROWTH_WARNING",
    "INVALID",
    "NEAR_MAX_WARNING",
    "NO_ANSWER",
    "VERIFIED",
    "ConsentCheck",
    "DeletionStatus",
    "EventRow",
    "HeadsRow",
    "PartnerSizes",
    "PurposeChange",
    "Refusal",
    "RoundReport",
    "build_report",
    "parse_time",
    "unix_time",
]

#: A set that grew by more than this fraction since the previous completed round is flagged.
GROWTH_WARNING: Final = 0.5
#: A set larger than this fraction of the purpose's maximum set size is flagged.
NEAR_MAX_WARNING: Final = 0.9

VERIFIED: Final = "verified"
INVALID: Final = "INVALID"
NO_ANSWER: Final = "no answer"

# How many earlier rounds of the purpose are searched for the previous completed one.
_HISTORY_LIMIT: Final = 10_000


@dataclass(frozen=True)
class ConsentCheck:
    """One partner's answer to the manifest and whether its signature still holds."""

    partner_id: str
    status: str  # VERIFIED, INVALID or NO_ANSWER
    granted: bool | None
    reason: str
    legal_basis: str  # the basis the partner itself stated in its consent
    decided_at: str
    set_size: int | None
    problem: str = ""
    #: The coordinator's audit head the partner signed back in its consent (from the
    #: manifest), and the partner's own head once it logged its answer.
    coordinator_head: ChainHead | None = None
    node_head: ChainHead | None = None


@dataclass(frozen=True)
class DeletionStatus:
    """Whether a partner that received results has deleted them, by its signed receipt."""

    partner_id: str
    delivered: bool  # results were delivered to it in this round
    deleted_at: datetime | None  # from a receipt that verifies; None: none received
    due_by: datetime | None  # delivery plus the purpose's retention
    received_at: str = ""
    node_head: ChainHead | None = None
    problem: str = ""  # the stored receipt does not verify

    def overdue(self, now: datetime) -> bool:
        """True once the deadline passed without a receipt that verifies."""
        return self.deleted_at is None and self.due_by is not None and now > self.due_by


@dataclass(frozen=True)
class HeadsRow:
    """The audit heads kept between the coordinator and one partner in this round."""

    partner_id: str
    #: The coordinator head the partner signed in its consent, and whether this
    #: coordinator's log still holds it (False: cut off or rewritten from there on).
    coordinator_head: ChainHead | None
    on_chain: bool | None
    consent_node_head: ChainHead | None
    delivery_node_head: ChainHead | None
    deletion_node_head: ChainHead | None


@dataclass(frozen=True)
class PartnerSizes:
    """A partner's set size, flagged count and change since the previous completed round."""

    partner_id: str
    contributed: bool
    set_size: int
    #: On the exclusion list; with the objected rows too when `objected` is None.
    excluded: int
    #: Rows of people who objected; None when the partner's consent did not report them
    #: apart (a node from before `Consent.objected_count`).
    objected: int | None
    invalid: int
    flagged: int
    previous: int | None
    warnings: tuple[Notice, ...]

    @property
    def change(self) -> int | None:
        return None if self.previous is None else self.set_size - self.previous

    @property
    def change_fraction(self) -> float | None:
        if self.previous is None or self.previous == 0:
            return None
        return (self.set_size - self.previous) / self.previous


@dataclass(frozen=True)
class Refusal:
    """A partner that refused the round, and the reason it gave (its `consent.refused`)."""

    partner_id: str
    reason: str


@dataclass(frozen=True)
class PurposeChange:
    """The purpose's version moved since its previous round: which fields changed."""

    previous_round: str
    old_version: int
    new_version: int
    #: Changed fields as `Purpose.differences` names them; None when the old version is
    #: neither in the registry's history nor readable from the previous round's manifest.
    fields: tuple[str, ...] | None


@dataclass(frozen=True)
class EventRow:
    """One stored audit event of the round, as text (a tampered row still displays)."""

    seq: int
    time: str
    event: str
    actor: str
    on_behalf_of: str
    access_point: str
    action: str
    basis: str
    details: str


@dataclass(frozen=True)
class RoundReport:
    """Everything the page shows, gathered from the database."""

    round: RoundRow
    network: str
    manifest: common_pb2.RoundManifest | None
    manifest_sha256: str
    purpose: Purpose | None
    purpose_source: str  # "manifest" or "registry (manifest unreadable)"
    consents: tuple[ConsentCheck, ...]
    sizes: tuple[PartnerSizes, ...]
    previous_round: RoundRow | None
    histogram: Mapping[int, int]
    threshold: int
    phases: Mapping[str, float]
    seconds: float | None
    events: tuple[EventRow, ...]
    audit: VerifyReport
    audit_key_id: str
    warnings: tuple[Notice, ...]
    generated_at: datetime
    #: Why the round was started, as its initiator gave it ("round.created").
    started_reason: str = ""
    #: Who cancelled the round and why ("round.cancelled"); empty if nobody did.
    cancelled_by: str = ""
    cancel_reason: str = ""
    #: Per partner of the round: deleted (by a verified receipt), still due, or none due.
    deletions: tuple[DeletionStatus, ...] = ()
    #: Per partner: the heads each side kept of the other's audit log.
    heads: tuple[HeadsRow, ...] = ()
    #: The partners that refused, with their reasons, from the audit events.
    refusals: tuple[Refusal, ...] = ()
    #: Set when the purpose's version differs from the one of its previous round.
    purpose_change: PurposeChange | None = None

    @property
    def bilateral(self) -> bool:
        """A two-party round: no threshold, no histogram; a client and a server."""
        return self.purpose is not None and self.purpose.mode == "bilateral"

    @property
    def consents_ok(self) -> bool:
        return all(c.status != INVALID for c in self.consents)

    @property
    def delete_results_by(self) -> datetime | None:
        """When the partners' result files must be gone (only a completed round has any)."""
        if self.round.state != COMPLETED or self.purpose is None:
            return None
        finished = parse_time(self.round.finished_at or self.round.created_at)
        if finished is None:
            return None
        return finished + timedelta(days=self.purpose.result_retention_days)


def build_report(
    config: CoordinatorConfig,
    round_id: str,
    public_key: Ed25519PublicKey,
    *,
    now: datetime | None = None,
) -> RoundReport:
    """Gather one round's report from the coordinator database; raise UnknownRound if absent."""
    if not config.database.is_file():
        raise ConfigError(f"{config.database}: no coordinator database here")
    store = Store(config.database, readonly=True)
    try:
        row = store.round(round_id)
        if row is None:
            raise UnknownRound(f"round {round_id!r} is not known to this coordinator")
        manifest = _parse_manifest(row.manifest)
        warnings: list[Notice] = []
        purpose, source = _purpose(store, row, manifest, warnings)
        digest = hashlib.sha256(row.manifest).digest()
        partners = list(manifest.partners) if manifest is not None else []
        consents = _check_consents(store, row, partners, digest)
        previous = _previous_completed(store, row)
        change = _purpose_change(store, row, purpose)
        sizes = _sizes(row, purpose, consents, previous)
        network = manifest.network if manifest is not None and manifest.network else config.network
        deliveries = _deliveries(config.database, round_id)
        deletions = _deletions(store, row, network, partners, deliveries, purpose)
    finally:
        store.close()
    audit = verify_database(config.database, public_key)
    events = _round_events(config.database, round_id)
    created = _event_details(config.database, round_id, "round.created")
    cancelled = _event_details(config.database, round_id, "round.cancelled")
    heads = _heads(config.database, consents, deliveries, deletions)
    refusals = [
        Refusal(_text(details.get("partner")), _text(details.get("reason")))
        for _when, details in _events_of(config.database, round_id, "consent.refused")
    ]
    generated = now if now is not None else datetime.now(UTC)

    if not audit.ok:
        warnings.insert(
            0, Notice("audit_broken", {"seq": audit.first_bad_seq, "reason": audit.reason})
        )
    warnings.extend(_ending(row, refusals))
    if change is not None:
        warnings.append(_change_notice(row, change))
    for c in consents:
        if c.status == INVALID:
            warnings.append(
                Notice("consent_invalid", {"partner": c.partner_id, "problem": c.problem})
            )
    for s in sizes:
        warnings.extend(Notice(w.key, w.params, s.partner_id) for w in s.warnings)
    for h in heads:
        if h.on_chain is False and h.coordinator_head is not None:
            warnings.append(
                Notice("head_missing", {"partner": h.partner_id, "seq": h.coordinator_head.seq})
            )
    for d in deletions:
        if d.problem:
            warnings.append(
                Notice("deletion_invalid", {"partner": d.partner_id, "problem": d.problem})
            )
        elif d.overdue(generated) and d.due_by is not None:
            warnings.append(Notice("deletion_overdue", {"due": d.due_by}, d.partner_id))
    summary = row.summary
    return RoundReport(
        round=row,
        network=network,
        manifest=manifest,
        manifest_sha256=digest.hex(),
        purpose=purpose,
        purpose_source=source,
        consents=tuple(consents),
        sizes=tuple(sizes),
        previous_round=previous,
        histogram=_histogram(summary.get("histogram")),
        threshold=int(summary.get("threshold") or (purpose.threshold if purpose else 0)),
        phases={str(k): float(v) for k, v in dict(summary.get("phases") or {}).items()},
        seconds=float(summary["seconds"]) if "seconds" in summary else None,
        events=tuple(events),
        audit=audit,
        audit_key_id=signing.key_id(public_key),
        warnings=tuple(warnings),
        generated_at=generated,
        started_reason=_text(created[1].get("reason")) if created else "",
        cancelled_by=cancelled[0] if cancelled else "",
        cancel_reason=_text(cancelled[1].get("reason")) if cancelled else "",
        deletions=tuple(deletions),
        heads=tuple(heads),
        refusals=tuple(refusals),
        purpose_change=change,
    )


def _ending(row: RoundRow, refusals: Sequence[Refusal]) -> list[Notice]:
    """What a round that did not complete must say first: who refused and why, or the
    failure or abort with its reason (a refused round never reads "no warnings")."""
    if row.state == REFUSED:
        if refusals:
            return [
                Notice("refused_by", {"partner": r.partner_id, "reason": r.reason})
                for r in refusals
            ]
        # Refused by the coordinator's own checks (a set above the maximum, another roster).
        return [Notice("refused", {"reason": row.reason})]
    if row.state == FAILED:
        return [Notice("failed", {"reason": row.reason})]
    if row.state == ABORTED:
        return [Notice("aborted", {"reason": row.reason})]
    return []


def _change_notice(row: RoundRow, change: PurposeChange) -> Notice:
    params: dict[str, object] = {
        "purpose": row.purpose_id,
        "previous": change.previous_round,
        "old": change.old_version,
        "new": change.new_version,
    }
    if change.fields is None:
        return Notice("purpose_unknown_version", params)
    return Notice("purpose_changed", {**params, "fields": ", ".join(change.fields)})


def _purpose_change(store: Store, row: RoundRow, purpose: Purpose | None) -> PurposeChange | None:
    """How the purpose changed since its previous round (of any outcome), if it did.

    The old version comes from the registry's history; a database from before the history
    falls back on the previous round's own manifest, which signed the purpose it ran under.
    """
    before = _previous_any(store, row)
    if before is None or purpose is None or before.purpose_version == purpose.version:
        return None
    old: Purpose | None = next(
        (
            v.purpose
            for v in store.purpose_history(row.purpose_id)
            if v.purpose.version == before.purpose_version
        ),
        None,
    )
    if old is None:
        manifest = _parse_manifest(before.manifest)
        if manifest is not None:
            try:
                old = Purpose.from_proto(manifest.purpose)
            except KruispuntError:
                old = None
    fields = tuple(old.differences(purpose)) if old is not None else None
    return PurposeChange(before.id, before.purpose_version, purpose.version, fields)


def _previous_any(store: Store, row: RoundRow) -> RoundRow | None:
    """The latest round of the same purpose created before this one, whatever its end."""
    for other in store.rounds(purpose_id=row.purpose_id, limit=_HISTORY_LIMIT):
        if (other.created_at, other.id) < (row.created_at, row.id):
            return other
    return None


def partner_keys(
    store: Store, partner: Partner, *, signed_at: datetime | None = None
) -> signing.KeySet:
    """The keys a partner's stored signatures verify under: its registered key and every
    key its rotations replaced (`Store.retired_keys`) that was still valid at `signed_at`
    (any, if None).

    A report speaks of what was signed then: a consent signed before a rotation was signed
    with the key then registered, and stays valid after that key's overlap ended, however
    many rotations came since; a key retired before the round began does not verify it.
    ValueError when a key is not Ed25519.
    """
    keys = [signing.load_public_key(partner.signing_key)]
    for key, valid_until in store.retired_keys(partner.id):
        until = parse_time(valid_until)  # unreadable: the key is not taken
        if signed_at is None or (until is not None and signed_at <= until):
            keys.append(signing.load_public_key(key))
    return signing.KeySet(tuple(keys))


def _parse_manifest(body: bytes) -> common_pb2.RoundManifest | None:
    manifest = common_pb2.RoundManifest()
    try:
        manifest.ParseFromString(body)
    except DecodeError:
        return None
    return manifest


def _purpose(
    store: Store,
    row: RoundRow,
    manifest: common_pb2.RoundManifest | None,
    warnings: list[Notice],
) -> tuple[Purpose | None, str]:
    """The purpose exactly as signed into the manifest; the registry's only as a fallback."""
    if manifest is not None:
        try:
            return Purpose.from_proto(manifest.purpose), "manifest"
        except KruispuntError:
            pass
    warnings.append(Notice("manifest_unreadable"))
    registered = store.purpose(row.purpose_id)
    return registered, "registry (manifest unreadable)"


def _check_consents(
    store: Store, row: RoundRow, partners: Sequence[str], manifest_sha256: bytes
) -> list[ConsentCheck]:
    stored = {c[0]: c for c in store.consents(row.id)}
    order = list(partners) + sorted(set(stored) - set(partners))
    out: list[ConsentCheck] = []
    for pid in order:
        if pid not in stored:
            out.append(ConsentCheck(pid, NO_ANSWER, None, "", "", "", None))
            continue
        _pid, granted, reason, body, signature = stored[pid]
        problem = ""
        consent: common_pb2.Consent | None = None
        partner = store.partner(pid)
        if partner is None:
            problem = "partner is not registered (no key to verify with)"
        elif pid not in partners:
            problem = "partner is not in this round's manifest"
        else:
            try:
                key = partner_keys(store, partner, signed_at=parse_time(row.created_at))
            except ValueError:
                problem = "the partner's registered key is not an Ed25519 key"
            else:
                try:
                    consent = verify_consent(
                        common_pb2.SignedConsent(consent=body, signature=signature),
                        key,
                        round_id=row.id,
                        partner_id=pid,
                        manifest_sha256=manifest_sha256,
                    )
                except KruispuntError as exc:  # SignatureInvalid or ManifestRejected
                    problem = str(exc)
        if consent is not None and (consent.granted != granted or consent.reason != reason):
            problem = "the stored decision differs from the signed consent"
        if consent is None or problem:
            out.append(ConsentCheck(pid, INVALID, granted, reason, "", "", None, problem))
            continue
        out.append(
            ConsentCheck(
                pid,
                VERIFIED,
                consent.granted,
                consent.reason,
                consent.legal_basis,
                unix_time(consent.decided_at_unix),
                int(consent.set_size) if consent.granted else None,
                coordinator_head=head_from_proto(consent.coordinator_audit_head),
                node_head=head_from_proto(consent.node_audit_head),
            )
        )
    return out


@dataclass(frozen=True)
class _Delivery:
    """A `results.delivered` event of the round: when, and the node head it recorded."""

    time: datetime | None
    node_head: ChainHead | None


def _deliveries(db_path: Path, round_id: str) -> dict[str, _Delivery]:
    """Per partner, the round's `results.delivered` event (read like `_round_events`)."""
    out: dict[str, _Delivery] = {}
    for when, details in _events_of(db_path, round_id, "results.delivered"):
        partner = details.get("partner")
        if isinstance(partner, str):
            out[partner] = _Delivery(
                parse_time(when), ChainHead.from_details(details.get("node_head"))
            )
    return out


def _deletions(
    store: Store,
    row: RoundRow,
    network: str,
    partners: Sequence[str],
    deliveries: Mapping[str, _Delivery],
    purpose: Purpose | None,
) -> list[DeletionStatus]:
    """Per partner: its stored deletion receipt checked against its registered key, or the
    deadline by which one is due (delivery plus the purpose's retention)."""
    stored = {d.partner_id: d for d in store.deletions(row.id)}
    out: list[DeletionStatus] = []
    for pid in list(partners) + sorted(set(deliveries) - set(partners)):
        delivery = deliveries.get(pid)
        due = (
            delivery.time + timedelta(days=purpose.result_retention_days)
            if delivery is not None and delivery.time is not None and purpose is not None
            else None
        )
        receipt = stored.get(pid)
        if receipt is None:
            out.append(DeletionStatus(pid, delivery is not None, None, due))
            continue
        partner = store.partner(pid)
        problem = ""
        try:
            if partner is None:
                raise ValueError("partner is not registered (no key to verify with)")
            deletion = verify_deletion(
                node_pb2.SignedDeletionReceipt(
                    receipt=receipt.receipt, signature=receipt.signature
                ),
                partner_keys(store, partner),
                network=network,
                partner_id=pid,
            )
            if deletion.round_id != row.id:
                raise ValueError("the receipt is for another round")
        except (KruispuntError, ValueError) as exc:
            problem = str(exc)
        if problem:
            out.append(DeletionStatus(pid, delivery is not None, None, due, problem=problem))
            continue
        out.append(
            DeletionStatus(
                pid,
                delivery is not None,
                deletion.deleted_at,
                due,
                received_at=receipt.received_at,
                node_head=deletion.node_head,
            )
        )
    return out


def _heads(
    db_path: Path,
    consents: Sequence[ConsentCheck],
    deliveries: Mapping[str, _Delivery],
    deletions: Sequence[DeletionStatus],
) -> list[HeadsRow]:
    """Per partner, the heads each side kept; a signed coordinator head checked on the log."""
    deleted = {d.partner_id: d.node_head for d in deletions}
    out: list[HeadsRow] = []
    for c in consents:
        if c.status == NO_ANSWER:
            continue
        head = c.coordinator_head
        delivery = deliveries.get(c.partner_id)
        out.append(
            HeadsRow(
                c.partner_id,
                head,
                None if head is None else _hash_at(db_path, head.seq) == head.hash,
                c.node_head,
                delivery.node_head if delivery is not None else None,
                deleted.get(c.partner_id),
            )
        )
    return out


def _hash_at(db_path: Path, seq: int) -> str | None:
    """The hash of the coordinator's audit event `seq`, if the log holds one."""
    rows = _audit_rows(db_path, "SELECT hash FROM audit_events WHERE seq = ?", (seq,))
    return str(rows[0][0]) if rows else None


def _previous_completed(store: Store, row: RoundRow) -> RoundRow | None:
    """The latest completed round of the same purpose created before this one."""
    for other in store.rounds(purpose_id=row.purpose_id, limit=_HISTORY_LIMIT):
        if other.state == COMPLETED and (other.created_at, other.id) < (row.created_at, row.id):
            return other
    return None


def _sizes(
    row: RoundRow,
    purpose: Purpose | None,
    consents: Sequence[ConsentCheck],
    previous: RoundRow | None,
) -> list[PartnerSizes]:
    parts: Mapping[str, Any] = row.summary.get("partners") or {}
    before: Mapping[str, Any] = (previous.summary.get("partners") or {}) if previous else {}
    granted = {c.partner_id: c for c in consents if c.granted}
    order = [c.partner_id for c in consents] + sorted(set(parts) - {c.partner_id for c in consents})
    out: list[PartnerSizes] = []
    for pid in order:
        mine: Mapping[str, Any] = parts.get(pid) or {}
        size = int(mine.get("set_size", 0))
        contributed = pid in granted
        prev = int(before[pid].get("set_size", 0)) if pid in before else None
        warnings: list[Notice] = []
        if contributed and prev is not None and prev > 0 and (size - prev) / prev > GROWTH_WARNING:
            warnings.append(
                Notice(
                    "set_grew",
                    {
                        "growth": (size - prev) / prev,
                        "previous": prev,
                        "size": size,
                        "limit": GROWTH_WARNING,
                    },
                )
            )
        if contributed and purpose is not None and size > NEAR_MAX_WARNING * purpose.max_set_size:
            warnings.append(
                Notice(
                    "near_max",
                    {"size": size, "limit": NEAR_MAX_WARNING, "maximum": purpose.max_set_size},
                )
            )
        signed_size = granted[pid].set_size if pid in granted else None
        if signed_size is not None and mine and signed_size != size:
            warnings.append(Notice("size_differs", {"size": size, "signed": signed_size}))
        out.append(
            PartnerSizes(
                partner_id=pid,
                contributed=contributed,
                set_size=size,
                excluded=int(mine.get("excluded_count", 0)),
                objected=(
                    int(mine["objected_count"]) if mine.get("objected_count") is not None else None
                ),
                invalid=int(mine.get("invalid_count", 0)),
                flagged=int(mine.get("flagged_count", 0)),
                previous=prev,
                warnings=tuple(warnings),
            )
        )
    return out


def _histogram(raw: object) -> dict[int, int]:
    if not isinstance(raw, Mapping):
        return {}
    out: dict[int, int] = {}
    for k, v in raw.items():
        try:
            out[int(k)] = int(v)
        except (TypeError, ValueError):
            continue
    return dict(sorted(out.items()))


def _round_events(db_path: Path, round_id: str) -> list[EventRow]:
    """The round's stored audit rows, read-only and as text, so a tampered row still shows."""
    rows = _audit_rows(
        db_path,
        "SELECT seq, time, event, actor, on_behalf_of, access_point, action, basis, details "
        "FROM audit_events WHERE round_id = ? ORDER BY seq",
        (round_id,),
    )
    return [
        EventRow(
            seq=int(r[0]) if isinstance(r[0], int) else -1,
            time=str(r[1]),
            event=str(r[2]),
            actor=str(r[3]),
            on_behalf_of=str(r[4]),
            access_point=str(r[5]),
            action=str(r[6]),
            basis=str(r[7]),
            details=_details_text(r[8]),
        )
        for r in rows
    ]


def _events_of(db_path: Path, round_id: str, event: str) -> list[tuple[str, Mapping[str, object]]]:
    """The time and details of each of the round's `event`s, oldest first."""
    rows = _audit_rows(
        db_path,
        "SELECT time, details FROM audit_events WHERE round_id = ? AND event = ? ORDER BY seq",
        (round_id, event),
    )
    return [(str(when), _details(raw)) for when, raw in rows]


def _event_details(
    db_path: Path, round_id: str, event: str
) -> tuple[str, Mapping[str, object]] | None:
    """The actor and details of the round's first `event`, or None if it has none.

    Read like `_round_events` (a tampered row still shows; the audit verdict says so).
    """
    rows = _audit_rows(
        db_path,
        "SELECT actor, details FROM audit_events WHERE round_id = ? AND event = ? "
        "ORDER BY seq LIMIT 1",
        (round_id, event),
    )
    if not rows:
        return None
    actor, raw = rows[0]
    return str(actor), _details(raw)


def _audit_rows(db_path: Path, sql: str, args: tuple[object, ...]) -> list[tuple[Any, ...]]:
    """`sql`'s rows from the coordinator's database, opened read-only; none if it holds
    no audit table."""
    uri = db_path.resolve().as_uri() + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True)
    try:
        exists = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,)
        ).fetchone()
        return conn.execute(sql, args).fetchall() if exists is not None else []
    finally:
        conn.close()


def _details(raw: object) -> dict[str, object]:
    """Stored event details as a mapping; empty if they are not a JSON object."""
    try:
        details = json.loads(str(raw))
    except json.JSONDecodeError:
        return {}
    return details if isinstance(details, dict) else {}


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _details_text(raw: object) -> str:
    """Event details as `key: value` pairs (the stored text itself if it is not JSON)."""
    try:
        data = json.loads(str(raw))
    except json.JSONDecodeError:
        return str(raw)
    if not isinstance(data, dict):
        return json.dumps(data, ensure_ascii=False)
    parts = []
    for k, v in data.items():
        if v in ("", None, [], {}):
            continue
        text = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, sort_keys=True)
        parts.append(f"{k}: {text}")
    return "; ".join(parts)


def parse_time(text: str | None) -> datetime | None:
    """A stored ISO time as an aware datetime (UTC if it names no zone); None if unreadable."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def unix_time(seconds: int) -> str:
    """Unix seconds as ISO time in UTC; empty for an unset (zero) time."""
    if seconds <= 0:
        return ""
    return datetime.fromtimestamp(seconds, UTC).isoformat()
