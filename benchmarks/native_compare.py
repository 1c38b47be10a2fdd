"""`make bench`'s comparison: the native core against libsodium (rbcl), side by side, one run.

For hash-to-group, scalar multiplication and the batched DLEQ proof (prove, verify) it
times, on the same batch in the same process, alternating so that a busy neighbour
disturbs all alike:

* the installed `kruispunt.native` on the backend this CPU gives it (printed),
* the same crate built with AVX2 forced (benchmarks/native_variants.py), if given,
* libsodium through rbcl, one call per point, as the node did before the native core
  (tests/support/rbcl_oprf.py; hash-to-group with the old code's prefix-state SHA-512),

each on one thread and on every core: the native core's own thread pool for hashing and
multiplying (the node's path), Python threads over chunks for rbcl (ctypes releases the
GIL during each call) and for the proofs of both. The best of `--reps` runs is kept.

    python -m benchmarks.native_compare [--points 10000] [--reps 5] [--avx2 PATH] [--json F]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from types import ModuleType
from typing import Any

from benchmarks.native_variants import load_avx2
from kruispunt import native
from psi_node import oprf
from tests.support import rbcl_oprf as ref

CHUNK = 2048
"""Points per proof and per rbcl thread task (the node's chunk of a batch)."""
CTX = oprf.VOPRF_CONTEXT_STRING
DST = oprf.HASH_TO_GROUP_DST


def cores() -> int:
    """Usable CPUs of this process."""
    return len(os.sched_getaffinity(0))


def interleaved(tasks: dict[str, Callable[[], object]], items: int, reps: int) -> dict[str, float]:
    """Items per second of each task's fastest of `reps` runs, the tasks taking turns.

    Taking turns spreads whatever else the machine does over all of them alike.
    """
    best = dict.fromkeys(tasks, float("inf"))
    for _ in range(reps):
        for name, work in tasks.items():
            t0 = time.perf_counter()
            work()
            best[name] = min(best[name], time.perf_counter() - t0)
    return {name: items / seconds for name, seconds in best.items()}


def spans(packed: bytes, size: int = CHUNK) -> list[bytes]:
    """`packed` in chunks of `size` points."""
    step = size * 32
    return [packed[i : i + step] for i in range(0, len(packed), step)]


@dataclass(frozen=True)
class Row:
    """One operation on one thread count: items per second of each implementation."""

    operation: str
    threads: int
    native: float
    avx2: float | None
    rbcl: float

    @property
    def ratio(self) -> float:
        """native / rbcl."""
        return self.native / self.rbcl

    @property
    def avx2_ratio(self) -> float | None:
        """native with AVX2 forced / rbcl."""
        return None if self.avx2 is None else self.avx2 / self.rbcl


class Impl:
    """One native build (installed or variant): its Secrets, its pool, its operations."""

    def __init__(self, module: ModuleType) -> None:
        self.m = module
        self.key = module.Secret(oprf.random_scalar())

    def threads(self, n: int) -> None:
        self.m.set_threads(n)

    def hash(self, inputs: Sequence[bytes]) -> bytes:
        out: bytes = self.m.hash_to_group(inputs, DST)
        return out

    def mult(self, packed: bytes) -> bytes:
        out: bytes = self.m.scalar_mult(self.key, packed)
        return out

    def prove(self, c: bytes, d: bytes) -> bytes:
        out: bytes = self.m.dleq_prove(self.key, c, d, CTX)
        return out

    def verify(self, public: bytes, c: bytes, d: bytes, proof: bytes) -> bool:
        ok: bool = self.m.dleq_verify(public, c, d, proof, CTX)
        return ok


def measure(points: int, reps: int, avx2_module: ModuleType | None) -> dict[str, Any]:
    """Every row of the comparison, and what ran it."""
    n = cores()
    inputs = [b"bsn:%09d" % (100_000_000 + i) for i in range(points)]
    packed = oprf.hash_to_group(inputs)
    impls = {"native": Impl(native)}
    if avx2_module is not None:
        impls["avx2"] = Impl(avx2_module)
    k = bytes(memoryview(impls["native"].key))
    evaluated = oprf.scalar_mult(k, packed)
    public = oprf.public_key(k)
    c_spans, d_spans = spans(packed), spans(evaluated)
    proofs = [oprf.prove_evaluation(k, c, d) for c, d in zip(c_spans, d_spans, strict=True)]
    cs = [[c[i : i + 32] for i in range(0, len(c), 32)] for c in c_spans]
    ds = [[d[i : i + 32] for i in range(0, len(d), 32)] for d in d_spans]
    r = oprf.random_scalar()
    rows: list[Row] = []
    hash_chunks = [inputs[i : i + CHUNK] for i in range(0, points, CHUNK)]
    with ThreadPoolExecutor(n) as pool:

        def threaded(task: Callable[[int], object], count: int) -> Callable[[], object]:
            if threads == 1:
                return lambda: [task(j) for j in range(count)]
            return lambda: list(pool.map(task, range(count)))

        def lib_prove(j: int) -> bytes:
            return ref.generate_proof(k, cs[j], ds[j], r, CTX)

        def lib_verify(j: int) -> bool:
            return ref.verify_proof(public, cs[j], ds[j], proofs[j], CTX)

        for threads in sorted({1, n}):
            rates: dict[str, dict[str, float]] = {}
            # Hashing and multiplying: the native core on its own pool of `threads`,
            # rbcl in `threads` Python threads over chunks.
            for impl in impls.values():
                impl.threads(threads)
                impl.mult(packed[: CHUNK * 32])  # start the pool's threads
            rates["hash"] = interleaved(
                {
                    **{name: (lambda i=impl: i.hash(inputs)) for name, impl in impls.items()},
                    "rbcl": threaded(
                        lambda j: ref.hash_to_group_batch(hash_chunks[j], DST), len(hash_chunks)
                    ),
                },
                points,
                reps,
            )
            rates["mult"] = interleaved(
                {
                    **{name: (lambda i=impl: i.mult(packed)) for name, impl in impls.items()},
                    "rbcl": threaded(lambda j: ref.scalar_mult_batch(k, c_spans[j]), len(c_spans)),
                },
                points,
                reps,
            )
            # Proofs: one per chunk, `threads` Python threads for every implementation.
            for impl in impls.values():
                impl.threads(1)
            slow = max(2, reps // 2)  # libsodium's proofs take seconds: fewer repetitions
            rates["prove"] = interleaved(
                {
                    **{
                        name: threaded(
                            lambda j, i=impl: i.prove(c_spans[j], d_spans[j]), len(c_spans)
                        )
                        for name, impl in impls.items()
                    },
                    "rbcl": threaded(lib_prove, len(cs)),
                },
                points,
                slow,
            )
            rates["verify"] = interleaved(
                {
                    **{
                        name: threaded(
                            lambda j, i=impl: i.verify(public, c_spans[j], d_spans[j], proofs[j]),
                            len(c_spans),
                        )
                        for name, impl in impls.items()
                    },
                    "rbcl": threaded(lib_verify, len(cs)),
                },
                points,
                slow,
            )
            for op in ("hash", "mult", "prove", "verify"):
                rows.append(
                    Row(
                        operation=op,
                        threads=threads,
                        native=rates[op]["native"],
                        avx2=rates[op].get("avx2"),
                        rbcl=rates[op]["rbcl"],
                    )
                )
    oprf.set_workers(n)
    return {
        "points": points,
        "chunk": CHUNK,
        "reps": reps,
        "cores": n,
        "backend": native.backend(),
        "avx2_backend": None if avx2_module is None else avx2_module.backend(),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "rows": [dict(asdict(row), ratio=row.ratio, avx2_ratio=row.avx2_ratio) for row in rows],
    }


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo."""
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):  # noqa: SIM115
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


NAMES = {
    "hash": "hash-to-group",
    "mult": "scalar multiplication",
    "prove": "DLEQ prove (points/s)",
    "verify": "DLEQ verify (points/s)",
}


def render(result: dict[str, Any]) -> str:
    """The comparison as a text table."""
    lines = [
        f"native core backend: {result['backend']}"
        + (f"; forced build: {result['avx2_backend']}" if result["avx2_backend"] else "")
        + f"; {result['cores']} cores; {result['cpu']}",
        f"{result['points']:,} points per batch, proofs over chunks of {result['chunk']:,}, "
        f"best of {result['reps']}",
        "",
        f"{'operation':<24} {'threads':>7} {'native/s':>11} {'avx2/s':>11} {'rbcl/s':>10} "
        f"{'native÷rbcl':>11} {'avx2÷rbcl':>9}",
    ]
    for row in result["rows"]:
        avx2 = "-" if row["avx2"] is None else f"{row['avx2']:,.0f}"
        avx2_ratio = "-" if row["avx2_ratio"] is None else f"{row['avx2_ratio']:.2f}"
        lines.append(
            f"{NAMES[row['operation']]:<24} {row['threads']:>7} {row['native']:>11,.0f} "
            f"{avx2:>11} {row['rbcl']:>10,.0f} {row['ratio']:>11.2f} {avx2_ratio:>9}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison and print it (and write JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--avx2", help="the AVX2 build (default: $KRUISPUNT_NATIVE_AVX2)")
    parser.add_argument("--json", help="write the figures to this file too")
    args = parser.parse_args(argv)
    result = measure(args.points, args.reps, load_avx2(args.avx2))
    print(render(result))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(result, out, indent=2)
            out.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
