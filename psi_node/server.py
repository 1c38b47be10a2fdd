"""The PsiNode gRPC service: a thin translation between messages and the RoundManager.

`create_server(config)` builds a started-but-not-waiting server and returns it
with its bound port (tests bind port 0); `serve(directory)` runs one until
SIGTERM/SIGINT, then stops gracefully, aborting rounds in flight.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import grpc
import structlog
from grpc_health.v1 import health

from kruispunt import pki, signing, transport
from kruispunt.errors import (
    AttackRefused,
    ConfigError,
    InvalidPoint,
    ProtocolError,
    ResourceLimit,
    UnknownRound,
)
from kruispunt.expiry import ExpiryReminder
from kruispunt.hardening import disable_core_dumps
from kruispunt.metrics import MetricsServer, RoundMetrics, serve_metrics
from kruispunt.roster import load_agreement_key
from kruispunt.running import forget_running, record_running
from kruispunt.service import run_until_signalled
from kruispunt.v1 import common_pb2, node_pb2, node_pb2_grpc
from psi_node import oprf
from psi_node.audit import NodeAudit
from psi_node.certs import certificates
from psi_node.config import NodeConfig
from psi_node.modes.network import Received
from psi_node.pins import CoordinatorPin
from psi_node.rounds import RoundManager

log = structlog.get_logger("psi_node.server")

SERVICE = "kruispunt.v1.PsiNode"
T = TypeVar("T")
GRACE_SECONDS = 5.0


def _received(batch: common_pb2.PointBatch) -> Received:
    return Received(batch.offset, batch.points, batch.chain, batch.proof, batch.source)


def _batches(
    request_iterator: Iterator[common_pb2.PointBatch], round_id: str | None = None
) -> tuple[common_pb2.PointBatch | None, Iterator[Received]]:
    """Peek the first batch (it names the round, origin and step), then every chunk."""
    first = next(request_iterator, None)

    def gen() -> Iterator[Received]:
        if first is None:
            return
        yield _received(first)
        for batch in request_iterator:
            if (
                batch.round_id != first.round_id
                or batch.origin != first.origin
                or batch.step != first.step
            ):
                raise ProtocolError("a stream carries one round, origin and step only")
            yield _received(batch)

    return first, gen()


# Errors that mean "this request does not fit": audited as rejections, then returned.
_REJECTIONS = (ProtocolError, InvalidPoint, ResourceLimit, UnknownRound)


class NodeServicer(node_pb2_grpc.PsiNodeServicer):
    """gRPC face of a node's RoundManager; every refused request is audited.

    Propose, Commit and Abort are the calls of every round; each other call
    belongs to one mode, and the manager hands it to that mode's module
    (`psi_node.modes.network`, `psi_node.modes.bilateral`).
    """

    def __init__(self, rounds: RoundManager) -> None:
        self.rounds = rounds

    def _call(self, method: str, round_id: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except _REJECTIONS as exc:
            self.rounds.record_rejection(method, round_id, exc)
            raise

    def _stream(self, method: str, round_id: Callable[[], str], items: Iterator[T]) -> Iterator[T]:
        try:
            yield from items
        except _REJECTIONS as exc:
            self.rounds.record_rejection(method, round_id(), exc)
            raise

    def Propose(  # noqa: N802 - gRPC method names
        self, request: common_pb2.SignedManifest, context: grpc.ServicerContext
    ) -> common_pb2.SignedConsent:
        return self.rounds.propose(request)

    def Blind(  # noqa: N802
        self, request: node_pb2.BlindRequest, context: grpc.ServicerContext
    ) -> Iterator[common_pb2.PointBatch]:
        me = self.rounds.config.partner_id

        def batches() -> Iterator[common_pb2.PointBatch]:
            for offset, packed, chain in self.rounds.blind(request.round_id, request.consents):
                yield common_pb2.PointBatch(
                    round_id=request.round_id, origin=me, offset=offset, points=packed, chain=chain
                )

        return self._stream("Blind", lambda: request.round_id, batches())

    def Evaluate(  # noqa: N802
        self, request_iterator: Iterator[common_pb2.PointBatch], context: grpc.ServicerContext
    ) -> Iterator[common_pb2.PointBatch]:
        seen: list[common_pb2.PointBatch] = []

        def batches() -> Iterator[common_pb2.PointBatch]:
            first, points = _batches(request_iterator)
            if first is None:
                raise ProtocolError("empty evaluate stream")
            seen.append(first)
            evaluated = self.rounds.evaluate(first.round_id, first.origin, first.step, points)
            for offset, packed, chain, proof in evaluated:
                yield common_pb2.PointBatch(
                    round_id=first.round_id,
                    origin=first.origin,
                    step=first.step,
                    offset=offset,
                    points=packed,
                    chain=chain,
                    proof=proof,
                )

        return self._stream("Evaluate", lambda: seen[0].round_id if seen else "", batches())

    def Finalize(  # noqa: N802
        self, request_iterator: Iterator[common_pb2.PointBatch], context: grpc.ServicerContext
    ) -> Iterator[common_pb2.TagBatch]:
        seen: list[common_pb2.PointBatch] = []

        def batches() -> Iterator[common_pb2.TagBatch]:
            first, points = _batches(request_iterator)
            if first is None:
                raise ProtocolError("empty finalize stream")
            seen.append(first)
            if first.origin != self.rounds.config.partner_id:
                raise AttackRefused("finalize carries this node's own set only")
            for root in self.rounds.finalize(first.round_id, points):
                yield common_pb2.TagBatch(round_id=first.round_id, commitment=root)

        return self._stream("Finalize", lambda: seen[0].round_id if seen else "", batches())

    def Reveal(  # noqa: N802
        self, request: node_pb2.RevealRequest, context: grpc.ServicerContext
    ) -> Iterator[common_pb2.TagBatch]:
        def batches() -> Iterator[common_pb2.TagBatch]:
            revealed = self.rounds.reveal(request.round_id, dict(request.roots))
            for offset, tags, salts in revealed:
                yield common_pb2.TagBatch(
                    round_id=request.round_id, offset=offset, tags=tags, salts=salts
                )

        return self._stream("Reveal", lambda: request.round_id, batches())

    def Deliver(  # noqa: N802
        self, request_iterator: Iterator[node_pb2.RoundResults], context: grpc.ServicerContext
    ) -> node_pb2.DeliveryReceipt:
        seen: list[str] = []

        def parts() -> Iterator[node_pb2.RoundResults]:
            for part in request_iterator:
                if not seen:
                    seen.append(part.round_id)
                yield part

        try:
            return self.rounds.deliver(parts())
        except _REJECTIONS as exc:
            self.rounds.record_rejection("Deliver", seen[0] if seen else "", exc)
            raise

    def Commit(  # noqa: N802
        self, request: common_pb2.RoundRef, context: grpc.ServicerContext
    ) -> node_pb2.DeliveryReceipt:
        return self._call("Commit", request.round_id, lambda: self.rounds.commit(request.round_id))

    def Abort(  # noqa: N802
        self, request: node_pb2.AbortRequest, context: grpc.ServicerContext
    ) -> common_pb2.Ack:
        reason = request.reason or "aborted by the coordinator"
        self._call("Abort", request.round_id, lambda: self.rounds.abort(request.round_id, reason))
        return common_pb2.Ack(round_id=request.round_id)

    def BilateralSetup(  # noqa: N802
        self, request: common_pb2.RoundRef, context: grpc.ServicerContext
    ) -> node_pb2.BilateralPayload:
        return self._call(
            "BilateralSetup",
            request.round_id,
            lambda: self.rounds.bilateral_setup(request.round_id),
        )

    def BilateralRequest(  # noqa: N802
        self, request: common_pb2.RoundRef, context: grpc.ServicerContext
    ) -> node_pb2.BilateralPayload:
        return self._call(
            "BilateralRequest",
            request.round_id,
            lambda: self.rounds.bilateral_request(request.round_id),
        )

    def BilateralResponse(  # noqa: N802
        self, request: node_pb2.BilateralPayload, context: grpc.ServicerContext
    ) -> node_pb2.BilateralPayload:
        return self._call(
            "BilateralResponse", request.round_id, lambda: self.rounds.bilateral_response(request)
        )

    def BilateralResult(  # noqa: N802
        self, request: node_pb2.BilateralExchange, context: grpc.ServicerContext
    ) -> node_pb2.DeliveryReceipt:
        return self._call(
            "BilateralResult", request.round_id, lambda: self.rounds.bilateral_result(request)
        )

    def Deletions(  # noqa: N802
        self, request: node_pb2.DeletionsRequest, context: grpc.ServicerContext
    ) -> node_pb2.DeletionReceipts:
        return self.rounds.deletions(request.after_seq)


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not every platform has sched_getaffinity
        return os.cpu_count() or 1


@dataclass
class NodeServer:
    """A running node: the gRPC server, its round manager and background housekeeping."""

    server: grpc.Server
    port: int
    rounds: RoundManager
    health: health.HealthServicer
    _stop: threading.Event
    _janitor: threading.Thread
    #: The Prometheus endpoint, when `[metrics]` configures one.
    metrics_server: MetricsServer | None = None

    def stop(self, grace: float | None = GRACE_SECONDS) -> None:
        """Refuse new calls, let calls in flight finish for `grace` seconds, abort rounds."""
        self.health.enter_graceful_shutdown()
        self._stop.set()
        self.server.stop(grace).wait()
        self.rounds.close()
        self._janitor.join(timeout=5)
        if self.metrics_server is not None:
            self.metrics_server.stop()
        forget_running(self.rounds.config.state_dir)

    def reload(self) -> None:
        """Read node.toml's policy and inputs now (SIGHUP); a file that does not load is
        logged and the next manifest refused until it does."""
        try:
            self.rounds.reload_config()
        except ConfigError as exc:
            log.error("node.toml not reloaded", error=str(exc))
        else:
            log.info("node.toml reloaded on request")


def create_server(
    config: NodeConfig,
    *,
    now: Callable[[], datetime] | None = None,
    housekeeping_seconds: float = 60.0,
    idle_timeout: float | None = None,
    max_partners: int = 64,
) -> NodeServer:
    """Build and start a node server from its config; returns it with the bound port.

    The server records what it runs with in state/serving.json (`kruispunt.running`),
    again whenever it reads node.toml anew, so `psi-node doctor` can tell a file
    change it has not picked up.
    """
    cert = pki.load_certificate(config.tls_cert)
    identity = pki.identity_from_certificate(cert)
    if identity.role != "partner" or identity.name != config.partner_id:
        raise ConfigError(
            f"{config.tls_cert}: certificate is for {identity.uri}, "
            f"but node.toml says partner_id = {config.partner_id!r}"
        )
    signing_key = signing.load_signing_key(config.signing_key)
    coordinator_key = signing.read_public_key(
        config.coordinator_public_key, missing="no coordinator key (psi-node install-cert)"
    )
    audit = NodeAudit(config.audit_log, signing_key, key_path=config.signing_key)
    clock = now or (lambda: datetime.now(UTC))
    metrics = RoundMetrics("node")
    audit.add_observer(metrics.observe_event)
    metrics.watch_certificates(lambda: certificates(config), clock)
    started_at = clock()

    def recorded(current: NodeConfig) -> None:
        try:
            record_running(
                current.state_dir,
                sha256=current.sha256,
                fixed_sha256=current.fixed_sha256,
                started_at=started_at,
                loaded_at=clock(),
            )
        except OSError as exc:  # doctor then cannot compare; serving goes on
            log.warning("cannot record the running config", error=exc.strerror)

    # One thread pool runs the group work of every round (kruispunt.native); `workers`
    # sizes it, the CPU count by default.
    oprf.set_workers(config.workers or _cpu_count())
    rounds = RoundManager(
        config,
        network=identity.network,
        signing_key=signing_key,
        agreement_key=load_agreement_key(config.agreement_key),
        coordinator_key=coordinator_key,
        audit=audit,
        now=clock,
        idle_timeout=idle_timeout if idle_timeout is not None else config.idle_timeout_seconds,
        metrics=metrics,
        on_reload=recorded,
    )
    rounds.discard_stale()
    recorded(config)
    rounds.sign_missing_receipts()
    server, port, health_servicer = transport.start_secure_server(
        service=SERVICE,
        register=lambda srv: node_pb2_grpc.add_PsiNodeServicer_to_server(NodeServicer(rounds), srv),
        network=identity.network,
        roles=["coordinator"],
        key_path=config.tls_key,
        cert_path=config.tls_cert,
        ca_path=config.tls_ca,
        listen=config.listen,
        admit=CoordinatorPin(config.state_dir),
        # Every partner's set streams through this node at once during evaluation.
        max_workers=max(16, 2 * max_partners),
    )
    stop = threading.Event()

    reminder = ExpiryReminder()

    def housekeeping() -> None:
        while True:
            try:
                rounds.expire_idle()
                rounds.purge_results()
                for warning in reminder.warnings(certificates(config), rounds.now()):
                    log.warning("certificate expires soon", detail=warning)
            except Exception:
                log.exception("housekeeping failed")
            if stop.wait(housekeeping_seconds):
                return

    janitor = threading.Thread(target=housekeeping, name="node-housekeeping", daemon=True)
    janitor.start()
    metrics_server = serve_metrics(config.metrics, metrics) if config.metrics else None
    log.info("node serving", partner=config.partner_id, network=identity.network, port=port)
    return NodeServer(server, port, rounds, health_servicer, stop, janitor, metrics_server)


def serve(config: NodeConfig) -> int:
    """Run a node until SIGTERM or SIGINT; returns the process exit code."""
    # Before any key is loaded: round keys and identifiers must never reach a core file.
    disable_core_dumps()
    node = create_server(config)
    return run_until_signalled(
        f"psi-node {config.partner_id}: serving on port {node.port}", node.stop, reload=node.reload
    )
