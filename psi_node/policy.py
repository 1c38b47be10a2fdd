"""The node's own decision on a manifest: does this organisation take part, and on what terms.

Consent is bounded by the organisation's policy, never by what the coordinator asks: the
partner set is exactly the agreed one (or a listed subset: a smaller set lets a partner learn
co-holders by elimination), the purpose may keep results no longer than the node allows, and
rounds of one purpose come no closer together than the node allows (back-to-back rounds over
slightly different sets let a coordinator difference them), and, when the policy says so, a
set does not jump or drop by more than `max_set_change_percent` against the node's previous
round of the purpose (a truncated or half-written export is refused, not matched).
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from kruispunt.errors import ConfigError
from kruispunt.manifest import VerifiedManifest
from psi_node.config import DISCLOSURE_RANK, NodeConfig, PolicyConfig

#: The `check` detail of a refusal by `set_change` (audit and metrics name it so).
SET_CHANGE_CHECK = "max_set_change_percent"


class ConsentHistory:
    """When this node last consented to a round of each purpose (state/last-consent.json)."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "last-consent.json"
        self._lock = threading.Lock()

    def last(self, purpose_id: str) -> datetime | None:
        """The time of this node's last consent to a round of the purpose, if any."""
        stamp = self._read().get(purpose_id)
        if stamp is None:
            return None
        try:
            return datetime.fromisoformat(str(stamp))
        except ValueError:
            raise ConfigError(f"{self.path}: {purpose_id!r} holds no time; remove it") from None

    def record(self, purpose_id: str, when: datetime) -> None:
        """Remember a consent, durably (temp file, fsync, rename) before it is answered."""
        with self._lock:
            data = self._read()
            data[purpose_id] = when.isoformat()
            _write_json(self.path, data)

    def _read(self) -> dict[str, object]:
        return _read_json(self.path)


class SetSizeHistory:
    """The set size this node consented with in its last round of each purpose
    (state/set-sizes.json): what `max_set_change_percent` compares against. Only the
    node's own sizes, kept on the node."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "set-sizes.json"
        self._lock = threading.Lock()

    def last(self, purpose_id: str) -> int | None:
        """The set size of this node's last consented round of the purpose, if any."""
        size = _read_json(self.path).get(purpose_id)
        if size is None:
            return None
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ConfigError(f"{self.path}: {purpose_id!r} holds no set size; remove it")
        return size

    def record(self, purpose_id: str, size: int) -> None:
        """Remember the set size of a consent, durably, before it is answered."""
        with self._lock:
            data = _read_json(self.path)
            data[purpose_id] = size
            _write_json(self.path, data)


def _read_json(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        # A damaged file must not lift the limit: refuse until an operator looks.
        raise ConfigError(f"{path}: unreadable ({exc}); remove it after checking") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a JSON object; remove it after checking")
    return data


def _write_json(path: Path, data: dict[str, object]) -> None:
    """Replace `path` with `data`, durably: temp file, fsync, rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


@dataclass(frozen=True)
class SetChange:
    """A set size change beyond the policy's limit: the reason sent, the numbers kept."""

    #: For the signed refusal: the direction and the limit, never a size (a refusal carries
    #: no set size, and the previous one with a percentage would give this one away).
    reason: str
    previous: int
    size: int
    percent: float


def set_change(policy: PolicyConfig, previous: int | None, size: int) -> SetChange | None:
    """The change of `size` against `previous` if it exceeds `max_set_change_percent`."""
    limit = policy.max_set_change_percent
    if limit is None or previous is None or previous < 1:
        return None
    percent = abs(size - previous) * 100 / previous
    if percent <= limit:
        return None
    moved = "dropped" if size < previous else "grew"
    reason = (
        f"the set for {policy.purpose!r} {moved} by more than {limit:g} % against this "
        f"node's previous round of the purpose ({SET_CHANGE_CHECK}): a truncated or "
        "half-written export? This node's operator sees the sizes in its log"
    )
    return SetChange(reason, previous, size, round(percent, 1))


def refusal_reason(
    config: NodeConfig,
    verified: VerifiedManifest,
    *,
    last_consent: datetime | None = None,
    now: datetime | None = None,
) -> str | None:
    """Why this node must refuse the manifest, or None when its policy allows it."""
    purpose = verified.purpose
    me = config.partner_id
    if me not in verified.partners:
        return "this node is not in the manifest's partner list"
    policy = config.policies.get(purpose.id)
    if policy is None:
        return f"purpose {purpose.id!r} is not agreed by this organisation"
    if policy.purpose_version is not None and purpose.version != policy.purpose_version:
        return (
            f"purpose {purpose.id!r} version {purpose.version} is not the version this "
            f"organisation agreed to ({policy.purpose_version})"
        )
    if purpose.id not in config.inputs:
        return f"no input is configured for purpose {purpose.id!r}"
    if purpose.mode != policy.mode:
        return f"purpose runs in {purpose.mode!r} mode; this node agreed to {policy.mode!r} only"
    if purpose.bilateral is not None:
        role = "client" if purpose.bilateral.client_partner == me else "server"
        if role != policy.bilateral_role:
            return (
                f"this node would be the bilateral {role}; "
                f"it agreed to be the {policy.bilateral_role}"
            )
    basis = purpose.legal_basis.get(me, "")
    if basis.strip() != policy.legal_basis.strip():
        return (
            f"legal basis in the manifest ({basis!r}) differs from this organisation's "
            f"({policy.legal_basis!r})"
        )
    strangers = sorted(set(verified.partners) - policy.partners - {me})
    if strangers:
        return f"partner(s) not agreed for this purpose: {', '.join(strangers)}"
    named = frozenset(verified.partners)
    if named != policy.partners | {me} and named not in policy.allowed_subsets:
        missing = sorted(policy.partners - named - {me})
        return (
            "the manifest names only part of the agreed partners (missing: "
            f"{', '.join(missing)}); a smaller set is accepted only when the policy lists it "
            "in allowed_subsets"
        )
    if purpose.result_retention_days > policy.max_retention_days:
        return (
            f"results would be kept {purpose.result_retention_days} days, longer than this "
            f"node allows ({policy.max_retention_days})"
        )
    if purpose.mode == "network" and purpose.threshold < policy.min_threshold:
        return f"threshold {purpose.threshold} is below this node's minimum {policy.min_threshold}"
    if DISCLOSURE_RANK[purpose.disclosure] > DISCLOSURE_RANK[policy.max_disclosure]:
        return (
            f"disclosure {purpose.disclosure!r} exceeds what this node allows "
            f"({policy.max_disclosure!r})"
        )
    if config.inputs[purpose.id].kind != purpose.identifier_kind:
        return (
            f"purpose matches on {purpose.identifier_kind!r} but this node's input holds "
            f"{config.inputs[purpose.id].kind!r}"
        )
    if purpose.max_set_size > policy.max_set_size:
        return (
            f"purpose allows sets of {purpose.max_set_size}, more than this node's "
            f"limit {policy.max_set_size}"
        )
    if now is not None:
        valid_hours = (verified.manifest.expires_at_unix - now.timestamp()) / 3600
        if valid_hours > policy.max_manifest_ttl_hours:
            return (
                f"the manifest stays valid {valid_hours:.0f} hours, longer than this node lets "
                f"a round's keys live (max_manifest_ttl_hours {policy.max_manifest_ttl_hours:g})"
            )
    if last_consent is not None and now is not None and policy.min_round_interval_hours > 0:
        ready = last_consent + timedelta(hours=policy.min_round_interval_hours)
        if now < ready:
            return (
                f"a round of {purpose.id!r} ran less than {policy.min_round_interval_hours:g} "
                f"hours ago (min_round_interval_hours); next allowed at {ready.isoformat()}"
            )
    return None
