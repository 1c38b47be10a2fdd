"""coordinator.toml: the network, where the admin service listens, keys, round limits, schedule."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kruispunt.errors import ConfigError
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
            sha256=whole,
            fixed_sha256=fixed,
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{src}: {exc}") from None
