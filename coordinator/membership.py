"""A partner's membership over the years: deactivate, reactivate, remove; the deny-list.

A deactivated partner stays in the registry and the roster (it keeps its keys and can
come back with `reactivate_partner`), but no round asks it and its certificate is on
the deny-list the admin server's interceptor checks. Removal takes a partner out of
the registry, so the next roster export leaves it out (a new digest the other partners
accept), and denies its certificates for good: the fingerprint of the current one, and
of every one a renewal superseded (`deny_superseded`). Each change is audited with the
person who made it (`kruispunt.login`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from coordinator.audit import open_audit
from coordinator.config import CoordinatorConfig
from coordinator.store import Store
from kruispunt import pki
from kruispunt.audit import safe_reason
from kruispunt.errors import ConfigError

__all__ = [
    "CertificateDenyList",
    "deactivate_partner",
    "deny_superseded",
    "reactivate_partner",
    "remove_partner",
]


@dataclass(frozen=True)
class _Change:
    event: str
    action: str


_DEACTIVATED = _Change("partner.deactivated", "U")
_REACTIVATED = _Change("partner.reactivated", "U")
_REMOVED = _Change("partner.removed", "D")


def _audit(
    config: CoordinatorConfig, change: _Change, actor: str, details: dict[str, object]
) -> None:
    audit = open_audit(config)
    try:
        audit.append(
            change.event,
            actor=actor,
            on_behalf_of=config.network,
            access_point="cli",
            action=change.action,
            details=details,
        )
    finally:
        audit.close()


def _identity(config: CoordinatorConfig, partner_id: str) -> str:
    try:
        return pki.Identity.partner(config.network, partner_id).uri
    except ValueError:
        raise ConfigError(f"partner id {partner_id!r}: not a valid partner id") from None


def deactivate_partner(
    config: CoordinatorConfig, partner_id: str, *, actor: str, reason: str = ""
) -> None:
    """Suspend a partner: no round asks it, and the admin server denies its certificate."""
    _set_active(config, partner_id, False, actor=actor, reason=reason)


def reactivate_partner(
    config: CoordinatorConfig, partner_id: str, *, actor: str, reason: str = ""
) -> None:
    """Let a deactivated partner take part again, with the certificate it had."""
    _set_active(config, partner_id, True, actor=actor, reason=reason)


def _set_active(
    config: CoordinatorConfig, partner_id: str, active: bool, *, actor: str, reason: str
) -> None:
    """Deactivate or reactivate, audited; ConfigError when unknown or already so."""
    _identity(config, partner_id)
    store = Store(config.database)
    try:
        partner = store.partner(partner_id)
        if partner is None:
            raise ConfigError(f"partner {partner_id!r} is not registered")
        if partner.active == active:
            raise ConfigError(
                f"partner {partner_id!r} is active; nothing to reactivate"
                if active
                else f"partner {partner_id!r} is already deactivated"
            )
        store.set_partner_active(partner_id, active)
    finally:
        store.close()
    _audit(
        config,
        _REACTIVATED if active else _DEACTIVATED,
        actor,
        {
            "partner": partner_id,
            "cert_fingerprint": partner.cert_fingerprint,
            "reason": safe_reason(reason),
        },
    )


def remove_partner(
    config: CoordinatorConfig,
    partner_id: str,
    *,
    actor: str,
    reason: str = "",
    now: datetime | None = None,
) -> str:
    """Take a partner out of the registry and deny its certificate forever; returns its fingerprint.

    Its rounds, consents and audit events stay. Export the roster afterwards: the new
    version leaves the partner out, and every remaining node accepts it by its digest.
    """
    identity = _identity(config, partner_id)
    moment = (now or datetime.now(UTC)).isoformat()
    store = Store(config.database)
    try:
        partner = store.partner(partner_id)
        if partner is None:
            raise ConfigError(f"partner {partner_id!r} is not registered")
        store.deny_certificate(
            partner.cert_fingerprint, identity, f"partner removed on {moment}", moment, actor
        )
        store.delete_partner(partner_id)
    finally:
        store.close()
    _audit(
        config,
        _REMOVED,
        actor,
        {
            "partner": partner_id,
            "cert_fingerprint": partner.cert_fingerprint,
            "reason": safe_reason(reason),
        },
    )
    return partner.cert_fingerprint


def deny_superseded(
    store: Store,
    identity: pki.Identity,
    fingerprint: str,
    *,
    actor: str,
    now: datetime | None = None,
) -> None:
    """Deny a certificate a renewal replaced: it stays CA-valid, but is never admitted again."""
    moment = (now or datetime.now(UTC)).isoformat()
    store.deny_certificate(
        fingerprint, identity.uri, f"superseded by a renewal on {moment}", moment, actor
    )


class CertificateDenyList:
    """The admin server's deny-list (`kruispunt.transport.Deny`) over the registry.

    Denied: every certificate in the deny-list table (removed partners', superseded
    ones), and the current certificate of a deactivated partner.
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    def __call__(self, peer: pki.Identity, fingerprint: str) -> str | None:
        denied = self.store.denied_certificate(fingerprint)
        if denied is not None:
            return denied[1]
        if peer.role is pki.Role.PARTNER:
            partner = self.store.partner(peer.name)
            if partner is not None and not partner.active:
                return f"partner {peer.name!r} is deactivated"
        return None
