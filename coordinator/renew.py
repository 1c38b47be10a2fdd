"""Renewing certificates before they expire: a partner's, and the coordinator's own.

A partner certificate is re-issued either for the key it already certifies (the
coordinator has that public key in the stored certificate: nothing to send) or, for
a key rotation, from a new CSR the partner made with its new key. Either way the
partner installs the result with `psi-node install-cert` and restarts its node.

A renewal supersedes the previous certificate at once, though the CA's signature on
it stays valid until its own expiry: the coordinator connects to a node only with the
certificate in the registry (`kruispunt.transport.pinned_channel`) and puts the old
fingerprint on its deny-list (`coordinator.membership`); nodes admit only the
coordinator certificate their roster pins (`psi_node.pins`).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from coordinator.audit import open_audit
from coordinator.ca_key import load_ca_key
from coordinator.config import CoordinatorConfig
from coordinator.membership import deny_superseded
from coordinator.operators import register_certificate
from coordinator.store import Store
from kruispunt import pki
from kruispunt.errors import ConfigError

__all__ = ["renew_coordinator", "renew_partner"]


def renew_partner(
    config: CoordinatorConfig,
    partner_id: str,
    *,
    csr_path: Path | None = None,
    days: int = pki.LEAF_VALIDITY_DAYS,
    now: datetime | None = None,
    ca_key_path: Path | None,
    actor: str = "operator",
) -> Path:
    """Re-issue a registered partner's certificate; returns the path of the new one.

    Without `csr_path` the new certificate certifies the same public key as the stored
    one; with it, the CSR's key (key rotation: the CSR's CN must be the partner id).
    Updates the partners table, writes partners/<id>.crt and audits "partner.renewed".
    """
    store = Store(config.database)
    try:
        partner = store.partner(partner_id)
        if partner is None:
            raise ConfigError(f"partner {partner_id!r} is not registered")
        try:
            old = x509.load_pem_x509_certificate(partner.cert_pem.encode())
        except ValueError:
            raise ConfigError(
                f"partner {partner_id!r}: stored certificate does not parse"
            ) from None
        identity = pki.Identity.partner(config.network, partner_id)
        ca_key = load_ca_key(config, ca_key_path, task="partner renew")
        ca_cert = pki.load_certificate(config.tls_ca)
        try:
            if csr_path is not None:
                cert = pki.issue_certificate(
                    ca_key, ca_cert, pki.load_csr(csr_path), identity, days=days, now=now
                )
            else:
                public_key = old.public_key()
                if not isinstance(public_key, ec.EllipticCurvePublicKey):
                    raise ConfigError(f"partner {partner_id!r}: stored key is not an EC key")
                cert = pki.issue_for_key(ca_key, ca_cert, public_key, identity, days=days, now=now)
        except pki.CsrRejected as exc:
            raise ConfigError(f"{csr_path}: {exc}") from None
        except ValueError as exc:
            raise ConfigError(f"cannot issue a certificate: {exc}") from None
        store.update_partner_cert(
            partner_id, pki.certificate_pem(cert).decode(), pki.fingerprint(cert)
        )
        # The old certificate stays CA-valid until it expires: deny it now, so it is
        # never admitted again (the rounds' pinned channels already refuse it).
        deny_superseded(store, identity, pki.fingerprint(old), actor=actor, now=now)
    finally:
        store.close()
    out = config.directory / "partners" / f"{partner_id}.crt"
    out.parent.mkdir(mode=0o700, exist_ok=True)
    pki.write_pem(out, cert)
    rotated = not pki.same_public_key(cert.public_key(), old.public_key())
    _audit(
        config,
        "partner.renewed",
        actor,
        {
            "partner": partner_id,
            "previous_fingerprint": pki.fingerprint(old),
            "cert_fingerprint": pki.fingerprint(cert),
            "not_after": cert.not_valid_after_utc.isoformat(),
            "key_rotated": rotated,
        },
    )
    return out


def renew_coordinator(
    config: CoordinatorConfig,
    *,
    days: int = pki.LEAF_VALIDITY_DAYS,
    now: datetime | None = None,
    ca_key_path: Path | None,
    actor: str = "operator",
) -> list[Path]:
    """Re-issue the coordinator's TLS and operator certificates for their existing keys.

    Returns the paths written. A running coordinator reads its certificate at start:
    restart it afterwards. Nodes admit only the coordinator certificate their roster pins
    (`psi_node.pins`): export the roster and have every node accept it, and from then on
    they refuse the old certificate.
    The renewed operator certificate is registered for its operator (the admin service
    admits registered certificates only), unless that operator was removed.
    """
    ca_key = load_ca_key(config, ca_key_path, task="renew")
    ca_cert = pki.load_certificate(config.tls_ca)
    written: list[Path] = []
    details: dict[str, object] = {}
    renewed_operator: tuple[str, x509.Certificate] | None = None
    for label, key_path, cert_path in (
        ("coordinator", config.tls_key, config.tls_cert),
        ("operator", config.operator_key, config.operator_cert),
    ):
        key = pki.load_tls_key(key_path)
        old = pki.load_certificate(cert_path)
        try:
            identity = pki.identity_from_certificate(old)
        except pki.CertificateIdentityError as exc:
            raise ConfigError(f"{cert_path}: {exc}") from None
        if identity.network != config.network or identity.role != label:
            raise ConfigError(f"{cert_path}: not the {label} certificate of {config.network}")
        try:
            cert = pki.issue_for_key(
                ca_key, ca_cert, key.public_key(), identity, days=days, now=now
            )
        except ValueError as exc:
            raise ConfigError(f"cannot issue a certificate: {exc}") from None
        pki.write_pem(cert_path, cert)
        written.append(cert_path)
        details[f"{label}_fingerprint"] = pki.fingerprint(cert)
        details[f"{label}_not_after"] = cert.not_valid_after_utc.isoformat()
        if label == "operator":
            renewed_operator = (identity.name, cert)
    _audit(config, "coordinator.renewed", actor, details)
    assert renewed_operator is not None  # the loop above always renews it
    name, cert = renewed_operator
    store = Store(config.database)
    try:
        if any(c.active for c in store.operator_certs(name)):
            audit = open_audit(config)
            try:
                register_certificate(
                    store,
                    audit,
                    config.network,
                    name,
                    cert,
                    actor=actor,
                    now=now,
                    event="operator.renewed",
                )
            finally:
                audit.close()
    finally:
        store.close()
    return written


def _audit(config: CoordinatorConfig, event: str, actor: str, details: dict[str, object]) -> None:
    audit = open_audit(config)
    try:
        audit.append(
            event,
            actor=actor,
            on_behalf_of=config.network,
            access_point="cli",
            action="U",
            details=details,
        )
    finally:
        audit.close()
