"""Micro-benchmarks of the OPRF core next to libsodium (rbcl), and of the tally.

`make bench` measures for real; `make test` runs every benchmark once as a
plain test (--benchmark-disable), so each one also checks its result.

Batch benchmarks process BATCH points per call: points per second is BATCH x the
"ops" column. Each group holds the native core (kruispunt.native, on one thread
and on every core) beside libsodium through rbcl (one call per point, as the
node did before; threads over chunks for all cores), and, when `make bench` built
it, the native core with AVX2 forced (benchmarks/native_variants.py). The
ratios of one run are printed by benchmarks/native_compare.py, which `make bench`
runs next.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType

import pytest
import rbcl
from pytest_benchmark.fixture import BenchmarkFixture

from benchmarks.native_variants import load_avx2
from coordinator.tally import tally
from kruispunt import native, wire
from kruispunt.identifiers import canonical_bsn
from psi_node import oprf
from tests.support import rbcl_oprf as ref
from tests.support.simulation import simulate_round
from tests.support.synthetic import random_bsn

BATCH = 4096
CHUNK = 2048
CORES = len(os.sched_getaffinity(0))
DST = oprf.HASH_TO_GROUP_DST
CTX = oprf.VOPRF_CONTEXT_STRING
AVX2 = load_avx2()
"""The AVX2-forced build when `make bench` made one ($KRUISPUNT_NATIVE_AVX2), else None."""
BUILDS = ["native"] if AVX2 is None else ["native", "avx2"]
THREADS = sorted({1, CORES})


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
def threads() -> Iterator[ThreadPoolExecutor]:
    """CORES Python threads, for rbcl over chunks (ctypes releases the GIL per call)."""
    with ThreadPoolExecutor(CORES) as executor:
        yield executor


@pytest.fixture
def build(request: pytest.FixtureRequest) -> Iterator[ModuleType]:
    """The native build a test names (installed, or AVX2 forced), its pool reset afterwards."""
    module = native if request.param == "native" else AVX2
    assert module is not None
    yield module
    module.set_threads(CORES)


def chunked(packed: bytes) -> list[bytes]:
    """`packed` in chunks of CHUNK points."""
    return [chunk for _, chunk in wire.chunks(packed, wire.POINT_BYTES, CHUNK)]


def over_threads(
    executor: ThreadPoolExecutor, count: int, task: Callable[[int], object], workers: int
) -> Callable[[], list[object]]:
    """task(0..count-1) on `workers` threads (one: in this thread)."""
    if workers == 1:
        return lambda: [task(j) for j in range(count)]
    return lambda: list(executor.map(task, range(count)))


@pytest.mark.parametrize("workers", THREADS, ids=lambda n: f"{n}thr")
class TestHashToGroup:
    """HashToGroup: expand_message_xmd (SHA-512) and the ristretto255 map, BATCH inputs."""

    @pytest.mark.parametrize("build", BUILDS, indirect=True)
    def test_native(
        self,
        benchmark: BenchmarkFixture,
        build: ModuleType,
        workers: int,
        inputs: list[bytes],
        points: bytes,
    ) -> None:
        """The native core on its own pool of `workers` threads."""
        benchmark.group = f"hash-to-group, {workers} thread(s)"
        build.set_threads(workers)
        assert benchmark(build.hash_to_group, inputs, DST) == points

    def test_rbcl(
        self,
        benchmark: BenchmarkFixture,
        threads: ThreadPoolExecutor,
        workers: int,
        inputs: list[bytes],
        points: bytes,
    ) -> None:
        """libsodium's from_hash per input, Python's SHA-512, in `workers` threads."""
        benchmark.group = f"hash-to-group, {workers} thread(s)"
        parts = [inputs[i : i + CHUNK] for i in range(0, BATCH, CHUNK)]
        run = over_threads(
            threads, len(parts), lambda j: ref.hash_to_group_batch(parts[j], DST), workers
        )
        assert b"".join(benchmark(run)) == points  # type: ignore[arg-type]


@pytest.mark.parametrize("workers", THREADS, ids=lambda n: f"{n}thr")
class TestScalarMult:
    """Scalar multiplication of BATCH points, the dominant cost of a round."""

    @pytest.mark.parametrize("build", BUILDS, indirect=True)
    def test_native(
        self, benchmark: BenchmarkFixture, build: ModuleType, workers: int, points: bytes
    ) -> None:
        """The native core on its own pool of `workers` threads, batch-encoded."""
        benchmark.group = f"scalar multiplication, {workers} thread(s)"
        k = oprf.random_scalar()
        build.set_threads(workers)
        out = benchmark(build.scalar_mult, build.Secret(k), points)
        assert out[-32:] == rbcl.crypto_scalarmult_ristretto255(k, points[-32:])

    def test_rbcl(
        self, benchmark: BenchmarkFixture, threads: ThreadPoolExecutor, workers: int, points: bytes
    ) -> None:
        """libsodium, one call per point, in `workers` threads over chunks."""
        benchmark.group = f"scalar multiplication, {workers} thread(s)"
        k = oprf.random_scalar()
        parts = chunked(points)
        run = over_threads(
            threads, len(parts), lambda j: ref.scalar_mult_batch(k, parts[j]), workers
        )
        assert b"".join(benchmark(run)) == oprf.scalar_mult(k, points)  # type: ignore[arg-type]


@pytest.mark.parametrize("workers", THREADS, ids=lambda n: f"{n}thr")
class TestDleq:
    """Batched DLEQ proofs (RFC 9497, section 2.2), one per chunk of CHUNK points."""

    @pytest.mark.parametrize("build", BUILDS, indirect=True)
    def test_native_prove(
        self,
        benchmark: BenchmarkFixture,
        build: ModuleType,
        workers: int,
        threads: ThreadPoolExecutor,
        points: bytes,
    ) -> None:
        """GenerateProof per chunk, `workers` Python threads."""
        benchmark.group = f"DLEQ prove, {workers} thread(s)"
        k = oprf.random_scalar()
        secret = build.Secret(k)
        cs, ds = chunked(points), chunked(oprf.scalar_mult(k, points))
        build.set_threads(1)
        run = over_threads(
            threads, len(cs), lambda j: build.dleq_prove(secret, cs[j], ds[j], CTX), workers
        )
        proofs = benchmark(run)
        assert oprf.verify_evaluation(oprf.public_key(k), cs[0], ds[0], proofs[0])  # type: ignore[arg-type]

    def test_rbcl_prove(
        self, benchmark: BenchmarkFixture, workers: int, threads: ThreadPoolExecutor, points: bytes
    ) -> None:
        """GenerateProof over libsodium, per chunk, `workers` Python threads."""
        benchmark.group = f"DLEQ prove, {workers} thread(s)"
        k, r = oprf.random_scalar(), oprf.random_scalar()
        cs, ds = _split(points), _split(oprf.scalar_mult(k, points))
        run = over_threads(
            threads, len(cs), lambda j: ref.generate_proof(k, cs[j], ds[j], r, CTX), workers
        )
        proofs = benchmark.pedantic(run, rounds=2, iterations=1)
        assert oprf.verify_evaluation(
            oprf.public_key(k),
            b"".join(cs[0]),
            b"".join(ds[0]),
            proofs[0],  # type: ignore[arg-type]
        )

    @pytest.mark.parametrize("build", BUILDS, indirect=True)
    def test_native_verify(
        self,
        benchmark: BenchmarkFixture,
        build: ModuleType,
        workers: int,
        threads: ThreadPoolExecutor,
        points: bytes,
    ) -> None:
        """VerifyProof per chunk, `workers` Python threads."""
        benchmark.group = f"DLEQ verify, {workers} thread(s)"
        k = oprf.random_scalar()
        cs, ds = chunked(points), chunked(oprf.scalar_mult(k, points))
        proofs = [oprf.prove_evaluation(k, c, d) for c, d in zip(cs, ds, strict=True)]
        public = oprf.public_key(k)
        build.set_threads(1)
        run = over_threads(
            threads,
            len(cs),
            lambda j: build.dleq_verify(public, cs[j], ds[j], proofs[j], CTX),
            workers,
        )
        assert all(benchmark(run))

    def test_rbcl_verify(
        self, benchmark: BenchmarkFixture, workers: int, threads: ThreadPoolExecutor, points: bytes
    ) -> None:
        """VerifyProof over libsodium, per chunk, `workers` Python threads."""
        benchmark.group = f"DLEQ verify, {workers} thread(s)"
        k = oprf.random_scalar()
        evaluated = oprf.scalar_mult(k, points)
        cs, ds = _split(points), _split(evaluated)
        proofs = [
            oprf.prove_evaluation(k, c, d)
            for c, d in zip(chunked(points), chunked(evaluated), strict=True)
        ]
        public = oprf.public_key(k)
        run = over_threads(
            threads,
            len(cs),
            lambda j: ref.verify_proof(public, cs[j], ds[j], proofs[j], CTX),
            workers,
        )
        assert all(benchmark.pedantic(run, rounds=2, iterations=1))


def _split(packed: bytes) -> list[list[bytes]]:
    """Chunks of CHUNK points, each a list of 32-byte points (what rbcl_oprf takes)."""
    return [[c[i : i + 32] for i in range(0, len(c), 32)] for c in chunked(packed)]


class TestRoundSteps:
    """The per-record steps of a round as the node runs them, on every core."""

    def test_hash_and_blind(self, benchmark: BenchmarkFixture, inputs: list[bytes]) -> None:
        """Step 1 for BATCH records: HashToGroup and r * P."""
        key = oprf.RoundKey.generate()
        out = benchmark(oprf.blind_inputs, inputs, key)
        assert out[:32] == oprf.blind_inputs(inputs[:1], key)

    def test_unblind_and_tag(
        self, benchmark: BenchmarkFixture, inputs: list[bytes], points: bytes
    ) -> None:
        """Step 3 for BATCH records: (k * r^-1) * B and Finalize."""
        key = oprf.RoundKey.generate()
        out = benchmark(oprf.unblind_and_tag, inputs, key, points)
        assert len(out) == BATCH * oprf.TAG_BYTES

    def test_evaluate_and_prove(self, benchmark: BenchmarkFixture, points: bytes) -> None:
        """Step 2 with a proof per chunk: what a verifiable hop costs for BATCH points."""
        key = oprf.RoundKey.generate()
        out, proofs = benchmark(oprf.evaluate_and_prove, key, points, CHUNK)
        assert oprf.verify_chunks(key.public_key, points, out, proofs, CHUNK)

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
        self, benchmark: BenchmarkFixture, inputs: list[bytes]
    ) -> None:
        """A full in-process round, 5 partners x 400 records."""
        rng = random.Random(5)
        common = inputs[:200]
        sets = {
            f"p{i}": rng.sample(common, 100) + inputs[200 + 300 * i : 500 + 300 * i]
            for i in range(5)
        }
        result = benchmark(simulate_round, sets, 2)
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
