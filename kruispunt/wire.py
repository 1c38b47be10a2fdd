"""The wire codec for packed points and tags, shared by node and coordinator.

Points and tags travel as `bytes` of fixed-size items laid end to end, thousands
per message (DESIGN.md: never one message per point). This module knows item
sizes, splits packed data into chunks and lets the coordinator, which relays
points but holds no key, reject malformed points before they reach a node.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator

from kruispunt.errors import InvalidPoint, ProtocolError
from kruispunt.sodium import libsodium as _libsodium

POINT_BYTES = 32
"""A canonical ristretto255 encoding (RFC 9496, section 4.3.2)."""

TAG_BYTES = 16
"""A round tag: RFC 9497 Finalize output truncated to 128 bits."""

# Bound to libsodium (bundled by rbcl) directly: rbcl's wrapper costs a type
# check and an allocation per point, and the coordinator checks every relayed
# point of every partner at every step.
_is_valid_point = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)(
    ("crypto_core_ristretto255_is_valid_point", _libsodium)
)

_IDENTITY = bytes(POINT_BYTES)


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
    # RFC 9496, section 4.3.1 refuses encodings >= p, so any with bit 255 set;
    # the libsodium that rbcl bundles (1.0.18) ignores that bit.
    if max(packed[POINT_BYTES - 1 :: POINT_BYTES], default=0) & 0x80:
        raise InvalidPoint()
    # A private copy gives one stable address for libsodium to read from.
    buffer = ctypes.create_string_buffer(bytes(packed), len(packed))
    base = ctypes.addressof(buffer)
    good = 1
    for start in range(0, len(packed), POINT_BYTES):
        good &= _is_valid_point(base + start)
        # libsodium accepts the identity (all zeros) as a valid encoding;
        # it is never a legitimate blinded point, so refuse it here.
        good &= packed[start : start + POINT_BYTES] != _IDENTITY
    if not good:
        raise InvalidPoint()
    return len(packed) // POINT_BYTES
