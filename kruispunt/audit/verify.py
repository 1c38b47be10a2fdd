"""Verification: recompute an audit chain (or an excerpt) and check every signature.

Because `seq` and `prev_hash` are hashed, an edited, deleted, inserted or
reordered event breaks the chain at a sequence number that `verify_events`
names; a re-signed event fails the signature check under the expected public
key. A cut-off tail is only visible against a head (`ChainHead`) recorded
elsewhere, so `verify_events` accepts one. A chain may change keys only by a
handover (`kruispunt.audit.handover`): either key then verifies the whole chain,
and the retired key is refused after it.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from kruispunt import signing
from kruispunt.audit.event import GENESIS_HASH, AuditEvent, ChainHead
from kruispunt.audit.handover import HANDOVER_EVENT, read_handover, trusted_keys
from kruispunt.audit.seal import AUDIT_CONTEXT, compute_hash
from kruispunt.errors import AuditChainBroken, SignatureInvalid
from kruispunt.wording import plural

__all__ = ["PublicKeys", "VerifyReport", "verify_events", "verify_excerpt"]

#: One trusted public key, or several (e.g. a key and the one it was rotated to).
PublicKeys = Ed25519PublicKey | Iterable[Ed25519PublicKey]


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


def _anchors(public_key: PublicKeys) -> list[Ed25519PublicKey]:
    if isinstance(public_key, Ed25519PublicKey):
        return [public_key]
    keys = list(public_key)
    if not keys or not all(isinstance(k, Ed25519PublicKey) for k in keys):
        raise TypeError("verification needs one or more Ed25519 public keys")
    return keys


def _handover_fault(event: AuditEvent, current: Ed25519PublicKey) -> tuple[str, Ed25519PublicKey]:
    """Why the handover `event` (sealed under `current`) is not valid, or "" and the new key."""
    handover = read_handover(event)
    if handover is None:
        return "key handover is malformed (previous_key, new_key, endorsement)", current
    if not hmac.compare_digest(handover.previous_key, signing.public_key_bytes(current)):
        return "key handover names another previous key than the one that signed it", current
    if not handover.endorsed():
        return "key handover is not endorsed by the new key", current
    return "", handover.new_public_key


def _start_key(
    first: AuditEvent, trusted: Mapping[str, Ed25519PublicKey]
) -> Ed25519PublicKey | None:
    return trusted.get(first.key_id)


def verify_events(
    events: Iterable[AuditEvent],
    public_key: PublicKeys,
    *,
    expected_head: ChainHead | None = None,
) -> VerifyReport:
    """Recompute the whole chain from genesis and check every signature.

    `events` must be the complete log in storage order. Stops at the first fault
    and names its sequence number: a gap or an out-of-order seq (deleted,
    inserted or reordered event), a prev_hash that does not link, a hash that
    does not match the contents (edited event), a signature by another key.
    With `expected_head` (kept elsewhere) a truncated or rewritten tail shows up.
    `public_key` may be any one key the chain was signed with: handovers lead from it
    to the others (`kruispunt.audit.handover`), and a key is refused after its handover.
    Given a later key alone, the history before its handover rests on that key's
    endorsement; given several keys, the chain must start under one of them (so an
    officer who kept the old key is not fooled by a history the new key invented).
    """
    listed = list(events)
    anchors = _anchors(public_key)
    trusted = {signing.key_id(k): k for k in anchors}
    if listed and listed[0].key_id not in trusted and len(anchors) == 1:
        # Only a later key is held: the history before its handover rests on its
        # endorsement. Given several keys, the chain must start under one of them.
        trusted = trusted_keys(listed, anchors)
    current = _start_key(listed[0], trusted) if listed else None
    if current is None:
        current = anchors[-1]
    expected_key_id = signing.key_id(current)
    retired: dict[str, int] = {}
    expected_seq = 1
    prev_hash = GENESIS_HASH
    count = 0
    last: AuditEvent | None = None
    hash_at_head: str | None = None
    for event in listed:
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
        fault = _check_seal(event, current, expected_key_id)
        if fault and event.key_id in retired:
            fault = f"signed by a retired key (handed over at event {retired[event.key_id]})"
        if not fault and event.event == HANDOVER_EVENT:
            fault, successor = _handover_fault(event, current)
            if not fault:
                retired[expected_key_id] = event.seq
                current, expected_key_id = successor, signing.key_id(successor)
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


def verify_excerpt(events: Iterable[AuditEvent], public_key: PublicKeys) -> VerifyReport:
    """Check an excerpt (e.g. one round's events): each event's hash and signature, seq order,
    and the link between events whose seqs are adjacent.

    An excerpt cannot show that events between its members were deleted; verify
    the full log for that. Each event must be signed by one of the keys given (or one
    a handover in the excerpt leads to): an excerpt may not hold the handover itself,
    so pass every key of the period.
    """
    listed = list(events)
    trusted = trusted_keys(listed, _anchors(public_key))
    for event in listed:
        if event.event == HANDOVER_EVENT:
            handover = read_handover(event)
            if handover is not None and event.key_id in trusted and handover.endorsed():
                trusted.setdefault(signing.key_id(handover.new_public_key), handover.new_public_key)
    count = 0
    last: AuditEvent | None = None
    for event in listed:
        if event.seq < 1 or (last is not None and event.seq <= last.seq):
            return VerifyReport(False, count, event.seq, "seq out of order", _head(last))
        if last is not None and event.seq == last.seq + 1 and event.prev_hash != last.hash:
            return VerifyReport(
                False, count, event.seq, "prev_hash does not link to the previous event", last.head
            )
        if event.seq == 1 and event.prev_hash != GENESIS_HASH:
            return VerifyReport(False, count, 1, "first event does not start at genesis", None)
        key = trusted.get(event.key_id)
        if key is None:
            return VerifyReport(False, count, event.seq, "signed by another key", _head(last))
        fault = _check_seal(event, key, event.key_id)
        if fault:
            return VerifyReport(False, count, event.seq, fault, _head(last))
        count += 1
        last = event
    return VerifyReport(True, count, None, "", _head(last))


def _head(event: AuditEvent | None) -> ChainHead | None:
    return None if event is None else event.head
