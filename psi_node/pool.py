"""Run the batch OPRF operations of `psi_node.oprf` in parallel over chunks.

A pool of worker processes started by the "forkserver" method: the
forkserver is a fresh interpreter, so nothing is ever forked out of a process
that runs gRPC threads. It preloads this module, so libsodium is loaded once
there and every worker forked from it starts with it loaded.

Why processes, although rbcl binds libsodium with ctypes, which releases the
GIL during each C call, so threads scale too. Measured on the 2-core
development VM, which other jobs share, with chunks of 2,048 points:

    per second, best of 6-20 runs     1 thread       2 threads      2 processes
    (seven runs, 4,096-20,480 points)
    scalar multiplications            14,200-17,700  18,500-30,700  21,700-32,100
    hash-to-group and blind           11,500-12,500  16,500-22,400  17,000-24,000
    hash-to-group                     38,900-50,300  67,200-82,700  70,100-81,200

The ranges overlap, so the two were also run as 30 alternating pairs of
8,192 points: the median ratio processes/threads was 1.00 for scalar
multiplication (processes faster in 16 pairs of 30) and 1.02 for
hash-and-blind (25 of 30). A tie on two cores; the design's process pool
stays, as it does not share one GIL with the node's gRPC threads and scales
with more cores. The price is that a scalar crosses a pipe per task: it
travels as a bytearray that the worker zeroes when the task ends, but the
pickled message buffers are not wiped (see `oprf.RoundKey` for what Python
cannot promise). `make bench` reruns the comparison (benchmarks/bench_oprf.py).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from types import TracebackType
from typing import Any

import grpc

from kruispunt.errors import InvalidPoint, KruispuntError, ProtocolError
from kruispunt.hardening import disable_core_dumps
from kruispunt.wire import POINT_BYTES
from psi_node import oprf

CHUNK_POINTS = 2048
"""Points per task: large enough to amortise the pipe, small enough to balance workers."""


def _default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not every platform has sched_getaffinity
        return os.cpu_count() or 1


def _context() -> multiprocessing.context.BaseContext:
    context = multiprocessing.get_context("forkserver")
    # Takes effect only if the forkserver has not started yet; it replaces the
    # default preload of __main__, which a node has no need to import twice.
    context.set_forkserver_preload([__name__])
    return context


# --- what the workers run; each wipes its copy of the scalar when done ----------


def _wipe(scalar: bytearray) -> None:
    scalar[:] = bytes(len(scalar))


def _mult_task(scalar: bytearray, packed: bytes) -> bytes:
    try:
        return oprf.scalar_mult(scalar, packed)
    finally:
        _wipe(scalar)


def _hash_task(inputs: Sequence[bytes]) -> bytes:
    return oprf.hash_to_group(inputs)


def _blind_task(inputs: Sequence[bytes], scalar: bytearray) -> bytes:
    try:
        return oprf.hash_and_mult(inputs, scalar)
    finally:
        _wipe(scalar)


def _tag_task(inputs: Sequence[bytes], scalar: bytearray, packed: bytes) -> bytes:
    try:
        return oprf.mult_and_finalize(inputs, scalar, packed)
    finally:
        _wipe(scalar)


def _keyed_tag_task(
    inputs: Sequence[bytes], scalar: bytearray, packed: bytes, tag_key: bytearray
) -> bytes:
    try:
        return oprf.mult_and_keyed_tags(inputs, scalar, packed, bytes(tag_key))
    finally:
        _wipe(scalar)
        _wipe(tag_key)


def _executor(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=_context(),
        initializer=_exit_with,
        initargs=(os.getpid(),),
    )


def _exit_with(node_pid: int) -> None:
    """In a worker: dump no core; exit when the node process is gone (SIGKILL leaves workers)."""
    # Workers hold the round's scalars. RLIMIT_CORE 0 is inherited from the node, but the
    # forkserver they are forked from was started by execve, which makes a process
    # dumpable again: so each worker clears the flag itself (kruispunt.hardening).
    disable_core_dumps()

    def watch() -> None:
        while True:
            time.sleep(1.0)
            try:
                os.kill(node_pid, 0)
            except ProcessLookupError:
                os._exit(0)
            except PermissionError:
                continue  # the pid exists (reused by another user): keep watching

    threading.Thread(target=watch, name="watch-node", daemon=True).start()


class PoolFailed(KruispuntError):
    """A worker process of the point pool died during a call."""

    status = grpc.StatusCode.UNAVAILABLE


class PointPool:
    """Worker processes for batch scalar multiplication, hash-to-group and tagging.

    Results are packed in input order. Scalars are checked here, then sent
    with every task; workers keep nothing between tasks. An invalid point in
    any chunk raises one opaque InvalidPoint, as `psi_node.oprf` does; a bad
    scalar raises ValueError or TypeError before any work is sent.
    """

    def __init__(self, workers: int | None = None, *, per_chunk: int = CHUNK_POINTS) -> None:
        """Start `workers` processes (default: the CPUs this process may use)."""
        if workers is None:
            workers = _default_workers()
        if workers < 1:
            raise ValueError("workers must be at least 1")
        if per_chunk < 1:
            raise ValueError("per_chunk must be at least 1")
        self.workers = workers
        self.per_chunk = per_chunk
        self._executor: Executor = _executor(workers)

    def _spans(self, count: int) -> list[tuple[int, int]]:
        return [
            (start, min(start + self.per_chunk, count)) for start in range(0, count, self.per_chunk)
        ]

    def _run(self, task: Callable[..., bytes], calls: Iterable[tuple[Any, ...]]) -> bytes:
        columns = list(zip(*calls, strict=True))
        if not columns:
            return b""
        try:
            return b"".join(self._executor.map(task, *columns))
        except InvalidPoint:
            pass
        except BrokenProcessPool:
            # A worker died (killed, out of memory): this call fails the round, and a fresh
            # pool serves the next one instead of every later call failing too.
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = _executor(self.workers)
            raise PoolFailed(
                "a worker process died; the round fails, the next gets new workers"
            ) from None
        # Raised outside the handler so that the worker's exception, and the
        # remote traceback attached to it, are not chained on.
        raise InvalidPoint()

    def scalar_mult(self, scalar: oprf.Scalar, packed: bytes) -> bytes:
        """Return scalar * P for every point P in `packed`, in order (see `oprf.scalar_mult`)."""
        oprf.check_scalar(scalar)
        if len(packed) % POINT_BYTES:
            raise InvalidPoint()
        copy = bytearray(memoryview(scalar).cast("B"))
        try:
            return self._run(
                _mult_task,
                (
                    (copy, packed[lo * POINT_BYTES : hi * POINT_BYTES])
                    for lo, hi in self._spans(len(packed) // POINT_BYTES)
                ),
            )
        finally:
            _wipe(copy)

    def hash_to_group(self, inputs: Sequence[bytes]) -> bytes:
        """Return HashToGroup(x) for every input, packed (see `oprf.hash_to_group`)."""
        return self._run(_hash_task, ((inputs[lo:hi],) for lo, hi in self._spans(len(inputs))))

    def hash_and_blind(self, inputs: Sequence[bytes], r: oprf.Scalar) -> bytes:
        """Return r * HashToGroup(x) for every input, packed: step 1 of the round."""
        oprf.check_scalar(r)
        copy = bytearray(memoryview(r).cast("B"))
        try:
            return self._run(
                _blind_task, ((inputs[lo:hi], copy) for lo, hi in self._spans(len(inputs)))
            )
        finally:
            _wipe(copy)

    def unblind_and_tag(self, inputs: Sequence[bytes], factor: oprf.Scalar, packed: bytes) -> bytes:
        """Return the tags Finalize(x, factor * B)[:16], packed: step 3 of the round."""
        oprf.check_scalar(factor)
        if len(packed) != len(inputs) * POINT_BYTES:
            raise ProtocolError("point count does not match the number of inputs")
        copy = bytearray(memoryview(factor).cast("B"))
        try:
            return self._run(
                _tag_task,
                (
                    (inputs[lo:hi], copy, packed[lo * POINT_BYTES : hi * POINT_BYTES])
                    for lo, hi in self._spans(len(inputs))
                ),
            )
        finally:
            _wipe(copy)

    def unblind_and_keyed_tag(
        self, inputs: Sequence[bytes], factor: oprf.Scalar, packed: bytes, tag_key: bytes
    ) -> bytes:
        """The round's tags: keyed Finalize(x, factor * B) (`oprf.mult_and_keyed_tags`)."""
        oprf.check_scalar(factor)
        if len(packed) != len(inputs) * POINT_BYTES:
            raise ProtocolError("point count does not match the number of inputs")
        copy = bytearray(memoryview(factor).cast("B"))
        key = bytearray(tag_key)
        try:
            return self._run(
                _keyed_tag_task,
                (
                    (inputs[lo:hi], copy, packed[lo * POINT_BYTES : hi * POINT_BYTES], key)
                    for lo, hi in self._spans(len(inputs))
                ),
            )
        finally:
            _wipe(copy)
            _wipe(key)

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
