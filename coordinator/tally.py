"""The tally: which partners hold each round tag, and which records pass the threshold.

Step 4 of the round (DESIGN.md, "The matching round"). The coordinator sees
only 16-byte tags, pseudonymous for this round; nothing here ever touches an
identifier. A tag held by at least `threshold` partners (the holder itself
included) flags every record that carries it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import chain

from kruispunt.wire import TAG_BYTES, check_packed

MAX_PARTNERS = 64
"""Holder masks travel as uint64 (`RoundResults.holder_masks`): one bit per partner."""


@dataclass(frozen=True)
class TallyResult:
    """The outcome of one tally; per-partner lists follow that partner's record order.

    * `flagged[p]`: indices (ascending) of p's records whose tag is held by at
      least `threshold` partners;
    * `masks[p][n]`: the holders of the record `flagged[p][n]` as a bit mask
      over `partners` (bit i set when `partners[i]` holds the tag; p's own bit
      is always set);
    * `histogram[k]`: the number of distinct tags held by exactly k partners,
      for every k from 1 to the number of partners (zeros included);
    * `set_sizes[p]`: the number of tags p sent, duplicates included.
    """

    partners: tuple[str, ...]
    threshold: int
    flagged: Mapping[str, list[int]]
    masks: Mapping[str, list[int]]
    histogram: Mapping[int, int]
    set_sizes: Mapping[str, int]

    @property
    def flagged_tags(self) -> int:
        """The number of distinct tags over the threshold (households found, network-wide)."""
        return sum(n for k, n in self.histogram.items() if k >= self.threshold)


def _split(packed: bytes) -> list[bytes]:
    check_packed(packed, TAG_BYTES)
    return [packed[i : i + TAG_BYTES] for i in range(0, len(packed), TAG_BYTES)]


def tally(tags: Mapping[str, bytes], partners: Sequence[str], threshold: int) -> TallyResult:
    """Count the holders of every tag and flag each partner's records held by >= threshold.

    `tags[p]` is p's packed 16-byte tags in p's record order, for every partner
    in `partners` and no other. A partner that sends one tag twice (a duplicate
    input) counts once as its holder; both records are flagged.
    ProtocolError if a packed tag string is not whole; ValueError if the
    partners, the tag mapping or the threshold do not fit together.
    """
    order = tuple(partners)
    if len(set(order)) != len(order):
        raise ValueError("partners must be distinct")
    if len(order) > MAX_PARTNERS:
        raise ValueError(f"at most {MAX_PARTNERS} partners fit a holder mask")
    if set(tags) != set(order):
        raise ValueError("tags must be given for exactly the round's partners")
    if not 2 <= threshold <= len(order):
        raise ValueError("threshold must be at least 2 and at most the number of partners")

    records = {p: _split(tags[p]) for p in order}
    distinct = {p: set(records[p]) for p in order}

    # Counter counts in C; a set per partner makes a duplicate count once.
    holders = Counter(chain.from_iterable(distinct.values()))
    histogram = dict.fromkeys(range(1, len(order) + 1), 0)
    histogram.update(Counter(holders.values()))

    # Masks are built only for tags over the threshold: few, in a real round.
    over = {tag: 0 for tag, count in holders.items() if count >= threshold}
    for bit, p in enumerate(order):
        for tag in distinct[p].intersection(over):
            over[tag] |= 1 << bit

    flagged: dict[str, list[int]] = {}
    masks: dict[str, list[int]] = {}
    for p in order:
        own = records[p]
        indices = [i for i, tag in enumerate(own) if tag in over]
        flagged[p] = indices
        masks[p] = [over[own[i]] for i in indices]

    return TallyResult(
        partners=order,
        threshold=threshold,
        flagged=flagged,
        masks=masks,
        histogram=histogram,
        set_sizes={p: len(records[p]) for p in order},
    )
