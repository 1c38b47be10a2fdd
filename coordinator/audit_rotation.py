"""Rotating the coordinator's audit signing key: the handover in the chain, then the files.

`rotate_audit_key` draws a new Ed25519 key, writes it beside the current one
(``audit.ed25519.next``), appends the handover (`kruispunt.audit.handover`: sealed by
the old key, endorsed by the new one, with the operator and the reason), then puts
the new key and its public half in place and keeps the old public half as
``audit-<key id>.pub`` for officers who verify older exports. Either public key then
verifies the whole log (`psi-coordinator audit verify`, `psi-node audit
verify-network`); the old one signs nothing more. A serving coordinator picks up the
new key at its next event (`CoordinatorAudit` checks the newest handover). A rotation
cut short between the handover and the file moves is finished by running it again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from coordinator.audit import open_audit
from coordinator.config import CoordinatorConfig
from kruispunt import pki, signing
from kruispunt.audit import safe_reason
from kruispunt.errors import ConfigError

__all__ = ["AuditKeyRotation", "rotate_audit_key"]


@dataclass(frozen=True)
class AuditKeyRotation:
    """What a rotation did: the two key ids, where the public halves are, the handover's seq."""

    previous_key_id: str
    new_key_id: str
    public_key: Path
    retired_public_key: Path
    seq: int


def _next_path(config: CoordinatorConfig) -> Path:
    return config.audit_key.with_name(config.audit_key.name + ".next")


def _retired_path(config: CoordinatorConfig, key_id: str) -> Path:
    return config.audit_public_key.with_name(f"audit-{key_id}.pub")


def _last_handover(config: CoordinatorConfig) -> tuple[int, dict[str, object]] | None:
    audit = open_audit(config)
    try:
        found = [e for e in audit.events() if e.event == "audit.key_rotated"]
    finally:
        audit.close()
    if not found:
        return None
    return found[-1].seq, dict(found[-1].details)


def _put_in_place(
    config: CoordinatorConfig, previous: Ed25519PublicKey, new_public: Ed25519PublicKey
) -> Path:
    retired = _retired_path(config, signing.key_id(previous))
    if not retired.exists():
        pki.write_pem(retired, signing.public_key_pem(previous))
    os.replace(_next_path(config), config.audit_key)
    pki.write_pem(config.audit_public_key, signing.public_key_pem(new_public))
    return retired


def _finish_interrupted(config: CoordinatorConfig) -> AuditKeyRotation:
    """Complete a rotation whose handover is in the log but whose files were not moved."""
    pending = _next_path(config)
    new_key = signing.load_signing_key(pending)
    new_id = signing.key_id(new_key.public_key())
    last = _last_handover(config)
    if last is None or last[1].get("new_key_id") != new_id:
        raise ConfigError(
            f"{pending}: left over from a rotation the audit log does not record; "
            "delete it and rotate again"
        )
    seq, details = last
    previous = Ed25519PublicKey.from_public_bytes(bytes.fromhex(str(details["previous_key"])))
    retired = _put_in_place(config, previous, new_key.public_key())
    return AuditKeyRotation(signing.key_id(previous), new_id, config.audit_public_key, retired, seq)


def rotate_audit_key(
    config: CoordinatorConfig, *, actor: str, reason: str = ""
) -> AuditKeyRotation:
    """Hand the audit log over to a fresh key and put the key files in place (module docstring).

    Refuses a directory whose log is signed with the manifest key (made before the
    audit key was separate: `doctor` explains). Runs again to finish one cut short.
    """
    if not config.audit_key_separate:
        raise ConfigError(
            f"{config.directory}: this coordinator signs its audit log with the manifest key "
            "(no [audit] table); a separate audit key needs a new coordinator directory"
        )
    if _next_path(config).exists():
        return _finish_interrupted(config)
    previous = signing.load_signing_key(config.audit_key).public_key()
    audit = open_audit(config)
    try:
        new_key, handover = audit.rotate_to_fresh_key(
            _next_path(config),
            actor=actor,
            on_behalf_of=config.network,
            access_point="cli",
            reason=safe_reason(reason),
        )
    finally:
        audit.close()
    retired = _put_in_place(config, previous, new_key.public_key())
    return AuditKeyRotation(
        signing.key_id(previous),
        signing.key_id(new_key.public_key()),
        config.audit_public_key,
        retired,
        handover.seq,
    )
