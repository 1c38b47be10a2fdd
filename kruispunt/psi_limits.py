"""openmined-psi's limits in one place: element and message sizes, the GCS hash range, settings.

openmined-psi's C++ code trusts its parameters: a GCS hash range that
overflows its int64 or a Golomb divisor past 62 bits is undefined behaviour,
and a zero hash range aborts the whole process. So every side checks these
limits before a message reaches the library -- the node on what it is sent
(`psi_node.modes.bilateral`), the coordinator on the sizes it relays, the
purpose registry on the settings -- and all of them check the same numbers,
which live here.

The sizes are those of openmined-psi 2.0.6 (pinned in pyproject.toml): its
encrypted elements are compressed P-256 points, its messages protobuf.
"""

from __future__ import annotations

from typing import Final

from kruispunt.errors import ResourceLimit

#: A compressed P-256 point, as openmined-psi encodes every encrypted element.
ELEMENT_BYTES: Final = 33
#: Protobuf framing of one repeated 33-byte element: a tag byte and a length byte.
ELEMENT_FRAMING: Final = 2
#: One encrypted element on the wire, framing included.
ELEMENT_WIRE_BYTES: Final = ELEMENT_BYTES + ELEMENT_FRAMING
#: Room for the scalar fields of one request, response or setup message.
MESSAGE_OVERHEAD: Final = 64
#: The C++ GCS computes its hash range as an int64: stay clear of overflow.
MAX_HASH_RANGE: Final = 1 << 62
#: The Golomb decoder shifts by `div`: beyond 62 bits the shift is undefined behaviour.
MAX_GCS_DIV: Final = 62
#: The server setups a purpose may choose: a Golomb-compressed set or a plain list (exact).
DATA_STRUCTURES: Final = ("gcs", "raw")


def max_elements_bytes(count: int) -> int:
    """The largest serialized request or response carrying `count` elements."""
    return count * ELEMENT_WIRE_BYTES + MESSAGE_OVERHEAD


def max_setup_bytes(server_size: int, data_structure: str) -> int:
    """The largest serialized server setup for `server_size` records in `data_structure`."""
    if data_structure == "raw":
        return max_elements_bytes(server_size)
    # A Golomb code spends a unary quotient (about 2 bits at the library's div), a stop
    # bit and div remainder bits on each element.
    return server_size * (MAX_GCS_DIV + 4) // 8 + MESSAGE_OVERHEAD


def exchange_bytes(client_size: int, server_size: int, data_structure: str) -> int:
    """The largest setup and response together: what the client's last message carries."""
    return max_setup_bytes(server_size, data_structure) + max_elements_bytes(client_size)


def gcs_hash_range(client_size: int, server_size: int, fpr: float) -> int:
    """The hash range openmined-psi 2.x gives a GCS setup (int64 cast of a double).

    The library divides the rate over the client's queries, then sizes the range
    for the larger set: ``max(c, s) / (fpr / c)``. The same float operations
    here give the same integer.
    """
    return int(max(client_size, server_size) / (fpr / client_size))


def gcs_fits(client_size: int, server_size: int, fpr: float) -> bool:
    """Whether a GCS setup for these sizes and rate stays inside the library's hash range."""
    return gcs_hash_range(client_size, server_size, fpr) < MAX_HASH_RANGE


def check_gcs_fits(client_size: int, server_size: int, fpr: float) -> None:
    """Raise ResourceLimit when a GCS setup for these sizes would overflow its hash range."""
    if not gcs_fits(client_size, server_size, fpr):
        raise ResourceLimit(
            f"a 'gcs' setup for sets of {client_size} and {server_size} records at "
            f"false-positive rate {fpr:g} overflows openmined-psi's 63-bit hash range; "
            "raise the rate or use data_structure 'raw'"
        )


def settings_problems(false_positive_rate: float, data_structure: str) -> list[str]:
    """Every reason these openmined-psi settings cannot be used (empty when they can)."""
    out: list[str] = []
    if not 0 < false_positive_rate < 1:
        out.append("false_positive_rate must be between 0 and 1")
    if data_structure not in DATA_STRUCTURES:
        out.append("data_structure must be " + " or ".join(repr(name) for name in DATA_STRUCTURES))
    return out
