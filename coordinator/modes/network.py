"""The network mode after consent (DESIGN.md, "The matching round"): blind, evaluate,
finalize, tally, deliver.

The coordinator only relays: every point it holds is blinded by at least one
key it does not have, and the tags it tallies are pseudonyms that die with
the round's keys. The schedule keeps every node busy at once: at step s,
node j evaluates the set of node (j+s) mod n.

Nothing here is trusted by the nodes (DESIGN.md, "Threat model"): every set travels with
the signed statements of its route (kruispunt.hops), which each node checks against its
own roster before it evaluates a point; the coordinator forwards the partners' signed
consents rather than its own account of them, and backs every co-holder it names with an
inclusion proof in that partner's signed tag commitment. Every evaluation comes with a
DLEQ proof per chunk, which the coordinator relays with the chunk the evaluator was given,
so that the next node checks it against the key the evaluator committed to in its
consent. It still checks what it relays (counts, commitments; points or a proof when a
node refuses one) so that a failure names the node that caused it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import grpc

from coordinator.round_context import (
    Peer,
    PhaseProgress,
    RoundCancelled,
    RoundContext,
    RoundState,
)
from coordinator.tally import TallyResult, tally
from kruispunt import evaluation_proofs, wire
from kruispunt.commitments import Commitment, CommitmentRefused, SignedRoot, verify_root
from kruispunt.errors import InvalidPoint, KruispuntError, RoundFailed
from kruispunt.purpose import Purpose
from kruispunt.rpc import PeerError, translated
from kruispunt.v1 import common_pb2, node_pb2

__all__ = ["PART_BYTES", "created_details", "result_parts", "run"]

#: About how many bytes of results one Deliver part carries. The message limit
#: (`kruispunt.transport.MAX_MESSAGE_BYTES`) holds 16 times more, but a node checks each
#: part and drops its proofs as it comes, so a small part keeps both ends' memory low; under
#: `partners` disclosure a record with 33 co-holders takes about 24 KB.
PART_BYTES = 1 << 20
#: A flagged record's index and mask, and a proof's position and partner, at most (varints).
_RECORD_BYTES = 24
_PROOF_OVERHEAD = 48


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
    per_chunk = state.chunk_points
    cancel = context.cancel
    chains: dict[str, bytes] = {}  # per origin: the signed statements of its route so far
    # Per origin: the points the last evaluator was given, and its proof per chunk.
    sources: dict[str, bytes] = {}
    proofs: dict[str, list[bytes]] = {}
    public_keys = _public_keys(state)

    # Phase 1: every node blinds its own set, given every partner's signed consent.
    t0 = time.monotonic()
    progress = context.progress(state, "blind", total)
    request = node_pb2.BlindRequest(
        round_id=state.round_id, consents=[state.consents[p] for p in state.partners]
    )

    def blind(pid: str, peer: Peer) -> bytes:
        stream = peer.stub.Blind(request, timeout=timeout)
        points, chains[pid], _ = _collect_points(stream, state.set_sizes[pid], progress, cancel)
        return points

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
        ) -> tuple[bytes, bytes, list[bytes]]:
            j = state.partners.index(pid)
            origin = state.partners[(j + step) % n]
            relayed = _Relayed(current[origin], sources.get(origin, b""), proofs.get(origin, []))
            requests = _point_requests(
                state.round_id, origin, step, relayed, per_chunk, cancel, chains[origin]
            )
            with _blaming(state, origin, step, relayed, public_keys):
                stream = peer.stub.Evaluate(requests, timeout=timeout)
                return _collect_points(stream, state.set_sizes[origin], progress, cancel)

        results = context.parallel(state, f"evaluate step {step}", evaluate)
        for pid, (points, chain, made) in results.items():
            origin = state.partners[(state.partners.index(pid) + step) % n]
            sources[origin], current[origin] = current[origin], points
            chains[origin], proofs[origin] = chain, made
        context.report(
            state, "evaluate", f"step {step}/{n - 1} done", step * total, (n - 1) * total
        )
        context.check_cancel()
    state.phases["evaluate"] = time.monotonic() - t0

    # Phase 3: each node removes its blinding, applies its own key, tags its records and
    # commits to its tags; no tag leaves a node before every commitment is fixed.
    t0 = time.monotonic()
    progress = context.progress(state, "finalize", total)

    def finalize(pid: str, peer: Peer) -> bytes:
        relayed = _Relayed(current[pid], sources[pid], proofs[pid])
        requests = _point_requests(state.round_id, pid, 0, relayed, per_chunk, cancel, chains[pid])
        with _blaming(state, pid, n, relayed, public_keys):
            stream = peer.stub.Finalize(requests, timeout=timeout)
            root = _collect_root(stream)
        progress.add(state.set_sizes[pid])
        return root

    roots = context.parallel(state, "finalize", finalize)
    current.clear()
    sources.clear()
    proofs.clear()
    chains.clear()
    state.phases["finalize"] = time.monotonic() - t0
    context.report(state, "finalize", "tag commitments received", total, total)
    context.check_cancel()

    # Phase 4: every node gets every commitment, checks them, and only then reveals its tags.
    t0 = time.monotonic()
    progress = context.progress(state, "reveal", total)
    reveal_request = node_pb2.RevealRequest(round_id=state.round_id, roots=roots)

    def reveal(pid: str, peer: Peer) -> _Tags:
        stream = peer.stub.Reveal(reveal_request, timeout=timeout)
        tags, salts = _collect_tags(stream, state.set_sizes[pid], progress, cancel)
        return _Tags(tags, salts, roots[pid])

    finalized = context.parallel(state, "reveal", reveal)
    tags = {pid: got.tags for pid, got in finalized.items()}
    state.phases["reveal"] = time.monotonic() - t0
    context.report(state, "reveal", "tags received", total, total)

    # Phase 5: tally (tags exist in memory only, for this call).
    t0 = time.monotonic()
    result = tally(tags, state.partners, state.purpose.threshold)
    if state.purpose.disclosure == "partners":
        state.evidence = _coholder_evidence(state, finalized, result, context.now())
    tags.clear()
    finalized.clear()
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
        parts = result_parts(
            state.round_id,
            state.set_sizes,
            result.flagged[pid],
            result.masks[pid] if partners_disclosed else None,
            state.evidence[pid] if partners_disclosed else [],
            budget=PART_BYTES,
        )
        receipt = peer.stub.Deliver(parts, timeout=timeout)
        state.staged.add(pid)
        return receipt  # type: ignore[no-any-return]

    staged = context.parallel(state, "deliver", deliver)
    for pid, receipt in staged.items():
        if receipt.flagged_count != state.flagged[pid]:
            raise RoundFailed(
                f"{pid}: staged {receipt.flagged_count} results, expected {state.flagged[pid]}"
            )
    context.check_cancel()
    # Every node has its results staged: publish everywhere.
    context.commit(state)
    state.evidence.clear()
    state.phases["deliver"] = time.monotonic() - t0
    context.report(state, "deliver", "results written at every partner")


def result_parts(
    round_id: str,
    set_sizes: dict[str, int],
    flagged: list[int],
    masks: list[int] | None,
    proofs: list[node_pb2.CoholderProof],
    *,
    budget: int = PART_BYTES,
) -> Iterator[node_pb2.RoundResults]:
    """One partner's results as Deliver parts of about `budget` bytes each, in order.

    The first part carries the set sizes and the count (and is sent even with nothing
    flagged); a record's co-holder proofs travel in the part of the record. `proofs`
    are ordered by the flagged record they prove (as `_coholder_evidence` makes them).
    """
    part = node_pb2.RoundResults(round_id=round_id, set_sizes=set_sizes, flagged_count=len(flagged))
    size = 0
    at = 0  # the next proof
    for k, index in enumerate(flagged):
        record: list[node_pb2.CoholderProof] = []
        while at < len(proofs) and proofs[at].flagged == k:
            record.append(proofs[at])
            at += 1
        cost = _RECORD_BYTES + sum(len(p.proof) + _PROOF_OVERHEAD for p in record)
        if size and size + cost > budget:
            yield part
            part = node_pb2.RoundResults(round_id=round_id)
            size = 0
        part.flagged_indices.append(index)
        if masks is not None:
            part.holder_masks.append(masks[k])
        part.proofs.extend(record)
        size += cost
    yield part


@dataclass(frozen=True)
class _Relayed:
    """An origin's set as the coordinator relays it to the next receiver: the points, and
    (after the first hop) the points the last evaluator was given and its proof per chunk."""

    points: bytes
    sources: bytes
    proofs: list[bytes]


def _public_keys(state: RoundState) -> dict[str, bytes]:
    """Every partner's round public key, from the consent it signed (verified at consent)."""
    keys = {}
    for pid in state.partners:
        consent = common_pb2.Consent()
        consent.ParseFromString(state.consents[pid].consent)
        keys[pid] = consent.evaluation_public_key
    return keys


@contextmanager
def _blaming(
    state: RoundState, origin: str, step: int, relayed: _Relayed, public_keys: dict[str, bytes]
) -> Iterator[None]:
    """Name the node that produced an invalid point or a failing proof, not the refuser.

    Every batch is signed by the node that produced it (kruispunt.hops), so when the
    receiver refuses a point as no group element, or an evaluation proof as failing, the
    coordinator checks what it relayed and, if the refusal holds, names the signer of that
    batch. Checking only on refusal keeps a decode per relayed point and a second proof
    check off every round.
    """
    n = len(state.partners)
    producer = state.partners[(state.partners.index(origin) - step + 1) % n]
    try:
        with translated():
            yield
    except PeerError as exc:
        if exc.status == grpc.StatusCode.PERMISSION_DENIED and "its proof fails" in exc.details:
            if step > 1 and not _proofs_hold(relayed, public_keys[producer], state.chunk_points):
                raise RoundFailed(
                    f"{producer} evaluated {origin}'s set at step {step - 1} with another key "
                    f"than its consent commits to: its evaluation proof fails, and the next "
                    f"node refused it"
                ) from None
            raise
        if exc.status != grpc.StatusCode.INVALID_ARGUMENT or "group element" not in exc.details:
            raise
        try:
            wire.validate_points(relayed.points)
        except InvalidPoint:
            raise RoundFailed(
                f"{producer} signed a batch of {origin}'s set holding a point that is not a "
                f"valid group element (step {step - 1}); the next node refused it"
            ) from None
        raise


def _proofs_hold(relayed: _Relayed, public_key: bytes, per_chunk: int) -> bool:
    """Whether every chunk's proof, as relayed, verifies against `public_key`."""
    pairs = zip(
        wire.chunks(relayed.sources, wire.POINT_BYTES, per_chunk),
        wire.chunks(relayed.points, wire.POINT_BYTES, per_chunk),
        strict=False,
    )
    if len(relayed.proofs) != -(-len(relayed.points) // (per_chunk * wire.POINT_BYTES)):
        return False
    return all(
        evaluation_proofs.verify_chunk(public_key, source, points, proof)
        for ((_, source), (_, points)), proof in zip(pairs, relayed.proofs, strict=False)
    )


def _point_requests(
    round_id: str,
    origin: str,
    step: int,
    relayed: _Relayed,
    per_chunk: int,
    cancel: threading.Event,
    chain: bytes,
) -> Iterator[common_pb2.PointBatch]:
    """The set in the manifest's chunks; the first batch carries its route's statements,
    and after the first hop every batch its source and the last evaluator's proof."""
    stride = per_chunk * wire.POINT_BYTES
    for index, (offset, chunk) in enumerate(
        wire.chunks(relayed.points, wire.POINT_BYTES, per_chunk)
    ):
        if cancel.is_set():
            return
        at = index * stride
        yield common_pb2.PointBatch(
            round_id=round_id,
            origin=origin,
            step=step,
            offset=offset,
            points=chunk,
            chain=chain if offset == 0 else b"",
            proof=relayed.proofs[index] if index < len(relayed.proofs) else b"",
            source=relayed.sources[at : at + stride],
        )


def _collect_points(
    stream: Iterator[common_pb2.PointBatch],
    expected: int,
    progress: PhaseProgress,
    cancel: threading.Event,
) -> tuple[bytes, bytes, list[bytes]]:
    """(points, chain, proofs): the whole set, checked point by point, the statements that
    close the stream (on its last batch, which alone may hold no points), and the proof
    that came with each batch of points (none from Blind: an origin proves nothing)."""
    out = bytearray()
    chain = b""
    proofs: list[bytes] = []
    for batch in stream:
        if chain:
            raise RoundFailed("sent points after the statements that close its stream")
        chain = batch.chain
        if not batch.points and not chain:
            raise RoundFailed("sent an empty batch")
        count = wire.check_packed(batch.points, wire.POINT_BYTES)
        if batch.offset * wire.POINT_BYTES != len(out) and count:
            raise RoundFailed("sent points out of order")
        out += batch.points
        if count:
            proofs.append(batch.proof)
        progress.add(count)
        if len(out) > expected * wire.POINT_BYTES:
            raise RoundFailed("sent more points than its declared set size")
        if cancel.is_set():
            raise RoundCancelled("cancelled by the operator")
    if len(out) != expected * wire.POINT_BYTES:
        raise RoundFailed(f"sent {len(out) // wire.POINT_BYTES} points, expected {expected}")
    if not chain:
        raise RoundFailed("sent no signed statement for its points")
    return bytes(out), chain, proofs


@dataclass
class _Tags:
    """A node's finalize answer: tags, its commitment's salts and its signed root."""

    tags: bytes
    salts: bytes
    root: bytes


def _collect_root(stream: Iterator[common_pb2.TagBatch]) -> bytes:
    """A node's finalize answer: its signed commitment, and no tag."""
    root = b""
    for batch in stream:
        if root or batch.tags or batch.salts or not batch.commitment:
            raise RoundFailed("finalize must answer one signed commitment and no tag")
        root = batch.commitment
    if not root:
        raise RoundFailed("sent no signed commitment to its tags")
    return root


def _collect_tags(
    stream: Iterator[common_pb2.TagBatch],
    expected: int,
    progress: PhaseProgress,
    cancel: threading.Event,
) -> tuple[bytes, bytes]:
    """(tags, salts) of a node's reveal, in its order, one 16-byte salt per tag."""
    out, salts = bytearray(), bytearray()
    for batch in stream:
        count = wire.check_packed(batch.tags, wire.TAG_BYTES)
        if len(batch.salts) != len(batch.tags):
            raise RoundFailed("sent tags without one commitment salt each")
        progress.add(count)
        if batch.offset * wire.TAG_BYTES != len(out):
            raise RoundFailed("sent tags out of order")
        out += batch.tags
        salts += batch.salts
        if len(out) > expected * wire.TAG_BYTES:
            raise RoundFailed("sent more tags than its set size")
        if cancel.is_set():
            raise RoundCancelled("cancelled by the operator")
    if len(out) != expected * wire.TAG_BYTES:
        raise RoundFailed(f"sent {len(out) // wire.TAG_BYTES} tags, expected {expected}")
    return bytes(out), bytes(salts)


def _coholder_evidence(
    state: RoundState, finalized: dict[str, _Tags], result: TallyResult, now: datetime
) -> dict[str, list[node_pb2.CoholderProof]]:
    """Per partner, for each flagged record and co-holder, an inclusion proof of that
    record's tag in the co-holder's commitment (which every node already holds).

    Each root is checked against the partner's roster key and rebuilt from the tags and
    salts it sent, so a node that commits to other tags than it sent is named here.
    """
    trees: dict[str, Commitment] = {}
    for pid, got in finalized.items():
        try:
            signed = SignedRoot.decode(got.root)
            root = verify_root(
                signed,
                state.roster.signing_keys(pid, now),
                round_id=state.round_id,
                manifest_sha256=state.manifest_sha256,
                partner=pid,
                count=state.set_sizes[pid],
            )
        except (CommitmentRefused, KruispuntError) as exc:
            raise RoundFailed(f"{pid}: its tag commitment does not verify ({exc})") from None
        trees[pid] = Commitment.with_salts(got.tags, got.salts)
        if trees[pid].root != root:
            raise RoundFailed(f"{pid}: its signed commitment is not over the tags it sent")
    # Where each flagged tag sits in each holder's list (only flagged tags are indexed).
    flagged_tags: set[bytes] = set()
    for pid in state.partners:
        tags = finalized[pid].tags
        flagged_tags.update(tags[i * 16 : i * 16 + 16] for i in result.flagged[pid])
    position: dict[str, dict[bytes, int]] = {}
    for pid in state.partners:
        tags = finalized[pid].tags
        position[pid] = {
            tags[at : at + 16]: at // 16
            for at in range(0, len(tags), 16)
            if tags[at : at + 16] in flagged_tags
        }
    evidence = {}
    for pid in state.partners:
        tags = finalized[pid].tags
        proofs: list[node_pb2.CoholderProof] = []
        for k, (index, mask) in enumerate(zip(result.flagged[pid], result.masks[pid], strict=True)):
            tag = tags[index * 16 : index * 16 + 16]
            for bit, holder in enumerate(state.partners):
                if holder == pid or not mask >> bit & 1:
                    continue
                proof = trees[holder].proof(position[holder][tag])
                proofs.append(
                    node_pb2.CoholderProof(flagged=k, partner=holder, proof=proof.encode())
                )
        evidence[pid] = proofs
    return evidence
