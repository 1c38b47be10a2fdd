"""Run the batch OPRF operations of `psi_node.oprf` in parallel over chunks.

Threads, not processes. DESIGN.md assumed libsodium calls hold the GIL (true
for cffi bindings); rbcl binds libsodium with ctypes, which releases the GIL
for the length of every C call, and `psi_node.oprf` keeps the Python work per
point to a few microseconds next to ~65 us of C. Measured on the 2-core
development VM, 20,000 points, chunks of 2,048, best of 5
(`python benchmarks/bench_oprf.py --compare`):

    scalar multiplications   1 thread ~14,000/s   2 threads ~22,800/s
                             2 processes (forkserver) ~19,400/s
    hash-to-group and blind  1 thread  ~7,700/s   2 threads ~14,800/s
                             2 processes (forkserver) ~17,700/s

The figures are noisy (a shared VM), but threads scale as well as processes,
and they also keep round keys inside the node process (no pickled scalars in
pipes, no copies in worker memory we cannot wipe), start instantly and avoid
rbcl's habit of writing a fresh copy of libsodium to the temporary directory
in every process that imports it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType

from kruispunt.errors import InvalidPoint, ProtocolError
from kruispunt.wire import POINT_BYTES
from psi_node import oprf

CHUNK_POINTS = 2048
"""Points per task: large enough to amortise dispatch, small enough to balance workers."""


def _default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not every platform has sched_getaffinity
        return os.cpu_count() or 1


class PointPool:
    """A pool of worker threads for batch scalar multiplication, hash-to-group and tagging.

    Results are packed in input order. Scalars are passed per call and copied
    per task into a buffer that the task zeroes when it ends; the workers keep
    nothing between tasks. An invalid point in any chunk raises one opaque
    InvalidPoint, as `psi_node.oprf` does.
    """

    def __init__(self, workers: int | None = None, *, per_chunk: int = CHUNK_POINTS) -> None:
        """Start `workers` threads (default: the CPUs this process may use)."""
        if workers is None:
            workers = _default_workers()
        if workers < 1:
            raise ValueError("workers must be at least 1")
        if per_chunk < 1:
            raise ValueError("per_chunk must be at least 1")
        self.workers = workers
        self.per_chunk = per_chunk
        self._executor = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="kruispunt-points"
        )

    def _spans(self, count: int) -> Iterator[tuple[int, int]]:
        for start in range(0, count, self.per_chunk):
            yield start, min(start + self.per_chunk, count)

    def _run(self, task: Callable[[int, int], bytes], count: int) -> bytes:
        try:
            return b"".join(self._executor.map(lambda span: task(*span), self._spans(count)))
        except InvalidPoint:
            pass
        # Raised outside the handler so that the worker's exception, and the
        # frames (with their locals) its traceback holds, are not chained on.
        raise InvalidPoint()

    def scalar_mult(self, scalar: oprf.Scalar, packed: bytes) -> bytes:
        """Return scalar * P for every point P in `packed`, in order (see `oprf.scalar_mult`)."""
        if len(packed) % POINT_BYTES:
            raise InvalidPoint()
        return self._run(
            lambda lo, hi: oprf.scalar_mult(scalar, packed[lo * POINT_BYTES : hi * POINT_BYTES]),
            len(packed) // POINT_BYTES,
        )

    def hash_to_group(self, inputs: Sequence[bytes]) -> bytes:
        """Return HashToGroup(x) for every input, packed (see `oprf.hash_to_group`)."""
        return self._run(lambda lo, hi: oprf.hash_to_group(inputs[lo:hi]), len(inputs))

    def hash_and_blind(self, inputs: Sequence[bytes], r: oprf.Scalar) -> bytes:
        """Return r * HashToGroup(x) for every input, packed: step 1 of the round."""
        return self._run(lambda lo, hi: oprf.hash_and_mult(inputs[lo:hi], r), len(inputs))

    def unblind_and_tag(self, inputs: Sequence[bytes], factor: oprf.Scalar, packed: bytes) -> bytes:
        """Return the tags Finalize(x, factor * B)[:16], packed: step 3 of the round."""
        if len(packed) != len(inputs) * POINT_BYTES:
            raise ProtocolError("point count does not match the number of inputs")
        return self._run(
            lambda lo, hi: oprf.mult_and_finalize(
                inputs[lo:hi], factor, packed[lo * POINT_BYTES : hi * POINT_BYTES]
            ),
            len(inputs),
        )

    def close(self) -> None:
        """Stop the workers after the running tasks; queued tasks are cancelled."""
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> PointPool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
