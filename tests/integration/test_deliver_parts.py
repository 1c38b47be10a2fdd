"""Deliver in parts, over real mTLS: results of any size arrive, and no part bends the checks.

A round's results travel as a stream of `RoundResults` parts (`coordinator.modes.network.
result_parts`), so that two partners of a million records each, with a co-holder proof per
flagged record, stay under the message limit. The node checks each part as it comes. Mallory
(the coordinator) builds genuine results, then cuts and reorders them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from coordinator.modes import network as coordinator_network
from coordinator.modes.network import result_parts
from kruispunt.v1 import node_pb2
from psi_node.modes.network import DELIVERING, REVEALED
from tests.integration.test_network_round import expected_ids, result_ids
from tests.support.mallory import Mallory, OpenRound, refused
from tests.support.red_team import consented_sizes, honest_results, run_to_tags
from tests.support.waiting import wait_for

PARTNERS = ["gemeente", "woonbron", "schuldhulp"]
VICTIM = "gemeente"


@pytest.fixture
def net(network_factory: Any) -> Any:
    n = network_factory(PARTNERS, per_partner=30, overlaps={2: 5, 3: 3})
    n.add_purpose(disclosure="partners")
    return n


@pytest.fixture
def mallory(net: Any) -> Iterator[Mallory]:
    attacker = Mallory(net)
    yield attacker
    attacker.close()


def one_per_part(rnd: OpenRound, tags: dict[str, Any]) -> list[node_pb2.RoundResults]:
    """The victim's genuine results, one flagged record per part."""
    flagged, masks, proofs = honest_results(rnd, tags, VICTIM)
    assert len(flagged) >= 3, "the victim shares at least three households"
    parts = list(result_parts(rnd.round_id, consented_sizes(rnd), flagged, masks, proofs, budget=1))
    assert len(parts) == len(flagged)
    return parts


def rejected(call: Any, status: grpc.StatusCode) -> str:
    with pytest.raises(grpc.RpcError) as err:
        call()
    assert err.value.code() == status, err.value.details()
    return str(err.value.details())


def nothing_staged(net: Any) -> bool:
    return not list((net.node_dirs[VICTIM] / "results").iterdir())


class TestRoundInParts:
    def test_a_round_in_one_record_parts_flags_the_same_households(self, net, monkeypatch):
        """With a part budget of one byte every flagged record is a part of its own: the
        round still flags exactly the planted households, co-holders named."""
        sent: list[tuple[int, int]] = []  # (flagged, parts) per partner

        def counted(*args: Any, **kwargs: Any) -> Iterator[node_pb2.RoundResults]:
            parts = list(result_parts(*args, **kwargs))
            sent.append((parts[0].flagged_count, len(parts)))
            yield from parts

        monkeypatch.setattr(coordinator_network, "PART_BYTES", 1)
        monkeypatch.setattr(coordinator_network, "result_parts", counted)
        summary = net.run()
        assert summary.state == "completed", summary.reason
        for pid in PARTNERS:
            assert result_ids(net, pid, summary.round_id) == expected_ids(net, pid, 2)
        assert sorted(sent) == sorted(
            (len(expected_ids(net, pid, 2)), len(expected_ids(net, pid, 2))) for pid in PARTNERS
        )


class TestPartsChecked:
    def test_genuine_parts_are_staged(self, net, mallory):
        """The control: the same parts, unaltered, are staged as the flagged records."""
        rnd = mallory.open_round()
        parts = one_per_part(rnd, run_to_tags(rnd))
        receipt = mallory.stub(VICTIM).Deliver(iter(parts), timeout=20)
        assert receipt.flagged_count == len(parts)

    def test_set_sizes_in_a_later_part_are_refused(self, net, mallory):
        """Only the first part carries the set sizes; the refusal stages nothing and leaves
        the round where it was, so the genuine delivery still goes through."""
        rnd = mallory.open_round()
        parts = one_per_part(rnd, run_to_tags(rnd))
        bent = node_pb2.RoundResults()
        bent.CopyFrom(parts[1])
        bent.set_sizes.update(consented_sizes(rnd))
        details = rejected(
            lambda: mallory.stub(VICTIM).Deliver(iter([parts[0], bent, *parts[2:]]), timeout=20),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert "only the first part" in details
        assert nothing_staged(net)
        assert net.nodes[VICTIM].rounds.get_round(rnd.round_id).phase == REVEALED
        receipt = mallory.stub(VICTIM).Deliver(iter(parts), timeout=20)
        assert receipt.flagged_count == len(parts)

    def test_a_proof_moved_to_another_part_is_an_attack(self, net, mallory):
        """The second record's proofs travel in the first part (their positions kept): a
        part's proofs are for its own records only. The round is dropped."""
        rnd = mallory.open_round()
        parts = one_per_part(rnd, run_to_tags(rnd))
        parts[0].proofs.extend(parts[1].proofs)
        del parts[1].proofs[:]
        err = refused(net, VICTIM, lambda: mallory.stub(VICTIM).Deliver(iter(parts), timeout=20))
        assert "no flagged record of its part" in err.details()
        assert rnd.round_id not in net.nodes[VICTIM].rounds.rounds_in_flight()
        assert nothing_staged(net)

    def test_a_record_delivered_twice_across_parts_is_refused(self, net, mallory):
        """The first record again in the last part, in place of the last record."""
        rnd = mallory.open_round()
        parts = one_per_part(rnd, run_to_tags(rnd))
        parts[-1].flagged_indices[0] = parts[0].flagged_indices[0]
        details = rejected(
            lambda: mallory.stub(VICTIM).Deliver(iter(parts), timeout=20),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert "do not fit this node's set" in details
        assert nothing_staged(net)

    def test_a_part_of_another_round_is_refused(self, net, mallory):
        rnd = mallory.open_round()
        parts = one_per_part(rnd, run_to_tags(rnd))
        parts[1].round_id = "r20261201T120000-0000abcd"
        details = rejected(
            lambda: mallory.stub(VICTIM).Deliver(iter(parts), timeout=20),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert "one round only" in details
        assert nothing_staged(net)

    @pytest.mark.parametrize("change", [-1, +1])
    def test_parts_that_do_not_add_up_to_the_count_are_refused(self, net, mallory, change):
        """The first part's count one below or above what the parts carry."""
        rnd = mallory.open_round()
        parts = one_per_part(rnd, run_to_tags(rnd))
        parts[0].flagged_count += change
        rejected(
            lambda: mallory.stub(VICTIM).Deliver(iter(parts), timeout=20),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert nothing_staged(net)

    def test_an_empty_stream_is_refused(self, net, mallory):
        details = rejected(
            lambda: mallory.stub(VICTIM).Deliver(iter([]), timeout=20),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert "empty deliver stream" in details


class TestOneDeliveryAtATime:
    def test_a_second_delivery_while_one_is_open_is_refused(self, net, mallory):
        """While a delivery's stream is open the round is DELIVERING: a second one cannot
        interleave its own results. The first then completes."""
        rnd = mallory.open_round()
        parts = one_per_part(rnd, run_to_tags(rnd))
        sent_first = threading.Event()
        go_on = threading.Event()

        def slow() -> Iterator[node_pb2.RoundResults]:
            yield parts[0]
            sent_first.set()
            go_on.wait(20)
            yield from parts[1:]

        stub = mallory.stub(VICTIM)
        first = stub.Deliver.future(slow(), timeout=30)
        assert sent_first.wait(10)
        rounds = net.nodes[VICTIM].rounds
        assert wait_for(lambda: rounds.get_round(rnd.round_id).phase == DELIVERING)
        details = rejected(
            lambda: stub.Deliver(iter(parts), timeout=20), grpc.StatusCode.INVALID_ARGUMENT
        )
        assert "delivering" in details
        go_on.set()
        assert first.result().flagged_count == len(parts)

    def test_an_abort_during_a_delivery_leaves_nothing_staged(self, net, mallory):
        """The round is aborted between two parts: the rest is refused, nothing staged."""
        rnd = mallory.open_round()
        parts = one_per_part(rnd, run_to_tags(rnd))
        rounds = net.nodes[VICTIM].rounds

        def aborted_midway() -> Iterator[node_pb2.RoundResults]:
            yield parts[0]
            assert wait_for(lambda: rounds.get_round(rnd.round_id).phase == DELIVERING)
            rounds.abort(rnd.round_id, "cancelled by operator:alice")
            yield from parts[1:]

        rejected(
            lambda: mallory.stub(VICTIM).Deliver(aborted_midway(), timeout=20),
            grpc.StatusCode.NOT_FOUND,
        )
        assert nothing_staged(net)
        assert rnd.round_id not in rounds.rounds_in_flight()
