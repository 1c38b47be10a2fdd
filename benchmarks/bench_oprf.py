"""Micro-benchmarks of the OPRF core, the point pool and the tally.

`make bench` measures for real; `make test` runs every benchmark once as a
plain test (--benchmark-disable), so each one also checks its result.

Batch benchmarks process BATCH points per call: points per second is
BATCH x the "ops" column. The thread-pool benchmark measures the design
alternative that psi_node.pool did not take, to keep that choice checkable.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import rbcl
from pytest_benchmark.fixture import BenchmarkFixture

from coordinator.tally import tally
from kruispunt import wire
from kruispunt.identifiers import canonical_bsn
from psi_node import oprf
from psi_node.pool import CHUNK_POINTS, PointPool
from tests.support.simulation import simulate_round
from tests.support.synthetic import random_bsn

BATCH = 4096
WORKERS = 2


@pytest.fixture(scope="module")
def inputs() -> list[bytes]:
    """BATCH distinct synthetic canonical BSNs."""
    rng = random.Random(2024)
    return list(dict.fromkeys(canonical_bsn(random_bsn(rng)) for _ in range(BATCH + 64)))[:BATCH]


@pytest.fixture(scope="module")
def points(inputs: list[bytes]) -> bytes:
    """HashToGroup of the inputs, packed."""
    return oprf.hash_to_group(inputs)


@pytest.fixture(scope="module")
def pool() -> Iterator[PointPool]:
    """The production pool: WORKERS forkserver processes, default chunk size, warmed up."""
    with PointPool(WORKERS) as p:
        p.hash_to_group([b"warm-up"] * WORKERS * 2)
        yield p


@pytest.fixture(scope="module")
def threads() -> Iterator[ThreadPoolExecutor]:
    """The alternative: WORKERS threads in this process."""
    with ThreadPoolExecutor(WORKERS) as executor:
        yield executor


class TestHashToGroup:
    """HashToGroup: expand_message_xmd (SHA-512) and libsodium's from_hash."""

    def test_per_point(self, benchmark: BenchmarkFixture) -> None:
        """One input per call: the cost of a single hash-to-group with call overhead."""
        out = benchmark(oprf.hash_to_group, [b"bsn:111222333"])
        assert len(out) == oprf.POINT_BYTES

    def test_batch_single_thread(self, benchmark: BenchmarkFixture, inputs: list[bytes]) -> None:
        """BATCH inputs in one thread."""
        out = benchmark(oprf.hash_to_group, inputs)
        assert len(out) == BATCH * oprf.POINT_BYTES

    def test_batch_pool(
        self, benchmark: BenchmarkFixture, pool: PointPool, inputs: list[bytes], points: bytes
    ) -> None:
        """BATCH inputs through the process pool."""
        assert benchmark(pool.hash_to_group, inputs) == points


class TestScalarMult:
    """Scalar multiplication, the dominant cost of a round."""

    def test_per_point_rbcl_wrapper(self, benchmark: BenchmarkFixture, points: bytes) -> None:
        """One point through rbcl's checked wrapper (the path oprf does not use)."""
        k, p = oprf.random_scalar(), points[:32]
        out = benchmark(rbcl.crypto_scalarmult_ristretto255, k, p)
        assert out == oprf.scalar_mult(k, p)

    def test_per_point_oprf(self, benchmark: BenchmarkFixture, points: bytes) -> None:
        """One point through oprf.scalar_mult (scalar check, direct libsodium call)."""
        k, p = oprf.random_scalar(), points[:32]
        out = benchmark(oprf.scalar_mult, k, p)
        assert out == rbcl.crypto_scalarmult_ristretto255(k, p)

    def test_batch_single_thread(self, benchmark: BenchmarkFixture, points: bytes) -> None:
        """BATCH points in one thread."""
        k = oprf.random_scalar()
        out = benchmark(oprf.scalar_mult, k, points)
        assert out[-32:] == rbcl.crypto_scalarmult_ristretto255(k, points[-32:])

    def test_batch_pool(self, benchmark: BenchmarkFixture, pool: PointPool, points: bytes) -> None:
        """BATCH points through the process pool (what the node runs)."""
        k = oprf.random_scalar()
        out = benchmark(pool.scalar_mult, k, points)
        assert out == oprf.scalar_mult(k, points)

    def test_batch_threads(
        self, benchmark: BenchmarkFixture, threads: ThreadPoolExecutor, points: bytes
    ) -> None:
        """BATCH points through WORKERS threads, chunked like the pool (the road not taken)."""
        k = oprf.random_scalar()
        chunks = [chunk for _, chunk in wire.chunks(points, wire.POINT_BYTES, CHUNK_POINTS)]

        def run() -> bytes:
            return b"".join(threads.map(oprf.scalar_mult, [k] * len(chunks), chunks))

        assert benchmark(run) == oprf.scalar_mult(k, points)


class TestRoundSteps:
    """The per-record steps of a round as the node runs them, through the pool."""

    def test_hash_and_blind_pool(
        self, benchmark: BenchmarkFixture, pool: PointPool, inputs: list[bytes]
    ) -> None:
        """Step 1 for BATCH records: HashToGroup and r * P."""
        key = oprf.RoundKey.generate()
        out = benchmark(pool.hash_and_blind, inputs, key.blind_factor)
        assert out[:32] == oprf.blind_inputs(inputs[:1], key)

    def test_unblind_and_tag_pool(
        self, benchmark: BenchmarkFixture, pool: PointPool, inputs: list[bytes], points: bytes
    ) -> None:
        """Step 3 for BATCH records: (k * r^-1) * B and Finalize."""
        key = oprf.RoundKey.generate()
        out = benchmark(pool.unblind_and_tag, inputs, key.unblind_factor, points)
        assert len(out) == BATCH * oprf.TAG_BYTES

    def test_finalize_only(
        self, benchmark: BenchmarkFixture, inputs: list[bytes], points: bytes
    ) -> None:
        """Finalize (one SHA-512 per record) for BATCH records, without the multiplication."""
        out = benchmark(oprf.finalize, inputs, points)
        assert len(out) == BATCH * oprf.TAG_BYTES

    def test_coordinator_validate_points(self, benchmark: BenchmarkFixture, points: bytes) -> None:
        """The coordinator's key-less check of BATCH relayed points."""
        assert benchmark(wire.validate_points, points) == BATCH

    def test_whole_round_five_partners(
        self, benchmark: BenchmarkFixture, pool: PointPool, inputs: list[bytes]
    ) -> None:
        """A full in-process round, 5 partners x 400 records, through the pool."""
        rng = random.Random(5)
        common = inputs[:200]
        sets = {
            f"p{i}": rng.sample(common, 100) + inputs[200 + 300 * i : 500 + 300 * i]
            for i in range(5)
        }
        result = benchmark(simulate_round, sets, 2, pool)
        assert result.tally.flagged_tags > 0


def synthetic_tags(partners: int, size: int, shared: int, seed: int) -> dict[str, bytes]:
    """Random 16-byte tags per partner, each holding a random half of `shared` common tags."""
    rng = random.Random(seed)
    common = [rng.randbytes(16) for _ in range(shared)]
    tags = {}
    for i in range(partners):
        own = rng.sample(common, shared // 2)
        own += [os.urandom(16) for _ in range(size - len(own))]
        rng.shuffle(own)
        tags[f"p{i}"] = b"".join(own)
    return tags


class TestTally:
    """The coordinator's tally at the sizes the brief names."""

    @pytest.mark.parametrize(
        ("partners", "size"), [(5, 100_000), (34, 10_000)], ids=["5x100k", "34x10k"]
    )
    def test_tally(self, benchmark: BenchmarkFixture, partners: int, size: int) -> None:
        """Tally of `partners` x `size` tags at threshold 2."""
        tags = synthetic_tags(partners, size, shared=size // 10, seed=partners)
        result = benchmark(tally, tags, list(tags), 2)
        assert sum(result.set_sizes.values()) == partners * size
        assert result.flagged_tags > 0
