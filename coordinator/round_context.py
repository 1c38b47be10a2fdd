"""What every round mode shares: peers, round state, and the round's own services.

Factored out of the lifecycle (`coordinator.rounds`) so that the modes
(`coordinator.modes.*`) and the lifecycle import this module and never each
other (STYLE.md habit 1). A mode is one `run(context, state)` (habit 5): the
context carries the connections to the partners and what a mode may do with
the round -- call every partner at once, audit an event of this round, show
a phase's progress, report an event to the operator, notice a cancellation.
`RoundCalls` holds the round's channels, so an operator's cancellation ends
every call in flight at once instead of waiting for a node to answer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

import grpc

from coordinator.audit import CoordinatorAudit
from coordinator.config import CoordinatorConfig
from coordinator.store import Partner, Store
from kruispunt.audit import head_from_proto
from kruispunt.errors import KruispuntError, RoundFailed
from kruispunt.purpose import Purpose
from kruispunt.roster import Roster
from kruispunt.rpc import PeerError, translated
from kruispunt.v1 import common_pb2, coordinator_pb2, node_pb2, node_pb2_grpc

__all__ = [
    "COMMIT_METHOD",
    "TRANSIENT_STATUSES",
    "Cancellation",
    "PartnersUnreachable",
    "Peer",
    "PhaseProgress",
    "Progress",
    "RoundCalls",
    "RoundCancelled",
    "RoundContext",
    "RoundMode",
    "RoundState",
    "fan_out",
    "fan_out_errors",
    "round_event",
    "round_failure",
]

T = TypeVar("T")
#: Where a round's events go (the operator's stream, or nowhere for a scheduled round).
Progress = Callable[[coordinator_pb2.RoundEvent], None]


class RoundCancelled(RoundFailed):
    """An operator cancelled the round."""


class PartnersUnreachable(RoundFailed):
    """The round failed only because partners could not be reached or did not answer in time.

    Nothing any partner said was wrong, so a scheduled round is worth running again
    (`coordinator.schedule`); a refusal, an attack or a malformed answer never is.
    """


#: The statuses of a call that failed for the network's or the node's availability, not for
#: anything the node decided: a node down, restarting, or too slow for the phase deadline.
TRANSIENT_STATUSES: frozenset[grpc.StatusCode] = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
)


#: The call that publishes a partner's results: once one is sent, a round is not cancelled.
COMMIT_METHOD = "/kruispunt.v1.PsiNode/Commit"


@dataclass(frozen=True)
class Cancellation:
    """Who cancelled a round, through which access point, and why (as audited)."""

    actor: str
    access_point: str
    reason: str

    def describe(self) -> str:
        """The round's ending reason: ``cancelled by operator:alice: <why>``."""
        return f"cancelled by {self.actor}" + (f": {self.reason}" if self.reason else "")


class RoundCalls:
    """Every call of one round to its partners, so that a cancellation ends them at once.

    The round opens its channels through `channel`, which keeps each one and puts a
    guard in front of every call. `cancel` sets the round's cancel event, closes every
    channel -- grpc then ends each call in flight on it with CANCELLED, however long the
    node would take to answer -- and the guard refuses every later call with
    RoundCancelled. Once the round has sent its first Commit, a cancellation is refused
    instead: a commit cut off midway would leave some partners' results published and
    others not, and no abort removes a published result.
    """

    def __init__(self, cancel: threading.Event) -> None:
        self.event = cancel
        #: Set when the round has ended, whichever way (the cancel call waits for it).
        self.ended = threading.Event()
        self._lock = threading.Lock()
        self._channels: list[grpc.Channel] = []
        self._publishing = False
        self._ending = False
        self._cancellation: Cancellation | None = None

    @property
    def cancellation(self) -> Cancellation | None:
        """Who cancelled the round, if anyone did."""
        with self._lock:
            return self._cancellation

    def channel(self, channel: grpc.Channel) -> grpc.Channel:
        """Keep `channel` as one of the round's; returns it with the guard in front."""
        with self._lock:
            self._channels.append(channel)
            cancelled = self._cancellation is not None
        if cancelled:
            channel.close()
        return grpc.intercept_channel(channel, _CallGuard(self))

    def cancel(self, cancellation: Cancellation, accepted: Callable[[], None]) -> bool:
        """End the round's calls now; False if it is publishing, ending by itself, or was
        cancelled already.

        `accepted` runs (to audit the cancellation) before any call is ended, so the
        record of who cancelled precedes everything the cancellation causes.
        """
        with self._lock:
            if self._publishing or self._ending or self._cancellation is not None:
                return False
            accepted()
            self._cancellation = cancellation
            self.event.set()
            channels = list(self._channels)
        for channel in channels:
            channel.close()
        return True

    @property
    def publishing(self) -> bool:
        """Whether the round has started publishing its results (too late to cancel)."""
        with self._lock:
            return self._publishing

    def end(self) -> Cancellation | None:
        """The round is ending (failed, refused, cancelled): no cancellation from now on.

        Returns the cancellation that came first, if one did. Its abort fan-out can then
        use the round's channels without a late cancellation cutting it off.
        """
        with self._lock:
            self._ending = True
            return self._cancellation

    def enter(self, method: str) -> None:
        """Let one call of the round start, or raise RoundCancelled if it was cancelled."""
        with self._lock:
            if self._cancellation is not None:
                raise RoundCancelled(self._cancellation.describe())
            if method == COMMIT_METHOD:
                self._publishing = True


class _CallGuard(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]  # grpc ships no types
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    """Asks `RoundCalls` before each call of the round starts (every call shape)."""

    def __init__(self, calls: RoundCalls) -> None:
        self._calls = calls

    def _enter(self, details: Any) -> None:
        method = details.method
        self._calls.enter(method.decode() if isinstance(method, bytes) else str(method))

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        self._enter(details)
        return continuation(details, request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        self._enter(details)
        return continuation(details, request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        self._enter(details)
        return continuation(details, requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        self._enter(details)
        return continuation(details, requests)


@dataclass
class Peer:
    """One partner of the round and the open channel to its node."""

    partner: Partner
    channel: grpc.Channel
    stub: node_pb2_grpc.PsiNodeStub


@dataclass
class RoundState:
    """What the round has learned so far: aggregates only, never a record."""

    round_id: str
    purpose: Purpose
    partners: list[str]
    manifest_sha256: bytes
    basis: str
    roster: Roster
    chunk_points: int
    started: float = field(default_factory=time.monotonic)
    # Every partner's signed consent: forwarded to all, so each can check set sizes and open
    # its tag-key shares without taking the coordinator's word for either.
    consents: dict[str, common_pb2.SignedConsent] = field(default_factory=dict)
    # Disclosure "partners": per partner, inclusion proofs of its flagged records' tags in
    # each co-holder's commitment.
    evidence: dict[str, list[node_pb2.CoholderProof]] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)
    set_sizes: dict[str, int] = field(default_factory=dict)
    excluded: dict[str, int] = field(default_factory=dict)
    # Only partners whose consent reported its objected rows apart (older nodes do not).
    objected: dict[str, int] = field(default_factory=dict)
    invalid: dict[str, int] = field(default_factory=dict)
    flagged: dict[str, int] = field(default_factory=dict)
    result_paths: dict[str, str] = field(default_factory=dict)
    histogram: dict[int, int] = field(default_factory=dict)
    staged: set[str] = field(default_factory=set)
    #: Partners that published their results; an abort would be refused there.
    committed: set[str] = field(default_factory=set)


class RoundMode(Protocol):
    """One protocol mode: what its `round.created` event records, and its run after consent."""

    def created_details(self, purpose: Purpose) -> dict[str, object]:
        """What the `round.created` audit event records about a round of this mode."""
        ...

    def run(self, context: RoundContext, state: RoundState) -> None:
        """Take the round from consent to published results; raise RoundFailed to end it."""
        ...


class RoundContext:
    """One running round's peers and services, as a mode uses them."""

    def __init__(
        self,
        config: CoordinatorConfig,
        store: Store,
        audit: CoordinatorAudit,
        peers: Mapping[str, Peer],
        *,
        emit: Progress,
        cancel: threading.Event,
        now: Callable[[], datetime],
    ) -> None:
        self.config = config
        #: The clock signatures are checked at (a rotated key's overlap ends by it).
        self.now = now
        self.store = store
        self.audit = audit
        self.peers = dict(peers)
        self.emit = emit
        self.cancel = cancel

    @property
    def timeout(self) -> float:
        """The deadline of one partner's call in a phase, in seconds."""
        return self.config.phase_timeout_seconds

    def parallel(
        self, state: RoundState, what: str, call: Callable[[str, Peer], T]
    ) -> dict[str, T]:
        """Run call for every partner at once; any failure fails the round, naming them all."""
        out, errors = fan_out_errors({pid: self.peers[pid] for pid in state.partners}, what, call)
        if errors:
            self.check_cancel()  # calls a cancellation cut off are no partner's failure
            raise round_failure(what, errors)
        return out

    def call(self, pid: str, call: Callable[[Peer], T]) -> T:
        """One call to one partner; a failed call fails the round with the partner's name."""
        try:
            with translated():
                return call(self.peers[pid])
        except PeerError as exc:
            self.check_cancel()  # a call a cancellation cut off is no partner's failure
            failed = PartnersUnreachable if exc.status in TRANSIENT_STATUSES else RoundFailed
            raise failed(f"{pid}: {exc}") from None

    def record(self, state: RoundState, event: str, partner: str, **details: Any) -> None:
        """Append one audit event of this round, on behalf of `partner` (or the network)."""
        if partner:
            details = {"partner": partner, **details}
        self.audit.append(
            event,
            actor="coordinator",
            on_behalf_of=partner or self.config.network,
            access_point="coordinator",
            action="E",
            basis=state.basis,
            round_id=state.round_id,
            details=details,
        )

    def progress(
        self, state: RoundState, phase: str, total: int, prefix: str = ""
    ) -> PhaseProgress:
        """A counter of points done in `phase`, shown by `round show` while the round runs."""
        return PhaseProgress(self.store, state.round_id, phase, total, prefix)

    def enter(self, state: RoundState, phase: str) -> None:
        """Show `phase` as the round's current one, for a phase that counts nothing."""
        self.store.set_progress(state.round_id, phase, "")

    def report(
        self,
        state: RoundState,
        phase: str,
        message: str,
        done: int = 0,
        total: int = 0,
        summary: coordinator_pb2.RoundSummary | None = None,
    ) -> None:
        """Tell the operator how the round goes."""
        self.emit(round_event(state.round_id, phase, message, done, total, summary))

    def check_cancel(self) -> None:
        """Raise RoundCancelled if an operator asked the round to stop."""
        if self.cancel.is_set():
            raise RoundCancelled("cancelled by the operator")

    def commit(self, state: RoundState, **roles: str) -> None:
        """Publish the staged results at every partner and record each delivery.

        Every partner that published gets its `results.delivered` event, with the node's
        audit head from its receipt. A commit that fails anywhere then fails the round,
        naming who did and did not publish; results already published stay (no abort
        removes a committed result, or a coordinator could suppress results at will).
        `roles` adds a partner's role to its `results.delivered` event (two-party mode).
        """
        ref = common_pb2.RoundRef(round_id=state.round_id)
        committed, failures = fan_out(
            self.peers, "commit", lambda pid, peer: peer.stub.Commit(ref, timeout=self.timeout)
        )
        state.committed.update(committed)
        # Every publication is on record, also when another partner's failed: a node's log
        # of results written must find its delivery in the coordinator's (witness check).
        wrong = []
        for pid in state.partners:
            if pid not in committed:
                continue
            receipt = committed[pid]
            state.result_paths[pid] = receipt.result_path
            extra: dict[str, object] = {"role": roles[pid]} if pid in roles else {}
            node_head = head_from_proto(receipt.node_audit_head)
            if node_head is not None:
                # The node's own audit head once it logged the write: a node log later cut
                # off before it is caught (kruispunt.audit.witness).
                extra["node_head"] = node_head.as_details()
            self.record(
                state,
                "results.delivered",
                pid,
                flagged_count=receipt.flagged_count,
                **extra,
                result_sha256=receipt.result_sha256.hex(),
            )
            if receipt.flagged_count != state.flagged[pid]:
                wrong.append(
                    f"{pid}: committed {receipt.flagged_count} results, "
                    f"expected {state.flagged[pid]}"
                )
        if failures:
            raise RoundFailed(
                "commit failed: "
                + "; ".join(f"{pid}: {why}" for pid, why in failures.items())
                + (f" (results published at {', '.join(sorted(committed))})" if committed else "")
            )
        if wrong:
            raise RoundFailed("; ".join(wrong))
        state.staged.clear()


class PhaseProgress:
    """Points done in a phase, written to the round's row (`round show`) at most once a second."""

    def __init__(self, store: Store, round_id: str, phase: str, total: int, prefix: str = ""):
        self.store, self.round_id, self.phase = store, round_id, phase
        self.total, self.prefix = total, prefix
        self.done = 0
        self._lock = threading.Lock()
        self._written = 0.0
        self._write()

    def add(self, count: int) -> None:
        """Count `count` more points done."""
        with self._lock:
            first = self.done == 0
            self.done += count
            # The first batch shows at once (a phase waiting on one slow node shows how far
            # the others got); after that at most once a second, and the end of the phase.
            if first or time.monotonic() - self._written >= 1.0 or self.done >= self.total:
                self._write()

    def _write(self) -> None:
        self._written = time.monotonic()
        self.store.set_progress(self.round_id, self.phase, f"{self.prefix}{self.done}/{self.total}")


def fan_out(
    peers: Mapping[str, Peer], what: str, call: Callable[[str, Peer], T]
) -> tuple[dict[str, T], dict[str, str]]:
    """Call every peer at once: (answers, reason per partner that failed).

    A failed call (PeerError) or a KruispuntError (what a partner sent does not fit) is
    that partner's failure; an operator's cancellation ends the whole call.
    """
    out, errors = fan_out_errors(peers, what, call)
    return out, {pid: str(exc) for pid, exc in errors.items()}


def round_failure(what: str, errors: Mapping[str, KruispuntError]) -> RoundFailed:
    """The RoundFailed naming every partner whose call of `what` failed, and why.

    PartnersUnreachable when each of them was unreachable or too slow (worth a retry);
    a plain RoundFailed as soon as one of them answered something wrong.
    """
    message = f"{what} failed: " + "; ".join(f"{pid}: {why}" for pid, why in errors.items())
    transient = all(
        isinstance(exc, PeerError) and exc.status in TRANSIENT_STATUSES for exc in errors.values()
    )
    return PartnersUnreachable(message) if errors and transient else RoundFailed(message)


def fan_out_errors(
    peers: Mapping[str, Peer], what: str, call: Callable[[str, Peer], T]
) -> tuple[dict[str, T], dict[str, KruispuntError]]:
    """`fan_out`, with each partner's failure as the error itself (status kept)."""

    def translated_call(pid: str, peer: Peer) -> T:
        with translated():
            return call(pid, peer)

    out: dict[str, T] = {}
    errors: dict[str, KruispuntError] = {}
    with ThreadPoolExecutor(max_workers=len(peers), thread_name_prefix=f"r-{what}") as ex:
        futures = {pid: ex.submit(translated_call, pid, peer) for pid, peer in peers.items()}
        for pid, fut in futures.items():
            try:
                out[pid] = fut.result()
            except RoundCancelled:
                raise
            except KruispuntError as exc:  # PeerError among them
                errors[pid] = exc
    return out, errors


def round_event(
    round_id: str,
    phase: str,
    message: str,
    done: int = 0,
    total: int = 0,
    summary: coordinator_pb2.RoundSummary | None = None,
) -> coordinator_pb2.RoundEvent:
    """One progress event of a round, with its summary when the round has ended."""
    ev = coordinator_pb2.RoundEvent(
        round_id=round_id, phase=phase, message=message, done=done, total=total
    )
    if summary is not None:
        ev.summary.CopyFrom(summary)
    return ev
