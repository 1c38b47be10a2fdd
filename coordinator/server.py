"""The coordinator process: the admin gRPC service for operators and the round scheduler.

Only the coordinator opens connections to nodes (a star); its own server
listens on loopback for the operator CLI, which authenticates with the
personal certificate of the operator running it (`psi-coordinator operator
add`; init issues the installing user's). The interceptor admits only
registered certificates of operators not removed (`coordinator.operators`),
and every call is that person's in the audit log.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc
import structlog
from grpc_health.v1 import health

from coordinator.audit import CoordinatorAudit, open_audit
from coordinator.certs import certificates
from coordinator.config import CoordinatorConfig
from coordinator.membership import CertificateDenyList
from coordinator.operators import OperatorGate, adopt_configured_operator
from coordinator.rounds import RoundRunner
from coordinator.schedule import next_run
from coordinator.store import ABORTED, Store
from kruispunt import transport
from kruispunt.errors import UnknownRound
from kruispunt.expiry import ExpiryReminder
from kruispunt.hardening import disable_core_dumps
from kruispunt.service import run_until_signalled
from kruispunt.v1 import coordinator_pb2, coordinator_pb2_grpc

log = structlog.get_logger("coordinator.server")

SERVICE = "kruispunt.v1.Coordinator"
GRACE_SECONDS = 10.0


class CoordinatorServicer(coordinator_pb2_grpc.CoordinatorServicer):
    """Operator calls: run a round (streaming progress), cancel one."""

    def __init__(self, runner: RoundRunner) -> None:
        self.runner = runner

    def RunRound(  # noqa: N802 - gRPC method names
        self, request: coordinator_pb2.RunRoundRequest, context: grpc.ServicerContext
    ) -> Iterator[coordinator_pb2.RoundEvent]:
        actor = f"operator:{transport.current_peer().name}"
        events: queue.Queue[coordinator_pb2.RoundEvent | BaseException | None] = queue.Queue()

        def work() -> None:
            try:
                self.runner.run(
                    request.purpose_id,
                    initiated_by=actor,
                    access_point=f"admin-api {context.peer()}",
                    reason=request.reason,
                    progress=events.put,
                )
            except BaseException as exc:  # handed to the stream, which raises it at the edge
                events.put(exc)
            finally:
                events.put(None)

        # The round belongs to the coordinator: it goes on if the operator's CLI goes away.
        threading.Thread(target=work, name="round", daemon=True).start()
        while True:
            item = events.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def CancelRound(  # noqa: N802
        self, request: coordinator_pb2.CancelRoundRequest, context: grpc.ServicerContext
    ) -> coordinator_pb2.RoundSummary:
        state = self.runner.cancel(
            request.round_id,
            actor=f"operator:{transport.current_peer().name}",
            access_point=f"admin-api {context.peer()}",
            reason=request.reason,
        )
        if state is None:
            raise UnknownRound("no such round running")
        return coordinator_pb2.RoundSummary(round_id=request.round_id, state=state)


@dataclass
class CoordinatorServer:
    """A running coordinator: server, runner, scheduler."""

    server: grpc.Server
    port: int
    runner: RoundRunner
    store: Store
    audit: CoordinatorAudit
    health: health.HealthServicer
    _stop: threading.Event
    _scheduler: threading.Thread

    def stop(self, grace: float | None = GRACE_SECONDS) -> None:
        """Stop accepting calls; rounds in flight get `grace` seconds, then channels close."""
        self.health.enter_graceful_shutdown()
        self._stop.set()
        self.server.stop(grace).wait()
        self._scheduler.join(timeout=5)


INTERRUPTED = "coordinator restarted while the round was running"


def abort_interrupted(
    store: Store, audit: CoordinatorAudit, network: str, now: datetime
) -> list[str]:
    """Mark rounds left 'running' by a previous process as aborted (nothing is delivered)."""
    interrupted = store.running_rounds()
    for round_id in interrupted:
        reason = INTERRUPTED
        store.finish_round(round_id, ABORTED, reason, now.isoformat(), {})
        audit.append(
            "round.aborted",
            actor="coordinator",
            on_behalf_of=network,
            access_point="coordinator",
            action="E",
            round_id=round_id,
            details={"state": ABORTED, "reason": reason},
        )
        log.warning("interrupted round aborted", round_id=round_id)
    return interrupted


def create_server(
    config: CoordinatorConfig,
    *,
    now: Callable[[], datetime] | None = None,
    scheduler_tick: float = 30.0,
) -> CoordinatorServer:
    """Open the database, abort interrupted rounds, start the admin server and scheduler."""
    clock = now or (lambda: datetime.now(UTC))
    store = Store(config.database)
    audit = open_audit(config)
    interrupted = abort_interrupted(store, audit, config.network, clock())
    adopt_configured_operator(config, store, audit)
    runner = RoundRunner(config, store, audit, now=clock)
    if interrupted:
        # Tell the nodes too, so they drop keys and staged results now, not at their idle timeout.
        threading.Thread(
            target=lambda: [runner.abort_at_nodes(r, INTERRUPTED) for r in interrupted],
            name="abort-interrupted",
            daemon=True,
        ).start()
    server, port, health_servicer = transport.start_secure_server(
        service=SERVICE,
        register=lambda srv: coordinator_pb2_grpc.add_CoordinatorServicer_to_server(
            CoordinatorServicer(runner), srv
        ),
        network=config.network,
        roles=["operator"],
        key_path=config.tls_key,
        cert_path=config.tls_cert,
        ca_path=config.tls_ca,
        listen=config.listen,
        admit=OperatorGate(store, audit, config.network),
        deny=CertificateDenyList(store),
    )
    stop = threading.Event()
    scheduler = threading.Thread(
        target=_schedule_loop,
        args=(config, runner, clock, stop, scheduler_tick),
        name="scheduler",
        daemon=True,
    )
    scheduler.start()
    log.info(
        "coordinator serving",
        network=config.network,
        port=port,
        schedules=[f"{s.purpose} @ {s.cron}" for s in config.schedules],
    )
    return CoordinatorServer(server, port, runner, store, audit, health_servicer, stop, scheduler)


def _schedule_loop(
    config: CoordinatorConfig,
    runner: RoundRunner,
    clock: Callable[[], datetime],
    stop: threading.Event,
    tick: float,
) -> None:
    """Start each scheduled purpose's round when its cron time comes (local time); retry
    aborts that a partner missed; warn daily about certificates that expire within 30 days."""
    reminder = ExpiryReminder()
    due = {s: next_run(s.cron, clock().astimezone()) for s in config.schedules}
    while not stop.wait(tick):
        now = clock().astimezone()
        try:
            runner.retry_aborts()
            for warning in reminder.warnings(certificates(config), now):
                log.warning("certificate expires soon", detail=warning)
        except Exception:
            log.exception("housekeeping failed")
        for sched, when in list(due.items()):
            if when > now:
                continue
            due[sched] = next_run(sched.cron, now)
            log.info("scheduled round starting", purpose=sched.purpose, cron=sched.cron)
            try:
                runner.run(
                    sched.purpose,
                    initiated_by="scheduler",
                    access_point="scheduler",
                    reason=f"schedule {sched.cron}",
                )
            except Exception:
                log.exception("scheduled round could not start", purpose=sched.purpose)


def serve(config: CoordinatorConfig) -> int:
    """Run the coordinator until SIGTERM or SIGINT; returns the exit code."""
    # Before any key is loaded: signing keys and a round's tags must never reach a core file.
    disable_core_dumps()
    srv = create_server(config)
    return run_until_signalled(
        f"psi-coordinator {config.network}: admin service on port {srv.port}", srv.stop
    )
