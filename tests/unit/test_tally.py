"""Unit tests of coordinator.tally: holders per tag, flagged records, masks and histogram."""

from __future__ import annotations

from typing import ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator.tally import MAX_PARTNERS, tally
from kruispunt.errors import ProtocolError


def tag(n: int) -> bytes:
    """A distinct 16-byte tag for small n."""
    return n.to_bytes(16, "big")


def packed(*ns: int) -> bytes:
    """Tags for the given numbers, packed in order."""
    return b"".join(tag(n) for n in ns)


class TestExample:
    """A hand-worked three-partner round."""

    TAGS: ClassVar[dict[str, bytes]] = {
        "gemeente": packed(1, 2, 3, 4),
        "woningcorp": packed(9, 2, 1),
        "schuldhulp": packed(1, 5, 2, 6),
    }
    PARTNERS = ("gemeente", "woningcorp", "schuldhulp")

    def test_flagged_indices_at_threshold_two(self) -> None:
        """Records whose tag at least two partners hold are flagged, as indices in record order."""
        result = tally(self.TAGS, self.PARTNERS, 2)
        assert result.flagged == {"gemeente": [0, 1], "woningcorp": [1, 2], "schuldhulp": [0, 2]}

    def test_masks_follow_partner_order(self) -> None:
        """Bit i of a mask is partners[i]; tag 1 and tag 2 are held by all three."""
        result = tally(self.TAGS, self.PARTNERS, 2)
        assert result.masks == {"gemeente": [7, 7], "woningcorp": [7, 7], "schuldhulp": [7, 7]}

    def test_threshold_three(self) -> None:
        """At threshold three only tags held by all three partners flag records."""
        tags = {**self.TAGS, "woningcorp": packed(9, 2, 3)}
        result = tally(tags, self.PARTNERS, 3)
        assert result.flagged == {"gemeente": [1], "woningcorp": [1], "schuldhulp": [2]}
        assert result.flagged_tags == 1

    def test_histogram_and_set_sizes(self) -> None:
        """The histogram counts distinct tags per holder count, 1..n; sizes count records."""
        result = tally(self.TAGS, self.PARTNERS, 2)
        # tags 3, 4, 9, 5, 6 once; 1 and 2 three times.
        assert result.histogram == {1: 5, 2: 0, 3: 2}
        assert result.set_sizes == {"gemeente": 4, "woningcorp": 3, "schuldhulp": 4}
        assert result.flagged_tags == 2
        assert result.partners == self.PARTNERS
        assert result.threshold == 2

    def test_partner_order_not_mapping_order_sets_the_bits(self) -> None:
        """Reordering `partners` moves the mask bits; the mapping's own order does not matter."""
        tags = {"a": packed(1, 2), "b": packed(2)}
        assert tally(tags, ["a", "b"], 2).masks == {"a": [3], "b": [3]}
        result = tally(tags, ["b", "a"], 2)
        assert result.flagged == {"b": [0], "a": [1]}
        assert result.masks == {"b": [3], "a": [3]}
        three = tally({**tags, "c": packed(2)}, ["c", "a", "b"], 3)
        assert three.masks == {"c": [7], "a": [7], "b": [7]}
        partial = tally({"a": packed(1), "b": packed(2), "c": packed(2)}, ["a", "b", "c"], 2)
        assert partial.masks == {"a": [], "b": [0b110], "c": [0b110]}


class TestDuplicates:
    """A partner that sends one tag twice counts once as its holder."""

    def test_duplicate_alone_is_not_a_match(self) -> None:
        """Two records with one tag at one partner do not reach threshold two."""
        result = tally({"a": packed(1, 1), "b": packed(2)}, ["a", "b"], 2)
        assert result.flagged == {"a": [], "b": []}
        assert result.histogram == {1: 2, 2: 0}

    def test_duplicate_with_another_holder_flags_both_records(self) -> None:
        """When another partner holds the tag, both duplicate records are flagged, counted once."""
        result = tally({"a": packed(1, 3, 1), "b": packed(1)}, ["a", "b"], 2)
        assert result.flagged == {"a": [0, 2], "b": [0]}
        assert result.masks == {"a": [3, 3], "b": [3]}
        assert result.histogram == {1: 1, 2: 1}
        assert result.set_sizes == {"a": 3, "b": 1}


class TestValidation:
    """Inputs that do not fit together are refused."""

    def test_partial_tag_is_a_protocol_error(self) -> None:
        """A packed tag string that is not whole tags raises ProtocolError."""
        with pytest.raises(ProtocolError):
            tally({"a": packed(1) + b"x", "b": packed(1)}, ["a", "b"], 2)

    @pytest.mark.parametrize(
        ("tags", "partners", "threshold", "match"),
        [
            ({"a": b"", "b": b""}, ["a", "a"], 2, "distinct"),
            ({"a": b"", "b": b""}, ["a", "b", "c"], 2, "exactly"),
            ({"a": b"", "b": b"", "c": b""}, ["a", "b"], 2, "exactly"),
            ({"a": b"", "b": b""}, ["a", "b"], 1, "threshold"),
            ({"a": b"", "b": b""}, ["a", "b"], 3, "threshold"),
        ],
    )
    def test_mismatches_are_value_errors(
        self, tags: dict[str, bytes], partners: list[str], threshold: int, match: str
    ) -> None:
        """Duplicate partners, tags of other partners, thresholds outside 2..n: ValueError."""
        with pytest.raises(ValueError, match=match):
            tally(tags, partners, threshold)

    def test_too_many_partners_for_a_mask(self) -> None:
        """More partners than bits in a uint64 holder mask raise ValueError."""
        names = [f"p{i}" for i in range(MAX_PARTNERS + 1)]
        with pytest.raises(ValueError, match="holder mask"):
            tally(dict.fromkeys(names, b""), names, 2)

    def test_sixty_four_partners_fit(self) -> None:
        """Exactly 64 partners tally, and the top bit lands in the mask."""
        names = [f"p{i}" for i in range(MAX_PARTNERS)]
        result = tally(dict.fromkeys(names, packed(1)), names, MAX_PARTNERS)
        assert result.masks["p0"] == [2**64 - 1]


def reference(
    sets: dict[str, list[int]], threshold: int
) -> tuple[dict[str, list[int]], dict[str, list[int]], dict[int, int]]:
    """Brute-force flagged indices, masks and histogram straight from the definitions."""
    names = list(sets)
    holders = {t: {p for p in names if t in sets[p]} for s in sets.values() for t in s}
    flagged = {p: [i for i, t in enumerate(sets[p]) if len(holders[t]) >= threshold] for p in names}
    masks = {
        p: [sum(1 << names.index(h) for h in holders[sets[p][i]]) for i in flagged[p]]
        for p in names
    }
    histogram = {
        k: sum(1 for h in holders.values() if len(h) == k) for k in range(1, len(names) + 1)
    }
    return flagged, masks, histogram


class TestAgainstBruteForce:
    """Random rounds agree with a brute-force reading of the definition."""

    @settings(max_examples=60, deadline=None, database=None)
    @given(
        st.lists(st.lists(st.integers(0, 12), max_size=15), min_size=2, max_size=6),
        st.data(),
    )
    def test_random_rounds(self, records: list[list[int]], data: st.DataObject) -> None:
        """Flagged indices, masks and histogram equal the brute-force result for any threshold."""
        sets = {f"p{i}": r for i, r in enumerate(records)}
        threshold = data.draw(st.integers(2, len(sets)))
        result = tally({p: packed(*r) for p, r in sets.items()}, list(sets), threshold)
        flagged, masks, histogram = reference(sets, threshold)
        assert result.flagged == flagged
        assert result.masks == masks
        assert result.histogram == histogram
        assert result.set_sizes == {p: len(r) for p, r in sets.items()}
