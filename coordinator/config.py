"""coordinator.toml: the network, where the admin service listens, keys, round limits, schedule."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kruispunt.errors import ConfigError
from kruispunt.metrics import MetricsConfig, load_metrics_config
from kruispunt.running import settings_digests
from kruispunt.tomlfile import read_toml, resolver, table

CONFIG_NAME = "coordinator.toml"
#: Where `init` writes the audit signing key and its public half (relative to the directory).
AUDIT_KEY = "signing/audit.ed25519"
AUDIT_PUBLIC_KEY = "signing/audit.pub"


@dataclass(frozen=True)
class Schedule:
    """A purpose whose rounds the serving coordinator starts by itself."""

    purpose: str
    cron: str


@dataclass(frozen=True)
class SchedulerConfig:
    """How a scheduled round meets a transient failure, and whom it tells when it gives up.

    A round that failed only because partners were unreachable or too slow is run again,
    up to `retry_attempts` attempts in all, after `retry_base_seconds`, then twice that,
    and so on up to `retry_max_seconds`. When the last attempt fails (or a round fails
    for any other reason) the notification runs: `notify_command` (an argument list, run
    without a shell) and/or a POST of JSON to `notify_webhook`.
    """

    retry_attempts: int = 3
    retry_base_seconds: float = 60.0
    retry_max_seconds: float = 900.0
    notify_command: tuple[str, ...] = ()
    notify_webhook: str = ""
    notify_timeout_seconds: float = 10.0


@dataclass(frozen=True)
class CoordinatorConfig:
    """The coordinator's whole configuration, with every path made absolute."""

    directory: Path
    network: str
    listen: str
    database: Path
    tls_key: Path
    tls_cert: Path
    tls_ca: Path
    ca_key: Path
    signing_key: Path
    signing_public_key: Path
    #: The key that signs the audit log, apart from the manifest key (`[audit]`); a
    #: directory made before the split has no `[audit]` table and signs with the manifest
    #: key (`audit_key_separate` False), which `doctor` reports as a failure.
    audit_key: Path
    audit_public_key: Path
    operator_key: Path
    operator_cert: Path
    manifest_ttl_seconds: int
    phase_timeout_seconds: float
    chunk_points: int
    schedules: tuple[Schedule, ...]
    log_level: str = "info"
    audit_key_separate: bool = True
    scheduler: SchedulerConfig = SchedulerConfig()
    #: The Prometheus endpoint (`[metrics]`); None: off.
    metrics: MetricsConfig | None = None
    #: Digest of coordinator.toml's settings as loaded (`kruispunt.running`).
    sha256: str = ""
    #: The same without [[schedule]], which a serving coordinator reads again on SIGHUP.
    fixed_sha256: str = ""


#: What a serving coordinator reads again on SIGHUP: its schedule.
RELOADED: Mapping[str, tuple[str, ...] | None] = {"schedule": None}


def load_coordinator_config(
    directory: Path, *, env: Mapping[str, str] | None = None
) -> CoordinatorConfig:
    """Load DIR/coordinator.toml; KRUISPUNT_COORDINATOR_LISTEN / KRUISPUNT_LOG_LEVEL override."""
    env = env or {}
    path = directory / CONFIG_NAME
    src = str(path)
    data = read_toml(path)
    main = table(data, "coordinator", src)
    tls = table(data, "tls", src, required=False)
    sign = table(data, "signing", src, required=False)
    audit = table(data, "audit", src, required=False) if "audit" in data else None
    op = table(data, "operator", src, required=False)
    rounds = table(data, "rounds", src, required=False)
    p = resolver(directory)
    schedules = []
    raw_schedules = data.get("schedule", [])
    if not isinstance(raw_schedules, list):
        raise ConfigError(f"{src}: schedule must be an array of tables [[schedule]]")
    for i, raw in enumerate(raw_schedules, start=1):
        if not isinstance(raw, dict) or "purpose" not in raw or "cron" not in raw:
            raise ConfigError(f"{src}: [[schedule]] #{i} needs 'purpose' and 'cron'")
        from coordinator.schedule import parse_cron

        parse_cron(str(raw["cron"]), source=f"{src}: [[schedule]] #{i}")
        schedules.append(Schedule(str(raw["purpose"]), str(raw["cron"])))
    try:
        network = str(main["network"])
    except KeyError:
        raise ConfigError(f"{src}: [coordinator] needs 'network'") from None
    signing_key = p(sign.get("key", "signing/coordinator.ed25519"))
    signing_public_key = p(sign.get("public_key", "signing/coordinator.pub"))
    whole, fixed = settings_digests(data, RELOADED)
    try:
        return CoordinatorConfig(
            directory=directory.resolve(),
            network=network,
            listen=env.get(
                "KRUISPUNT_COORDINATOR_LISTEN", str(main.get("listen", "127.0.0.1:50050"))
            ),
            database=p(main.get("database", "coordinator.db")),
            tls_key=p(tls.get("key", "tls/coordinator.key")),
            tls_cert=p(tls.get("cert", "tls/coordinator.crt")),
            tls_ca=p(tls.get("ca", "ca/ca.crt")),
            ca_key=p(tls.get("ca_key", "ca/ca.key")),
            signing_key=signing_key,
            signing_public_key=signing_public_key,
            audit_key=p(audit.get("key", AUDIT_KEY)) if audit is not None else signing_key,
            audit_public_key=(
                p(audit.get("public_key", AUDIT_PUBLIC_KEY))
                if audit is not None
                else signing_public_key
            ),
            audit_key_separate=audit is not None,
            operator_key=p(op.get("key", "operator/operator.key")),
            operator_cert=p(op.get("cert", "operator/operator.crt")),
            manifest_ttl_seconds=int(rounds.get("manifest_ttl_seconds", 3600)),
            phase_timeout_seconds=float(rounds.get("phase_timeout_seconds", 1800)),
            chunk_points=int(rounds.get("chunk_points", 4096)),
            schedules=tuple(schedules),
            log_level=env.get("KRUISPUNT_LOG_LEVEL", str(main.get("log_level", "info"))),
            scheduler=_scheduler(table(data, "scheduler", src, required=False), src),
            metrics=load_metrics_config(data, src),
            sha256=whole,
            fixed_sha256=fixed,
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{src}: {exc}") from None


def _scheduler(raw: Mapping[str, object], src: str) -> SchedulerConfig:
    """`[scheduler]`: retries and the notification, each field checked with its reason."""
    where = f"{src}: [scheduler]"
    default = SchedulerConfig()
    attempts = raw.get("retry_attempts", default.retry_attempts)
    if isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= 20:
        raise ConfigError(f"{where} retry_attempts must be a whole number from 1 to 20")
    seconds = {}
    for key in ("retry_base_seconds", "retry_max_seconds", "notify_timeout_seconds"):
        value = raw.get(key, getattr(default, key))
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ConfigError(f"{where} {key} must be a number of seconds above 0")
        seconds[key] = float(value)
    if seconds["retry_max_seconds"] < seconds["retry_base_seconds"]:
        raise ConfigError(f"{where} retry_max_seconds must be at least retry_base_seconds")
    command = raw.get("notify_command", [])
    if not isinstance(command, list) or not all(isinstance(a, str) and a for a in command):
        raise ConfigError(
            f"{where} notify_command must be a list of arguments, e.g. "
            '["/usr/local/bin/kruispunt-alert", "--team", "ops"] (it runs without a shell)'
        )
    webhook = raw.get("notify_webhook", "")
    if not isinstance(webhook, str):
        raise ConfigError(f"{where} notify_webhook must be a URL")
    if webhook and not (webhook.startswith("https://") or webhook.startswith("http://")):
        raise ConfigError(f"{where} notify_webhook must be an https:// (or http://) URL")
    return SchedulerConfig(
        retry_attempts=attempts,
        retry_base_seconds=seconds["retry_base_seconds"],
        retry_max_seconds=seconds["retry_max_seconds"],
        notify_command=tuple(command),
        notify_webhook=webhook,
        notify_timeout_seconds=seconds["notify_timeout_seconds"],
    )
