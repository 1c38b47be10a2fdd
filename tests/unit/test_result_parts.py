"""`result_parts`: a partner's results cut into Deliver parts under the message limit."""

from __future__ import annotations

import os

import pytest

from coordinator.modes.network import PART_BYTES, result_parts
from kruispunt.transport import MAX_MESSAGE_BYTES
from kruispunt.v1 import node_pb2

SIZES = {"gemeente": 1_000_000, "woonbron": 1_000_000}
#: An inclusion proof in a tree of a million leaves: 20 sibling hashes and a little framing.
PROOF_BYTES = 20 * 32 + 12


def evidence(
    flagged: int, coholders: int
) -> tuple[list[int], list[int], list[node_pb2.CoholderProof]]:
    indices = list(range(0, 3 * flagged, 3))
    masks = [(1 << (coholders + 1)) - 1] * flagged
    proofs = [
        node_pb2.CoholderProof(flagged=k, partner=f"p{c}", proof=os.urandom(PROOF_BYTES))
        for k in range(flagged)
        for c in range(coholders)
    ]
    return indices, masks, proofs


def joined(parts: list[node_pb2.RoundResults]) -> node_pb2.RoundResults:
    whole = node_pb2.RoundResults(
        round_id=parts[0].round_id,
        set_sizes=parts[0].set_sizes,
        flagged_count=parts[0].flagged_count,
    )
    for part in parts:
        whole.flagged_indices.extend(part.flagged_indices)
        whole.holder_masks.extend(part.holder_masks)
        whole.proofs.extend(part.proofs)
    return whole


def test_results_too_big_for_one_message_travel_in_parts_under_the_budget():
    """30,000 flagged records with a co-holder proof each: one message would pass the
    limit; every part stays under the budget, and together they are the results."""
    indices, masks, proofs = evidence(30_000, 1)
    single = node_pb2.RoundResults(
        round_id="r1",
        set_sizes=SIZES,
        flagged_count=len(indices),
        flagged_indices=indices,
        holder_masks=masks,
    )
    single.proofs.extend(proofs)
    assert single.ByteSize() > MAX_MESSAGE_BYTES
    parts = list(result_parts("r1", SIZES, indices, masks, proofs))
    assert len(parts) > 1
    assert all(part.ByteSize() <= PART_BYTES for part in parts)
    assert joined(parts) == single


def test_only_the_first_part_carries_the_sizes_and_the_count():
    indices, masks, proofs = evidence(50, 3)
    parts = list(result_parts("r1", SIZES, indices, masks, proofs, budget=4096))
    assert len(parts) > 2
    assert dict(parts[0].set_sizes) == SIZES
    assert parts[0].flagged_count == 50
    assert all(not p.set_sizes and not p.flagged_count for p in parts[1:])
    assert all(p.round_id == "r1" for p in parts)


def test_a_records_proofs_travel_in_its_own_part():
    indices, masks, proofs = evidence(40, 3)
    parts = list(result_parts("r1", SIZES, indices, masks, proofs, budget=1))
    assert len(parts) == 40
    for k, part in enumerate(parts):
        assert list(part.flagged_indices) == [indices[k]]
        assert {p.flagged for p in part.proofs} == {k}
        assert len(part.proofs) == 3


@pytest.mark.parametrize("masks", [None, []])
def test_nothing_flagged_is_one_part_with_the_count(masks):
    (part,) = result_parts("r1", SIZES, [], masks, [])
    assert part.flagged_count == 0
    assert dict(part.set_sizes) == SIZES


def test_count_disclosure_sends_no_masks():
    parts = list(result_parts("r1", SIZES, [4, 8, 15], None, [], budget=1))
    assert [list(p.flagged_indices) for p in parts] == [[4], [8], [15]]
    assert all(not p.holder_masks for p in parts)
