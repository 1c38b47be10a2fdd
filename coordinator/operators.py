"""Operators are people: personal operator certificates, their registry, and admission.

`psi-coordinator operator add DIR NAME` gives one person a certificate of their
own: a fresh EC P-256 key and a certificate whose URI SAN is
``kruispunt://<network>/operator/<name>``, written into that person's folder
(DIR/operators/NAME/ unless `--out` names another), its fingerprint
registered in the coordinator store. `operator remove` ends every certificate
of that person. The admin service admits an operator certificate only while it
is registered and its operator not removed (`OperatorGate`, run by the
server's interceptor before any handler), so every RunRound and CancelRound is
that person's, by name, in the audit log and in the round's row.

`init` issues and registers the first operator, the installing user; a
coordinator made before operators were registered adopts its configured
[operator] certificate at start (`adopt_configured_operator`). The CLI finds
its caller's own files with `my_credentials` and refuses one issued to
somebody else.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509

from coordinator.audit import CoordinatorAudit, open_audit
from coordinator.ca_key import load_ca_key
from coordinator.config import CoordinatorConfig
from coordinator.store import OperatorCert, Store
from kruispunt import pki
from kruispunt.audit import safe_reason
from kruispunt.errors import ConfigError
from kruispunt.login import login_name, operator_name

__all__ = [
    "CERT_FILE",
    "KEY_FILE",
    "OPERATORS_DIR",
    "OPERATOR_DIR_ENV",
    "IssuedOperator",
    "OperatorFiles",
    "OperatorGate",
    "OperatorStatus",
    "adopt_configured_operator",
    "issue_operator",
    "list_operators",
    "my_credentials",
    "operator_folder",
    "register_certificate",
    "remove_operator",
]

#: Each operator's folder lives here, in the coordinator directory.
OPERATORS_DIR = "operators"
KEY_FILE, CERT_FILE = "operator.key", "operator.crt"
#: A folder holding the caller's operator.key and operator.crt, kept outside DIR.
OPERATOR_DIR_ENV = "KRUISPUNT_OPERATOR_DIR"


@dataclass(frozen=True)
class IssuedOperator:
    """What `operator add` wrote: the person's key and certificate, and the fingerprint."""

    name: str
    key: Path
    cert: Path
    fingerprint: str
    not_after: str


@dataclass(frozen=True)
class OperatorStatus:
    """One operator as `operator list` shows them: their newest certificate and state."""

    name: str
    active: bool
    fingerprint: str
    not_after: str
    added_at: str
    added_by: str
    removed_at: str | None
    removed_by: str
    certificates: int


@dataclass(frozen=True)
class OperatorFiles:
    """The caller's operator key and certificate, and the name the certificate carries."""

    name: str
    key: Path
    cert: Path


def operator_folder(config: CoordinatorConfig, name: str) -> Path:
    """Where `operator add` puts `name`'s key and certificate by default."""
    return config.directory / OPERATORS_DIR / name


def _identity(config: CoordinatorConfig, name: str) -> pki.Identity:
    try:
        return pki.Identity.operator(config.network, name)
    except ValueError:
        raise ConfigError(
            f"operator name {name!r}: use 1 to 63 lowercase letters, digits and hyphens, "
            "starting and ending with a letter or digit (e.g. the person's login name)"
        ) from None


def register_certificate(
    store: Store,
    audit: CoordinatorAudit,
    network: str,
    name: str,
    cert: x509.Certificate,
    *,
    actor: str,
    access_point: str = "cli",
    event: str = "operator.added",
    now: datetime | None = None,
    **extra: object,
) -> OperatorCert:
    """Register `cert` as operator `name`'s (admitted from now on) and audit `event`."""
    row = OperatorCert(
        name=name,
        cert_fingerprint=pki.fingerprint(cert),
        cert_pem=pki.certificate_pem(cert).decode(),
        not_after=cert.not_valid_after_utc.isoformat(),
        added_at=(now or datetime.now(UTC)).isoformat(),
        added_by=actor,
        removed_at=None,
        removed_by="",
    )
    store.add_operator_cert(row)
    audit.append(
        event,
        actor=actor,
        on_behalf_of=network,
        access_point=access_point,
        action="C",
        details={
            "operator": name,
            "cert_fingerprint": row.cert_fingerprint,
            "not_after": row.not_after,
            **extra,
        },
    )
    return row


def issue_operator(
    config: CoordinatorConfig,
    name: str,
    *,
    actor: str,
    out: Path | None = None,
    ca_key_path: Path | None,
    days: int = pki.LEAF_VALIDITY_DAYS,
    now: datetime | None = None,
) -> IssuedOperator:
    """Issue operator `name` a personal certificate, write key and cert, register it.

    Refuses a name that already has an active certificate (remove the operator first
    to issue a new one) and a folder that already holds a key.
    """
    identity = _identity(config, name)
    folder = out if out is not None else operator_folder(config, name)
    key_path, cert_path = folder / KEY_FILE, folder / CERT_FILE
    store = Store(config.database)
    try:
        active = [c for c in store.operator_certs(name) if c.active]
        if active:
            raise ConfigError(
                f"operator {name!r} already holds a certificate (fingerprint "
                f"{active[-1].cert_fingerprint[:16]}...); to issue a new one, first "
                f"`psi-coordinator operator remove {config.directory} {name}`"
            )
        if key_path.exists():
            raise ConfigError(
                f"{key_path}: a key is already there; move it aside (or name another folder "
                "with --out) - a key is never overwritten"
            )
        ca_key = load_ca_key(config, ca_key_path, task="operator add")
        ca_cert = pki.load_certificate(config.tls_ca)
        key = pki.generate_tls_key()
        try:
            cert = pki.issue_for_key(
                ca_key, ca_cert, key.public_key(), identity, days=days, now=now
            )
        except ValueError as exc:
            raise ConfigError(f"cannot issue a certificate: {exc}") from None
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        pki.write_private_key(key_path, key)
        pki.write_pem(cert_path, cert)
        audit = open_audit(config)
        try:
            row = register_certificate(
                store, audit, config.network, name, cert, actor=actor, now=now
            )
        finally:
            audit.close()
    finally:
        store.close()
    return IssuedOperator(name, key_path, cert_path, row.cert_fingerprint, row.not_after)


def remove_operator(
    config: CoordinatorConfig,
    name: str,
    *,
    actor: str,
    reason: str = "",
    now: datetime | None = None,
) -> list[Path]:
    """End every certificate of operator `name`: the admin service refuses them from now on.

    Deletes the key and certificate in the operator's default folder (they open
    nothing any more); returns the files deleted. A key kept elsewhere (`--out`)
    stays, refused all the same.
    """
    _identity(config, name)
    moment = (now or datetime.now(UTC)).isoformat()
    store = Store(config.database)
    try:
        known = store.operator_certs(name)
        if not known:
            raise ConfigError(
                f"no operator {name!r} (see `psi-coordinator operator list {config.directory}`)"
            )
        ended = store.remove_operator(name, moment, actor)
        if not ended:
            raise ConfigError(f"operator {name!r} was already removed on {known[-1].removed_at}")
        fingerprints = [c.cert_fingerprint for c in known if c.active]
    finally:
        store.close()
    deleted = []
    folder = operator_folder(config, name)
    for path in (folder / KEY_FILE, folder / CERT_FILE):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            deleted.append(path)
    with contextlib.suppress(OSError):
        folder.rmdir()  # only if nothing else is in it
    audit = open_audit(config)
    try:
        audit.append(
            "operator.removed",
            actor=actor,
            on_behalf_of=config.network,
            access_point="cli",
            action="D",
            details={
                "operator": name,
                "cert_fingerprints": fingerprints,
                "reason": safe_reason(reason),
            },
        )
    finally:
        audit.close()
    return deleted


def list_operators(config: CoordinatorConfig) -> list[OperatorStatus]:
    """Every operator ever registered, by name: newest certificate and whether active."""
    store = Store(config.database, readonly=True)
    try:
        certs = store.operator_certs()
    finally:
        store.close()
    by_name: dict[str, list[OperatorCert]] = {}
    for cert in certs:
        by_name.setdefault(cert.name, []).append(cert)
    out = []
    for name, held in sorted(by_name.items()):
        newest = held[-1]
        active = any(c.active for c in held)
        out.append(
            OperatorStatus(
                name=name,
                active=active,
                fingerprint=newest.cert_fingerprint,
                not_after=newest.not_after,
                added_at=held[0].added_at,
                added_by=held[0].added_by,
                removed_at=None if active else newest.removed_at,
                removed_by="" if active else newest.removed_by,
                certificates=len(held),
            )
        )
    return out


class OperatorGate:
    """Who may use the admin service: registered certificates of operators not removed.

    Called by the server's interceptor with every caller (`transport.Admit`); other
    roles pass (the role rules decide for them). A refusal is audited as
    "access.refused", naming the operator the certificate carries.
    """

    def __init__(self, store: Store, audit: CoordinatorAudit, network: str) -> None:
        self.store = store
        self.audit = audit
        self.network = network

    def __call__(self, peer: pki.Identity, fingerprint: str) -> str | None:
        if peer.role is not pki.Role.OPERATOR:
            return None
        cert = self.store.operator_cert(fingerprint)
        if cert is not None and cert.name == peer.name and cert.active:
            return None
        if cert is None or cert.name != peer.name:
            reason = (
                f"operator certificate of {peer.name!r} is not registered at this coordinator "
                "(psi-coordinator operator add issues registered ones)"
            )
        else:
            reason = f"operator {peer.name!r} was removed on {cert.removed_at}"
        self.audit.append(
            "access.refused",
            actor=f"operator:{peer.name}",
            on_behalf_of=self.network,
            access_point="admin-api",
            action="E",
            details={"reason": reason, "cert_fingerprint": fingerprint},
        )
        return reason


def adopt_configured_operator(
    config: CoordinatorConfig, store: Store, audit: CoordinatorAudit
) -> str | None:
    """A coordinator from before the operator registry: register its [operator] certificate.

    Only while no operator was ever registered, so a removed operator never comes back
    this way. Returns the adopted operator's name, or None.
    """
    if store.operator_certs():
        return None
    try:
        cert = pki.load_certificate(config.operator_cert)
        identity = pki.identity_from_certificate(cert)
    except (ConfigError, pki.CertificateIdentityError):
        return None  # doctor names the problem; nobody is admitted until one is added
    if identity.role is not pki.Role.OPERATOR or identity.network != config.network:
        return None
    register_certificate(
        store,
        audit,
        config.network,
        identity.name,
        cert,
        actor="coordinator",
        access_point="coordinator",
        adopted="the configured [operator] certificate, made before operators were registered",
    )
    return identity.name


def my_credentials(config: CoordinatorConfig, env: Mapping[str, str]) -> OperatorFiles:
    """The operator key and certificate of the person running the CLI.

    Looks in the folder KRUISPUNT_OPERATOR_DIR names, else in DIR/operators/<login>/,
    else at the configured [operator] files (init's, for the installing user). The
    certificate must carry the caller's own name: a round is never run in somebody
    else's name. ConfigError says where it looked and how to get one.
    """
    me = operator_name(login_name(env))
    explicit = env.get(OPERATOR_DIR_ENV, "").strip()
    if explicit:
        folder = Path(explicit)
        candidates = [(folder / KEY_FILE, folder / CERT_FILE)]
    else:
        folder = operator_folder(config, me)
        candidates = [
            (folder / KEY_FILE, folder / CERT_FILE),
            (config.operator_key, config.operator_cert),
        ]
    others = []
    for key, cert_path in candidates:
        if not cert_path.exists():
            continue
        try:
            identity = pki.identity_from_certificate(pki.load_certificate(cert_path))
        except pki.CertificateIdentityError as exc:
            raise ConfigError(f"{cert_path}: {exc}") from None
        if identity.role is not pki.Role.OPERATOR or identity.network != config.network:
            raise ConfigError(f"{cert_path}: not an operator certificate of {config.network}")
        if identity.name == me:
            return OperatorFiles(me, key, cert_path)
        others.append(f"{cert_path} is {identity.name!r}'s")
    looked = ", ".join(str(c) for _, c in candidates)
    held = f" ({'; '.join(others)})" if others else ""
    raise ConfigError(
        f"no operator certificate for {me!r}: looked at {looked}{held}. An operator with the "
        f"CA key issues yours with `psi-coordinator operator add {config.directory} {me}`"
    )
