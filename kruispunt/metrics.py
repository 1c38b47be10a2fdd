"""The Prometheus metrics both servers offer: off unless configured, on loopback by default.

`[metrics] listen = "127.0.0.1:9464"` in node.toml or coordinator.toml starts an HTTP
endpoint (prometheus-client's own server, `/metrics`) that the monitoring every IT team
runs can scrape. It has no authentication, so an address other than loopback is refused
unless the table says `allow_remote = true` (and a firewall then guards the port).

What is counted is what the local operator already sees in `round show`, the audit log
or the node's own log: rounds by final state, the time each phase took, points processed,
refusals by a fixed reason class, and the days left on each certificate. Never an
identifier, never a reason's free text (a label is one of a fixed set of words), and at a
node never another partner's set size.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal, TypeVar

import structlog
from cryptography import x509
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from kruispunt.audit.event import AuditEvent
from kruispunt.errors import ConfigError
from kruispunt.expiry import days_left

__all__ = [
    "DEFAULT_LISTEN",
    "PHASE_BUCKETS",
    "MetricsConfig",
    "MetricsServer",
    "RoundMetrics",
    "load_metrics_config",
    "serve_metrics",
]

log = structlog.get_logger("kruispunt.metrics")

T = TypeVar("T")

#: The address `init`'s templates and the docs suggest: Prometheus' node exporter range.
DEFAULT_LISTEN: Final = "127.0.0.1:9464"
#: Phase durations run from a fraction of a second (a small round's propose) to the
#: 30-minute phase deadline.
PHASE_BUCKETS: Final = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0)

Side = Literal["node", "coordinator"]


@dataclass(frozen=True)
class MetricsConfig:
    """Where the metrics endpoint listens (`[metrics]`)."""

    host: str
    port: int
    allow_remote: bool = False

    @property
    def listen(self) -> str:
        """The address as configured, HOST:PORT ([HOST]:PORT for IPv6)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def load_metrics_config(data: Mapping[str, Any], src: str) -> MetricsConfig | None:
    """The `[metrics]` table of a parsed TOML file; None when there is none (metrics off).

    Raises ConfigError naming the file and the field for a malformed address and for an
    address that is not loopback without `allow_remote = true`.
    """
    raw = data.get("metrics")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ConfigError(f"{src}: [metrics] must be a table")
    where = f"{src}: [metrics]"
    listen = raw.get("listen")
    if not isinstance(listen, str) or not listen.strip():
        raise ConfigError(f'{where} needs listen = "{DEFAULT_LISTEN}" (or remove the table)')
    allow_remote = raw.get("allow_remote", False)
    if not isinstance(allow_remote, bool):
        raise ConfigError(f"{where} allow_remote must be true or false")
    host, port = _split_listen(listen, where)
    if not allow_remote and not _is_loopback(host):
        raise ConfigError(
            f"{where} listen {listen!r} is not a loopback address: the endpoint has no "
            "authentication, so keep it on 127.0.0.1 next to your monitoring agent, or set "
            "allow_remote = true and let a firewall admit only your Prometheus"
        )
    return MetricsConfig(host, port, allow_remote)


def _split_listen(listen: str, where: str) -> tuple[str, int]:
    host, sep, port_text = listen.strip().rpartition(":")
    if not sep or not host:
        raise ConfigError(f"{where} listen {listen!r} must be HOST:PORT, e.g. {DEFAULT_LISTEN}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"{where} listen {listen!r}: the port must be a number") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"{where} listen {listen!r}: the port must be 0..65535")
    return host, port


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


class RoundMetrics:
    """One server's metrics in a registry of its own (several servers can share a process).

    Fed from three places: every sealed audit event (`observe_event`, registered with the
    server's audit log), the coordinator's round summaries (`observe_phase`,
    `count_points`) and the node's phase calls (`timed`, `counted`).
    """

    def __init__(self, side: Side) -> None:
        self.side = side
        self.registry = CollectorRegistry()
        self.rounds = Counter(
            "kruispunt_rounds",
            "Rounds that ended here, by final state",
            ["state"],
            registry=self.registry,
        )
        self.phase_seconds = Histogram(
            "kruispunt_phase_duration_seconds",
            "How long each protocol phase of a round took here",
            ["phase"],
            buckets=PHASE_BUCKETS,
            registry=self.registry,
        )
        self.points = Counter(
            "kruispunt_points_processed",
            "Points processed, by phase (node: its own work; coordinator: records matched)",
            ["phase"],
            registry=self.registry,
        )
        self.refusals = Counter(
            "kruispunt_refusals",
            "Refusals, by reason class (never the reason's text)",
            ["reason"],
            registry=self.registry,
        )

    def watch_certificates(
        self,
        certificates: Callable[[], Mapping[str, x509.Certificate]],
        now: Callable[[], datetime],
    ) -> None:
        """Export the days left on each certificate `certificates()` lists, read at scrape."""
        self.registry.register(_CertificateCollector(certificates, now))

    def observe_event(self, event: AuditEvent) -> None:
        """Count what a sealed audit event says ended or was refused (see the tables below)."""
        table = _COORDINATOR_EVENTS if self.side == "coordinator" else _NODE_EVENTS
        kind = table.get(event.event)
        if kind is None:
            return
        counter, label = kind
        if event.event == "round.failed":
            # failed or refused: the coordinator's round.failed carries the final state.
            label = str(event.details.get("state", label))
            if label not in ("failed", "refused"):
                label = "failed"
        if event.event == "consent.refused" and self.side == "node":
            check = event.details.get("check")
            self.refusals.labels(reason=check if check in _NODE_CHECKS else "policy").inc()
        (self.rounds if counter == "rounds" else self.refusals).labels(label).inc()

    def observe_phase(self, phase: str, seconds: float) -> None:
        """One phase of a round took `seconds`."""
        self.phase_seconds.labels(phase=_phase_label(phase)).observe(max(0.0, seconds))

    def count_points(self, phase: str, count: int) -> None:
        """`count` more points processed in `phase`."""
        if count > 0:
            self.points.labels(phase=_phase_label(phase)).inc(count)

    def timed(
        self, phase: str, items: Iterable[T], points: Callable[[T], int] | None = None
    ) -> Iterator[T]:
        """Yield `items`, recording how long the phase took once they are all out (and, with
        `points`, how many points each item held). A phase cut off is not recorded."""
        start = time.monotonic()
        try:
            for item in items:
                if points is not None:
                    self.count_points(phase, points(item))
                yield item
        finally:
            _close(items)  # a stream cut off ends the phase's own generator at once
        self.observe_phase(phase, time.monotonic() - start)

    def counted(self, phase: str, items: Iterable[T], points: Callable[[T], int]) -> Iterator[T]:
        """Yield `items` unchanged, counting the points each holds as processed in `phase`."""
        try:
            for item in items:
                self.count_points(phase, points(item))
                yield item
        finally:
            _close(items)


#: Node refusal classes that audit's `consent.refused` may name in its `check` detail.
_NODE_CHECKS: Final = frozenset({"max_set_change_percent"})

#: Audit events the coordinator counts: (metric, label).
_COORDINATOR_EVENTS: Final[Mapping[str, tuple[str, str]]] = {
    "round.completed": ("rounds", "completed"),
    "round.failed": ("rounds", "failed"),
    "round.aborted": ("rounds", "aborted"),
    "consent.refused": ("refusals", "consent"),
    "round.rejected": ("refusals", "request"),
    "access.refused": ("refusals", "access"),
}

#: Audit events a node counts: (metric, label); its refusals of a round are counted twice,
#: as a round that ended refused and by the check that refused it.
_NODE_EVENTS: Final[Mapping[str, tuple[str, str]]] = {
    "results.written": ("rounds", "completed"),
    "round.aborted": ("rounds", "aborted"),
    "consent.refused": ("rounds", "refused"),
    "manifest.rejected": ("refusals", "manifest"),
    "attack.refused": ("refusals", "attack"),
    "request.rejected": ("refusals", "request"),
}


def _close(items: Iterable[Any]) -> None:
    """Close a generator (its `finally` runs now, not when it is collected)."""
    close = getattr(items, "close", None)
    if callable(close):
        close()


def _phase_label(phase: str) -> str:
    """A phase as a label: its first word ("evaluate step 2" is "evaluate")."""
    word = phase.split()[0] if phase.split() else "unknown"
    return word if word.replace(".", "").replace("_", "").isalnum() else "unknown"


class _CertificateCollector(Collector):
    """Days left on each watched certificate, computed at every scrape."""

    def __init__(
        self,
        certificates: Callable[[], Mapping[str, x509.Certificate]],
        now: Callable[[], datetime],
    ) -> None:
        self._certificates = certificates
        self._now = now

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "kruispunt_certificate_days_left",
            "Days until each certificate this server depends on expires (negative: expired)",
            labels=["certificate"],
        )
        try:
            found = self._certificates()
        except Exception:  # a scrape must answer even when a file or the database does not
            log.exception("certificates unreadable for metrics")
            found = {}
        moment = self._now()
        for label, cert in sorted(found.items()):
            family.add_metric([label], round(days_left(cert, moment), 3))
        yield family


@dataclass
class MetricsServer:
    """A running metrics endpoint; `stop` closes its socket."""

    config: MetricsConfig
    port: int
    _server: Any
    _thread: Any

    def stop(self) -> None:
        """Stop answering scrapes and close the listening socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve_metrics(config: MetricsConfig, metrics: RoundMetrics) -> MetricsServer:
    """Start the HTTP endpoint for `metrics` at `config`'s address; port 0 picks one."""
    try:
        server, thread = start_http_server(config.port, addr=config.host, registry=metrics.registry)
    except OSError as exc:
        raise ConfigError(f"[metrics] cannot listen on {config.listen}: {exc}") from None
    port = int(server.server_port)
    log.info("metrics endpoint serving", listen=f"{config.host}:{port}")
    return MetricsServer(config, port, server, thread)
