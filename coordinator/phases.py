"""The phases of a round in the order the protocol runs them, for everything that lists them.

A stored summary keeps its phase timings in a JSON object written with sorted keys, so
whoever prints them (`round show`, the privacy officer's report) puts them back in
protocol order here rather than alphabetically.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

__all__ = ["MODE_PHASES", "PHASE_ORDER", "in_protocol_order"]

#: Per round mode, its phases from consent to publication (DESIGN.md, "Round modes").
MODE_PHASES: Final[Mapping[str, tuple[str, ...]]] = {
    "network": ("propose", "blind", "evaluate", "finalize", "reveal", "tally", "deliver"),
    "bilateral": ("propose", "request", "response", "setup", "result", "deliver"),
}

#: Every mode's phases in one order: the modes share only their first and last phase.
PHASE_ORDER: Final = (
    "propose",
    "blind",
    "evaluate",
    "finalize",
    "reveal",
    "tally",
    "request",
    "response",
    "setup",
    "result",
    "deliver",
)


def in_protocol_order(names: Iterable[str]) -> list[str]:
    """`names` in the order the protocol runs them; unknown names last, alphabetically."""
    rank = {name: i for i, name in enumerate(PHASE_ORDER)}
    return sorted(names, key=lambda name: (rank.get(name, len(rank)), name))
