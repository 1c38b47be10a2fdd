"""Rotating a partner's signing key or the coordinator's manifest key, with an overlap window.

A partner rotates at its node (`psi-node rotate-signing-key`) and sends the new public
key; `rotate_partner_key` registers it, keeps the old key as verifying until the end of
the overlap, audits `partner.key_rotated`, and the CLI exports the roster, which then
lists both keys (`kruispunt.roster`: ``previous_signing_key`` and its
``previous_signing_key_valid_until``). `rotate_manifest_key` replaces the coordinator's
own manifest key the same way: the new key signs from the next round on, the old public
half is kept as ``signing/coordinator-<key id>.pub``, the roster carries both until the
overlap ends, and `signing.key_rotated` is audited. Its old private key is not kept:
the coordinator never needs to sign with it again (a manifest names the roster, and the
roster names the new key), and a key kept online is one more to leak.

Every verifier takes a roster entry's keys through `kruispunt.roster.RosterPartner.
signing_keys` (or `Roster.coordinator_keys`): the previous key verifies only before the
end of its overlap, so a leaked old key is worthless after it. An export after that date
drops the previous key from the roster.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from coordinator.audit import open_audit
from coordinator.config import CoordinatorConfig
from coordinator.store import COORDINATOR_HOLDER, Store
from kruispunt import pki, signing
from kruispunt.audit import safe_reason
from kruispunt.errors import ConfigError
from kruispunt.roster import check_signing_public_key

__all__ = [
    "DEFAULT_OVERLAP_DAYS",
    "MAX_OVERLAP_DAYS",
    "KeyRotation",
    "rotate_manifest_key",
    "rotate_partner_key",
]

#: Long enough for every partner to accept the new roster, short enough that an old key
#: that leaked in the rotation's cause stops verifying soon.
DEFAULT_OVERLAP_DAYS = 14
MAX_OVERLAP_DAYS = 90


@dataclass(frozen=True)
class KeyRotation:
    """What a rotation recorded: whose key, the two key ids, until when the old one verifies."""

    holder: str
    previous_key_id: str
    new_key_id: str
    valid_until: datetime
    #: The manifest key's public file (the coordinator's rotation), else None.
    public_key: Path | None = None
    #: Where the old manifest key's public half is kept (the coordinator's rotation).
    retired_public_key: Path | None = None


def _until(now: datetime, overlap_days: int) -> datetime:
    if isinstance(overlap_days, bool) or not isinstance(overlap_days, int):
        raise TypeError("overlap_days must be a whole number")
    if not 0 <= overlap_days <= MAX_OVERLAP_DAYS:
        raise ConfigError(
            f"--overlap-days must be 0..{MAX_OVERLAP_DAYS} (0 ends the old key's validity now)"
        )
    # Whole seconds: the roster states the moment to the second, and its digest with it.
    return (now.astimezone(UTC) + timedelta(days=overlap_days)).replace(microsecond=0)


def _new_partner_key(path: Path) -> bytes:
    key = signing.read_public_key(path, missing="no such public key file")
    raw = signing.public_key_bytes(key)
    try:
        return check_signing_public_key(raw)
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def rotate_partner_key(
    config: CoordinatorConfig,
    partner_id: str,
    new_key_path: Path,
    *,
    overlap_days: int = DEFAULT_OVERLAP_DAYS,
    actor: str,
    reason: str = "",
    now: datetime | None = None,
) -> KeyRotation:
    """Register `partner_id`'s new signing key from `new_key_path`; the old one verifies for
    `overlap_days` more. Audited; the roster changes at the next export.

    ConfigError names the file or partner: not registered, not an Ed25519 public key, the
    key it already has, or a key another partner or the coordinator signs with.
    """
    moment = now or datetime.now(UTC)
    until = _until(moment, overlap_days)
    new_raw = _new_partner_key(new_key_path)
    coordinator = signing.public_key_bytes(
        signing.read_public_key(config.signing_public_key, missing="signing public key not found")
    )
    store = Store(config.database)
    try:
        partner = store.partner(partner_id)
        if partner is None:
            raise ConfigError(f"partner {partner_id!r} is not registered")
        if partner.signing_key == new_raw:
            raise ConfigError(
                f"{new_key_path}: is partner {partner_id!r}'s current signing key; send the "
                "signing/node.pub that psi-node rotate-signing-key wrote"
            )
        if new_raw == coordinator:
            raise ConfigError(f"{new_key_path}: is the coordinator's manifest key")
        for other in store.partners():
            overlap = store.key_overlap(other.id)
            if other.id != partner_id and (
                new_raw == other.signing_key or (overlap is not None and new_raw == overlap[0])
            ):
                raise ConfigError(f"{new_key_path}: is a signing key of partner {other.id!r}")
        previous = store.rotate_partner_key(
            partner_id,
            new_raw,
            valid_until=until.isoformat(),
            rotated_at=moment.isoformat(),
            rotated_by=actor,
        )
    finally:
        store.close()
    done = KeyRotation(
        partner_id,
        signing.key_id(Ed25519PublicKey.from_public_bytes(previous)),
        signing.key_id(Ed25519PublicKey.from_public_bytes(new_raw)),
        until,
    )
    _audit(config, "partner.key_rotated", done, actor, reason, now, partner=partner_id)
    return done


def _audit(
    config: CoordinatorConfig,
    event: str,
    done: KeyRotation,
    actor: str,
    reason: str,
    now: datetime | None,
    **extra: object,
) -> None:
    audit = open_audit(config, now=(lambda: now) if now is not None else None)
    try:
        audit.append(
            event,
            actor=actor,
            on_behalf_of=config.network,
            access_point="cli",
            action="U",
            details={
                **extra,
                "previous_key_id": done.previous_key_id,
                "new_key_id": done.new_key_id,
                "valid_until": done.valid_until.isoformat(),
                "reason": safe_reason(reason),
            },
        )
    finally:
        audit.close()


def _next_path(config: CoordinatorConfig) -> Path:
    return config.signing_key.with_name(config.signing_key.name + ".next")


def rotate_manifest_key(
    config: CoordinatorConfig,
    *,
    overlap_days: int = DEFAULT_OVERLAP_DAYS,
    actor: str,
    reason: str = "",
    now: datetime | None = None,
) -> KeyRotation:
    """Replace the coordinator's manifest key; the old one verifies for `overlap_days` more.

    Writes the new key and its public half in place, keeps the old public half as
    ``coordinator-<key id>.pub`` beside it, records the overlap and audits it; the roster
    carries both keys from the next export. Refuses a directory whose audit log is signed
    with the manifest key (no ``[audit]`` table): that chain cannot change keys this way.
    """
    if not config.audit_key_separate:
        raise ConfigError(
            f"{config.directory}: this coordinator signs its audit log with the manifest key "
            "(no [audit] table); rotating it needs a coordinator directory with its own "
            "audit key"
        )
    moment = now or datetime.now(UTC)
    until = _until(moment, overlap_days)
    previous = signing.load_signing_key(config.signing_key).public_key()
    new_key = signing.generate_signing_key()
    pending = _next_path(config)
    pending.unlink(missing_ok=True)  # a rotation cut short before it recorded anything
    pki.write_private_key(pending, new_key)
    retired = config.signing_public_key.with_name(f"coordinator-{signing.key_id(previous)}.pub")
    store = Store(config.database)
    try:
        store.record_key_overlap(
            COORDINATOR_HOLDER,
            signing.public_key_bytes(previous),
            valid_until=until.isoformat(),
            rotated_at=moment.isoformat(),
            rotated_by=actor,
        )
    finally:
        store.close()
    pki.write_pem(retired, signing.public_key_pem(previous))
    os.replace(pending, config.signing_key)
    pki.write_pem(config.signing_public_key, signing.public_key_pem(new_key.public_key()))
    done = KeyRotation(
        "coordinator",
        signing.key_id(previous),
        signing.key_id(new_key.public_key()),
        until,
        config.signing_public_key,
        retired,
    )
    _audit(config, "signing.key_rotated", done, actor, reason, now)
    return done
