"""A round's lifecycle, for every mode (DESIGN.md, "The matching round").

Manifest, consent, the mode's own run (chosen from `MODES`), and the ending:
completed, refused, failed or aborted, with every partner told to drop a round
that did not complete and a retry for the aborts a partner missed. What
happens between consent and published results lives in `coordinator.modes`.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc

from coordinator.audit import CoordinatorAudit
from coordinator.config import CoordinatorConfig
from coordinator.deletions import Collected, take_receipts
from coordinator.modes import bilateral, network
from coordinator.present import summary_dict
from coordinator.provision import roster_path
from coordinator.round_context import (
    Cancellation,
    PartnersUnreachable,
    Peer,
    Progress,
    RoundCalls,
    RoundCancelled,
    RoundContext,
    RoundMode,
    RoundState,
    fan_out,
    fan_out_errors,
    round_event,
    round_failure,
)
from coordinator.store import ABORTED, COMPLETED, FAILED, REFUSED, Partner, Store
from kruispunt import pki, signing, transport
from kruispunt.audit import ChainHead, head_from_proto, head_to_proto, safe_reason
from kruispunt.errors import ConfigError, KruispuntError, RoundFailed
from kruispunt.manifest import new_round_id, sign_manifest, verify_consent
from kruispunt.pki import Identity
from kruispunt.purpose import ID_RE, Purpose
from kruispunt.roster import Roster, load_roster
from kruispunt.rpc import PeerError, translated
from kruispunt.v1 import common_pb2, coordinator_pb2, node_pb2, node_pb2_grpc

__all__ = ["CANCELLING", "MODES", "PUBLISHING", "Attempt", "RoundCancelled", "RoundRunner"]

log = structlog.get_logger("coordinator.rounds")

#: How long `RoundRunner.cancel` waits for the cancelled round to end before answering.
CANCEL_WAIT_SECONDS = 5.0
#: `RoundRunner.cancel`'s answers besides a round's final state.
CANCELLING, PUBLISHING = "cancelling", "publishing"

#: The service a node's health check answers for (psi_node.server.SERVICE).
NODE_SERVICE = "kruispunt.v1.PsiNode"
#: How long `RoundRunner.unreachable` waits for each node's health answer.
PREFLIGHT_SECONDS = 10.0

#: The round modes by the name a purpose gives (kruispunt.purpose.MODES).
MODES: Mapping[str, RoundMode] = {"network": network, "bilateral": bilateral}


@dataclass(frozen=True)
class Attempt:
    """How one run of a round ended, and whether running it again may help.

    `transient`: the round failed only because partners were unreachable or did not
    answer in time (`PartnersUnreachable`), before any of them published results.
    """

    summary: coordinator_pb2.RoundSummary
    transient: bool = False


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
        #: Called with the summary of every round that ends (the metrics); never raises out.
        self.on_end: Callable[[coordinator_pb2.RoundSummary], None] | None = None
        self._tls = (
            pki.private_key_pem(pki.load_tls_key(config.tls_key)),
            config.tls_cert.read_bytes(),
            config.tls_ca.read_bytes(),
        )
        self._cancel: dict[str, RoundCalls] = {}
        self._pending_aborts: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    # -- public --------------------------------------------------------------------------

    def cancel(
        self,
        round_id: str,
        *,
        actor: str,
        access_point: str,
        reason: str = "",
        wait: float = CANCEL_WAIT_SECONDS,
    ) -> str | None:
        """Stop a running round now; returns its state after up to `wait` seconds.

        Every call of the round in flight ends at once (its channels close), every
        partner is told to drop the round, and "round.cancelled" records who and why
        before anything else happens. The state returned is "aborted" once the round
        has ended, "cancelling" while the partners are still being told, or
        "publishing" if the round had started publishing its results: too late, it
        completes (and "round.cancel_refused" says so). A round already ending by
        itself is not cancelled either: its own final state is returned (also audited as
        refused). None: no such round running.
        """
        with self._lock:
            calls = self._cancel.get(round_id)
        if calls is None:
            return None
        cancellation = Cancellation(actor, access_point, safe_reason(reason))
        if calls.cancel(
            cancellation, lambda: self._audit_cancel(round_id, "round.cancelled", cancellation)
        ):
            log.warning(
                "round cancelled", round_id=round_id, actor=actor, reason=cancellation.reason
            )
        elif calls.cancellation is not None:
            return CANCELLING  # an earlier cancellation is ending it
        elif calls.publishing:
            why = "the round was publishing its results at the partners"
            self._audit_cancel(round_id, "round.cancel_refused", cancellation, refused=why)
            return PUBLISHING
        else:
            why = "the round was already ending by itself"
            self._audit_cancel(round_id, "round.cancel_refused", cancellation, refused=why)
        if not calls.ended.wait(wait):
            return CANCELLING
        row = self.store.round(round_id)
        return row.state if row is not None else CANCELLING

    def _audit_cancel(
        self, round_id: str, event: str, cancellation: Cancellation, *, refused: str = ""
    ) -> None:
        row = self.store.round(round_id)
        details: dict[str, object] = {"reason": cancellation.reason}
        if row is not None:
            details["phase"] = row.phase
        if refused:
            details["refused"] = refused
        self.audit.append(
            event,
            actor=cancellation.actor,
            on_behalf_of=self.config.network,
            access_point=cancellation.access_point,
            action="E",
            round_id=round_id,
            details=details,
        )

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
        return self.run_attempt(
            purpose_id,
            initiated_by=initiated_by,
            access_point=access_point,
            reason=reason,
            progress=progress,
        ).summary

    def run_attempt(
        self,
        purpose_id: str,
        *,
        initiated_by: str,
        access_point: str,
        reason: str = "",
        progress: Progress | None = None,
    ) -> Attempt:
        """`run`, saying also whether the failure was transient (the scheduler retries those).

        Raises ConfigError, audited as `round.rejected`, when no round can be made at all
        (unknown purpose, unregistered partner, roster out of date).
        """
        if not ID_RE.fullmatch(purpose_id):
            # Never echoed: whatever was typed there is not a purpose id.
            message = "that is not a purpose id (lowercase letters, digits, dashes)"
            self._operator_error(initiated_by, access_point, message)
            raise ConfigError(message)
        purpose = self.store.purpose(purpose_id)
        if purpose is None:
            self._operator_error(initiated_by, access_point, f"unknown purpose {purpose_id!r}")
            raise ConfigError(f"unknown purpose {purpose_id!r} (see: psi-coordinator purpose list)")
        retired = self.store.retirement(purpose_id)
        if retired is not None:
            message = (
                f"purpose {purpose_id!r} was retired on {retired.retired_at[:10]} by "
                f"{retired.retired_by}: no round of it runs again"
            )
            self._operator_error(initiated_by, access_point, message)
            raise ConfigError(message)
        mode = MODES[purpose.mode]
        attempt = self._execute(
            purpose,
            mode,
            initiated_by=initiated_by,
            access_point=access_point,
            reason=safe_reason(reason),
            emit=progress or (lambda _e: None),
        )
        if self.on_end is not None:
            try:
                self.on_end(attempt.summary)
            except Exception:  # counting a round never changes how it ended
                log.exception("round observer failed", round_id=attempt.summary.round_id)
        return attempt

    def unreachable(self, purpose_id: str, *, timeout: float = PREFLIGHT_SECONDS) -> dict[str, str]:
        """The purpose's partners whose node does not answer its health check now, and why.

        The scheduler asks before it proposes a round: a consent counts toward a node's
        min_round_interval_hours even when the round then fails, so a round proposed while
        one node is down would have the others refuse its retry. Empty for a purpose this
        runner cannot make a round of (`run_attempt` says why, audited).
        """
        purpose = self.store.purpose(purpose_id) if ID_RE.fullmatch(purpose_id) else None
        if purpose is None:
            return {}
        partners = [self.store.partner(pid) for pid in purpose.partners]
        active = [p for p in partners if p is not None and p.active]
        if not active:
            return {}

        def probe(partner: Partner) -> str | None:
            peer = self._connect(partner)
            try:
                with translated():
                    answer = health_pb2_grpc.HealthStub(peer.channel).Check(
                        health_pb2.HealthCheckRequest(service=NODE_SERVICE), timeout=timeout
                    )
            except PeerError as exc:
                return str(exc)
            finally:
                peer.channel.close()
            if answer.status != health_pb2.HealthCheckResponse.SERVING:
                name = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
                return f"its health check answers {name}"
            return None

        with ThreadPoolExecutor(max_workers=len(active), thread_name_prefix="preflight") as ex:
            answers = list(ex.map(probe, active))
        return {p.id: why for p, why in zip(active, answers, strict=True) if why is not None}

    def _execute(
        self,
        purpose: Purpose,
        mode: RoundMode,
        *,
        initiated_by: str,
        access_point: str,
        reason: str,
        emit: Progress,
    ) -> Attempt:
        """One round's lifecycle, for every mode: manifest, consent, the mode's run, its ending."""
        partners = self._registered(purpose, initiated_by, access_point)
        roster = self._roster(partners, initiated_by, access_point)
        now = self.now()
        round_id = new_round_id(now)
        order = [p.id for p in partners]
        signed = sign_manifest(
            # Read for every round: `rotate-signing-key` may have replaced it meanwhile.
            signing.load_signing_key(self.config.signing_key),
            round_id=round_id,
            network=self.config.network,
            purpose=purpose,
            partners=order,
            now=now,
            ttl_seconds=self.config.manifest_ttl_seconds,
            initiated_by=initiated_by,
            roster_sha256=roster.digest,
            chunk_points=self.config.chunk_points,
            # Every node logs this head and signs it back: a log later cut off or rewritten
            # before it is caught by anyone holding a node's log (kruispunt.audit.witness).
            audit_head=head_to_proto(self.audit.head()),
        )
        state = RoundState(
            round_id=round_id,
            purpose=purpose,
            partners=order,
            manifest_sha256=hashlib.sha256(signed.manifest).digest(),
            basis=f"{purpose.id} v{purpose.version}; covenant {purpose.covenant_id}",
            roster=roster,
            chunk_points=self.config.chunk_points,
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
                "threshold": purpose.threshold,
                **mode.created_details(purpose),
                "manifest_sha256": state.manifest_sha256.hex(),
                "roster_sha256": roster.digest_hex,
                "reason": reason,
            },
        )
        cancel = threading.Event()
        calls = RoundCalls(cancel)
        with self._lock:
            self._cancel[round_id] = calls
        peers = {p.id: self._connect(p, calls) for p in partners}
        bound = log.bind(round_id=round_id, purpose=purpose.id)
        bound.info("round started", mode=purpose.mode, partners=order, initiated_by=initiated_by)
        context = RoundContext(
            self.config, self.store, self.audit, peers, emit=emit, cancel=cancel, now=self.now
        )
        context.report(state, "propose", f"round {round_id} for {purpose.id}: asking consent")
        try:
            self._collect_deletions(context, state)
            self._propose(context, state, signed)
            mode.run(context, state)
        except RoundFailed as exc:
            cancelled = calls.end()
            if cancelled is not None and not isinstance(exc, _Refused):
                # Whatever a cut-off call raised, the round ends as the operator asked.
                return Attempt(
                    self._fail(state, peers, ABORTED, cancelled.describe(), emit, cancelled)
                )
            terminal = (
                REFUSED
                if isinstance(exc, _Refused)
                else (ABORTED if isinstance(exc, RoundCancelled) else FAILED)
            )
            # Unreachable partners are worth a retry only while no partner published.
            transient = isinstance(exc, PartnersUnreachable) and not state.committed
            summary = self._fail(
                state, peers, terminal, str(exc), emit, cancelled, transient=transient
            )
            return Attempt(summary, transient)
        except Exception as exc:  # a bug must still end the round cleanly
            cancelled = calls.end()
            if cancelled is not None:  # a call raced the closing of its channel
                return Attempt(
                    self._fail(state, peers, ABORTED, cancelled.describe(), emit, cancelled)
                )
            bound.exception("round crashed")
            return Attempt(
                self._fail(state, peers, FAILED, f"internal error: {type(exc).__name__}", emit)
            )
        finally:
            with self._lock:
                self._cancel.pop(round_id, None)
            for peer in peers.values():
                peer.channel.close()
            calls.ended.set()
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
        context.report(state, "done", "round completed", summary=summary)
        return Attempt(summary)

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
                with translated():
                    peer.stub.Abort(
                        node_pb2.AbortRequest(round_id=round_id, reason=reason), timeout=10
                    )
                confirmed.append(pid)
            except PeerError as exc:
                log.warning("abort not delivered", round_id=round_id, partner=pid, reason=str(exc))
            finally:
                peer.channel.close()
        return confirmed

    # -- deletion receipts ------------------------------------------------------------------

    def _collect_deletions(self, context: RoundContext, state: RoundState) -> None:
        """Take every partner's outstanding deletion receipts (`coordinator.deletions`).

        The first contact of every round; a partner that cannot answer is asked again at
        the next one, and the round goes on either way.
        """
        timeout = min(10.0, self.config.phase_timeout_seconds)

        def ask(pid: str, peer: Peer) -> Collected:
            after = self.store.last_deletion_seq(pid)
            answer = peer.stub.Deletions(
                node_pb2.DeletionsRequest(after_seq=after), timeout=timeout
            )
            return take_receipts(
                self.store,
                self.audit,
                network=self.config.network,
                partner=pid,
                # A receipt signed before a rotation verifies during its overlap window.
                key=state.roster.signing_keys(pid, self.now()),
                answer=answer,
                after_seq=after,
                now=self.now(),
            )

        _, missed = fan_out({pid: context.peers[pid] for pid in state.partners}, "deletions", ask)
        for pid, why in missed.items():
            log.warning(
                "deletion receipts not collected; asked again at the next contact",
                round_id=state.round_id,
                partner=pid,
                reason=why,
            )

    # -- consent ----------------------------------------------------------------------------

    def _propose(
        self, context: RoundContext, state: RoundState, signed: common_pb2.SignedManifest
    ) -> None:
        """Send the signed manifest to every partner and check each signed answer.

        Each answer is verified and audited (consent.given with its set size, or
        consent.refused) as soon as it arrives, in that partner's own call: a round that
        fails later, or because another partner did not answer, still has on record
        every consent it received.
        """
        t0 = time.monotonic()
        answers, errors = fan_out_errors(
            {pid: context.peers[pid] for pid in state.partners},
            "propose",
            lambda pid, peer: self._take_answer(
                context, state, pid, peer.stub.Propose(signed, timeout=context.timeout)
            ),
        )
        if errors:
            raise round_failure("propose", errors)
        refusals = []
        for pid in state.partners:
            signed_consent, consent = answers[pid]
            if not consent.granted:
                refusals.append(f"{pid}: {consent.reason}")
                continue
            if consent.set_size > state.purpose.max_set_size:
                refusals.append(f"{pid}: set size {consent.set_size} exceeds the purpose maximum")
                continue
            if consent.roster_sha256 != state.roster.digest:
                refusals.append(f"{pid}: consented for another partner roster")
                continue
            state.consents[pid] = signed_consent
            state.set_sizes[pid] = consent.set_size
            state.excluded[pid] = consent.excluded_count
            if consent.HasField("objected_count"):
                state.objected[pid] = consent.objected_count
            state.invalid[pid] = consent.invalid_count
        if refusals:
            raise _Refused("consent refused: " + "; ".join(refusals))
        context.record(
            state,
            "set_sizes",
            "",
            set_sizes=dict(state.set_sizes),
            previous=self._previous_sizes(state),
        )
        state.phases["propose"] = time.monotonic() - t0
        context.report(
            state,
            "propose",
            "all partners consented: set sizes "
            + ", ".join(f"{p}={n}" for p, n in state.set_sizes.items()),
        )
        context.check_cancel()

    def _take_answer(
        self,
        context: RoundContext,
        state: RoundState,
        pid: str,
        signed_consent: common_pb2.SignedConsent,
    ) -> tuple[common_pb2.SignedConsent, common_pb2.Consent]:
        """Verify one partner's signed answer, then store and audit it at once.

        Raises RoundFailed (that partner's failure) if the answer does not verify.
        The audit event carries the node's own audit head from the consent, so a node
        log later cut off before it is caught.
        """
        # The partner's key, or its previous one within a rotation's overlap window.
        key = state.roster.signing_keys(pid, self.now())
        try:
            consent = verify_consent(
                signed_consent,
                key,
                round_id=state.round_id,
                partner_id=pid,
                manifest_sha256=state.manifest_sha256,
            )
        except KruispuntError as exc:
            raise RoundFailed(f"consent does not verify ({exc})") from None
        self.store.record_consent(
            state.round_id,
            pid,
            consent.granted,
            consent.reason,
            signed_consent.consent,
            signed_consent.signature,
        )
        heads = _witnessed(consent)
        if not consent.granted:
            context.record(state, "consent.refused", pid, reason=consent.reason, **heads)
        else:
            context.record(
                state,
                "consent.given",
                pid,
                set_size=consent.set_size,
                legal_basis=consent.legal_basis,
                excluded=consent.excluded_count,
                invalid=consent.invalid_count,
                **_objected(consent),
                **heads,
            )
        return signed_consent, consent

    # -- helpers ---------------------------------------------------------------------------

    def _registered(self, purpose: Purpose, actor: str, access_point: str) -> list[Partner]:
        found = []
        for pid in purpose.partners:
            partner = self.store.partner(pid)
            if partner is None or not partner.active:
                # A deactivated partner is never asked: no channel is opened to it.
                state = "is not registered" if partner is None else "is deactivated"
                msg = f"purpose {purpose.id!r} names partner {pid!r}, which {state}"
                self._operator_error(actor, access_point, msg)
                raise ConfigError(msg)
            found.append(partner)
        return found

    def _roster(self, partners: list[Partner], actor: str, access_point: str) -> Roster:
        """The roster the partners accepted; it must still match the registry for them."""
        try:
            roster = load_roster(roster_path(self.config))
        except ConfigError as exc:
            message = f"{exc} (see: psi-coordinator roster export)"
            self._operator_error(actor, access_point, message)
            raise ConfigError(message) from None
        manifest_key = signing.public_key_bytes(
            signing.load_signing_key(self.config.signing_key).public_key()
        )
        if roster.coordinator_signing_key != manifest_key:
            # Nodes check the manifest against the roster's coordinator key (a rotation).
            message = (
                "the partner roster names another coordinator signing key than this "
                "coordinator's: run psi-coordinator roster export and have every partner "
                "accept the new one"
            )
            self._operator_error(actor, access_point, message)
            raise ConfigError(message)
        for partner in partners:
            if (
                partner.id not in roster.ids
                or roster.partner(partner.id).signing_key != partner.signing_key
            ):
                message = (
                    f"the partner roster is out of date for {partner.id!r}: run "
                    "psi-coordinator roster export and have every partner accept the new one"
                )
                self._operator_error(actor, access_point, message)
                raise ConfigError(message)
        return roster

    def _operator_error(self, actor: str, access_point: str, message: str) -> None:
        self.audit.append(
            "round.rejected",
            actor=actor,
            on_behalf_of=self.config.network,
            access_point=access_point,
            action="E",
            details={"reason": safe_reason(message)},
        )

    def _connect(self, partner: Partner, calls: RoundCalls | None = None) -> Peer:
        """A channel to `partner`'s node; one of the round's `calls` if given (cancellable)."""
        key, cert, _ca = self._tls
        # Only the certificate in the registry: a renewed one supersedes the old at once.
        channel = transport.pinned_channel(
            partner.address,
            Identity.partner(self.config.network, partner.id),
            key_pem=key,
            cert_pem=cert,
            pinned_pem=partner.cert_pem.encode(),
        )
        calling = calls.channel(channel) if calls is not None else channel
        return Peer(partner, channel, node_pb2_grpc.PsiNodeStub(calling))

    def _fail(
        self,
        state: RoundState,
        peers: dict[str, Peer],
        terminal: str,
        reason: str,
        emit: Progress,
        cancelled: Cancellation | None = None,
        *,
        transient: bool = False,
    ) -> coordinator_pb2.RoundSummary:
        bound = log.bind(round_id=state.round_id)
        bound.warning("round ended without results", state=terminal, reason=reason)
        # A node that committed keeps its results (no abort can remove them): tell the others.
        pending = {pid: peer for pid, peer in peers.items() if pid not in state.committed}
        if cancelled is None:
            self._abort_everywhere(state.round_id, reason, pending)
        else:
            # The cancellation closed the round's channels: tell the partners on new ones.
            fresh = {pid: self._connect(peer.partner) for pid, peer in pending.items()}
            try:
                self._abort_everywhere(state.round_id, reason, fresh)
            finally:
                for peer in fresh.values():
                    peer.channel.close()
        summary = self._summary(state, terminal, reason)
        self.store.finish_round(
            state.round_id, terminal, reason, self.now().isoformat(), summary_dict(summary)
        )
        details: dict[str, object] = {"state": terminal, "reason": reason[:1000]}
        # A cancelled round ends as its operator's act; any other ending is the coordinator's.
        by = cancelled if cancelled is not None and terminal == ABORTED else None
        if by is not None:
            details["cancelled_by"] = by.actor
        if transient:
            # Only unreachable or slow partners: a scheduled round is run again.
            details["transient"] = True
        self.audit.append(
            "round.failed" if terminal != ABORTED else "round.aborted",
            actor=by.actor if by is not None else "coordinator",
            on_behalf_of=self.config.network,
            access_point=by.access_point if by is not None else "coordinator",
            action="E",
            basis=state.basis,
            round_id=state.round_id,
            details=details,
        )
        emit(round_event(state.round_id, "failed", reason, summary=summary))
        return summary

    def _abort_everywhere(self, round_id: str, reason: str, peers: dict[str, Peer]) -> None:
        """Tell every partner, at once, to drop the round; remember who could not be told."""
        timeout = min(10.0, self.config.phase_timeout_seconds)
        request = node_pb2.AbortRequest(round_id=round_id, reason=reason)
        _, missed = fan_out(
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

    def _previous_sizes(self, state: RoundState) -> dict[str, int]:
        for row in self.store.rounds(purpose_id=state.purpose.id, limit=20):
            if row.id != state.round_id and row.state == COMPLETED:
                parts = row.summary.get("partners", {})
                return {p: int(v.get("set_size", 0)) for p, v in parts.items()}
        return {}

    def _summary(
        self, state: RoundState, terminal: str, reason: str
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
                    objected_count=state.objected.get(p),
                )
                for p in state.partners
            ],
            phases=[
                coordinator_pb2.PhaseTiming(phase=k, seconds=v) for k, v in state.phases.items()
            ],
            overlap_histogram=state.histogram,
            seconds=time.monotonic() - state.started,
        )


def _objected(consent: common_pb2.Consent) -> dict[str, object]:
    """The consent's objected count as an audit detail, only if the node reported it apart
    (a node from before the field counts its objected rows in `excluded`)."""
    if consent.HasField("objected_count"):
        return {"objected": consent.objected_count}
    return {}


def _witnessed(consent: common_pb2.Consent) -> dict[str, object]:
    """The audit heads a consent carries, as audit details: the node's own head and the
    coordinator head it witnessed in the manifest (each only if the consent has one)."""
    out: dict[str, object] = {}
    for name, message in (
        ("node_head", consent.node_audit_head),
        ("witnessed_head", consent.coordinator_audit_head),
    ):
        head: ChainHead | None = head_from_proto(message)
        if head is not None:
            out[name] = head.as_details()
    return out


class _Refused(RoundFailed):
    """At least one partner refused consent."""
