"""How audit events are encoded: the canonical bytes that are hashed, JSON Lines and CSV.

`canonical_bytes` is the JSON of every field except `hash` and `signature`, keys
sorted, no whitespace, UTF-8 (``ensure_ascii=False``), no NaN/Infinity. Exports
keep every field, chain fields included, so an excerpt can still be verified; a
CSV export holds `details` as one cell of canonical JSON and round-trips exactly.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping
from typing import Any, Literal, TextIO

from kruispunt.audit.event import FIELDS, AuditEvent, is_hash_hex

__all__ = [
    "ExportFormat",
    "canonical_bytes",
    "canonical_json",
    "dump_csv",
    "dump_jsonl",
    "event_from_dict",
    "event_from_json",
    "event_to_dict",
    "event_to_json",
    "load_csv",
    "load_jsonl",
]

#: The export formats both audit logs offer.
ExportFormat = Literal["jsonl", "csv"]


def canonical_json(value: object) -> str:
    """Return `value` as canonical JSON: keys sorted, no whitespace, UTF-8 text, no NaN."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


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
    return canonical_json(body).encode("utf-8")


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
        if not is_hash_hex(texts[name]):
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
    return canonical_json(event_to_dict(event))


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
        row["details"] = canonical_json(event.details)
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
