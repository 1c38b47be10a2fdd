"""The node's Ed25519 signing key, the previous one a rotation keeps, and the rotation itself.

`rotate_signing_key` draws a new key and hands the node's audit log over to it
(`kruispunt.audit.handover`: sealed by the old key, endorsed by the new one), then puts
the files in place: the new key as ``signing/node.ed25519`` (and its public half as
``signing/node.pub``, the file to send to the coordinator), the old key as
``signing/node.ed25519.previous``. The audit log is signed with the new key from the
handover on; round messages (consents, hop statements, commitments, two-party payloads)
are signed with the key the round's roster names for this node (`NodeKeys.named_by`):
the old one until the coordinator registers the new key (`psi-coordinator partner
rotate-key`) and the partners accept that roster, the new one from then on. So rounds go
on throughout, and the roster's overlap window (the old key still verifies until a date)
covers messages made before everyone moved. A rotation cut short between the handover
and the file moves is finished by running it again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from kruispunt import pki, signing
from kruispunt.audit import HANDOVER_EVENT, safe_reason
from kruispunt.errors import ConfigError
from kruispunt.roster import Roster, load_accepted_roster
from psi_node.audit import NodeAudit
from psi_node.config import NodeConfig

__all__ = [
    "NodeKeyRotation",
    "NodeKeys",
    "load_node_keys",
    "next_key_path",
    "previous_key_path",
    "public_key_path",
    "rotate_signing_key",
]


def previous_key_path(config: NodeConfig) -> Path:
    """Where a rotation keeps the key the node signed with before (for the overlap)."""
    return config.signing_key.with_name(config.signing_key.name + ".previous")


def next_key_path(config: NodeConfig) -> Path:
    """Where a rotation writes the new key before the audit handover names it."""
    return config.signing_key.with_name(config.signing_key.name + ".next")


def public_key_path(config: NodeConfig) -> Path:
    """The current key's public half (``signing/node.pub``): what the coordinator registers."""
    return config.signing_key.with_suffix(".pub")


def _raw(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return signing.public_key_bytes(public)


@dataclass(frozen=True)
class NodeKeys:
    """The node's current signing key and, after a rotation, the one before it."""

    current: Ed25519PrivateKey
    previous: Ed25519PrivateKey | None = None

    def named_by(self, listed: bytes) -> Ed25519PrivateKey | None:
        """The key whose public half is `listed` (a roster's signing_key), or None."""
        for key in (self.current, self.previous):
            if key is not None and _raw(key) == listed:
                return key
        return None

    def for_roster(self, roster: Roster, partner_id: str) -> Ed25519PrivateKey:
        """The key `roster` names for this node; ConfigError if the node holds no such key."""
        listed = roster.partner(partner_id).signing_key
        key = self.named_by(listed)
        if key is None:
            raise ConfigError(
                f"roster version {roster.version} names signing key {listed.hex()[:16]}… "
                f"for {partner_id!r}, which this node does not hold (neither its key nor "
                "the previous one a rotation kept)"
            )
        return key


def load_node_keys(config: NodeConfig) -> NodeKeys:
    """Read the current key and, if a rotation kept one, the previous key (owner-only files)."""
    current = signing.load_signing_key(config.signing_key)
    previous_path = previous_key_path(config)
    previous = signing.load_signing_key(previous_path) if previous_path.exists() else None
    return NodeKeys(current, previous)


@dataclass(frozen=True)
class NodeKeyRotation:
    """What a rotation did: the two key ids, the public key file to send, the handover's seq."""

    previous_key_id: str
    new_key_id: str
    public_key: Path
    previous_key: Path
    seq: int


def _put_in_place(config: NodeConfig, new_key: Ed25519PrivateKey) -> None:
    # In this order, so that a rotation cut short anywhere is finished by running it again.
    if config.signing_key.exists():
        os.replace(config.signing_key, previous_key_path(config))
    os.replace(next_key_path(config), config.signing_key)
    pki.write_pem(public_key_path(config), signing.public_key_pem(new_key.public_key()))


def _finish_interrupted(config: NodeConfig) -> NodeKeyRotation:
    pending = next_key_path(config)
    new_key = signing.load_signing_key(pending)
    new_id = signing.key_id(new_key.public_key())
    audit = NodeAudit(config.audit_log, new_key)
    try:
        handovers = [e for e in audit.events() if e.event == HANDOVER_EVENT]
    finally:
        audit.close()
    if not handovers or handovers[-1].details.get("new_key_id") != new_id:
        raise ConfigError(
            f"{pending}: left over from a rotation the audit log does not record; "
            "delete it and rotate again"
        )
    last = handovers[-1]
    _put_in_place(config, new_key)
    return NodeKeyRotation(
        str(last.details.get("previous_key_id", "")),
        new_id,
        public_key_path(config),
        previous_key_path(config),
        last.seq,
    )


def _check_previous_retired(config: NodeConfig, keys: NodeKeys) -> None:
    """Refuse a second rotation while the roster still names the key it would drop."""
    if keys.previous is None:
        return
    roster = load_accepted_roster(config.state_dir)
    if roster is None or config.partner_id not in roster.ids:
        return
    entry = roster.partner(config.partner_id)
    if entry.signing_key != _raw(keys.current):
        raise ConfigError(
            f"the accepted roster (version {roster.version}) does not name this node's "
            f"current key {signing.key_id(keys.current.public_key())} yet: send "
            f"{public_key_path(config)} to the coordinator and accept the roster that "
            "registers it before rotating again (the previous key would be lost)"
        )


def rotate_signing_key(config: NodeConfig, *, actor: str, reason: str = "") -> NodeKeyRotation:
    """Hand the node's audit log to a new key and put the key files in place (module doc).

    Refuses while the previous rotation is not in the accepted roster yet. Runs again
    to finish one cut short between the handover and the file moves.
    """
    if next_key_path(config).exists():
        return _finish_interrupted(config)
    keys = load_node_keys(config)
    _check_previous_retired(config, keys)
    audit = NodeAudit(config.audit_log, keys.current, key_path=config.signing_key)
    try:
        new_key, handover = audit.rotate_to_fresh_key(
            next_key_path(config),
            actor=actor,
            on_behalf_of=config.partner_id,
            access_point="cli",
            reason=safe_reason(reason),
        )
    finally:
        audit.close()
    # The roster names the current key (checked above): an older previous key is retired
    # here, replaced by the one the roster still lists for the overlap.
    _put_in_place(config, new_key)
    return NodeKeyRotation(
        signing.key_id(keys.current.public_key()),
        signing.key_id(new_key.public_key()),
        public_key_path(config),
        previous_key_path(config),
        handover.seq,
    )
