"""Whole rounds in one process: the multi-party OPRF finds exactly the planted overlaps."""

from __future__ import annotations

import os
import random
from collections.abc import Mapping

import pytest

from kruispunt.identifiers import canonical_bsn
from psi_node import oprf
from tests.support.simulation import simulate_round, step_schedule
from tests.support.synthetic import random_bsn

PARTNER_NAMES = (
    "gemeente",
    "woningcorp",
    "schuldhulp",
    "school",
    "ggz",
    "energie",
    "wijkteam",
    "jeugdzorg",
)


def planted_sets(n: int, seed: int) -> dict[str, list[bytes]]:
    """Synthetic BSN sets for n partners: two households for every holder count 1..n, then singles.

    Each partner holds 30-45 records in shuffled order; one partner lists one
    of its overlapping households twice (a duplicate input).
    """
    rng = random.Random(seed)
    partners = PARTNER_NAMES[:n]
    sets: dict[str, list[bytes]] = {p: [] for p in partners}
    seen: set[bytes] = set()

    def fresh() -> bytes:
        while True:
            x = canonical_bsn(random_bsn(rng))
            if x not in seen:
                seen.add(x)
                return x

    for holders in range(1, n + 1):
        for _ in range(2):
            x = fresh()
            for p in rng.sample(partners, holders):
                sets[p].append(x)
    for p in partners:
        size = rng.randint(30, 45)
        while len(sets[p]) < size:
            sets[p].append(fresh())
    first = sets[partners[0]]
    first.append(next(x for x in first if sum(x in s for s in sets.values()) > 1))
    for records in sets.values():
        rng.shuffle(records)
    return sets


def ground_truth(
    sets: Mapping[str, list[bytes]], threshold: int
) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """Flagged indices and holder masks computed from the plaintext sets."""
    names = list(sets)
    holder_sets = {x: {p for p in names if x in sets[p]} for s in sets.values() for x in s}
    flagged = {
        p: [i for i, x in enumerate(sets[p]) if len(holder_sets[x]) >= threshold] for p in names
    }
    masks = {
        p: [sum(1 << names.index(h) for h in holder_sets[sets[p][i]]) for i in flagged[p]]
        for p in names
    }
    return flagged, masks


ROUNDS = [(n, t) for n in range(2, 9) for t in range(2, n + 1)]


class TestGroundTruth:
    """Flagged records equal the plaintext ground truth exactly."""

    @pytest.mark.parametrize(("n", "t"), ROUNDS, ids=[f"n{n}-t{t}" for n, t in ROUNDS])
    def test_flagged_and_masks_match(self, n: int, t: int) -> None:
        """For n partners and threshold t, flagged indices and masks equal the ground truth."""
        sets = planted_sets(n, seed=1000 * n + t)
        result = simulate_round(sets, t)
        flagged, masks = ground_truth(sets, t)
        assert dict(result.flagged) == flagged
        assert dict(result.tally.masks) == masks
        # Planted households at every holder count: something is flagged, not everything.
        assert any(flagged.values())
        assert sum(map(len, flagged.values())) < sum(map(len, sets.values()))

    def test_histogram_and_set_sizes(self) -> None:
        """The histogram counts distinct households by holder count; set sizes count records."""
        sets = planted_sets(5, seed=7)
        result = simulate_round(sets, 3)
        distinct = {x for s in sets.values() for x in s}
        expected = {
            k: sum(1 for x in distinct if sum(x in s for s in sets.values()) == k)
            for k in range(1, 6)
        }
        assert dict(result.tally.histogram) == expected
        assert all(expected[k] == 2 for k in range(2, 6))
        assert dict(result.tally.set_sizes) == {p: len(s) for p, s in sets.items()}

    def test_on_the_thread_pool(self) -> None:
        """The round run on two threads in chunks of 16 finds the same records, on one too."""
        sets = planted_sets(4, seed=99)
        oprf.set_workers(2, chunk_points=16)
        try:
            result = simulate_round(sets, 2)
        finally:
            oprf.set_workers(len(os.sched_getaffinity(0)))
        assert dict(result.flagged) == ground_truth(sets, 2)[0]
        oprf.set_workers(1)
        try:
            assert dict(simulate_round(sets, 3).flagged) == ground_truth(sets, 3)[0]
        finally:
            oprf.set_workers(len(os.sched_getaffinity(0)))


class TestUnlinkability:
    """Fresh keys per round make the coordinator's tags unlinkable across rounds."""

    def test_no_tag_in_common_between_two_rounds(self) -> None:
        """Two rounds over the same sets share no tag, yet flag the same records."""
        sets = planted_sets(4, seed=3)
        first, second = simulate_round(sets, 2), simulate_round(sets, 2)
        tags_of = [
            {r.tags[p][i : i + 16] for p in r.partners for i in range(0, len(r.tags[p]), 16)}
            for r in (first, second)
        ]
        assert tags_of[0]
        assert tags_of[1]
        assert not tags_of[0] & tags_of[1]
        assert first.flagged == second.flagged

    def test_same_keys_give_the_same_tags(self) -> None:
        """With the same keys injected a round is deterministic: the keys make it unlinkable."""
        sets = planted_sets(3, seed=4)
        keys = {p: oprf.RoundKey.generate() for p in sets}
        assert simulate_round(sets, 2, keys=keys).tags == simulate_round(sets, 2, keys=keys).tags
        assert not any(k.wiped for k in keys.values())


class TestWrongKey:
    """A set evaluated with a key other than the node's round key does not match."""

    def test_node_with_wrong_evaluation_key(self) -> None:
        """If one node applies a foreign key to the others' sets, its records never match theirs."""
        sets = planted_sets(4, seed=5)
        rogue = "woningcorp"
        result = simulate_round(sets, 2, evaluation_keys={rogue: oprf.RoundKey.generate()})
        rogue_tags = {result.tags[rogue][i : i + 16] for i in range(0, len(result.tags[rogue]), 16)}
        others = [p for p in sets if p != rogue]
        for p in others:
            theirs = {result.tags[p][i : i + 16] for i in range(0, len(result.tags[p]), 16)}
            assert not rogue_tags & theirs
        # The rogue holds no duplicate, so none of its records is flagged.
        assert result.flagged[rogue] == []
        # The honest partners still find their overlaps among themselves.
        honest = {p: sets[p] for p in others}
        expected = ground_truth(honest, 2)[0]
        assert {p: result.flagged[p] for p in others} == expected
        assert any(expected.values())


class TestSchedule:
    """The step schedule of DESIGN.md."""

    @pytest.mark.parametrize("n", range(2, 9))
    def test_every_step_keeps_every_node_busy(self, n: int) -> None:
        """At each step every node works on exactly one set and every set is at one node."""
        partners = PARTNER_NAMES[:n]
        steps = step_schedule(partners)
        assert len(steps) == n - 1
        for pairs in steps:
            assert sorted(node for node, _ in pairs) == sorted(partners)
            assert sorted(origin for _, origin in pairs) == sorted(partners)
            assert all(node != origin for node, origin in pairs)

    @pytest.mark.parametrize("n", range(2, 9))
    def test_every_set_meets_every_other_key_once(self, n: int) -> None:
        """Over all steps each origin is evaluated once by each other node, never by itself."""
        partners = PARTNER_NAMES[:n]
        pairs = [pair for step in step_schedule(partners) for pair in step]
        assert sorted(pairs) == sorted((j, i) for i in partners for j in partners if i != j)

    def test_node_j_works_on_set_j_plus_s(self) -> None:
        """At step s node j evaluates the set of node (j + s) mod n, as the round ran it."""
        sets = planted_sets(3, seed=6)
        names = list(sets)
        result = simulate_round(sets, 2)
        assert result.schedule == tuple(
            (s, names[j], names[(j + s) % 3]) for s in (1, 2) for j in range(3)
        )
