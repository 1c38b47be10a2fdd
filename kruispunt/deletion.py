"""Signed deletion receipts: a node's word that it deleted a round's results.

When a node deletes results at the end of their retention it signs a receipt (round,
partner, network, when, the deadline, the digest its delivery reported, the flagged
count, how many files, and its own audit head: the `results.deleted` event) and keeps
it; the coordinator collects receipts at its next contact and checks each against the
partner's key from the roster. Counts and digests only: a receipt never names a record.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from google.protobuf.message import DecodeError

from kruispunt import signing
from kruispunt.audit import ChainHead, head_from_proto, head_to_proto
from kruispunt.errors import SignatureInvalid
from kruispunt.manifest import is_round_id
from kruispunt.v1 import node_pb2

__all__ = [
    "DELETION_CONTEXT",
    "Deletion",
    "sign_deletion",
    "verify_deletion",
]

#: The signing label of deletion receipts (kruispunt.signing's domain separation).
DELETION_CONTEXT = b"kruispunt/deletion/v1"


@dataclass(frozen=True)
class Deletion:
    """What one deletion receipt says, checked to be well formed."""

    network: str
    round_id: str
    partner_id: str
    deleted_at: datetime
    delete_after: datetime
    result_sha256: bytes
    flagged_count: int
    files: int
    node_head: ChainHead

    @property
    def seq(self) -> int:
        """The receipt's number at its node: the seq of the node's `results.deleted` event."""
        return self.node_head.seq

    def as_details(self) -> dict[str, object]:
        """The receipt as audit details (both logs record the same fields)."""
        return {
            "deleted_at": self.deleted_at.isoformat(),
            "delete_after": self.delete_after.isoformat(),
            "result_sha256": self.result_sha256.hex(),
            "flagged_count": self.flagged_count,
            "files": self.files,
        }


def sign_deletion(key: Ed25519PrivateKey, deletion: Deletion) -> node_pb2.SignedDeletionReceipt:
    """The signed receipt of `deletion`, as the node keeps it and hands it over."""
    receipt = node_pb2.DeletionReceipt(
        network=deletion.network,
        round_id=deletion.round_id,
        partner_id=deletion.partner_id,
        deleted_at_unix=int(deletion.deleted_at.timestamp()),
        delete_after_unix=int(deletion.delete_after.timestamp()),
        result_sha256=deletion.result_sha256,
        flagged_count=deletion.flagged_count,
        files=deletion.files,
        node_audit_head=head_to_proto(deletion.node_head),
    )
    body = receipt.SerializeToString(deterministic=True)
    return node_pb2.SignedDeletionReceipt(
        receipt=body, signature=signing.sign(key, DELETION_CONTEXT, body)
    )


def verify_deletion(
    signed: node_pb2.SignedDeletionReceipt,
    partner_key: Ed25519PublicKey | signing.KeySet,
    *,
    network: str,
    partner_id: str,
) -> Deletion:
    """Check a receipt's signature under `partner_key` (or any key of a rotation's overlap)
    and that it is that partner's, of this network, and well formed; raise SignatureInvalid
    (one opaque error) otherwise."""
    signing.verify(partner_key, DELETION_CONTEXT, signed.receipt, signed.signature)
    receipt = node_pb2.DeletionReceipt()
    try:
        receipt.ParseFromString(signed.receipt)
    except DecodeError:
        raise SignatureInvalid() from None
    head = head_from_proto(receipt.node_audit_head)
    if (
        receipt.network != network
        or receipt.partner_id != partner_id
        or not is_round_id(receipt.round_id)
        or head is None
        or len(receipt.result_sha256) != hashlib.sha256().digest_size
        or receipt.deleted_at_unix <= 0
    ):
        # Signed by the partner, but not a receipt of this network and partner: the same
        # answer as a bad signature, as for every other signed message.
        raise SignatureInvalid()
    return Deletion(
        network=receipt.network,
        round_id=receipt.round_id,
        partner_id=receipt.partner_id,
        deleted_at=datetime.fromtimestamp(receipt.deleted_at_unix, UTC),
        delete_after=datetime.fromtimestamp(receipt.delete_after_unix, UTC),
        result_sha256=receipt.result_sha256,
        flagged_count=receipt.flagged_count,
        files=receipt.files,
        node_head=head,
    )
