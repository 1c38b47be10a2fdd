"""The shared thread pool of kruispunt.native: same results as one thread, in order, chunked.

The process pool it replaced (psi_node.pool) ran these operations in worker processes;
the same checks now hold the native core's chunking and threads against a serial run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from kruispunt.errors import InvalidPoint, ProtocolError
from psi_node import oprf
from tests.support.points import IDENTITY

T = TypeVar("T")


@pytest.fixture
def threaded() -> Iterator[None]:
    """Two threads with tiny chunks, so every batch crosses several chunk boundaries."""
    oprf.set_workers(2, chunk_points=7)
    yield
    oprf.set_workers(len(os.sched_getaffinity(0)))


def serial(work: Callable[[], T]) -> T:
    """`work()` on one thread, the whole batch in one chunk, then two threads again."""
    oprf.set_workers(1, chunk_points=1 << 20)
    try:
        return work()
    finally:
        oprf.set_workers(2, chunk_points=7)


def inputs(count: int) -> list[bytes]:
    """Distinct synthetic canonical identifiers."""
    return [b"bsn:%09d" % (100000000 + i) for i in range(count)]


COUNTS = [0, 1, 6, 7, 8, 50]


@pytest.mark.usefixtures("threaded")
class TestSameResultsAsOneThread:
    """Every batch operation on two threads in chunks of 7 equals the one-thread result."""

    @pytest.mark.parametrize("count", COUNTS)
    def test_scalar_mult(self, count: int) -> None:
        """scalar_mult threaded == scalar_mult serial, order kept across chunks."""
        packed = oprf.hash_to_group(inputs(count))
        k = oprf.random_scalar()
        assert oprf.scalar_mult(k, packed) == serial(lambda: oprf.scalar_mult(k, packed))

    @pytest.mark.parametrize("count", COUNTS)
    def test_hash_to_group(self, count: int) -> None:
        """hash_to_group threaded == hash_to_group serial."""
        assert oprf.hash_to_group(inputs(count)) == serial(
            lambda: oprf.hash_to_group(inputs(count))
        )

    @pytest.mark.parametrize("count", COUNTS)
    def test_hash_and_blind(self, count: int) -> None:
        """hash_and_mult(x, r) threaded == blind_inputs(x, key) serial, for the key's r."""
        key = oprf.RoundKey.generate()
        assert oprf.hash_and_mult(inputs(count), key.blind_factor) == serial(
            lambda: oprf.blind_inputs(inputs(count), key)
        )

    @pytest.mark.parametrize("count", COUNTS)
    def test_unblind_and_tag(self, count: int) -> None:
        """mult_and_finalize(x, k*r^-1, B) threaded == unblind_and_tag(x, key, B) serial."""
        key = oprf.RoundKey.generate()
        blinded = oprf.blind_inputs(inputs(count), key)
        assert oprf.mult_and_finalize(inputs(count), key.unblind_factor, blinded) == serial(
            lambda: oprf.unblind_and_tag(inputs(count), key, blinded)
        )

    def test_order_is_preserved(self) -> None:
        """Output i belongs to input i, for a batch of many chunks."""
        xs = inputs(40)
        packed = oprf.hash_to_group(xs)
        assert [packed[i * 32 : i * 32 + 32] for i in range(40)] == [
            oprf.hash_to_group([x]) for x in xs
        ]


@pytest.mark.usefixtures("threaded")
class TestErrors:
    """Errors from a pool thread surface as the same opaque errors, with nothing chained on."""

    def test_bad_point_in_a_later_chunk(self) -> None:
        """An identity point deep in the batch raises InvalidPoint with no cause or context."""
        packed = oprf.hash_to_group(inputs(30))
        packed = packed[: 20 * 32] + IDENTITY + packed[21 * 32 :]
        with pytest.raises(InvalidPoint) as caught:
            oprf.scalar_mult(oprf.random_scalar(), packed)
        assert str(caught.value) == "invalid group element"
        assert caught.value.__cause__ is None
        assert caught.value.__context__ is None

    def test_bad_point_while_tagging(self) -> None:
        """A malformed point handed back for unblinding raises InvalidPoint."""
        blinded = b"\xff" * 32 * 10
        with pytest.raises(InvalidPoint):
            oprf.mult_and_finalize(inputs(10), oprf.random_scalar(), blinded)

    def test_wrong_length_is_refused(self) -> None:
        """A packed batch that is not whole points raises InvalidPoint before any work."""
        with pytest.raises(InvalidPoint):
            oprf.scalar_mult(oprf.random_scalar(), bytes(65))

    def test_count_mismatch_is_a_protocol_error(self) -> None:
        """Unblinding more or fewer points than inputs raises ProtocolError."""
        blinded = oprf.hash_to_group(inputs(5))
        with pytest.raises(ProtocolError):
            oprf.mult_and_finalize(inputs(6), oprf.random_scalar(), blinded)

    def test_bad_scalar_is_a_value_error(self) -> None:
        """A zero scalar raises ValueError on many threads as on one."""
        with pytest.raises(ValueError, match="scalar must be"):
            oprf.scalar_mult(bytes(32), oprf.hash_to_group(inputs(3)))


class TestLifecycle:
    """Sizing the pool."""

    def test_default_workers(self) -> None:
        """Without a setting the pool runs at least one thread, one per usable CPU."""
        assert oprf.workers() >= 1

    @pytest.mark.parametrize(("workers", "per_chunk"), [(0, 10), (1, 0)])
    def test_invalid_sizes(self, workers: int, per_chunk: int) -> None:
        """Zero workers or a zero chunk size is a ValueError."""
        with pytest.raises(ValueError, match="must be positive"):
            oprf.set_workers(workers, chunk_points=per_chunk)

    @pytest.mark.usefixtures("threaded")
    def test_resizing_takes_effect(self) -> None:
        """set_workers(n) makes the pool run n threads; results do not depend on it."""
        assert oprf.workers() == 2
        expected = oprf.hash_to_group([b"x"])
        oprf.set_workers(3)
        assert oprf.workers() == 3
        assert oprf.hash_to_group([b"x"]) == expected
