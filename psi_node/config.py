"""node.toml: where a node listens, its keys, its inputs per purpose, and its local policy.

The policy is the organisation's own word on what it takes part in: which
purposes, under which legal basis, with which partners, and how much it lets
the network disclose. A manifest that asks for more is refused.

A serving node reads the policy and inputs again for every manifest (and on SIGHUP):
an organisation that tightens its policy must not be held to the old one until a
restart. What the process was started with (listen address, keys, paths, workers)
stays until it is restarted; `NodeConfig.sha256` and `fixed_sha256` tell the two
apart, so `psi-node doctor` can say which a file change needs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kruispunt.errors import ConfigError
from kruispunt.identifiers import IdentifierKind
from kruispunt.metrics import MetricsConfig, load_metrics_config
from kruispunt.running import settings_digests
from kruispunt.tomlfile import read_toml, resolver, table
from psi_node.inputs import InputSpec

CONFIG_NAME = "node.toml"
DISCLOSURE_RANK = {"count": 0, "partners": 1}
#: A purpose may keep results at most this long unless the policy says otherwise.
DEFAULT_MAX_RETENTION_DAYS = 90
#: Weekly rounds need no more; back-to-back rounds would let sets be differenced.
DEFAULT_MIN_ROUND_INTERVAL_HOURS = 24.0
#: The longest a manifest may stay valid, and so the longest a round's keys can live.
DEFAULT_MAX_MANIFEST_TTL_HOURS = 24.0


@dataclass(frozen=True)
class InputConfig:
    """Which file feeds a purpose and how to read it."""

    path: Path
    kind: str
    columns: Mapping[str, str] = field(default_factory=dict)
    delimiter: str | None = None
    objection_column: str | None = None
    exclusion_file: Path | None = None
    #: Headers deliberately not read (they look like an identifier part or objection flag).
    ignore_columns: tuple[str, ...] = ()
    #: Headers carried into the local result file (the partner's client number, ...).
    result_columns: tuple[str, ...] = ()

    def spec(self) -> InputSpec:
        """The export as `psi_node.inputs.read_input` reads it."""
        kind: IdentifierKind = "bsn" if self.kind == "bsn" else "address"  # loader checked it
        return InputSpec(
            path=self.path,
            kind=kind,
            columns=self.columns,
            delimiter=self.delimiter,
            objection_column=self.objection_column,
            exclusion_file=self.exclusion_file,
            ignore_columns=self.ignore_columns,
            result_columns=self.result_columns,
        )


@dataclass(frozen=True)
class PolicyConfig:
    """What this organisation agreed to for one purpose."""

    purpose: str
    legal_basis: str
    partners: frozenset[str]
    max_set_size: int
    min_threshold: int = 2
    max_disclosure: str = "count"
    mode: str = "network"
    bilateral_role: str | None = None
    # Exact partner sets other than the agreed one that this node accepts (each includes
    # this node); empty: only the whole agreed set.
    allowed_subsets: tuple[frozenset[str], ...] = ()
    max_retention_days: int = DEFAULT_MAX_RETENTION_DAYS
    # Rounds of one purpose closer together than this let a coordinator difference sets.
    min_round_interval_hours: float = DEFAULT_MIN_ROUND_INTERVAL_HOURS
    # When set, only this version of the purpose is agreed; any other is refused.
    purpose_version: int | None = None
    # A manifest valid longer than this would let a round's keys live that long.
    max_manifest_ttl_hours: float = DEFAULT_MAX_MANIFEST_TTL_HOURS
    # When set, a set that grew or shrank by more than this percentage against this node's
    # previous round of the purpose is refused: a truncated or doubled export is a mistake
    # to look at, not to match.
    max_set_change_percent: float | None = None


@dataclass(frozen=True)
class NodeConfig:
    """A node's whole configuration, with every path made absolute."""

    directory: Path
    partner_id: str
    name: str
    listen: str
    tls_key: Path
    tls_cert: Path
    tls_ca: Path
    signing_key: Path
    coordinator_public_key: Path
    results_dir: Path
    audit_log: Path
    state_dir: Path
    workers: int | None
    inputs: Mapping[str, InputConfig]
    policies: Mapping[str, PolicyConfig]
    strict_input: bool = False
    log_level: str = "info"
    idle_timeout_seconds: float = 1800.0
    # The X25519 key tag-key shares are sealed to; its public half is in the roster.
    agreement_key: Path = Path("signing/node.x25519")
    #: The Prometheus endpoint (`[metrics]`); None: off.
    metrics: MetricsConfig | None = None
    #: Digest of node.toml's settings as loaded (comments and layout do not count).
    sha256: str = ""
    #: The same, without what a serving node re-reads (`RELOADED`): a change here needs
    #: a restart.
    fixed_sha256: str = ""

    def with_reloaded(self, fresh: NodeConfig) -> NodeConfig:
        """This config with the policy and inputs of `fresh` (node.toml read again).

        Everything else stays as the process started with it: a listen address or key
        path cannot change under a running server.
        """
        return dataclasses.replace(
            self,
            inputs=fresh.inputs,
            policies=fresh.policies,
            strict_input=fresh.strict_input,
            sha256=fresh.sha256,
        )


#: What a serving node reads again for every manifest: these tables, and [node] strict_input.
RELOADED: Mapping[str, tuple[str, ...] | None] = {
    "inputs": None,
    "policy": None,
    "node": ("strict_input",),
}


def load_node_config(directory: Path, *, env: Mapping[str, str] | None = None) -> NodeConfig:
    """Load DIR/node.toml; KRUISPUNT_NODE_LISTEN and KRUISPUNT_LOG_LEVEL in env override."""
    env = env or {}
    path = directory / CONFIG_NAME
    data = read_toml(path)
    src = str(path)
    node = table(data, "node", src)
    tls = table(data, "tls", src)
    sign = table(data, "signing", src)
    paths = data.get("paths", {})

    p = resolver(directory)
    inputs: dict[str, InputConfig] = {}
    for purpose, raw in table(data, "inputs", src, required=False).items():
        where = f"{src}: [inputs.{purpose}]"
        if not isinstance(raw, dict):
            raise ConfigError(f"{where} must be a table")
        if "path" not in raw or "kind" not in raw:
            raise ConfigError(f"{where} needs 'path' and 'kind'")
        if raw["kind"] not in ("bsn", "address"):
            raise ConfigError(f"{where} kind must be 'bsn' or 'address'")
        inputs[purpose] = InputConfig(
            path=p(raw["path"]),
            kind=raw["kind"],
            columns=dict(raw.get("columns", {})),
            delimiter=raw.get("delimiter"),
            objection_column=raw.get("objection_column"),
            exclusion_file=p(raw["exclusion_file"]) if raw.get("exclusion_file") else None,
            ignore_columns=_names(raw, "ignore_columns", where),
            result_columns=_names(raw, "result_columns", where),
        )
    policies: dict[str, PolicyConfig] = {}
    for purpose, raw in table(data, "policy", src, required=False).items():
        where = f"{src}: [policy.{purpose}]"
        if not isinstance(raw, dict):
            raise ConfigError(f"{where} must be a table")
        if not str(raw.get("legal_basis", "")).strip():
            raise ConfigError(f"{where} needs the organisation's legal_basis")
        disclosure = raw.get("max_disclosure", "count")
        if disclosure not in DISCLOSURE_RANK:
            raise ConfigError(f"{where} max_disclosure must be 'count' or 'partners'")
        mode = raw.get("mode", "network")
        if mode not in ("network", "bilateral"):
            raise ConfigError(f"{where} mode must be 'network' or 'bilateral'")
        role = raw.get("bilateral_role")
        if mode == "bilateral" and role not in ("client", "server"):
            raise ConfigError(
                f"{where} a bilateral purpose needs bilateral_role = 'client' (learns the "
                f"intersection) or 'server' (learns only the client's set size)"
            )
        partners = raw.get("partners")
        if not isinstance(partners, list) or not partners:
            raise ConfigError(f"{where} needs the list of partners it agreed to share with")
        me = str(node.get("partner_id", ""))
        agreed = frozenset(str(x) for x in partners)
        policies[purpose] = PolicyConfig(
            purpose=purpose,
            legal_basis=str(raw["legal_basis"]),
            partners=agreed,
            min_threshold=_whole(raw, "min_threshold", where, default=2, least=2),
            max_disclosure=disclosure,
            max_set_size=_whole(raw, "max_set_size", where, least=1, why=_WHY_MAX_SET_SIZE),
            mode=mode,
            bilateral_role=role if mode == "bilateral" else None,
            allowed_subsets=_subsets(raw, where, agreed | {me}, me),
            max_retention_days=_whole(
                raw, "max_retention_days", where, default=DEFAULT_MAX_RETENTION_DAYS, least=1
            ),
            min_round_interval_hours=_hours(
                raw, "min_round_interval_hours", where, DEFAULT_MIN_ROUND_INTERVAL_HOURS
            ),
            max_manifest_ttl_hours=_hours(
                raw, "max_manifest_ttl_hours", where, DEFAULT_MAX_MANIFEST_TTL_HOURS
            ),
            purpose_version=(
                _whole(raw, "purpose_version", where, least=1) if "purpose_version" in raw else None
            ),
            max_set_change_percent=_percent(raw, "max_set_change_percent", where),
        )
    for purpose in policies:
        if purpose not in inputs:
            raise ConfigError(f"{src}: [policy.{purpose}] has no [inputs.{purpose}] to read from")
    whole, fixed = settings_digests(data, RELOADED)
    try:
        return NodeConfig(
            directory=directory.resolve(),
            partner_id=str(node["partner_id"]),
            name=str(node.get("name", node["partner_id"])),
            listen=env.get("KRUISPUNT_NODE_LISTEN", str(node.get("listen", "0.0.0.0:50051"))),
            tls_key=p(tls.get("key", "tls/node.key")),
            tls_cert=p(tls.get("cert", "tls/node.crt")),
            tls_ca=p(tls.get("ca", "tls/ca.crt")),
            signing_key=p(sign.get("key", "signing/node.ed25519")),
            agreement_key=p(sign.get("agreement_key", "signing/node.x25519")),
            coordinator_public_key=p(sign.get("coordinator_public_key", "signing/coordinator.pub")),
            results_dir=p(paths.get("results", "results")),
            audit_log=p(paths.get("audit_log", "audit/node-audit.jsonl")),
            state_dir=p(paths.get("state", "state")),
            workers=int(node["workers"]) if "workers" in node else None,
            inputs=inputs,
            policies=policies,
            strict_input=bool(node.get("strict_input", False)),
            idle_timeout_seconds=float(node.get("idle_timeout_seconds", 1800)),
            log_level=env.get("KRUISPUNT_LOG_LEVEL", str(node.get("log_level", "info"))),
            metrics=load_metrics_config(data, src),
            sha256=whole,
            fixed_sha256=fixed,
        )
    except KeyError as exc:
        raise ConfigError(f"{src}: [node] needs {exc.args[0]!r}") from None


_WHY_MAX_SET_SIZE = (
    "the largest set this organisation lets any partner contribute: it bounds how many "
    "identifiers a partner or the coordinator can probe in one round"
)


def _whole(
    raw: Mapping[str, object],
    key: str,
    where: str,
    *,
    default: int | None = None,
    least: int = 0,
    why: str = "",
) -> int:
    """A whole number >= least from a policy table; required when there is no default."""
    if key not in raw:
        if default is None:
            raise ConfigError(f"{where} needs {key}" + (f" ({why})" if why else ""))
        return default
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ConfigError(f"{where} {key} must be a whole number of at least {least}")
    return value


def _names(raw: Mapping[str, object], key: str, where: str) -> tuple[str, ...]:
    """A list of header names (ignore_columns, result_columns); empty when absent."""
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f'{where} {key} must be a list of header names, e.g. ["Klantnr"]')
    return tuple(v.strip() for v in value)


def _hours(raw: Mapping[str, object], key: str, where: str, default: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"{where} {key} must be a number of hours, 0 or more")
    return float(value)


def _percent(raw: Mapping[str, object], key: str, where: str) -> float | None:
    """An optional percentage above 0 (growth may exceed 100)."""
    if key not in raw:
        return None
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(
            f"{where} {key} must be a percentage above 0 (e.g. 50: refuse a set half or one "
            "and a half times the size of the previous round's)"
        )
    return float(value)


def _subsets(
    raw: Mapping[str, object], where: str, agreed: frozenset[str], me: str
) -> tuple[frozenset[str], ...]:
    """allowed_subsets: lists of agreed partners; this node is always part of each."""
    value = raw.get("allowed_subsets", [])
    if not isinstance(value, list) or not all(isinstance(s, list) for s in value):
        raise ConfigError(f"{where} allowed_subsets must be a list of partner lists")
    out = []
    for number, subset in enumerate(value, start=1):
        members = frozenset(str(x) for x in subset) | {me}
        strangers = sorted(members - agreed)
        if strangers:
            raise ConfigError(
                f"{where} allowed_subsets entry {number} names partners not in 'partners': "
                + ", ".join(strangers)
            )
        if len(members) < 2:
            raise ConfigError(f"{where} allowed_subsets entry {number} needs another partner")
        out.append(members)
    return tuple(out)
