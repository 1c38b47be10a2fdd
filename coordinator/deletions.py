"""Collecting the nodes' deletion receipts at every contact, and checking each one.

At the start of every round the coordinator asks each partner of it for the deletion
receipts signed after the newest it holds from that partner (`Deletions`). Each
receipt must verify under the partner's key from the roster (`kruispunt.deletion`),
be numbered after every receipt already held from it, and name a round in which
results with exactly its digest were delivered to that partner, once. A receipt that
passes is stored with its signature and audited as `deletion.received` (with the
node head it carries, which `kruispunt.audit.witness` holds to the node's chain); any
other is refused and audited as `deletion.refused`. Collecting never fails a round:
a node that cannot answer is asked again at the next contact.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from coordinator.audit import CoordinatorAudit
from coordinator.store import Store
from kruispunt import signing
from kruispunt.deletion import Deletion, verify_deletion
from kruispunt.errors import KruispuntError
from kruispunt.v1 import node_pb2

__all__ = ["Collected", "take_receipts"]

log = structlog.get_logger("coordinator.deletions")

#: Why a receipt is refused (audited in `deletion.refused`, never naming a record).
FORGED = "the receipt does not verify under the partner's roster key (forged or not its own)"
REPLAYED = "replayed: a receipt for this round was already received from this partner"
OUT_OF_ORDER = "replayed: numbered at or before a receipt already received from this partner"
NOT_DELIVERED = "no results were delivered to this partner in that round"
OTHER_RESULTS = "the receipt's digest differs from the results delivered in that round"


@dataclass(frozen=True)
class Collected:
    """What one partner handed over: the receipts taken and why each other was refused."""

    partner: str
    taken: tuple[Deletion, ...]
    refused: tuple[str, ...]


def take_receipts(
    store: Store,
    audit: CoordinatorAudit,
    *,
    network: str,
    partner: str,
    key: Ed25519PublicKey | signing.KeySet,
    answer: node_pb2.DeletionReceipts,
    after_seq: int,
    now: datetime,
) -> Collected:
    """Check, store and audit every receipt of one partner's answer to `Deletions`."""
    taken: list[Deletion] = []
    refused: list[str] = []
    newest = after_seq
    for signed in answer.receipts:
        try:
            deletion = verify_deletion(signed, key, network=network, partner_id=partner)
        except KruispuntError:
            _refuse(audit, partner, "", FORGED)
            refused.append(FORGED)
            continue
        why = _unfit(store, audit, deletion, newest)
        if why:
            _refuse(audit, partner, deletion.round_id, why, seq=deletion.seq)
            refused.append(why)
            continue
        if not store.record_deletion(
            deletion.round_id,
            partner,
            deletion.seq,
            deletion.deleted_at.isoformat(),
            signed.receipt,
            signed.signature,
            now.isoformat(),
        ):
            _refuse(audit, partner, deletion.round_id, REPLAYED, seq=deletion.seq)
            refused.append(REPLAYED)
            continue
        newest = deletion.seq
        audit.append(
            "deletion.received",
            actor="coordinator",
            on_behalf_of=partner,
            access_point="coordinator",
            action="C",
            round_id=deletion.round_id,
            details={
                "partner": partner,
                **deletion.as_details(),
                # The node's head in its receipt: a node log later cut off before its
                # deletion is caught (kruispunt.audit.witness).
                "node_head": deletion.node_head.as_details(),
            },
        )
        log.info("deletion receipt received", round_id=deletion.round_id, partner=partner)
        taken.append(deletion)
    return Collected(partner, tuple(taken), tuple(refused))


def _unfit(store: Store, audit: CoordinatorAudit, deletion: Deletion, newest: int) -> str:
    """Why a verified receipt cannot be taken, or ""."""
    if deletion.seq <= newest:
        return OUT_OF_ORDER
    if store.deletion(deletion.round_id, deletion.partner_id) is not None:
        return REPLAYED
    delivered = [
        e.details.get("result_sha256")
        for e in audit.events(deletion.round_id)
        if e.event == "results.delivered" and e.details.get("partner") == deletion.partner_id
    ]
    if not delivered:
        return NOT_DELIVERED
    if deletion.result_sha256.hex() not in delivered:
        return OTHER_RESULTS
    return ""


def _refuse(
    audit: CoordinatorAudit, partner: str, round_id: str, why: str, *, seq: int = 0
) -> None:
    details: dict[str, object] = {"partner": partner, "reason": why}
    if seq:
        details["receipt_seq"] = seq
    audit.append(
        "deletion.refused",
        actor="coordinator",
        on_behalf_of=partner,
        access_point="coordinator",
        action="E",
        round_id=round_id,
        details=details,
    )
    log.warning("deletion receipt refused", round_id=round_id, partner=partner, reason=why)
