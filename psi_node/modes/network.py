"""A network round at the node: blind, evaluate, finalize, then stage what the coordinator found.

DESIGN.md, "The matching round". After consent the node holds a fresh
ristretto255 key k and blinding r (`psi_node.oprf.RoundKey`). It blinds its
own records (r*H(x)), applies k to every other partner's points as the
coordinator routes them through, turns its own points -- every other key
applied -- into tags, and stages the flagged records the coordinator reports.
Commit and abort are the shared ones (`psi_node.rounds`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final

import structlog

from kruispunt import wire
from kruispunt.errors import ProtocolError, ResourceLimit
from kruispunt.v1 import node_pb2
from psi_node.oprf import RoundKey
from psi_node.results import retention_deadline, stage_results
from psi_node.round_state import CONSENTED, STAGED, NodeRound, RoundContext, RoundMode

log = structlog.get_logger("psi_node.modes.network")

# Phases a network round passes at a node, between CONSENTED and STAGED.
BLINDED: Final = "blinded"
FINALIZED: Final = "finalized"


@dataclass
class NetworkState:
    """A network round's key and blinding, and whose sets this node has evaluated."""

    key: RoundKey
    evaluated: set[str] = field(default_factory=set)

    def wipe(self) -> None:
        """Zero the round key (idempotent)."""
        self.key.wipe()


def _start() -> NetworkState:
    return NetworkState(RoundKey.generate())


MODE: Final = RoundMode("network", start=_start)


def blind(rounds: RoundContext, round_id: str) -> Iterator[tuple[int, bytes]]:
    """Phase 1: this node's blinded points r*H(x) in input order, chunk by chunk."""
    rnd = rounds.get_round(round_id, mode=MODE.name, phases=(CONSENTED,))
    state = _state(rnd)
    records = rnd.inputs.records
    step = rounds.chunk_points
    with rnd.lock:
        for offset in range(0, len(records), step):
            chunk = records[offset : offset + step]
            yield offset, rounds.pool.hash_and_blind(chunk, state.key.blind_factor)
            rnd.last_activity = time.monotonic()
        rnd.phase = BLINDED
    rounds.audit_event("records.sent", rnd, "E", set_size=len(records))
    log.info("blinded set sent", round_id=round_id, points=len(records))


def evaluate(
    rounds: RoundContext, round_id: str, origin: str, batches: Iterable[tuple[int, bytes]]
) -> Iterator[tuple[int, bytes]]:
    """Phase 2: apply this node's key to another partner's points, order kept."""
    rnd = rounds.get_round(round_id, mode=MODE.name, phases=(CONSENTED, BLINDED))
    state = _state(rnd)
    if origin == rounds.config.partner_id or origin not in rnd.verified.partners:
        raise ProtocolError("origin is not another partner of this round")
    if origin in state.evaluated:
        raise ProtocolError("this partner's set was already evaluated in this round")
    state.evaluated.add(origin)
    limit = rnd.verified.purpose.max_set_size
    expected = 0
    for offset, packed in batches:
        count = wire.check_packed(packed, wire.POINT_BYTES)
        if offset != expected:
            raise ProtocolError("batch offset out of order")
        expected += count
        if expected > limit:
            raise ResourceLimit("more points than the purpose's maximum set size")
        yield offset, rounds.pool.scalar_mult(state.key.key, packed)
        rnd.last_activity = time.monotonic()
    log.info("evaluated", round_id=round_id, origin=origin, points=expected)


def finalize(
    rounds: RoundContext, round_id: str, batches: Iterable[tuple[int, bytes]]
) -> Iterator[tuple[int, bytes]]:
    """Phase 3: own points with every other key in; answer 16-byte tags in order."""
    rnd = rounds.get_round(round_id, mode=MODE.name, phases=(BLINDED,))
    state = _state(rnd)
    records = rnd.inputs.records
    expected = 0
    for offset, packed in batches:
        count = wire.check_packed(packed, wire.POINT_BYTES)
        if offset != expected or expected + count > len(records):
            raise ProtocolError("finalize batch does not match this node's set")
        chunk = records[offset : offset + count]
        yield offset, rounds.pool.unblind_and_tag(chunk, state.key.unblind_factor, packed)
        expected += count
        rnd.last_activity = time.monotonic()
    if expected != len(records):
        raise ProtocolError("finalize stream ended before the whole set came back")
    rnd.phase = FINALIZED
    state.wipe()  # the key's work is done; nothing later needs it
    log.info("finalized", round_id=round_id, tags=expected)


def deliver(rounds: RoundContext, results: node_pb2.RoundResults) -> node_pb2.DeliveryReceipt:
    """Stage this node's results; nothing is visible until commit."""
    rnd = rounds.get_round(results.round_id, mode=MODE.name, phases=(FINALIZED,))
    size = len(rnd.inputs.records)
    purpose = rnd.verified.purpose
    indices = list(results.flagged_indices)
    if any(i >= size for i in indices) or len(set(indices)) != len(indices):
        raise ProtocolError("flagged indices do not fit this node's set")
    if results.flagged_count != len(indices):
        raise ProtocolError("flagged count does not match the indices")
    me = rounds.config.partner_id
    partners = rnd.verified.partners
    coholders: list[list[str]] | None = None
    if purpose.disclosure == "partners":
        masks = list(results.holder_masks)
        if len(masks) != len(indices):
            raise ProtocolError("holder masks do not match the flagged indices")
        coholders = [[p for b, p in enumerate(partners) if m >> b & 1 and p != me] for m in masks]
    elif results.holder_masks:
        raise ProtocolError("holder masks sent for a purpose that discloses counts only")
    now = rounds.now()
    values = rnd.inputs.values
    staged = stage_results(
        rounds.config.results_dir,
        rnd.round_id,
        columns=rnd.inputs.columns,
        rows=[values[i] for i in indices],
        coholders=coholders,
        metadata={
            "round_id": rnd.round_id,
            "purpose": purpose.id,
            "purpose_version": purpose.version,
            "threshold": purpose.threshold,
            "disclosure": purpose.disclosure,
            "flagged_count": len(indices),
            "set_sizes": dict(sorted(results.set_sizes.items())),
            "written_at": now.isoformat(),
            "delete_after": retention_deadline(now, purpose.result_retention_days).isoformat(),
        },
    )
    rnd.staged = staged
    rnd.phase = STAGED
    rounds.audit_event(
        "results.received",
        rnd,
        "C",
        flagged_count=len(indices),
        set_sizes=dict(results.set_sizes),
    )
    return node_pb2.DeliveryReceipt(
        round_id=rnd.round_id,
        flagged_count=len(indices),
        result_path=str(staged.final_csv),
        result_sha256=staged.sha256,
    )


def _state(rnd: NodeRound) -> NetworkState:
    """The round's network state; a network round holds one from consent to commit."""
    state = rnd.state
    if not isinstance(state, NetworkState):
        raise ProtocolError("this round holds no network key")
    return state
