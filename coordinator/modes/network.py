"""The network mode after consent (DESIGN.md, "The matching round"): blind, evaluate,
finalize, tally, deliver.

The coordinator only relays: every point it holds is blinded by at least one
key it does not have, and the tags it tallies are pseudonyms that die with
the round's keys. The schedule keeps every node busy at once: at step s,
node j evaluates the set of node (j+s) mod n.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from coordinator.round_context import (
    Peer,
    PhaseProgress,
    RoundCancelled,
    RoundContext,
    RoundState,
    fan_out,
)
from coordinator.tally import TallyResult, tally
from kruispunt import wire
from kruispunt.errors import RoundFailed
from kruispunt.purpose import Purpose
from kruispunt.v1 import common_pb2, node_pb2

__all__ = ["created_details", "run"]


def created_details(purpose: Purpose) -> dict[str, object]:
    """What the `round.created` audit event records about a network round."""
    return {"threshold": purpose.threshold, "disclosure": purpose.disclosure}


def run(context: RoundContext, state: RoundState) -> None:
    """Take a consented network round to results published at every partner."""
    result = _match(context, state)
    _deliver(context, state, result)


def _match(context: RoundContext, state: RoundState) -> TallyResult:
    n = len(state.partners)
    total = sum(state.set_sizes.values())
    timeout = context.timeout
    per_chunk = context.config.chunk_points
    cancel = context.cancel

    # Phase 1: every node blinds its own set.
    t0 = time.monotonic()
    progress = context.progress(state, "blind", total)

    def blind(pid: str, peer: Peer) -> bytes:
        stream = peer.stub.Blind(common_pb2.RoundRef(round_id=state.round_id), timeout=timeout)
        return _collect_points(stream, state.set_sizes[pid], progress, cancel)

    current = context.parallel(state, "blind", blind)
    state.phases["blind"] = time.monotonic() - t0
    context.report(state, "blind", "blinded sets received", total, total)
    context.check_cancel()

    # Phase 2: n-1 steps; at step s node j applies its key to node (j+s) mod n's set.
    t0 = time.monotonic()
    for step in range(1, n):
        progress = context.progress(state, "evaluate", total, f"step {step}/{n - 1}: ")

        def evaluate(
            pid: str, peer: Peer, step: int = step, progress: PhaseProgress = progress
        ) -> bytes:
            j = state.partners.index(pid)
            origin = state.partners[(j + step) % n]
            requests = _point_requests(
                state.round_id, origin, step, current[origin], per_chunk, cancel
            )
            stream = peer.stub.Evaluate(requests, timeout=timeout)
            return _collect_points(stream, state.set_sizes[origin], progress, cancel)

        results = context.parallel(state, f"evaluate step {step}", evaluate)
        for pid, points in results.items():
            origin = state.partners[(state.partners.index(pid) + step) % n]
            current[origin] = points
        context.report(
            state, "evaluate", f"step {step}/{n - 1} done", step * total, (n - 1) * total
        )
        context.check_cancel()
    state.phases["evaluate"] = time.monotonic() - t0

    # Phase 3: each node removes its blinding, applies its own key and tags its records.
    t0 = time.monotonic()
    progress = context.progress(state, "finalize", total)

    def finalize(pid: str, peer: Peer) -> bytes:
        requests = _point_requests(state.round_id, pid, 0, current[pid], per_chunk, cancel)
        stream = peer.stub.Finalize(requests, timeout=timeout)
        return _collect_tags(stream, state.set_sizes[pid], progress, cancel)

    tags = context.parallel(state, "finalize", finalize)
    current.clear()
    state.phases["finalize"] = time.monotonic() - t0
    context.report(state, "finalize", "tags received", total, total)

    # Phase 4: tally (tags exist in memory only, for this call).
    t0 = time.monotonic()
    result = tally(tags, state.partners, state.purpose.threshold)
    tags.clear()
    state.histogram = dict(result.histogram)
    state.flagged = {p: len(result.flagged[p]) for p in state.partners}
    state.phases["tally"] = time.monotonic() - t0
    context.record(
        state,
        "tally.summary",
        "",
        flagged=dict(state.flagged),
        histogram={str(k): v for k, v in sorted(state.histogram.items())},
        threshold=state.purpose.threshold,
    )
    context.report(
        state,
        "tally",
        "flagged per partner: " + ", ".join(f"{p}={c}" for p, c in state.flagged.items()),
    )
    context.check_cancel()
    return result


def _deliver(context: RoundContext, state: RoundState, result: TallyResult) -> None:
    timeout = context.timeout
    t0 = time.monotonic()
    context.enter(state, "deliver")
    partners_disclosed = state.purpose.disclosure == "partners"

    def deliver(pid: str, peer: Peer) -> node_pb2.DeliveryReceipt:
        msg = node_pb2.RoundResults(
            round_id=state.round_id,
            flagged_indices=result.flagged[pid],
            holder_masks=result.masks[pid] if partners_disclosed else [],
            set_sizes=state.set_sizes,
            flagged_count=len(result.flagged[pid]),
        )
        receipt = peer.stub.Deliver(msg, timeout=timeout)
        state.staged.add(pid)
        return receipt  # type: ignore[no-any-return]

    staged = context.parallel(state, "deliver", deliver)
    for pid, receipt in staged.items():
        if receipt.flagged_count != state.flagged[pid]:
            raise RoundFailed(
                f"{pid}: staged {receipt.flagged_count} results, expected {state.flagged[pid]}"
            )
    context.check_cancel()
    # Every node has its results staged: publish everywhere. A commit that fails anywhere
    # fails the round, and the aborts that follow withdraw what others already published.
    ref = common_pb2.RoundRef(round_id=state.round_id)
    committed, failures = fan_out(
        context.peers, "commit", lambda pid, peer: peer.stub.Commit(ref, timeout=timeout)
    )
    if failures:
        raise RoundFailed(
            "commit failed: "
            + "; ".join(f"{pid}: {why}" for pid, why in failures.items())
            + (f" (results withdrawn at {', '.join(sorted(committed))})" if committed else "")
        )
    for pid, receipt in committed.items():
        state.result_paths[pid] = receipt.result_path
        context.record(
            state,
            "results.delivered",
            pid,
            flagged_count=receipt.flagged_count,
            result_sha256=receipt.result_sha256.hex(),
        )
    state.staged.clear()
    state.phases["deliver"] = time.monotonic() - t0
    context.report(state, "deliver", "results written at every partner")


def _point_requests(
    round_id: str, origin: str, step: int, packed: bytes, per_chunk: int, cancel: threading.Event
) -> Iterator[common_pb2.PointBatch]:
    for offset, chunk in wire.chunks(packed, wire.POINT_BYTES, per_chunk):
        if cancel.is_set():
            return
        yield common_pb2.PointBatch(
            round_id=round_id, origin=origin, step=step, offset=offset, points=chunk
        )


def _collect_points(
    stream: Iterator[common_pb2.PointBatch],
    expected: int,
    progress: PhaseProgress,
    cancel: threading.Event,
) -> bytes:
    out = bytearray()
    for batch in stream:
        count = wire.check_packed(batch.points, wire.POINT_BYTES)
        if count == 0:
            raise RoundFailed("sent an empty batch")
        if batch.offset * wire.POINT_BYTES != len(out):
            raise RoundFailed("sent points out of order")
        out += batch.points
        progress.add(count)
        if len(out) > expected * wire.POINT_BYTES:
            raise RoundFailed("sent more points than its declared set size")
        if cancel.is_set():
            raise RoundCancelled("cancelled by the operator")
    if len(out) != expected * wire.POINT_BYTES:
        raise RoundFailed(f"sent {len(out) // wire.POINT_BYTES} points, expected {expected}")
    return bytes(out)


def _collect_tags(
    stream: Iterator[common_pb2.TagBatch],
    expected: int,
    progress: PhaseProgress,
    cancel: threading.Event,
) -> bytes:
    out = bytearray()
    for batch in stream:
        progress.add(wire.check_packed(batch.tags, wire.TAG_BYTES))
        if batch.offset * wire.TAG_BYTES != len(out):
            raise RoundFailed("sent tags out of order")
        out += batch.tags
        if len(out) > expected * wire.TAG_BYTES:
            raise RoundFailed("sent more tags than its set size")
        if cancel.is_set():
            raise RoundCancelled("cancelled by the operator")
    if len(out) != expected * wire.TAG_BYTES:
        raise RoundFailed(f"sent {len(out) // wire.TAG_BYTES} tags, expected {expected}")
    return bytes(out)
