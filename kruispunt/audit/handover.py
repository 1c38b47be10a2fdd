"""Handing an audit chain from one signing key to the next, so a rotated key verifies both.

A log cannot switch keys silently: a verifier holding the old public key would see
events "signed by another key", one holding the new key would not trust the old
events. So the switch is itself an event, `audit.key_rotated`, with::

    details = {
        "previous_key": "<64 hex: raw Ed25519 public key that signs up to here>",
        "previous_key_id": "<key_id of it>",
        "new_key": "<64 hex: raw Ed25519 public key that signs from the next event>",
        "new_key_id": "<key_id of it>",
        "endorsement": "<128 hex: the NEW key's signature, context
                        kruispunt/audit/handover/v1, over
                        prev_hash[32] || previous_key[32] || new_key[32]>",
        "reason": "...",
    }

The event is sealed (chained and signed) by the previous key, like every event before
it; the endorsement proves the holder of the new key took over exactly this chain at
exactly this point. Either key is then a trust anchor for the whole chain: from the
old key, the handover it signed names the new one; from the new key, the endorsement
it signed names the old one (`trusted_keys`). After the handover the previous key is
refused: an event it signs later is "signed by a retired key", however valid the
signature. There is no overlap in which both keys may sign: one writer holds the log,
and the overlap a verifier needs (an officer still holding the old public key) is
the handover itself.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from kruispunt import signing
from kruispunt.audit.event import AuditEvent
from kruispunt.errors import SignatureInvalid

__all__ = [
    "HANDOVER_CONTEXT",
    "HANDOVER_EVENT",
    "Handover",
    "handover_details",
    "read_handover",
    "trusted_keys",
]

HANDOVER_EVENT: Final = "audit.key_rotated"
HANDOVER_CONTEXT: Final = b"kruispunt/audit/handover/v1"
_HEX64_LEN = 64


@dataclass(frozen=True, slots=True)
class Handover:
    """A parsed `audit.key_rotated` event (not yet verified: see `endorsed`)."""

    seq: int
    prev_hash: str
    previous_key: bytes
    new_key: bytes
    endorsement: bytes

    @property
    def previous_key_id(self) -> str:
        return signing.key_id(Ed25519PublicKey.from_public_bytes(self.previous_key))

    @property
    def new_public_key(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(self.new_key)

    def endorsed(self) -> bool:
        """True if the new key signed this handover (prev_hash, previous key, new key)."""
        try:
            signing.verify(
                self.new_public_key,
                HANDOVER_CONTEXT,
                _endorsed_bytes(self.prev_hash, self.previous_key, self.new_key),
                self.endorsement,
            )
        except SignatureInvalid:
            return False
        return True


def _endorsed_bytes(prev_hash: str, previous_key: bytes, new_key: bytes) -> bytes:
    return bytes.fromhex(prev_hash) + previous_key + new_key


def handover_details(
    prev_hash: str, previous: Ed25519PublicKey, new: Ed25519PrivateKey, reason: str
) -> dict[str, object]:
    """The details of the handover event that follows `prev_hash`, endorsed by `new`."""
    previous_raw = signing.public_key_bytes(previous)
    new_raw = signing.public_key_bytes(new.public_key())
    endorsement = signing.sign(
        new, HANDOVER_CONTEXT, _endorsed_bytes(prev_hash, previous_raw, new_raw)
    )
    return {
        "previous_key": previous_raw.hex(),
        "previous_key_id": signing.key_id(previous),
        "new_key": new_raw.hex(),
        "new_key_id": signing.key_id(new.public_key()),
        "endorsement": endorsement.hex(),
        "reason": reason,
    }


def _hex(details: Mapping[str, object], name: str, length: int) -> bytes | None:
    value = details.get(name)
    if not isinstance(value, str) or len(value) != length:
        return None
    try:
        return bytes.fromhex(value)
    except ValueError:
        return None


def read_handover(event: AuditEvent) -> Handover | None:
    """The handover `event` announces, or None if it is no well-formed `audit.key_rotated`."""
    if event.event != HANDOVER_EVENT:
        return None
    previous = _hex(event.details, "previous_key", _HEX64_LEN)
    new = _hex(event.details, "new_key", _HEX64_LEN)
    endorsement = _hex(event.details, "endorsement", 2 * _HEX64_LEN)
    if previous is None or new is None or endorsement is None:
        return None
    try:
        Ed25519PublicKey.from_public_bytes(previous)
        Ed25519PublicKey.from_public_bytes(new)
    except ValueError:
        return None
    return Handover(event.seq, event.prev_hash, previous, new, endorsement)


def trusted_keys(
    events: Iterable[AuditEvent], anchors: Iterable[Ed25519PublicKey]
) -> dict[str, Ed25519PublicKey]:
    """The keys a verifier holding `anchors` may trust for this chain, by key id.

    Walking back from the newest handover: a key the new key endorsed as its
    predecessor is trusted too. (Walking forward, the previous key's own seal on the
    handover vouches for the new key; `verify_events` follows that as it goes.)
    """
    trusted = {signing.key_id(k): k for k in anchors}
    handovers = [h for h in (read_handover(e) for e in events) if h is not None]
    for handover in reversed(handovers):
        new_id = signing.key_id(handover.new_public_key)
        known = trusted.get(new_id)
        if (
            known is not None
            and hmac.compare_digest(signing.public_key_bytes(known), handover.new_key)
            and handover.endorsed()
        ):
            previous = Ed25519PublicKey.from_public_bytes(handover.previous_key)
            trusted.setdefault(signing.key_id(previous), previous)
    return trusted
