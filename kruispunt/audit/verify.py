"""Verification: recompute an audit chain (or an excerpt) and check every signature.

Because `seq` and `prev_hash` are hashed, an edited, deleted, inserted or
reordered event breaks the chain at a sequence number that `verify_events`
names; a re-signed event fails the signature check under the expected public
key. A cut-off tail is only visible against a head (`ChainHead`) recorded
elsewhere, so `verify_events` accepts one.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from kruispunt import signing
from kruispunt.audit.event import GENESIS_HASH, AuditEvent, ChainHead
from kruispunt.audit.seal import AUDIT_CONTEXT, compute_hash
from kruispunt.errors import AuditChainBroken, SignatureInvalid
from kruispunt.wording import plural

__all__ = ["VerifyReport", "verify_events", "verify_excerpt"]


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
            return f"{what} OK: {plural(self.count, 'event')}, chain and signatures verified"
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
