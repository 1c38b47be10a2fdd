"""Unit tests of kruispunt.wire: packed lengths, chunking and the coordinator's point check."""

from __future__ import annotations

import pytest

from kruispunt import wire
from kruispunt.errors import InvalidPoint, ProtocolError
from psi_node import oprf
from tests.support.points import IDENTITY, non_canonical_encodings


class TestCheckPacked:
    """check_packed counts whole items and refuses partial ones."""

    @pytest.mark.parametrize(("length", "item", "count"), [(0, 32, 0), (32, 32, 1), (160, 16, 10)])
    def test_counts_whole_items(self, length: int, item: int, count: int) -> None:
        """The count is the length divided by the item size."""
        assert wire.check_packed(bytes(length), item) == count

    @pytest.mark.parametrize("length", [1, 31, 33, 47])
    def test_partial_item_is_a_protocol_error(self, length: int) -> None:
        """A length that is not a multiple of the item size raises ProtocolError."""
        with pytest.raises(ProtocolError, match="not a multiple"):
            wire.check_packed(bytes(length), wire.POINT_BYTES)

    def test_item_size_must_be_positive(self) -> None:
        """An item size of zero is a ValueError."""
        with pytest.raises(ValueError, match="positive"):
            wire.check_packed(b"", 0)


class TestChunks:
    """chunks splits packed data in order, offsets counted in items."""

    def test_offsets_and_contents(self) -> None:
        """Chunks hold per_chunk items (the last fewer), carry item offsets and rejoin exactly."""
        packed = bytes(range(16)) * 7  # seven 16-byte tags
        got = list(wire.chunks(packed, wire.TAG_BYTES, 3))
        assert [offset for offset, _ in got] == [0, 3, 6]
        assert [len(chunk) for _, chunk in got] == [48, 48, 16]
        assert b"".join(chunk for _, chunk in got) == packed

    def test_empty_input_yields_nothing(self) -> None:
        """No items, no chunks."""
        assert list(wire.chunks(b"", wire.POINT_BYTES, 10)) == []

    def test_partial_item_is_a_protocol_error(self) -> None:
        """Chunking data that is not whole items raises ProtocolError."""
        with pytest.raises(ProtocolError):
            list(wire.chunks(bytes(33), wire.POINT_BYTES, 10))

    def test_chunk_size_must_be_positive(self) -> None:
        """per_chunk of zero is a ValueError."""
        with pytest.raises(ValueError, match="positive"):
            list(wire.chunks(bytes(32), wire.POINT_BYTES, 0))


class TestValidatePoints:
    """validate_points: the key-less check the coordinator runs on relayed points."""

    def test_valid_points_are_counted(self) -> None:
        """A batch of hashed points validates and returns its size; empty input counts zero."""
        packed = oprf.hash_to_group([b"%d" % i for i in range(9)])
        assert wire.validate_points(packed) == 9
        assert wire.validate_points(b"") == 0

    def test_malformed_encodings_are_refused(self) -> None:
        """RFC 9496 invalid encodings, the identity and non-canonical aliases raise InvalidPoint."""
        good = oprf.hash_to_group([b"a", b"b"])
        for bad in non_canonical_encodings(good[:32]):
            for packed in (bad, good + bad, bad + good):
                with pytest.raises(InvalidPoint) as caught:
                    wire.validate_points(packed)
                assert str(caught.value) == "invalid group element"

    @pytest.mark.parametrize("length", [1, 31, 33, 65])
    def test_wrong_length_is_refused(self, length: int) -> None:
        """A length that is not whole points raises InvalidPoint."""
        with pytest.raises(InvalidPoint):
            wire.validate_points(b"\x02" * length)

    def test_agrees_with_scalar_mult(self) -> None:
        """What validate_points accepts, scalar_mult accepts, and the identity neither does."""
        packed = oprf.hash_to_group([b"x", b"y"])
        wire.validate_points(packed)
        assert len(oprf.scalar_mult(oprf.random_scalar(), packed)) == len(packed)
        with pytest.raises(InvalidPoint):
            wire.validate_points(IDENTITY)
