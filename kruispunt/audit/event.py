"""What an audit event is: its fields, the documented event names and required details."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

__all__ = [
    "COORDINATOR_REQUIRED_DETAILS",
    "EVENTS",
    "FIELDS",
    "GENESIS_HASH",
    "NODE_REQUIRED_DETAILS",
    "AuditEvent",
    "ChainHead",
    "Clock",
    "check_required_details",
    "format_time",
    "is_event_name",
    "is_hash_hex",
    "iter_rounds",
    "utc_now",
]

#: The `prev_hash` of the first event: 32 zero bytes, hex.
GENESIS_HASH: Final = "00" * 32

#: The documented event names (see `kruispunt.audit`); others are allowed.
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
    "deletion.received": "the coordinator received and verified a node's deletion receipt",
    "deletion.refused": "a deletion receipt was refused (forged, replayed, never delivered)",
    "round.completed": "a round ended with results everywhere",
    "round.failed": "a round ended in error",
    "round.aborted": "an operator or shutdown aborted a round",
    "round.cancelled": "an operator cancelled a running round (who, why)",
    "round.cancel_refused": "a cancellation came while the round published its results",
    "round.retry": "a scheduled round that failed transiently is run again (attempt, delay)",
    "schedule.failed": "a scheduled round did not complete after its attempts; who is told",
    "operator.added": "a person was issued an operator certificate",
    "operator.renewed": "an operator's certificate was renewed",
    "operator.removed": "an operator was removed: their certificates are refused",
    "access.refused": "the admin service refused an unregistered or removed operator",
    "partner.added": "a partner was registered",
    "partner.renewed": "a partner's certificate was renewed: the old one is denied",
    "partner.deactivated": "a partner was suspended: not asked, its certificate denied",
    "partner.reactivated": "a deactivated partner may take part again",
    "partner.removed": "a partner left the registry: its certificates are denied for good",
    "partner.key_rotated": "a partner's new signing key was registered; the old one verifies "
    "until a date",
    "signing.key_rotated": "the coordinator's manifest key was replaced; the old one verifies "
    "until a date",
    "roster.exported": "the coordinator wrote a new version of the partner roster",
    "roster.accepted": "the node's operator accepted a partner roster by its digest",
    "purpose.added": "a purpose was registered",
    "purpose.changed": "a purpose was changed",
    "purpose.retired": "a purpose was taken out of use (who, why): no round of it runs again",
    "operator.action": "any other operator action",
    "audit.key_rotated": "the log was handed over to a new signing key (both keys named)",
    "attack.refused": "the node refused a message that fails authentication",
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

Clock = Callable[[], datetime]

_EVENT_NAME = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*")
_HASH_HEX = re.compile(r"[0-9a-f]{64}")


def utc_now() -> datetime:
    """Return the current time, timezone-aware in UTC (the default clock)."""
    return datetime.now(UTC)


def format_time(moment: datetime) -> str:
    """Format an aware datetime as UTC ISO-8601 with milliseconds, e.g. 2025-03-01T09:30:00.125Z."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("audit time must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def is_event_name(value: object) -> bool:
    """True for a dotted lower-case event name such as ``round.created``."""
    return isinstance(value, str) and _EVENT_NAME.fullmatch(value) is not None


def is_hash_hex(value: object) -> bool:
    """True for a chain hash as stored: 64 lower-case hex digits."""
    return isinstance(value, str) and _HASH_HEX.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The last event of a chain, to be kept elsewhere so a cut-off tail shows up."""

    seq: int
    hash: str

    def as_details(self) -> dict[str, object]:
        """This head as an audit `details` value: ``{"seq": n, "hash": hex}``."""
        return {"seq": self.seq, "hash": self.hash}

    @classmethod
    def from_details(cls, value: object) -> ChainHead | None:
        """The head an audit `details` value holds (see `as_details`); None if it holds none.

        Seq 0 with the genesis hash stands for an empty chain and also gives None.
        """
        if not isinstance(value, Mapping):
            return None
        seq, digest = value.get("seq"), value.get("hash")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0 or not is_hash_hex(digest):
            return None
        assert isinstance(digest, str)
        if seq == 0:
            return None
        return cls(seq, digest)


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


def iter_rounds(events: Iterable[AuditEvent], round_id: str | None) -> Iterator[AuditEvent]:
    """Yield the events of one round (all events if `round_id` is None)."""
    for event in events:
        if round_id is None or event.round_id == round_id:
            yield event


#: `details` keys (and their types) the coordinator must give these events; the node's
#: cross-check (`psi_node.audit.cross_check`) reads them. `set_sizes` maps partner id -> size.
#: A roster event without its version and digest could not be matched to a covenant.
COORDINATOR_REQUIRED_DETAILS: Final[Mapping[str, Mapping[str, type]]] = {
    "consent.given": {"partner": str, "set_size": int},
    "consent.refused": {"partner": str, "reason": str},
    "set_sizes": {"set_sizes": dict},
    "results.delivered": {"partner": str, "flagged_count": int},
    "deletion.received": {"partner": str, "result_sha256": str, "deleted_at": str},
    "deletion.refused": {"partner": str, "reason": str},
    "roster.exported": {"version": int, "digest": str},
    # Which key replaced which, and until when the old one still verifies.
    "partner.key_rotated": {
        "partner": str,
        "previous_key_id": str,
        "new_key_id": str,
        "valid_until": str,
    },
    "signing.key_rotated": {"previous_key_id": str, "new_key_id": str, "valid_until": str},
}

#: `details` keys (and their types) a node must give these events, for the same cross-check.
NODE_REQUIRED_DETAILS: Final[Mapping[str, Mapping[str, type]]] = {
    "consent.given": {"set_size": int},
    "consent.refused": {"reason": str},
    "records.sent": {"set_size": int},
    "results.written": {"flagged_count": int},
    "roster.accepted": {"version": int, "digest": str, "changes": int},
    "attack.refused": {"method": str, "reason": str},
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
