"""Unit tests of psi_node.pool.PointPool: same results as psi_node.oprf, in order, chunked."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kruispunt.errors import InvalidPoint, ProtocolError
from psi_node import oprf
from psi_node.pool import PointPool
from tests.support.points import IDENTITY


@pytest.fixture(scope="module")
def pool() -> Iterator[PointPool]:
    """A two-thread pool with tiny chunks, so every batch crosses several chunk boundaries."""
    with PointPool(2, per_chunk=7) as p:
        yield p


def inputs(count: int) -> list[bytes]:
    """Distinct synthetic canonical identifiers."""
    return [b"bsn:%09d" % (100000000 + i) for i in range(count)]


COUNTS = [0, 1, 6, 7, 8, 50]


class TestSameResultsAsOprf:
    """Every pool operation equals its single-threaded psi_node.oprf counterpart."""

    @pytest.mark.parametrize("count", COUNTS)
    def test_scalar_mult(self, pool: PointPool, count: int) -> None:
        """pool.scalar_mult == oprf.scalar_mult, order kept across chunks."""
        packed = oprf.hash_to_group(inputs(count))
        k = oprf.random_scalar()
        assert pool.scalar_mult(k, packed) == oprf.scalar_mult(k, packed)

    @pytest.mark.parametrize("count", COUNTS)
    def test_hash_to_group(self, pool: PointPool, count: int) -> None:
        """pool.hash_to_group == oprf.hash_to_group."""
        assert pool.hash_to_group(inputs(count)) == oprf.hash_to_group(inputs(count))

    @pytest.mark.parametrize("count", COUNTS)
    def test_hash_and_blind(self, pool: PointPool, count: int) -> None:
        """pool.hash_and_blind(x, r) == oprf.blind_inputs(x, key) for the key's r."""
        key = oprf.RoundKey.generate()
        assert pool.hash_and_blind(inputs(count), key.blind_factor) == oprf.blind_inputs(
            inputs(count), key
        )

    @pytest.mark.parametrize("count", COUNTS)
    def test_unblind_and_tag(self, pool: PointPool, count: int) -> None:
        """pool.unblind_and_tag(x, k*r^-1, B) == oprf.unblind_and_tag(x, key, B)."""
        key = oprf.RoundKey.generate()
        blinded = oprf.blind_inputs(inputs(count), key)
        assert pool.unblind_and_tag(
            inputs(count), key.unblind_factor, blinded
        ) == oprf.unblind_and_tag(inputs(count), key, blinded)

    def test_order_is_preserved(self, pool: PointPool) -> None:
        """Output i belongs to input i, for a batch of many chunks."""
        xs = inputs(40)
        packed = pool.hash_to_group(xs)
        assert [packed[i * 32 : i * 32 + 32] for i in range(40)] == [
            oprf.hash_to_group([x]) for x in xs
        ]


class TestErrors:
    """Errors from a worker surface as the same opaque errors, with nothing chained on."""

    def test_bad_point_in_a_later_chunk(self, pool: PointPool) -> None:
        """An identity point deep in the batch raises InvalidPoint with no cause or context."""
        packed = oprf.hash_to_group(inputs(30))
        packed = packed[: 20 * 32] + IDENTITY + packed[21 * 32 :]
        with pytest.raises(InvalidPoint) as caught:
            pool.scalar_mult(oprf.random_scalar(), packed)
        assert str(caught.value) == "invalid group element"
        assert caught.value.__cause__ is None
        assert caught.value.__context__ is None

    def test_bad_point_while_tagging(self, pool: PointPool) -> None:
        """A malformed point handed back for unblinding raises InvalidPoint."""
        blinded = b"\xff" * 32 * 10
        with pytest.raises(InvalidPoint):
            pool.unblind_and_tag(inputs(10), oprf.random_scalar(), blinded)

    def test_wrong_length_is_refused(self, pool: PointPool) -> None:
        """A packed batch that is not whole points raises InvalidPoint before any work."""
        with pytest.raises(InvalidPoint):
            pool.scalar_mult(oprf.random_scalar(), bytes(65))

    def test_count_mismatch_is_a_protocol_error(self, pool: PointPool) -> None:
        """Unblinding more or fewer points than inputs raises ProtocolError."""
        blinded = oprf.hash_to_group(inputs(5))
        with pytest.raises(ProtocolError):
            pool.unblind_and_tag(inputs(6), oprf.random_scalar(), blinded)

    def test_bad_scalar_is_a_value_error(self, pool: PointPool) -> None:
        """A zero scalar raises ValueError from the pool as from oprf."""
        with pytest.raises(ValueError, match="scalar must be"):
            pool.scalar_mult(bytes(32), oprf.hash_to_group(inputs(3)))


class TestLifecycle:
    """Construction, defaults and closing."""

    def test_default_workers(self) -> None:
        """Without a worker count the pool uses at least one worker, one per usable CPU."""
        with PointPool() as p:
            assert p.workers >= 1
            assert p.per_chunk == 2048

    @pytest.mark.parametrize(("workers", "per_chunk"), [(0, 10), (1, 0)])
    def test_invalid_sizes(self, workers: int, per_chunk: int) -> None:
        """Zero workers or a zero chunk size is a ValueError."""
        with pytest.raises(ValueError, match="at least 1"):
            PointPool(workers, per_chunk=per_chunk)

    def test_closed_pool_refuses_work(self) -> None:
        """After the with-block the pool is closed and refuses new batches."""
        with PointPool(1) as p:
            assert p.hash_to_group([b"x"]) == oprf.hash_to_group([b"x"])
        with pytest.raises(RuntimeError):
            p.hash_to_group([b"x"])


class TestWorkerDeath:
    def test_a_killed_worker_fails_one_call_and_the_pool_recovers(self) -> None:
        """If a worker process dies, that call raises PoolFailed and the next call works."""
        import os
        import signal

        from psi_node.pool import PoolFailed

        with PointPool(1) as pool:
            inputs = [b"x%d" % i for i in range(50)]
            scalar = oprf.random_scalar()
            expected = pool.hash_and_blind(inputs, scalar)
            for pid in list(pool._executor._processes):  # type: ignore[attr-defined]
                os.kill(pid, signal.SIGKILL)
            with pytest.raises(PoolFailed):
                pool.hash_and_blind(inputs, scalar)
            assert pool.hash_and_blind(inputs, scalar) == expected
