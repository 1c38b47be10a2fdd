"""Checking a node's DLEQ evaluation proofs with public material only (RFC 9497, section 2.2).

A node proves every chunk it evaluates (`psi_node.oprf.evaluate_and_prove`) against the
round public key k*G it committed to in its signed consent. The next node checks each
proof before it uses a point; the coordinator, which relays both the chunk the evaluator
was given and what it returned, checks a proof only when a node refuses one, so that the
round fails naming the evaluator and not the refuser (as it does for an invalid point).
Nothing here touches a key: the coordinator imports this, never the node's key handling.
"""

from __future__ import annotations

from kruispunt import native
from kruispunt.wire import POINT_BYTES

__all__ = ["PROOF_BYTES", "VOPRF_CONTEXT_STRING", "verify_chunk"]

PROOF_BYTES: int = native.PROOF_BYTES
"""A batched DLEQ proof: SerializeScalar(c) || SerializeScalar(s)."""

# RFC 9497, section 3.1, mode 0x01 (VOPRF), suite ristretto255-SHA512: the context the
# proofs hash under (psi_node.oprf.VOPRF_CONTEXT_STRING, held equal by a test).
VOPRF_CONTEXT_STRING = b"OPRFV1-\x01-ristretto255-SHA512"


def verify_chunk(public_key: bytes, source: bytes, evaluated: bytes, proof: bytes) -> bool:
    """Whether `proof` shows `evaluated` = k * `source`, point by point, for k behind `public_key`.

    False for any malformed input (lengths, encodings, a proof of the wrong size).
    """
    points, rest = divmod(len(source), POINT_BYTES)
    if rest or points == 0 or len(evaluated) != len(source) or len(proof) != PROOF_BYTES:
        return False
    return native.dleq_verify_chunks(
        bytes(public_key),
        bytes(source),
        bytes(evaluated),
        [bytes(proof)],
        VOPRF_CONTEXT_STRING,
        points,
    )
