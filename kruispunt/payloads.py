"""Signed two-party payloads: what one node sends the other through the relay, bound to it.

In a two-party round the coordinator relays openmined-psi messages between a client
and a server node. Unsigned, a relay could hand the server a request of its own making
(one probe set per round) or the client a made-up answer. Each payload is therefore
signed by the node that made it, over the round, the manifest digest, the sender, the
kind of message, the payload's SHA-256 and the set size it speaks for; the receiving node
verifies the signature against the sender's key in the roster its operator accepted.

Statement (``lp(x)`` is a u32 big-endian length followed by x)::

    lp(round_id) lp(manifest_sha256) lp(sender) lp(kind) lp(SHA-256(payload)) u64 set_size

signed under the context ``kruispunt/bilateral/v1`` (`kruispunt.signing`).
"""

from __future__ import annotations

import hashlib
import struct
from typing import Final, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kruispunt import signing
from kruispunt.errors import AttackRefused, SignatureInvalid

CONTEXT: Final = b"kruispunt/bilateral/v1"
Kind = Literal["request", "response", "setup"]


def _statement(
    round_id: str, manifest_sha256: bytes, sender: str, kind: Kind, payload: bytes, set_size: int
) -> bytes:
    parts = (
        round_id.encode(),
        manifest_sha256,
        sender.encode(),
        kind.encode(),
        hashlib.sha256(payload).digest(),
    )
    return b"".join(struct.pack(">I", len(p)) + p for p in parts) + struct.pack(">Q", set_size)


def sign_payload(
    key: Ed25519PrivateKey,
    *,
    round_id: str,
    manifest_sha256: bytes,
    sender: str,
    kind: Kind,
    payload: bytes,
    set_size: int,
) -> bytes:
    """The sender's 64-byte signature over one two-party payload and the set size it is for."""
    statement = _statement(round_id, manifest_sha256, sender, kind, payload, set_size)
    return signing.sign(key, CONTEXT, statement)


def verify_payload(
    signature: bytes,
    key: signing.Verifier,
    *,
    round_id: str,
    manifest_sha256: bytes,
    sender: str,
    kind: Kind,
    payload: bytes,
    set_size: int,
) -> None:
    """Return if `sender` signed this payload for this round and set size; else AttackRefused."""
    statement = _statement(round_id, manifest_sha256, sender, kind, payload, set_size)
    try:
        signing.verify(key, CONTEXT, statement, signature)
    except SignatureInvalid:
        raise AttackRefused(
            f"the bilateral {kind} is not signed by {sender} for this round and set size"
        ) from None
