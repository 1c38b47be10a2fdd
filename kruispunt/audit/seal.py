"""Sealing: chain an audit event to its predecessor and sign it.

- `hash` = SHA-256(bytes(prev_hash) || canonical), hex in storage, where
  canonical is `kruispunt.audit.codec.canonical_bytes`. The first event's
  `prev_hash` is 32 zero bytes (`GENESIS_HASH`).
- `signature` = Ed25519 over the 32 raw hash bytes with the context label
  ``kruispunt/audit/v1`` (`kruispunt.signing.sign`), hex in storage. `key_id`
  names the signing key and is itself covered by the hash.

`seal` runs the identifier guard on every text field and on `details` before it
signs anything.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kruispunt import signing
from kruispunt.audit.codec import canonical_bytes, canonical_json
from kruispunt.audit.event import AuditEvent, format_time, is_event_name, is_hash_hex
from kruispunt.audit.guard import check_no_identifiers

__all__ = ["AUDIT_CONTEXT", "compute_hash", "seal"]

AUDIT_CONTEXT: Final = signing.CONTEXT_AUDIT  # b"kruispunt/audit/v1"


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
    if not is_hash_hex(prev_hash):
        raise ValueError("audit prev_hash must be 64 lower-case hex digits")
    if not is_event_name(event):
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
    frozen_details: dict[str, Any] = json.loads(canonical_json(details_in))
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
    return dataclasses.replace(draft, hash=digest, signature=signature.hex())
