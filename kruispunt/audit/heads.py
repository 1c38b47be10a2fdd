"""Audit chain heads on the wire: what a manifest, a consent and a delivery receipt carry.

Each side of a round keeps the other's head: a manifest carries the coordinator's
(every node logs it), a consent and a receipt carry the node's (the coordinator
logs it). A log later cut off or rewritten before a head someone else kept no
longer holds that head, which `kruispunt.audit.witness` checks.
"""

from __future__ import annotations

import hashlib

from kruispunt.audit.event import ChainHead
from kruispunt.v1 import common_pb2

__all__ = ["head_from_proto", "head_to_proto"]


def head_to_proto(head: ChainHead | None) -> common_pb2.AuditHead:
    """An audit chain head as sent on the wire; an empty chain is seq 0 with no hash."""
    if head is None:
        return common_pb2.AuditHead()
    return common_pb2.AuditHead(seq=head.seq, hash=bytes.fromhex(head.hash))


def head_from_proto(message: common_pb2.AuditHead) -> ChainHead | None:
    """The chain head a wire message names; None for seq 0 or a hash of the wrong size."""
    if message.seq == 0 or len(message.hash) != hashlib.sha256().digest_size:
        return None
    return ChainHead(message.seq, message.hash.hex())
