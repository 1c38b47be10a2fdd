"""Words for people: a count with its noun in the right number.

Shared by the command lines, the audit verifier and the doctors, so that no
message says "1 partners".
"""

from __future__ import annotations

__all__ = ["plural"]


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``1 partner``, ``2 partners``, ``12,500 records``: the count (thousands grouped) with
    the noun in the right number."""
    return f"{count:,} {noun if count == 1 else (many or noun + 's')}"
