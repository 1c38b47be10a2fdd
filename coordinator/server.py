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
from coordinator.config import CoordinatorConfig, Schedule, load_coordinator_config
from coordinator.membership import CertificateDenyList
from coordinator.operators import OperatorGate, adopt_configured_operator
from coordinator.rounds import RoundRunner
from coordinator.schedule import ScheduledRounds, next_run
from coordinator.store import ABORTED, Store
from kruispunt import transport
from kruispunt.errors import ConfigError, UnknownRound
from kruispunt.expiry import ExpiryReminder
from kruispunt.hardening import disable_core_dumps
from kruispunt.metrics import MetricsServer, RoundMetrics, serve_metrics
from kruispunt.running import forget_running, record_running
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
    #: The scheduler's rounds, with their retries and notifications.
    scheduled: ScheduledRounds
    #: The schedules the scheduler follows; `reload` replaces them.
    schedules: ScheduleBook
    metrics: RoundMetrics
    #: The Prometheus endpoint, when `[metrics]` configures one.
    metrics_server: MetricsServer | None = None

    def stop(self, grace: float | None = GRACE_SECONDS) -> None:
        """Stop accepting calls; rounds in flight get `grace` seconds, then channels close."""
        self.health.enter_graceful_shutdown()
        self._stop.set()
        self.server.stop(grace).wait()
        self._scheduler.join(timeout=5)
        if self.metrics_server is not None:
            self.metrics_server.stop()
        forget_running(self.runner.config.directory)

    def reload(self) -> None:
        """Read coordinator.toml's [[schedule]] again (SIGHUP); the rest needs a restart.

        A file that does not load is logged and the schedule in use kept.
        """
        try:
            fresh = load_coordinator_config(self.runner.config.directory)
        except ConfigError as exc:
            log.error("coordinator.toml not reloaded", error=str(exc))
            return
        self.schedules.replace(fresh.schedules, sha256=fresh.sha256)
        log.info(
            "schedule reloaded", schedules=[f"{s.purpose} @ {s.cron}" for s in fresh.schedules]
        )


class ScheduleBook:
    """The schedules a serving coordinator follows, replaced whole on reload.

    Each replacement is recorded in serving.json (`kruispunt.running`), so
    `psi-coordinator doctor` can say when the file holds a schedule not in effect.
    """

    def __init__(self, config: CoordinatorConfig, started_at: datetime) -> None:
        self._lock = threading.Lock()
        self._schedules = config.schedules
        self._folder = config.directory
        self._fixed_sha256 = config.fixed_sha256
        self._started_at = started_at
        self._record(config.sha256)

    def current(self) -> tuple[Schedule, ...]:
        """The schedules in effect now."""
        with self._lock:
            return self._schedules

    def replace(self, schedules: tuple[Schedule, ...], *, sha256: str) -> None:
        """Follow `schedules` from the scheduler's next tick on."""
        with self._lock:
            self._schedules = schedules
        self._record(sha256)

    def _record(self, sha256: str) -> None:
        try:
            record_running(
                self._folder,
                sha256=sha256,
                fixed_sha256=self._fixed_sha256,
                started_at=self._started_at,
                loaded_at=datetime.now(UTC),
            )
        except OSError as exc:  # doctor then cannot compare; serving goes on
            log.warning("cannot record the running config", error=exc.strerror)


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
    metrics = _round_metrics(config, runner, audit, clock)
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
    scheduled = ScheduledRounds(runner, audit, config, stop)
    metrics_server = serve_metrics(config.metrics, metrics) if config.metrics else None
    book = ScheduleBook(config, clock())
    scheduler = threading.Thread(
        target=_schedule_loop,
        args=(config, book, runner, scheduled, clock, stop, scheduler_tick),
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
    return CoordinatorServer(
        server,
        port,
        runner,
        store,
        audit,
        health_servicer,
        stop,
        scheduler,
        scheduled,
        book,
        metrics,
        metrics_server,
    )


def _round_metrics(
    config: CoordinatorConfig,
    runner: RoundRunner,
    audit: CoordinatorAudit,
    clock: Callable[[], datetime],
) -> RoundMetrics:
    """The coordinator's metrics, fed by its audit log, its rounds' summaries and its
    certificates (served only when `[metrics]` is configured)."""
    metrics = RoundMetrics("coordinator")
    audit.add_observer(metrics.observe_event)

    def ended(summary: coordinator_pb2.RoundSummary) -> None:
        for phase in summary.phases:
            metrics.observe_phase(phase.phase, phase.seconds)
        if summary.state == "completed":
            # What `round show` tells the operator too: the records each partner matched.
            metrics.count_points("matched", sum(p.set_size for p in summary.partners))

    runner.on_end = ended
    metrics.watch_certificates(lambda: certificates(config), clock)
    return metrics


def _schedule_loop(
    config: CoordinatorConfig,
    book: ScheduleBook,
    runner: RoundRunner,
    scheduled: ScheduledRounds,
    clock: Callable[[], datetime],
    stop: threading.Event,
    tick: float,
) -> None:
    """Start each scheduled purpose's round when its cron time comes (local time), with its
    retries (`ScheduledRounds`); retry aborts that a partner missed; warn daily about
    certificates that expire within 30 days."""
    reminder = ExpiryReminder()
    due = {s: next_run(s.cron, clock().astimezone()) for s in book.current()}
    while not stop.wait(tick):
        now = clock().astimezone()
        # A reload (SIGHUP) replaced the schedules: new ones count from now, kept ones keep
        # their next run, removed ones are dropped.
        current = book.current()
        due = {s: due[s] if s in due else next_run(s.cron, now) for s in current}
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
            scheduled.start(sched)


def serve(config: CoordinatorConfig) -> int:
    """Run the coordinator until SIGTERM or SIGINT; returns the exit code."""
    # Before any key is loaded: signing keys and a round's tags must never reach a core file.
    disable_core_dumps()
    srv = create_server(config)
    return run_until_signalled(
        f"psi-coordinator {config.network}: admin service on port {srv.port}",
        srv.stop,
        reload=srv.reload,
    )
