"""Hash-chained, signed audit events: the chain logic both audit logs share.

Storage lives elsewhere (`coordinator.audit` keeps the chain in SQLite,
`psi_node.audit` in a JSON Lines file); this module owns what an event is, how
it is encoded, chained, signed and verified, and how an event list is written
to and read from JSON Lines and CSV exports.

Fields follow NEN 7513 / BIO 12.4 (who did what, when, on whose behalf, from
where, on which authorisation): `seq`, `time`, `event`, `actor`,
`on_behalf_of`, `access_point`, `action`, `basis`, `round_id`, `details`,
then the chain fields `prev_hash`, `hash`, `key_id`, `signature`.

Chaining and signing:

- `canonical` = JSON of every field except `hash` and `signature`, keys
  sorted, no whitespace, UTF-8 (`ensure_ascii=False`), no NaN/Infinity.
- `hash` = SHA-256(bytes(prev_hash) || canonical), hex in storage. The first
  event's `prev_hash` is 32 zero bytes (`GENESIS_HASH`).
- `signature` = Ed25519 over the 32 raw hash bytes with the context label
  `kruispunt/audit/v1` (`kruispunt.signing.sign`), hex in storage. `key_id`
  names the signing key and is itself covered by the hash.

Because `seq` and `prev_hash` are hashed, an edited, deleted, inserted or
reordered event breaks the chain at a sequence number that `verify_events`
names; a re-signed event fails the signature check under the expected public
key. A cut-off tail is only visible against a head (`ChainHead`) recorded
elsewhere, so `verify_events` accepts one.

Event names (a free dotted lower-case string; the ones in use):

=====================  =====  ==========================================
event                  where  meaning
=====================  =====  ==========================================
round.created          coord  a round manifest was created and signed
round.rejected         coord  a request for a round was refused (reason)
manifest.seen          node   the node received (and checked) a manifest
manifest.rejected      node   a manifest failed its checks (reason)
consent.given          both   a partner consented to a round
consent.refused        both   a partner refused a round (reason)
phase.done             coord  a protocol phase finished (phase, seconds)
set_sizes              coord  the set size each partner contributed
records.sent           node   the node sent its blinded records (set_size)
tally.summary          coord  flagged count and overlap histogram
results.delivered      coord  a partner's results were delivered
results.received       node   the node received and staged its results
results.written        node   the node wrote its results file
results.deleted        node   a results file was deleted (retention)
round.completed        coord  a round ended with results everywhere
round.failed           both   a round ended in error (reason)
round.aborted          both   an operator or shutdown aborted a round
partner.added          coord  a partner was registered
purpose.added          coord  a purpose was registered
purpose.changed        coord  a purpose was changed
operator.action        both   any other operator action (verb in action)
=====================  =====  ==========================================

`details` holds aggregates only (counts, sizes, histogram buckets, partner
and purpose ids, reasons) and never an identifier. As defence in depth,
`check_no_identifiers` refuses, with a ValueError before anything is
written, any text field or detail that looks like a BSN or a postcode:

- text containing a run of exactly 9 digits (a BSN as written);
- an integer of 8 or 9 digits (a BSN parsed as a number loses its leading
  zero), so a count must stay below 10,000,000 (log large byte sizes in kB);
- a postcode as written officially, ``1234AB`` or ``1234 AB`` (upper case;
  free text such as "3000 ms" stays allowed).

Long hex strings of digest length (32, 40, 64 or 128 hex digits) and UUIDs are
exempt: they are ids and digests, and a random one contains a 9-digit run
often enough to matter. Round ids (``r20250301T093000-1a2b3c4d``) pass.
"""

from __future__ import annotations

import abc
import csv
import hashlib
import hmac
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal, TextIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from kruispunt import signing
from kruispunt.errors import AuditChainBroken, SignatureInvalid

__all__ = [
    "AUDIT_CONTEXT",
    "COORDINATOR_REQUIRED_DETAILS",
    "EVENTS",
    "FIELDS",
    "GENESIS_HASH",
    "NODE_REQUIRED_DETAILS",
    "AuditEvent",
    "ChainHead",
    "ChainedLog",
    "Clock",
    "ExportFormat",
    "VerifyReport",
    "canonical_bytes",
    "check_no_identifiers",
    "check_required_details",
    "compute_hash",
    "dump_csv",
    "dump_jsonl",
    "event_from_dict",
    "event_from_json",
    "event_to_dict",
    "event_to_json",
    "format_time",
    "iter_rounds",
    "load_csv",
    "load_jsonl",
    "safe_reason",
    "seal",
    "utc_now",
    "verify_events",
    "verify_excerpt",
]

AUDIT_CONTEXT: Final = signing.CONTEXT_AUDIT  # b"kruispunt/audit/v1"
GENESIS_HASH: Final = "00" * 32

#: The documented event names (see the module docstring); others are allowed.
EVENTS: Final[Mapping[str, str]] = {
    "round.created": "a round manifest was created and signed",
    "round.rejected": "a request for a round was refused",
    "manifest.seen": "the node received and checked a manifest",
    "manifest.rejected": "a manifest failed its checks",
    "consent.given": "a partner consented to a round",
    "consent.refused": "a partner refused a round",
    "phase.done": "a protocol phase finished",
    "set_sizes": "the set size each partner contributed",
    "records.sent": "the node sent its blinded records",
    "tally.summary": "flagged count and overlap histogram",
    "results.delivered": "a partner's results were delivered",
    "results.received": "the node received and staged its results",
    "results.written": "the node wrote its results file",
    "results.deleted": "a results file was deleted",
    "round.completed": "a round ended with results everywhere",
    "round.failed": "a round ended in error",
    "round.aborted": "an operator or shutdown aborted a round",
    "partner.added": "a partner was registered",
    "purpose.added": "a purpose was registered",
    "purpose.changed": "a purpose was changed",
    "operator.action": "any other operator action",
}

#: Every stored field, in the order exports use.
FIELDS: Final = (
    "seq",
    "time",
    "event",
    "actor",
    "on_behalf_of",
    "access_point",
    "action",
    "basis",
    "round_id",
    "details",
    "prev_hash",
    "hash",
    "key_id",
    "signature",
)
_TEXT_FIELDS: Final = ("actor", "on_behalf_of", "access_point", "action", "basis", "round_id")

Clock = Callable[[], datetime]

_EVENT_NAME = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX128 = re.compile(r"[0-9a-f]{128}")
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
# A BSN is written with 9 digits; parsed as an integer it may have lost its leading zero.
_BSN_LIKE_TEXT = re.compile(r"(?<!\d)\d{9}(?!\d)")
_BSN_LIKE_INT = range(10_000_000, 1_000_000_000)
# A Dutch postcode as written officially (the letters SA, SD and SS are never issued).
_POSTCODE_LIKE = re.compile(r"(?<![0-9A-Za-z])[1-9][0-9]{3} ?(?!S[ADS])[A-Z]{2}(?![A-Za-z])")
_DIGEST_OR_UUID = re.compile(
    r"[0-9a-fA-F]{16}|[0-9a-fA-F]{32}|[0-9a-fA-F]{40}|[0-9a-fA-F]{64}|[0-9a-fA-F]{128}"
    r"|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)


def utc_now() -> datetime:
    """Return the current time, timezone-aware in UTC (the default clock)."""
    return datetime.now(UTC)


def format_time(moment: datetime) -> str:
    """Format an aware datetime as UTC ISO-8601 with milliseconds, e.g. 2025-03-01T09:30:00.125Z."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("audit time must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _looks_like_identifier(text: str) -> str | None:
    """Return why `text` looks like an identifier, or None. Never returns the text itself."""
    if _DIGEST_OR_UUID.fullmatch(text):
        return None
    if _BSN_LIKE_TEXT.search(text):
        return "a run of 9 digits (BSN-like)"
    if _POSTCODE_LIKE.search(text):
        return "a postcode-like value"
    return None


def _check_json(value: object, where: str, depth: int = 0) -> None:
    """Refuse non-JSON values and identifier-like text anywhere in `value`."""
    if depth > 8:
        raise ValueError(f"audit {where}: nested too deeply")
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if abs(value) in _BSN_LIKE_INT:
            raise ValueError(f"audit {where}: refused an 8- or 9-digit number (BSN-like)")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"audit {where}: not a finite number")
        reason = _looks_like_identifier(repr(value))
        if reason:
            raise ValueError(f"audit {where}: refused {reason}; log aggregates only")
        return
    if isinstance(value, str):
        reason = _looks_like_identifier(value)
        if reason:
            raise ValueError(f"audit {where}: refused {reason}; log aggregates only")
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_json(item, f"{where}[{index}]", depth + 1)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"audit {where}: keys must be strings")
            reason = _looks_like_identifier(key)
            if reason:
                raise ValueError(f"audit {where}: refused a key with {reason}")
            _check_json(item, f"{where}.{key}", depth + 1)
        return
    raise TypeError(f"audit {where}: {type(value).__name__} is not a JSON value")


def check_no_identifiers(details: Mapping[str, object], **text_fields: str) -> None:
    """Refuse `details` (and the named text fields) if anything in them looks like an identifier.

    Raises TypeError for values that are not JSON, ValueError for identifier-like
    text (9-digit runs, 8/9-digit numbers, postcodes). Messages name the field, never
    its value.
    """
    if not isinstance(details, Mapping):
        raise TypeError("audit details must be a JSON object")
    _check_json(details, "details")
    for name, text in text_fields.items():
        if not isinstance(text, str):
            raise TypeError(f"audit {name} must be a string")
        reason = _looks_like_identifier(text)
        if reason:
            raise ValueError(f"audit {name}: refused {reason}")


def safe_reason(text: str, limit: int = 500) -> str:
    """Free text from a peer or an operator, fit for an audit row: bounded, not identifier-like."""
    text = text[:limit]
    if _looks_like_identifier(text):
        return "[reason withheld: it looked like it held an identifier]"
    return text


#: `details` keys (and their types) the coordinator must give these events; the node's
#: cross-check (`psi_node.audit.cross_check`) reads them. `set_sizes` maps partner id -> size.
COORDINATOR_REQUIRED_DETAILS: Final[Mapping[str, Mapping[str, type]]] = {
    "consent.given": {"partner": str, "set_size": int},
    "consent.refused": {"partner": str, "reason": str},
    "set_sizes": {"set_sizes": dict},
    "results.delivered": {"partner": str, "flagged_count": int},
}

#: `details` keys (and their types) a node must give these events, for the same cross-check.
NODE_REQUIRED_DETAILS: Final[Mapping[str, Mapping[str, type]]] = {
    "consent.given": {"set_size": int},
    "consent.refused": {"reason": str},
    "records.sent": {"set_size": int},
    "results.written": {"flagged_count": int},
}


def check_required_details(
    event: str, details: Mapping[str, object], required: Mapping[str, Mapping[str, type]]
) -> None:
    """Raise ValueError unless `details` carries the keys `required` lists for `event`.

    Counts must be non-negative integers; a `sizes` map must map ids to such counts.
    """
    for key, kind in required.get(event, {}).items():
        if key not in details:
            raise ValueError(f"audit event {event} needs details[{key!r}]")
        value = details[key]
        if kind is int:
            if not _is_count(value):
                raise ValueError(f"audit event {event}: details[{key!r}] must be a count")
        elif kind is dict:
            if not isinstance(value, Mapping) or not all(
                isinstance(k, str) and _is_count(v) for k, v in value.items()
            ):
                raise ValueError(f"audit event {event}: details[{key!r}] must map ids to counts")
        elif not isinstance(value, kind):
            raise ValueError(f"audit event {event}: details[{key!r}] must be {kind.__name__}")


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _canonical_json(value: object) -> str:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The last event of a chain, to be kept elsewhere so a cut-off tail shows up."""

    seq: int
    hash: str


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One sealed audit event. Build new ones with `seal`; read stored ones with `event_from_dict`.

    `details` is a plain dict for convenience; mutating it makes the event fail verification.
    """

    seq: int
    time: str
    event: str
    actor: str
    on_behalf_of: str
    access_point: str
    action: str
    basis: str
    round_id: str
    details: dict[str, Any] = field(hash=False)
    prev_hash: str
    hash: str
    key_id: str
    signature: str

    @property
    def head(self) -> ChainHead:
        """This event as a chain head."""
        return ChainHead(self.seq, self.hash)


def canonical_bytes(event: AuditEvent) -> bytes:
    """Return the canonical encoding of every field except `hash` and `signature`."""
    body = {
        "seq": event.seq,
        "time": event.time,
        "event": event.event,
        "actor": event.actor,
        "on_behalf_of": event.on_behalf_of,
        "access_point": event.access_point,
        "action": event.action,
        "basis": event.basis,
        "round_id": event.round_id,
        "details": event.details,
        "prev_hash": event.prev_hash,
        "key_id": event.key_id,
    }
    return _canonical_json(body).encode("utf-8")


def compute_hash(event: AuditEvent) -> str:
    """Return hex SHA-256(prev_hash || canonical) for `event` (its stored hash is ignored)."""
    return hashlib.sha256(bytes.fromhex(event.prev_hash) + canonical_bytes(event)).hexdigest()


def seal(
    *,
    seq: int,
    prev_hash: str,
    time: datetime,
    event: str,
    actor: str,
    on_behalf_of: str,
    access_point: str,
    action: str,
    basis: str,
    round_id: str,
    details: Mapping[str, object] | None,
    signing_key: Ed25519PrivateKey,
) -> AuditEvent:
    """Validate the fields, chain the event to `prev_hash` and sign it.

    Raises ValueError or TypeError (naming the field, never a value) if a field is
    malformed or `details`/a text field looks like it carries an identifier.
    """
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise ValueError("audit seq must be an integer >= 1")
    if not isinstance(prev_hash, str) or not _HEX64.fullmatch(prev_hash):
        raise ValueError("audit prev_hash must be 64 lower-case hex digits")
    if not isinstance(event, str) or not _EVENT_NAME.fullmatch(event):
        raise ValueError("audit event must be a dotted lower-case name such as 'round.created'")
    if not isinstance(action, str) or not action:
        raise ValueError("audit action must be a non-empty string")
    if not isinstance(actor, str) or not actor:
        raise ValueError("audit actor must be a non-empty string")
    texts = {
        "actor": actor,
        "on_behalf_of": on_behalf_of,
        "access_point": access_point,
        "action": action,
        "basis": basis,
        "round_id": round_id,
    }
    details_in: Mapping[str, object] = {} if details is None else details
    check_no_identifiers(details_in, **texts)
    # A private copy, so the caller's later changes cannot alter the sealed event.
    frozen_details: dict[str, Any] = json.loads(_canonical_json(details_in))
    public_key = signing_key.public_key()
    draft = AuditEvent(
        seq=seq,
        time=format_time(time),
        event=event,
        actor=actor,
        on_behalf_of=on_behalf_of,
        access_point=access_point,
        action=action,
        basis=basis,
        round_id=round_id,
        details=frozen_details,
        prev_hash=prev_hash,
        hash="",
        key_id=signing.key_id(public_key),
        signature="",
    )
    digest = compute_hash(draft)
    signature = signing.sign(signing_key, AUDIT_CONTEXT, bytes.fromhex(digest))
    return AuditEvent(
        seq=draft.seq,
        time=draft.time,
        event=draft.event,
        actor=draft.actor,
        on_behalf_of=draft.on_behalf_of,
        access_point=draft.access_point,
        action=draft.action,
        basis=draft.basis,
        round_id=draft.round_id,
        details=draft.details,
        prev_hash=draft.prev_hash,
        hash=digest,
        key_id=draft.key_id,
        signature=signature.hex(),
    )


# --- serialisation -------------------------------------------------------------------------


def event_to_dict(event: AuditEvent) -> dict[str, Any]:
    """Return every field of `event` (chain fields included) as a JSON-ready dict."""
    return {name: getattr(event, name) for name in FIELDS}


def event_from_dict(data: Mapping[str, object]) -> AuditEvent:
    """Rebuild an event from stored fields. Checks shape only; `verify_events` checks integrity.

    Raises ValueError (naming the field) if a field is missing, extra or of the wrong type.
    """
    if not isinstance(data, Mapping):
        raise ValueError("audit event must be a JSON object")
    missing = [name for name in FIELDS if name not in data]
    if missing:
        raise ValueError(f"audit event lacks field(s): {', '.join(missing)}")
    extra = sorted(set(data) - set(FIELDS))
    if extra:
        raise ValueError(f"audit event has unknown field(s): {', '.join(extra)}")
    seq = data["seq"]
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise ValueError("audit field seq must be an integer")
    details = data["details"]
    if not isinstance(details, dict) or not all(isinstance(k, str) for k in details):
        raise ValueError("audit field details must be a JSON object")
    texts: dict[str, str] = {}
    for name in FIELDS:
        if name in ("seq", "details"):
            continue
        value = data[name]
        if not isinstance(value, str):
            raise ValueError(f"audit field {name} must be a string")
        texts[name] = value
    for name in ("prev_hash", "hash"):
        if not _HEX64.fullmatch(texts[name]):
            raise ValueError(f"audit field {name} must be 64 lower-case hex digits")
    return AuditEvent(
        seq=seq,
        time=texts["time"],
        event=texts["event"],
        actor=texts["actor"],
        on_behalf_of=texts["on_behalf_of"],
        access_point=texts["access_point"],
        action=texts["action"],
        basis=texts["basis"],
        round_id=texts["round_id"],
        details=details,
        prev_hash=texts["prev_hash"],
        hash=texts["hash"],
        key_id=texts["key_id"],
        signature=texts["signature"],
    )


def event_to_json(event: AuditEvent) -> str:
    """Return `event` as one canonical JSON line (no trailing newline)."""
    return _canonical_json(event_to_dict(event))


def event_from_json(line: str) -> AuditEvent:
    """Parse one JSON line into an event; ValueError if it is not one."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON (column {exc.colno})") from None
    return event_from_dict(data)


def dump_jsonl(events: Iterable[AuditEvent], out: TextIO) -> int:
    """Write events as JSON Lines (every field, chain fields included); return the count."""
    count = 0
    for event in events:
        out.write(event_to_json(event))
        out.write("\n")
        count += 1
    return count


def load_jsonl(source: TextIO) -> list[AuditEvent]:
    """Read a JSON Lines export; ValueError naming the line number if a line does not parse."""
    events = []
    for number, line in enumerate(source, start=1):
        if not line.strip():
            continue
        try:
            events.append(event_from_json(line))
        except ValueError as exc:
            raise ValueError(f"line {number}: {exc}") from None
    return events


def dump_csv(events: Iterable[AuditEvent], out: TextIO) -> int:
    """Write events as CSV with a header row and return the count.

    `details` is one cell of canonical JSON, so a CSV export round-trips exactly.
    """
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(FIELDS)
    count = 0
    for event in events:
        row = event_to_dict(event)
        row["details"] = _canonical_json(event.details)
        writer.writerow([row[name] for name in FIELDS])
        count += 1
    return count


def load_csv(source: TextIO) -> list[AuditEvent]:
    """Read a CSV export written by `dump_csv`; ValueError naming the row if one does not parse."""
    reader = csv.reader(source)
    header = next(reader, None)
    if header is None:
        return []
    if tuple(header) != FIELDS:
        raise ValueError("CSV header does not match the audit export format")
    events = []
    for number, row in enumerate(reader, start=2):
        if len(row) != len(FIELDS):
            raise ValueError(f"row {number}: expected {len(FIELDS)} cells")
        data: dict[str, object] = dict(zip(FIELDS, row, strict=True))
        try:
            data["seq"] = int(row[0])
            data["details"] = json.loads(row[FIELDS.index("details")])
            events.append(event_from_dict(data))
        except (ValueError, json.JSONDecodeError) as exc:
            raise ValueError(f"row {number}: {exc}") from None
    return events


# --- verification --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The outcome of verifying a chain: `first_bad_seq` names where it first breaks."""

    ok: bool
    count: int
    first_bad_seq: int | None = None
    reason: str = ""
    head: ChainHead | None = None

    def as_dict(self) -> dict[str, object]:
        """The verdict as JSON-ready data (for --json)."""
        return {
            "ok": self.ok,
            "events": self.count,
            "first_bad_seq": self.first_bad_seq,
            "reason": self.reason,
        }

    def describe(self, what: str = "audit log") -> str:
        """One line for a person: OK with the count, or BROKEN at the first bad event."""
        if self.ok:
            return f"{what} OK: {self.count} events, chain and signatures verified"
        return f"{what} BROKEN at event {self.first_bad_seq}: {self.reason}"

    def raise_if_broken(self) -> None:
        """Raise AuditChainBroken (with the first bad seq) unless the chain verified."""
        if not self.ok:
            raise AuditChainBroken(self.reason, self.first_bad_seq)


def _check_seal(event: AuditEvent, public_key: Ed25519PublicKey, expected_key_id: str) -> str:
    """Return why `event`'s own hash or signature is wrong, or "" if both hold."""
    try:
        recomputed = compute_hash(event)
    except (ValueError, TypeError):
        return "event fields cannot be encoded"
    if not hmac.compare_digest(recomputed, event.hash):
        return "hash does not match the event's contents (event edited)"
    if event.key_id != expected_key_id:
        return "signed by another key"
    try:
        signature = bytes.fromhex(event.signature)
    except ValueError:
        return "signature is not hex"
    try:
        signing.verify(public_key, AUDIT_CONTEXT, bytes.fromhex(event.hash), signature)
    except SignatureInvalid:
        return "signature does not verify under the expected key"
    return ""


def verify_events(
    events: Iterable[AuditEvent],
    public_key: Ed25519PublicKey,
    *,
    expected_head: ChainHead | None = None,
) -> VerifyReport:
    """Recompute the whole chain from genesis and check every signature.

    `events` must be the complete log in storage order. Stops at the first fault
    and names its sequence number: a gap or an out-of-order seq (deleted,
    inserted or reordered event), a prev_hash that does not link, a hash that
    does not match the contents (edited event), a signature by another key.
    With `expected_head` (kept elsewhere) a truncated or rewritten tail shows up.
    """
    expected_key_id = signing.key_id(public_key)
    expected_seq = 1
    prev_hash = GENESIS_HASH
    count = 0
    last: AuditEvent | None = None
    hash_at_head: str | None = None
    for event in events:
        if event.seq != expected_seq:
            if event.seq > expected_seq:
                reason = f"event {expected_seq} missing (next stored event is {event.seq})"
            else:
                reason = f"event {event.seq} out of order (expected {expected_seq})"
            return VerifyReport(False, count, expected_seq, reason, _head(last))
        if event.prev_hash != prev_hash:
            return VerifyReport(
                False,
                count,
                event.seq,
                "prev_hash does not link to the previous event (event deleted, inserted or moved)",
                _head(last),
            )
        fault = _check_seal(event, public_key, expected_key_id)
        if fault:
            return VerifyReport(False, count, event.seq, fault, _head(last))
        if expected_head is not None and event.seq == expected_head.seq:
            hash_at_head = event.hash
        count += 1
        last = event
        prev_hash = event.hash
        expected_seq += 1
    if expected_head is not None:
        if hash_at_head is None:
            return VerifyReport(
                False,
                count,
                expected_seq,
                f"log ends before the expected head (seq {expected_head.seq}): tail truncated",
                _head(last),
            )
        if hash_at_head != expected_head.hash:
            return VerifyReport(
                False,
                count,
                expected_head.seq,
                "event at the expected head differs from it (tail rewritten)",
                _head(last),
            )
    return VerifyReport(True, count, None, "", _head(last))


def verify_excerpt(events: Iterable[AuditEvent], public_key: Ed25519PublicKey) -> VerifyReport:
    """Check an excerpt (e.g. one round's events): each event's hash and signature, seq order,
    and the link between events whose seqs are adjacent.

    An excerpt cannot show that events between its members were deleted; verify
    the full log for that.
    """
    expected_key_id = signing.key_id(public_key)
    count = 0
    last: AuditEvent | None = None
    for event in events:
        if event.seq < 1 or (last is not None and event.seq <= last.seq):
            return VerifyReport(False, count, event.seq, "seq out of order", _head(last))
        if last is not None and event.seq == last.seq + 1 and event.prev_hash != last.hash:
            return VerifyReport(
                False, count, event.seq, "prev_hash does not link to the previous event", last.head
            )
        if event.seq == 1 and event.prev_hash != GENESIS_HASH:
            return VerifyReport(False, count, 1, "first event does not start at genesis", None)
        fault = _check_seal(event, public_key, expected_key_id)
        if fault:
            return VerifyReport(False, count, event.seq, fault, _head(last))
        count += 1
        last = event
    return VerifyReport(True, count, None, "", _head(last))


def _head(event: AuditEvent | None) -> ChainHead | None:
    return None if event is None else event.head


def iter_rounds(events: Iterable[AuditEvent], round_id: str | None) -> Iterator[AuditEvent]:
    """Yield the events of one round (all events if `round_id` is None)."""
    for event in events:
        if round_id is None or event.round_id == round_id:
            yield event


ExportFormat = Literal["jsonl", "csv"]


class ChainedLog(abc.ABC):
    """What both audit logs share: the signing key, the clock, the checks and the sealing.

    A store (SQLite at the coordinator, JSON Lines at a node) implements `_append_sealed`:
    under its own lock it reads the chain head, calls `build(head)` for the sealed
    successor and stores it durably.
    """

    #: `details` keys each event must carry for the cross-check (per store).
    required_details: Mapping[str, Mapping[str, type]] = {}

    def __init__(self, signing_key: Ed25519PrivateKey, now: Clock | None) -> None:
        if not isinstance(signing_key, Ed25519PrivateKey):
            raise TypeError("the audit signing key must be an Ed25519 private key")
        self._key = signing_key
        self._now: Clock = now or utc_now

    @property
    def public_key(self) -> Ed25519PublicKey:
        """The public half of the signing key, for verification."""
        return self._key.public_key()

    def append(
        self,
        event: str,
        *,
        actor: str,
        on_behalf_of: str,
        access_point: str,
        action: str,
        basis: str = "",
        round_id: str = "",
        details: Mapping[str, object] | None = None,
    ) -> AuditEvent:
        """Seal `event` onto the end of the chain, store it durably and return it.

        Raises ValueError/TypeError before anything is written if a field is
        malformed, `details` lacks a required key or anything looks like an
        identifier; the store may raise AuditChainBroken if its head is unreadable.
        """
        details_in: Mapping[str, object] = {} if details is None else details
        check_no_identifiers(details_in)
        check_required_details(event, details_in, self.required_details)

        def build(head: ChainHead | None) -> AuditEvent:
            return seal(
                seq=1 if head is None else head.seq + 1,
                prev_hash=GENESIS_HASH if head is None else head.hash,
                time=self._now(),
                event=event,
                actor=actor,
                on_behalf_of=on_behalf_of,
                access_point=access_point,
                action=action,
                basis=basis,
                round_id=round_id,
                details=details_in,
                signing_key=self._key,
            )

        return self._append_sealed(build)

    @abc.abstractmethod
    def events(self, round_id: str | None = None) -> list[AuditEvent]:
        """The stored events in chain order, optionally only one round's."""

    def export(
        self, out: TextIO, *, fmt: ExportFormat = "jsonl", round_id: str | None = None
    ) -> int:
        """Write the events (optionally one round's) as JSON Lines or CSV; return the count.

        Every row keeps seq, prev_hash, hash, key_id and signature, so an excerpt
        can still be checked with `verify_excerpt`.
        """
        if fmt not in ("jsonl", "csv"):
            raise ValueError("export format must be 'jsonl' or 'csv'")
        events = self.events(round_id)
        if fmt == "jsonl":
            return dump_jsonl(events, out)
        return dump_csv(events, out)

    @abc.abstractmethod
    def _append_sealed(self, build: Callable[[ChainHead | None], AuditEvent]) -> AuditEvent:
        """Under the store's lock: read the head, store `build(head)`, return it."""
