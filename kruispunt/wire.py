"""The wire codec for packed points and tags, shared by node and coordinator.

Points and tags travel as `bytes` of fixed-size items laid end to end, thousands
per message (DESIGN.md: never one message per point). This module knows item
sizes, splits packed data into chunks and lets the coordinator, which relays
points but holds no key, reject malformed points before they reach a node.
"""

from __future__ import annotations

from collections.abc import Iterator

from kruispunt import native
from kruispunt.errors import InvalidPoint, ProtocolError

POINT_BYTES = 32
"""A canonical ristretto255 encoding (RFC 9496, section 4.3.2)."""

TAG_BYTES = 16
"""A round tag: RFC 9497 Finalize output truncated to 128 bits."""


def check_packed(data: bytes, item: int) -> int:
    """Return how many `item`-byte items `data` holds; ProtocolError if it is not whole."""
    if item <= 0:
        raise ValueError("item size must be positive")
    count, rest = divmod(len(data), item)
    if rest:
        raise ProtocolError(f"packed length {len(data)} is not a multiple of {item}")
    return count


def chunks(packed: bytes, item: int, per_chunk: int) -> Iterator[tuple[int, bytes]]:
    """Yield `(offset, chunk)` pairs in order, `offset` counted in items, not bytes.

    Every chunk holds `per_chunk` items except possibly the last; empty input
    yields nothing. ProtocolError if `packed` is not a whole number of items.
    """
    if per_chunk <= 0:
        raise ValueError("per_chunk must be positive")
    count = check_packed(packed, item)
    step = item * per_chunk
    for offset in range(0, count, per_chunk):
        start = offset * item
        yield offset, packed[start : start + step]


def validate_points(packed: bytes) -> int:
    """Return the number of points in `packed` if every one is a canonical non-identity encoding.

    Any defect (a length that is not a whole number of points, a non-canonical
    encoding, the identity) raises one opaque InvalidPoint that names neither
    the point nor its position.
    """
    if len(packed) % POINT_BYTES:
        raise InvalidPoint()
    # The native core decodes strictly by RFC 9496, section 4.3.1 (an encoding >= p, so
    # any with bit 255 set, is refused) and refuses the identity, which is never a
    # legitimate blinded point; it checks in parallel with the GIL released.
    try:
        return native.validate_points(packed if isinstance(packed, bytes) else bytes(packed))
    except native.InvalidPoint:
        pass
    # Raised outside the handler: one opaque error with nothing chained on, the
    # one the gRPC edge maps to a status.
    raise InvalidPoint()
