"""Running one matching round across the network (DESIGN.md, "The matching round").

The coordinator only relays: every point it holds is blinded by at least one
key it does not have, and the tags it tallies are pseudonyms that die with
the round's keys. The schedule keeps every node busy at once: at step s,
node j evaluates the set of node (j+s) mod n.
"""

from __future__ import annotations

import functools
import hashlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import grpc
import structlog

from coordinator.audit import CoordinatorAudit
from coordinator.config import CoordinatorConfig
from coordinator.store import ABORTED, COMPLETED, FAILED, REFUSED, Partner, Store
from coordinator.tally import TallyResult, tally
from kruispunt import pki, signing, transport, wire
from kruispunt.audit import safe_reason
from kruispunt.errors import ConfigError, KruispuntError, RoundFailed
from kruispunt.manifest import new_round_id, sign_manifest, verify_consent
from kruispunt.pki import Identity
from kruispunt.purpose import ID_RE, Purpose
from kruispunt.v1 import common_pb2, coordinator_pb2, node_pb2, node_pb2_grpc

log = structlog.get_logger("coordinator.rounds")

T = TypeVar("T")
Progress = Callable[[coordinator_pb2.RoundEvent], None]
# What a mode does between consent and completion; raises RoundFailed to end the round.
RoundBody = Callable[["_RoundState", dict[str, "_Peer"], Progress, threading.Event], None]


class RoundCancelled(RoundFailed):
    """An operator cancelled the round."""


@dataclass
class _Peer:
    partner: Partner
    channel: grpc.Channel
    stub: node_pb2_grpc.PsiNodeStub


@dataclass
class _RoundState:
    round_id: str
    purpose: Purpose
    partners: list[str]
    manifest_sha256: bytes
    basis: str
    started: float = field(default_factory=time.monotonic)
    phases: dict[str, float] = field(default_factory=dict)
    set_sizes: dict[str, int] = field(default_factory=dict)
    excluded: dict[str, int] = field(default_factory=dict)
    invalid: dict[str, int] = field(default_factory=dict)
    flagged: dict[str, int] = field(default_factory=dict)
    result_paths: dict[str, str] = field(default_factory=dict)
    histogram: dict[int, int] = field(default_factory=dict)
    staged: set[str] = field(default_factory=set)


class RoundRunner:
    """Runs rounds for one coordinator; safe to use from several threads at once."""

    def __init__(
        self,
        config: CoordinatorConfig,
        store: Store,
        audit: CoordinatorAudit,
        *,
        now: Callable[[], datetime],
    ) -> None:
        self.config = config
        self.store = store
        self.audit = audit
        self.now = now
        self._signing_key = signing.load_signing_key(config.signing_key)
        self._tls = (
            pki.private_key_pem(pki.load_tls_key(config.tls_key)),
            config.tls_cert.read_bytes(),
            config.tls_ca.read_bytes(),
        )
        self._cancel: dict[str, threading.Event] = {}
        self._pending_aborts: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    # -- public --------------------------------------------------------------------------

    def cancel(self, round_id: str) -> bool:
        """Ask a running round to stop at the next chunk boundary."""
        with self._lock:
            event = self._cancel.get(round_id)
        if event is None:
            return False
        event.set()
        return True

    def run(
        self,
        purpose_id: str,
        *,
        initiated_by: str,
        access_point: str,
        reason: str = "",
        progress: Progress | None = None,
    ) -> coordinator_pb2.RoundSummary:
        """Run one round now; the summary's state says how it ended (never raises for a peer)."""
        if not ID_RE.fullmatch(purpose_id):
            # Never echoed: whatever was typed there is not a purpose id.
            message = "that is not a purpose id (lowercase letters, digits, dashes)"
            self._operator_error(initiated_by, access_point, message)
            raise ConfigError(message)
        purpose = self.store.purpose(purpose_id)
        if purpose is None:
            self._operator_error(initiated_by, access_point, f"unknown purpose {purpose_id!r}")
            raise ConfigError(f"unknown purpose {purpose_id!r} (see: psi-coordinator purpose list)")
        body: RoundBody
        if purpose.mode == "bilateral":
            from coordinator import bilateral  # the two-party mode's exchange

            body = functools.partial(bilateral.exchange, self)
            details = bilateral.created_details(purpose)
        else:
            body = self._network_body
            details = {"threshold": purpose.threshold, "disclosure": purpose.disclosure}
        return self._execute(
            purpose,
            body,
            details,
            initiated_by=initiated_by,
            access_point=access_point,
            reason=safe_reason(reason),
            emit=progress or (lambda _e: None),
        )

    def _network_body(
        self, state: _RoundState, peers: dict[str, _Peer], emit: Progress, cancel: threading.Event
    ) -> None:
        """The network mode after consent: blind, evaluate, finalize, tally, deliver."""
        result = self._match(state, peers, emit, cancel)
        self._deliver(state, peers, result, emit, cancel)

    def _execute(
        self,
        purpose: Purpose,
        body: RoundBody,
        details: dict[str, Any],
        *,
        initiated_by: str,
        access_point: str,
        reason: str,
        emit: Progress,
    ) -> coordinator_pb2.RoundSummary:
        """One round's lifecycle, for every mode: manifest, consent, `body`, and its ending."""
        partners = self._registered(purpose, initiated_by, access_point)
        now = self.now()
        round_id = new_round_id(now)
        order = [p.id for p in partners]
        signed = sign_manifest(
            self._signing_key,
            round_id=round_id,
            network=self.config.network,
            purpose=purpose,
            partners=order,
            now=now,
            ttl_seconds=self.config.manifest_ttl_seconds,
            initiated_by=initiated_by,
        )
        state = _RoundState(
            round_id=round_id,
            purpose=purpose,
            partners=order,
            manifest_sha256=hashlib.sha256(signed.manifest).digest(),
            basis=f"{purpose.id} v{purpose.version}; covenant {purpose.covenant_id}",
        )
        self.store.create_round(round_id, purpose, initiated_by, now.isoformat(), signed.manifest)
        self.audit.append(
            "round.created",
            actor=initiated_by,
            on_behalf_of=self.config.network,
            access_point=access_point,
            action="C",
            basis=state.basis,
            round_id=round_id,
            details={
                "purpose": purpose.id,
                "purpose_version": purpose.version,
                "mode": purpose.mode,
                "partners": order,
                **details,
                "manifest_sha256": state.manifest_sha256.hex(),
                "reason": reason,
            },
        )
        cancel = threading.Event()
        with self._lock:
            self._cancel[round_id] = cancel
        peers = {p.id: self._connect(p) for p in partners}
        bound = log.bind(round_id=round_id, purpose=purpose.id)
        bound.info("round started", mode=purpose.mode, partners=order, initiated_by=initiated_by)
        emit(_event(round_id, "propose", f"round {round_id} for {purpose.id}: asking consent"))
        try:
            self._propose(state, peers, signed, emit, cancel)
            body(state, peers, emit, cancel)
        except RoundFailed as exc:
            terminal = (
                REFUSED
                if isinstance(exc, _Refused)
                else (ABORTED if isinstance(exc, RoundCancelled) else FAILED)
            )
            return self._fail(state, peers, terminal, str(exc), emit)
        except Exception as exc:  # a bug must still end the round cleanly
            bound.exception("round crashed")
            return self._fail(state, peers, FAILED, f"internal error: {type(exc).__name__}", emit)
        finally:
            with self._lock:
                self._cancel.pop(round_id, None)
            for peer in peers.values():
                peer.channel.close()
        summary = self._summary(state, COMPLETED, "")
        self.store.finish_round(
            round_id, COMPLETED, "", self.now().isoformat(), summary_dict(summary)
        )
        self.audit.append(
            "round.completed",
            actor="coordinator",
            on_behalf_of=self.config.network,
            access_point=access_point,
            action="E",
            basis=state.basis,
            round_id=round_id,
            details={
                "seconds": round(summary.seconds, 3),
                "flagged": dict(state.flagged),
                "set_sizes": dict(state.set_sizes),
            },
        )
        bound.info("round completed", seconds=round(summary.seconds, 3), flagged=state.flagged)
        emit(_event(round_id, "done", "round completed", summary=summary))
        return summary

    def abort_at_nodes(
        self, round_id: str, reason: str, *, only: set[str] | None = None
    ) -> list[str]:
        """Best effort: tell the partners of a stored round to drop it; returns who confirmed."""
        row = self.store.round(round_id)
        if row is None:
            return []
        manifest = common_pb2.RoundManifest()
        manifest.ParseFromString(row.manifest)
        confirmed = []
        for pid in manifest.partners:
            partner = self.store.partner(pid)
            if partner is None or (only is not None and pid not in only):
                continue
            peer = self._connect(partner)
            try:
                peer.stub.Abort(node_pb2.AbortRequest(round_id=round_id, reason=reason), timeout=10)
                confirmed.append(pid)
            except grpc.RpcError as exc:
                log.warning(
                    "abort not delivered", round_id=round_id, partner=pid, reason=_rpc_reason(exc)
                )
            finally:
                peer.channel.close()
        return confirmed

    # -- phases ----------------------------------------------------------------------------

    def _propose(
        self,
        state: _RoundState,
        peers: dict[str, _Peer],
        signed: common_pb2.SignedManifest,
        emit: Progress,
        cancel: threading.Event,
    ) -> None:
        t0 = time.monotonic()
        answers = self._parallel(
            state,
            peers,
            "propose",
            lambda pid, peer: peer.stub.Propose(signed, timeout=self.config.phase_timeout_seconds),
        )
        refusals = []
        for pid in state.partners:
            signed_consent = answers[pid]
            key = signing.load_public_key(peers[pid].partner.signing_key)
            try:
                consent = verify_consent(
                    signed_consent,
                    key,
                    round_id=state.round_id,
                    partner_id=pid,
                    manifest_sha256=state.manifest_sha256,
                )
            except KruispuntError as exc:
                raise RoundFailed(f"{pid}: consent does not verify ({exc})") from None
            self.store.record_consent(
                state.round_id,
                pid,
                consent.granted,
                consent.reason,
                signed_consent.consent,
                signed_consent.signature,
            )
            if not consent.granted:
                refusals.append(f"{pid}: {consent.reason}")
                self._audit_round(state, "consent.refused", pid, reason=consent.reason)
                continue
            if consent.set_size > state.purpose.max_set_size:
                refusals.append(f"{pid}: set size {consent.set_size} exceeds the purpose maximum")
                continue
            state.set_sizes[pid] = consent.set_size
            state.excluded[pid] = consent.excluded_count
            state.invalid[pid] = consent.invalid_count
            self._audit_round(
                state,
                "consent.given",
                pid,
                set_size=consent.set_size,
                legal_basis=consent.legal_basis,
                excluded=consent.excluded_count,
                invalid=consent.invalid_count,
            )
        if refusals:
            raise _Refused("consent refused: " + "; ".join(refusals))
        self._audit_round(
            state,
            "set_sizes",
            "",
            set_sizes=dict(state.set_sizes),
            previous=self._previous_sizes(state),
        )
        state.phases["propose"] = time.monotonic() - t0
        emit(
            _event(
                state.round_id,
                "propose",
                "all partners consented: set sizes "
                + ", ".join(f"{p}={n}" for p, n in state.set_sizes.items()),
            )
        )
        self._check_cancel(cancel)

    def _match(
        self, state: _RoundState, peers: dict[str, _Peer], emit: Progress, cancel: threading.Event
    ) -> TallyResult:
        n = len(state.partners)
        total = sum(state.set_sizes.values())
        timeout = self.config.phase_timeout_seconds

        # Phase 1: every node blinds its own set.
        t0 = time.monotonic()
        progress = _PhaseProgress(self.store, state.round_id, "blind", total)

        def blind(pid: str, peer: _Peer) -> bytes:
            stream = peer.stub.Blind(common_pb2.RoundRef(round_id=state.round_id), timeout=timeout)
            return _collect_points(stream, state.set_sizes[pid], progress, cancel)

        current = self._parallel(state, peers, "blind", blind)
        state.phases["blind"] = time.monotonic() - t0
        emit(_event(state.round_id, "blind", "blinded sets received", total, total))
        self._check_cancel(cancel)

        # Phase 2: n-1 steps; at step s node j applies its key to node (j+s) mod n's set.
        t0 = time.monotonic()
        for step in range(1, n):
            progress = _PhaseProgress(
                self.store, state.round_id, "evaluate", total, f"step {step}/{n - 1}: "
            )

            def evaluate(
                pid: str, peer: _Peer, step: int = step, progress: _PhaseProgress = progress
            ) -> bytes:
                j = state.partners.index(pid)
                origin = state.partners[(j + step) % n]
                requests = _point_requests(
                    state.round_id, origin, step, current[origin], self.config.chunk_points, cancel
                )
                stream = peer.stub.Evaluate(requests, timeout=timeout)
                return _collect_points(stream, state.set_sizes[origin], progress, cancel)

            results = self._parallel(state, peers, f"evaluate step {step}", evaluate)
            for pid, points in results.items():
                origin = state.partners[(state.partners.index(pid) + step) % n]
                current[origin] = points
            emit(
                _event(
                    state.round_id,
                    "evaluate",
                    f"step {step}/{n - 1} done",
                    step * total,
                    (n - 1) * total,
                )
            )
            self._check_cancel(cancel)
        state.phases["evaluate"] = time.monotonic() - t0

        # Phase 3: each node removes its blinding, applies its own key and tags its records.
        t0 = time.monotonic()
        progress = _PhaseProgress(self.store, state.round_id, "finalize", total)

        def finalize(pid: str, peer: _Peer) -> bytes:
            requests = _point_requests(
                state.round_id, pid, 0, current[pid], self.config.chunk_points, cancel
            )
            stream = peer.stub.Finalize(requests, timeout=timeout)
            return _collect_tags(stream, state.set_sizes[pid], progress, cancel)

        tags = self._parallel(state, peers, "finalize", finalize)
        current.clear()
        state.phases["finalize"] = time.monotonic() - t0
        emit(_event(state.round_id, "finalize", "tags received", total, total))

        # Phase 4: tally (tags exist in memory only, for this call).
        t0 = time.monotonic()
        result = tally(tags, state.partners, state.purpose.threshold)
        tags.clear()
        state.histogram = dict(result.histogram)
        state.flagged = {p: len(result.flagged[p]) for p in state.partners}
        state.phases["tally"] = time.monotonic() - t0
        self._audit_round(
            state,
            "tally.summary",
            "",
            flagged=dict(state.flagged),
            histogram={str(k): v for k, v in sorted(state.histogram.items())},
            threshold=state.purpose.threshold,
        )
        emit(
            _event(
                state.round_id,
                "tally",
                "flagged per partner: " + ", ".join(f"{p}={c}" for p, c in state.flagged.items()),
            )
        )
        self._check_cancel(cancel)
        return result

    def _deliver(
        self,
        state: _RoundState,
        peers: dict[str, _Peer],
        result: TallyResult,
        emit: Progress,
        cancel: threading.Event,
    ) -> None:
        timeout = self.config.phase_timeout_seconds
        t0 = time.monotonic()
        self.store.set_progress(state.round_id, "deliver", "")
        partners_disclosed = state.purpose.disclosure == "partners"

        def deliver(pid: str, peer: _Peer) -> node_pb2.DeliveryReceipt:
            msg = node_pb2.RoundResults(
                round_id=state.round_id,
                flagged_indices=result.flagged[pid],
                holder_masks=result.masks[pid] if partners_disclosed else [],
                set_sizes=state.set_sizes,
                flagged_count=len(result.flagged[pid]),
            )
            receipt = peer.stub.Deliver(msg, timeout=timeout)
            state.staged.add(pid)
            return receipt  # type: ignore[no-any-return]

        staged = self._parallel(state, peers, "deliver", deliver)
        for pid, receipt in staged.items():
            if receipt.flagged_count != state.flagged[pid]:
                raise RoundFailed(
                    f"{pid}: staged {receipt.flagged_count} results, expected {state.flagged[pid]}"
                )
        self._check_cancel(cancel)
        # Every node has its results staged: publish everywhere. A commit that fails anywhere
        # fails the round, and the aborts that follow withdraw what others already published.
        ref = common_pb2.RoundRef(round_id=state.round_id)
        committed, failures = _fan_out(
            peers, "commit", lambda pid, peer: peer.stub.Commit(ref, timeout=timeout)
        )
        if failures:
            raise RoundFailed(
                "commit failed: "
                + "; ".join(f"{pid}: {why}" for pid, why in failures.items())
                + (f" (results withdrawn at {', '.join(sorted(committed))})" if committed else "")
            )
        for pid, receipt in committed.items():
            state.result_paths[pid] = receipt.result_path
            self._audit_round(
                state,
                "results.delivered",
                pid,
                flagged_count=receipt.flagged_count,
                result_sha256=receipt.result_sha256.hex(),
            )
        state.staged.clear()
        state.phases["deliver"] = time.monotonic() - t0
        emit(_event(state.round_id, "deliver", "results written at every partner"))

    # -- helpers ---------------------------------------------------------------------------

    def _registered(self, purpose: Purpose, actor: str, access_point: str) -> list[Partner]:
        found = []
        for pid in purpose.partners:
            partner = self.store.partner(pid)
            if partner is None or not partner.active:
                msg = f"purpose {purpose.id!r} names partner {pid!r}, which is not registered"
                self._operator_error(actor, access_point, msg)
                raise ConfigError(msg)
            found.append(partner)
        return found

    def _operator_error(self, actor: str, access_point: str, message: str) -> None:
        self.audit.append(
            "round.rejected",
            actor=actor,
            on_behalf_of=self.config.network,
            access_point=access_point,
            action="E",
            details={"reason": safe_reason(message)},
        )

    def _connect(self, partner: Partner) -> _Peer:
        key, cert, ca = self._tls
        channel = transport.secure_channel(
            partner.address,
            Identity.partner(self.config.network, partner.id),
            key_pem=key,
            cert_pem=cert,
            ca_pem=ca,
        )
        return _Peer(partner, channel, node_pb2_grpc.PsiNodeStub(channel))

    def _parallel(
        self,
        state: _RoundState,
        peers: dict[str, _Peer],
        what: str,
        call: Callable[[str, _Peer], T],
    ) -> dict[str, T]:
        """Run call for every partner at once; any failure fails the round, naming them all."""
        out, errors = _fan_out({pid: peers[pid] for pid in state.partners}, what, call)
        if errors:
            raise RoundFailed(
                f"{what} failed: " + "; ".join(f"{pid}: {why}" for pid, why in errors.items())
            )
        return out

    def _fail(
        self,
        state: _RoundState,
        peers: dict[str, _Peer],
        terminal: str,
        reason: str,
        emit: Progress,
    ) -> coordinator_pb2.RoundSummary:
        bound = log.bind(round_id=state.round_id)
        bound.warning("round ended without results", state=terminal, reason=reason)
        self._abort_everywhere(state.round_id, reason, peers)
        summary = self._summary(state, terminal, reason)
        self.store.finish_round(
            state.round_id, terminal, reason, self.now().isoformat(), summary_dict(summary)
        )
        self.audit.append(
            "round.failed" if terminal != ABORTED else "round.aborted",
            actor="coordinator",
            on_behalf_of=self.config.network,
            access_point="coordinator",
            action="E",
            basis=state.basis,
            round_id=state.round_id,
            details={"state": terminal, "reason": reason[:1000]},
        )
        emit(_event(state.round_id, "failed", reason, summary=summary))
        return summary

    def _abort_everywhere(self, round_id: str, reason: str, peers: dict[str, _Peer]) -> None:
        """Tell every partner, at once, to drop the round; remember who could not be told."""
        timeout = min(10.0, self.config.phase_timeout_seconds)
        request = node_pb2.AbortRequest(round_id=round_id, reason=reason)
        _, missed = _fan_out(
            peers, "abort", lambda pid, peer: peer.stub.Abort(request, timeout=timeout)
        )
        for pid, why in missed.items():
            log.warning(
                "abort not delivered; will retry", round_id=round_id, partner=pid, reason=why
            )
            with self._lock:
                self._pending_aborts.setdefault(round_id, set()).add(pid)

    def retry_aborts(self) -> int:
        """Retry aborts that a partner missed (it was down or cut off); returns how many landed."""
        with self._lock:
            pending = {rid: set(pids) for rid, pids in self._pending_aborts.items()}
        landed = 0
        for round_id, pids in pending.items():
            done = set(
                self.abort_at_nodes(
                    round_id, "round ended while this node was unreachable", only=pids
                )
            )
            landed += len(done)
            with self._lock:
                left = self._pending_aborts.get(round_id, set()) - done
                if left:
                    self._pending_aborts[round_id] = left
                else:
                    self._pending_aborts.pop(round_id, None)
        return landed

    def _audit_round(self, state: _RoundState, event: str, partner: str, **details: Any) -> None:
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

    def _previous_sizes(self, state: _RoundState) -> dict[str, int]:
        for row in self.store.rounds(purpose_id=state.purpose.id, limit=20):
            if row.id != state.round_id and row.state == COMPLETED:
                parts = row.summary.get("partners", {})
                return {p: int(v.get("set_size", 0)) for p, v in parts.items()}
        return {}

    def _summary(
        self, state: _RoundState, terminal: str, reason: str
    ) -> coordinator_pb2.RoundSummary:
        return coordinator_pb2.RoundSummary(
            round_id=state.round_id,
            purpose_id=state.purpose.id,
            state=terminal,
            reason=reason,
            threshold=state.purpose.threshold,
            partners=[
                coordinator_pb2.PartnerSummary(
                    partner_id=p,
                    set_size=state.set_sizes.get(p, 0),
                    flagged_count=state.flagged.get(p, 0),
                    result_path=state.result_paths.get(p, ""),
                    excluded_count=state.excluded.get(p, 0),
                    invalid_count=state.invalid.get(p, 0),
                )
                for p in state.partners
            ],
            phases=[
                coordinator_pb2.PhaseTiming(phase=k, seconds=v) for k, v in state.phases.items()
            ],
            overlap_histogram=state.histogram,
            seconds=time.monotonic() - state.started,
        )

    @staticmethod
    def _check_cancel(cancel: threading.Event) -> None:
        if cancel.is_set():
            raise RoundCancelled("cancelled by the operator")


class _PhaseProgress:
    """Points done in a phase, written to the round's row (`round show`) at most once a second."""

    def __init__(self, store: Store, round_id: str, phase: str, total: int, prefix: str = ""):
        self.store, self.round_id, self.phase = store, round_id, phase
        self.total, self.prefix = total, prefix
        self.done = 0
        self._lock = threading.Lock()
        self._written = 0.0
        self._write()

    def add(self, count: int) -> None:
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


class _Refused(RoundFailed):
    """At least one partner refused consent."""


def _fan_out(
    peers: dict[str, _Peer], what: str, call: Callable[[str, _Peer], T]
) -> tuple[dict[str, T], dict[str, str]]:
    """Call every peer at once: (answers, reason per partner that failed).

    A gRPC error or a KruispuntError (what a partner sent does not fit) is that partner's
    failure; an operator's cancellation ends the whole call.
    """
    out: dict[str, T] = {}
    errors: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=len(peers), thread_name_prefix=f"r-{what}") as ex:
        futures = {pid: ex.submit(call, pid, peer) for pid, peer in peers.items()}
        for pid, fut in futures.items():
            try:
                out[pid] = fut.result()
            except grpc.RpcError as exc:
                errors[pid] = _rpc_reason(exc)
            except RoundCancelled:
                raise
            except KruispuntError as exc:
                errors[pid] = str(exc)
    return out, errors


def _event(
    round_id: str,
    phase: str,
    message: str,
    done: int = 0,
    total: int = 0,
    summary: coordinator_pb2.RoundSummary | None = None,
) -> coordinator_pb2.RoundEvent:
    ev = coordinator_pb2.RoundEvent(
        round_id=round_id, phase=phase, message=message, done=done, total=total
    )
    if summary is not None:
        ev.summary.CopyFrom(summary)
    return ev


def _point_requests(
    round_id: str, origin: str, step: int, packed: bytes, per_chunk: int, cancel: threading.Event
) -> Iterator[common_pb2.PointBatch]:
    for offset, chunk in wire.chunks(packed, wire.POINT_BYTES, per_chunk):
        if cancel.is_set():
            return
        yield common_pb2.PointBatch(
            round_id=round_id, origin=origin, step=step, offset=offset, points=chunk
        )


def _collect_points(
    stream: Iterator[common_pb2.PointBatch],
    expected: int,
    progress: _PhaseProgress,
    cancel: threading.Event,
) -> bytes:
    out = bytearray()
    for batch in stream:
        count = wire.check_packed(batch.points, wire.POINT_BYTES)
        if count == 0:
            raise RoundFailed("sent an empty batch")
        if batch.offset * wire.POINT_BYTES != len(out):
            raise RoundFailed("sent points out of order")
        out += batch.points
        progress.add(count)
        if len(out) > expected * wire.POINT_BYTES:
            raise RoundFailed("sent more points than its declared set size")
        if cancel.is_set():
            raise RoundCancelled("cancelled by the operator")
    if len(out) != expected * wire.POINT_BYTES:
        raise RoundFailed(f"sent {len(out) // wire.POINT_BYTES} points, expected {expected}")
    return bytes(out)


def _collect_tags(
    stream: Iterator[common_pb2.TagBatch],
    expected: int,
    progress: _PhaseProgress,
    cancel: threading.Event,
) -> bytes:
    out = bytearray()
    for batch in stream:
        progress.add(wire.check_packed(batch.tags, wire.TAG_BYTES))
        if batch.offset * wire.TAG_BYTES != len(out):
            raise RoundFailed("sent tags out of order")
        out += batch.tags
        if len(out) > expected * wire.TAG_BYTES:
            raise RoundFailed("sent more tags than its set size")
        if cancel.is_set():
            raise RoundCancelled("cancelled by the operator")
    if len(out) != expected * wire.TAG_BYTES:
        raise RoundFailed(f"sent {len(out) // wire.TAG_BYTES} tags, expected {expected}")
    return bytes(out)


def _rpc_reason(exc: grpc.RpcError) -> str:
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else str(exc)
    name = code.name if code is not None else "ERROR"
    if code == grpc.StatusCode.UNAVAILABLE:
        return f"unreachable (UNAVAILABLE: {details})"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return "did not answer within the phase deadline (DEADLINE_EXCEEDED)"
    return f"{name}: {details}"


def summary_dict(summary: coordinator_pb2.RoundSummary) -> dict[str, Any]:
    """A round summary as JSON-ready aggregates (stored, and printed by `round run --json`)."""
    return {
        "threshold": summary.threshold,
        "seconds": round(summary.seconds, 3),
        "partners": {
            p.partner_id: {
                "set_size": p.set_size,
                "flagged_count": p.flagged_count,
                "excluded_count": p.excluded_count,
                "invalid_count": p.invalid_count,
                "result_path": p.result_path,
            }
            for p in summary.partners
        },
        "phases": {ph.phase: round(ph.seconds, 3) for ph in summary.phases},
        "histogram": {str(k): v for k, v in sorted(summary.overlap_histogram.items())},
    }


def summary_from_row(row: Any) -> dict[str, Any]:
    """The stored summary of a round (for `round show`), with its state and reason."""
    return {
        "round_id": row.id,
        "purpose": row.purpose_id,
        "state": row.state,
        "reason": row.reason,
        "created_at": row.created_at,
        "finished_at": row.finished_at,
        "initiated_by": row.initiated_by,
        "phase": row.phase,
        "progress": row.progress,
        **row.summary,
    }


__all__: Sequence[str] = ("RoundCancelled", "RoundRunner", "summary_from_row")
