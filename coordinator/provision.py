"""Setting up a coordinator and registering partners (the CSR flow).

`init` makes the network CA (its key in a folder of its own, to be moved offline:
`coordinator.ca_key`), the coordinator's TLS certificate, its Ed25519
manifest signing key and a separate Ed25519 audit signing key, the first personal
operator certificate (the installing user's, registered like every other,
`coordinator.operators`), the database and a commented coordinator.toml.
`add_partner` issues a partner's certificate from its CSR (the partner's private
key never comes here) and registers it with its signing and agreement public keys.
`export_roster` writes the partner roster (`kruispunt.roster`) from the registry:
the file whose digest partners put in their covenant and every node accepts.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509

from coordinator.audit import CoordinatorAudit, open_audit
from coordinator.ca_key import OFFLINE_CA_DIR, OFFLINE_CA_KEY, load_ca_key
from coordinator.config import (
    AUDIT_KEY,
    AUDIT_PUBLIC_KEY,
    CONFIG_NAME,
    CoordinatorConfig,
    load_coordinator_config,
)
from coordinator.operators import register_certificate
from coordinator.store import COORDINATOR_HOLDER, Partner, PurposeChange, Store
from kruispunt import pki, signing
from kruispunt.agreement_file import agreement_key_id, read_agreement_public_key
from kruispunt.errors import ConfigError
from kruispunt.login import actor as login_actor
from kruispunt.login import login_name, operator_name
from kruispunt.purpose import ID_RE, Purpose
from kruispunt.roster import (
    MAX_ORGANISATION_CHARS,
    Roster,
    RosterPartner,
    diff_rosters,
    load_roster,
    parse_roster,
    render_roster,
)

#: The roster file `export_roster` writes, in the coordinator directory.
ROSTER_FILE = "roster.toml"

CONFIG_TEMPLATE = """\
# Kruispunt coordinator configuration (created by `psi-coordinator init`).
# Paths are relative to this file's directory.

[coordinator]
network = "{network}"
# The admin service for the operator CLI. Keep it on loopback: operators run the
# CLI on this machine, with the operator certificate in operator/.
listen = "127.0.0.1:{port}"
database = "coordinator.db"
log_level = "info"

[tls]
key = "tls/coordinator.key"
cert = "tls/coordinator.crt"
ca = "ca/ca.crt"
# The network CA's private key is not read by the serving coordinator. init wrote it to
# {ca_key}; move that folder to offline media. Commands that issue certificates
# (partner add, partner renew, operator add, renew) take it as --ca-key PATH. `doctor`
# warns while a key is still at ca_key below.
ca_key = "{ca_key}"

[signing]
# Ed25519 key that signs every round manifest.
key = "signing/coordinator.ed25519"
public_key = "signing/coordinator.pub"

[audit]
# Ed25519 key that signs the audit log, apart from the manifest key. Give the public
# half to every partner's privacy officer with each export (psi-coordinator audit export).
key = "signing/audit.ed25519"
public_key = "signing/audit.pub"

[operator]
# The personal operator certificate of the user who ran init ({operator}). Every other
# operator gets their own with `psi-coordinator operator add`, in operators/NAME/.
key = "operator/operator.key"
cert = "operator/operator.crt"

[rounds]
manifest_ttl_seconds = 3600     # a node refuses a manifest older than this
phase_timeout_seconds = 1800    # deadline for each node call in a phase
chunk_points = 4096             # points per message (32 bytes each)

# The weekly round: uncomment to let the serving coordinator start it by itself.
# Five-field cron, local time (here: Mondays at 06:00).
# [[schedule]]
# purpose = "vroegsignalering"
# cron = "0 6 * * 1"

# What a scheduled round does when it fails. Unreachable or slow nodes are retried, as a
# new round, after 60 s, 120 s, ... (at most retry_max_seconds); refusals never. When the
# round still did not complete, the command runs (no shell; KRUISPUNT_ROUND_ID,
# KRUISPUNT_ROUND_STATE, KRUISPUNT_ROUND_REASON in its environment) and/or the webhook
# gets a JSON POST.
# [scheduler]
# retry_attempts = 3
# retry_base_seconds = 60
# retry_max_seconds = 900
# notify_command = ["/usr/local/bin/kruispunt-alert"]
# notify_webhook = "https://alerts.example.nl/hooks/kruispunt"
# notify_timeout_seconds = 10

# A Prometheus endpoint (/metrics): rounds by state, phase times, points, refusals, days
# left on every certificate. Off unless set; loopback only, unless allow_remote = true.
# [metrics]
# listen = "127.0.0.1:9464"
"""


@dataclass(frozen=True)
class InitResult:
    directory: Path
    network: str
    ca_cert: Path
    signing_public_key: Path
    config: Path
    audit_public_key: Path
    operator: str = ""
    operator_cert: Path | None = None
    #: Where init wrote the CA key: move it (its folder) to offline media.
    ca_key: Path | None = None


def init_coordinator(
    directory: Path,
    network: str,
    *,
    port: int = 50050,
    operator: str | None = None,
    now: datetime | None = None,
    ca_key_dir: Path | None = None,
) -> InitResult:
    """Create a new coordinator directory; refuses to touch an existing one.

    The CA key goes to `ca_key_dir` (default DIR/ca-offline), a folder of its own that
    the operator moves to offline media; an existing key there is never overwritten.

    The first operator certificate is `operator`'s, by default the installing user's
    (`kruispunt.login`: SUDO_USER, the session's or the account's login name).
    """
    pki.Identity.coordinator(network)  # validates the network name
    if operator is None:
        operator = operator_name(login_name())
    try:
        operator_identity = pki.Identity.operator(network, operator)
    except ValueError:
        raise ConfigError(
            f"operator name {operator!r}: use lowercase letters, digits and hyphens"
        ) from None
    if (directory / CONFIG_NAME).exists():
        raise ConfigError(f"{directory}: already holds a coordinator ({CONFIG_NAME} exists)")
    key_dir = ca_key_dir if ca_key_dir is not None else directory / OFFLINE_CA_DIR
    ca_key_path = key_dir / OFFLINE_CA_KEY
    if ca_key_path.exists():
        raise ConfigError(f"{ca_key_path}: a CA key is already there; a key is never overwritten")
    for sub in ("ca", "tls", "signing", "operator", "partners"):
        (directory / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    ca_key, ca_cert = pki.create_ca(network, now=now)
    pki.write_private_key(ca_key_path, ca_key)
    pki.write_pem(directory / "ca/ca.crt", ca_cert)
    issued = {}
    for sub, ident in (
        ("tls/coordinator", pki.Identity.coordinator(network)),
        ("operator/operator", operator_identity),
    ):
        key = pki.generate_tls_key()
        cert = pki.issue_for_key(ca_key, ca_cert, key.public_key(), ident, now=now)
        pki.write_private_key(directory / f"{sub}.key", key)
        pki.write_pem(directory / f"{sub}.crt", cert)
        issued[sub] = cert
    sign_key = signing.generate_signing_key()
    pki.write_private_key(directory / "signing/coordinator.ed25519", sign_key)
    pki.write_pem(
        directory / "signing/coordinator.pub", signing.public_key_pem(sign_key.public_key())
    )
    audit_key = signing.generate_signing_key()
    pki.write_private_key(directory / AUDIT_KEY, audit_key)
    pki.write_pem(directory / AUDIT_PUBLIC_KEY, signing.public_key_pem(audit_key.public_key()))
    config_path = directory / CONFIG_NAME
    config_path.write_text(
        CONFIG_TEMPLATE.format(
            network=network,
            port=port,
            operator=operator,
            ca_key=_relative_or_absolute(ca_key_path, directory),
        ),
        encoding="utf-8",
    )
    config = load_coordinator_config(directory)
    store = Store(config.database)
    audit = CoordinatorAudit(config.database, audit_key)
    actor = login_actor()
    try:
        audit.append(
            "coordinator.initialised",
            actor=actor,
            on_behalf_of=network,
            access_point="cli",
            action="C",
            details={
                "network": network,
                "ca_fingerprint": pki.fingerprint(ca_cert),
                "signing_key_id": signing.key_id(sign_key.public_key()),
                "audit_key_id": signing.key_id(audit_key.public_key()),
            },
        )
        register_certificate(
            store, audit, network, operator, issued["operator/operator"], actor=actor, now=now
        )
    finally:
        audit.close()
        store.close()
    return InitResult(
        directory,
        network,
        directory / "ca/ca.crt",
        directory / "signing/coordinator.pub",
        config_path,
        directory / AUDIT_PUBLIC_KEY,
        operator,
        config.operator_cert,
        ca_key_path,
    )


def _relative_or_absolute(path: Path, directory: Path) -> str:
    """`path` as coordinator.toml writes it: relative to `directory` when inside it."""
    try:
        return str(path.resolve().relative_to(directory.resolve()))
    except ValueError:
        return str(path.resolve())


def add_partner(
    config: CoordinatorConfig,
    partner_id: str,
    *,
    name: str,
    address: str,
    csr_path: Path,
    signing_key_path: Path,
    agreement_key_path: Path,
    ca_key_path: Path | None,
    actor: str = "operator",
    now: datetime | None = None,
) -> Path:
    """Issue a partner certificate from its CSR, register the partner; returns the cert path.

    `signing_key_path` and `agreement_key_path` are the public key files `psi-node init`
    wrote (signing/node.pub, signing/node.x25519.pub). A key another registered partner
    already has is refused: the roster could not tell the two apart. `ca_key_path` is
    the offline CA key the operator names (`--ca-key`); None is refused, naming the option.
    """
    if not ID_RE.match(partner_id):
        raise ConfigError(
            "partner id: a letter, then lowercase letters, digits and dashes (no 8-digit runs)"
        )
    _check_address(address)
    _check_organisation(name)
    identity = pki.Identity.partner(config.network, partner_id)
    csr = pki.load_csr(csr_path)
    partner_key = signing.read_public_key(
        signing_key_path, missing="signing public key file not found"
    )
    agreement_key = read_agreement_public_key(agreement_key_path)
    signing_raw = signing.public_key_bytes(partner_key)
    ca_key = load_ca_key(config, ca_key_path, task="partner add")
    ca_cert = pki.load_certificate(config.tls_ca)
    try:
        cert = pki.issue_certificate(ca_key, ca_cert, csr, identity, now=now)
    except pki.CsrRejected as exc:
        raise ConfigError(f"{csr_path}: {exc}") from None
    store = Store(config.database)
    try:
        for other in store.partners():
            if other.id == partner_id:
                continue  # store.add_partner says it is already registered
            if other.signing_key == signing_raw:
                raise ConfigError(
                    f"{signing_key_path}: partner {other.id!r} is registered with this signing "
                    "key; every partner needs its own (psi-node init makes one)"
                )
            if other.agreement_key == agreement_key:
                raise ConfigError(
                    f"{agreement_key_path}: partner {other.id!r} is registered with this "
                    "agreement key; every partner needs its own (psi-node init makes one)"
                )
        store.add_partner(
            Partner(
                id=partner_id,
                name=name,
                address=address,
                cert_fingerprint=pki.fingerprint(cert),
                cert_pem=pki.certificate_pem(cert).decode(),
                signing_key=signing_raw,
                agreement_key=agreement_key,
                added_at=(now or datetime.now(UTC)).isoformat(),
                active=True,
            )
        )
    finally:
        store.close()
    out = config.directory / "partners" / f"{partner_id}.crt"
    pki.write_pem(out, cert)
    audit = open_audit(config)
    audit.append(
        "partner.added",
        actor=actor,
        on_behalf_of=config.network,
        access_point="cli",
        action="C",
        details={
            "partner": partner_id,
            "name": name,
            "address": address,
            "cert_fingerprint": pki.fingerprint(cert),
            "signing_key_id": signing.key_id(partner_key),
            "agreement_key_id": agreement_key_id(agreement_key),
        },
    )
    return out


def update_partner_address(
    config: CoordinatorConfig, partner_id: str, address: str, *, actor: str = "operator"
) -> None:
    """Point a registered partner at a new HOST:PORT (its certificate stays valid)."""
    _check_address(address)
    store = Store(config.database)
    try:
        store.update_partner_address(partner_id, address)
    finally:
        store.close()
    audit = open_audit(config)
    audit.append(
        "partner.changed",
        actor=actor,
        on_behalf_of=config.network,
        access_point="cli",
        action="U",
        details={"partner": partner_id, "address": address},
    )


def _check_organisation(name: str) -> None:
    """The roster's rules for an organisation name, checked before anything is issued."""
    normal = unicodedata.normalize("NFC", name)
    if not normal.strip():
        raise ConfigError("--name: the organisation name must not be empty")
    if normal != normal.strip():
        raise ConfigError("--name: the organisation name must not start or end with spaces")
    if len(normal) > MAX_ORGANISATION_CHARS:
        raise ConfigError(f"--name: longer than {MAX_ORGANISATION_CHARS} characters")
    if any(unicodedata.category(c).startswith("C") for c in normal):
        raise ConfigError(
            "--name: contains a control or invisible character; use plain printable text"
        )


def _check_address(address: str) -> None:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"address {address!r} must be HOST:PORT")


def add_purpose(
    config: CoordinatorConfig, purpose: Purpose, *, actor: str = "operator"
) -> PurposeChange:
    """Register or change a purpose; a change is an audited new version, never a silent edit.

    Re-adding the current definition changes nothing and logs nothing. Every
    partner the purpose names must be registered and active (ConfigError names
    the others), so that `doctor` and the next round do not meet them first.
    """
    store = Store(config.database)
    try:
        active = {p.id for p in store.partners() if p.active}
        unknown = [p for p in purpose.partners if p not in active]
        if unknown:
            raise ConfigError(
                f"purpose {purpose.id!r} names {', '.join(map(repr, unknown))}, not a registered "
                "active partner (see `psi-coordinator partner list`; register with `partner add`)"
            )
        change = store.put_purpose(purpose, datetime.now(UTC).isoformat(), actor)
    finally:
        store.close()
    if change.unchanged:
        return change
    stored, previous = change.stored, change.previous
    details: dict[str, object] = {"purpose": stored.id, "version": stored.version}
    if previous is not None:
        details["changed"] = sorted({key.split(".")[0] for key in change.changes})
    else:
        details["definition"] = {k: v for k, v in stored.to_dict().items() if k != "description"}
    open_audit(config).append(
        "purpose.changed" if previous else "purpose.added",
        actor=actor,
        on_behalf_of=config.network,
        access_point="cli",
        action="U" if previous else "C",
        basis=f"{stored.id} v{stored.version}; covenant {stored.covenant_id}",
        details=details,
    )
    return change


def retire_purpose(
    config: CoordinatorConfig, purpose_id: str, *, reason: str, actor: str = "operator"
) -> Purpose:
    """Take a purpose out of use for good, audited with who and why; no round of it runs again."""
    store = Store(config.database)
    try:
        retired = store.retire_purpose(purpose_id, datetime.now(UTC).isoformat(), actor, reason)
    finally:
        store.close()
    open_audit(config).append(
        "purpose.retired",
        actor=actor,
        on_behalf_of=config.network,
        access_point="cli",
        action="D",
        basis=f"{retired.id} v{retired.version}; covenant {retired.covenant_id}",
        details={"purpose": retired.id, "version": retired.version, "reason": reason},
    )
    return retired


# -- the partner roster ------------------------------------------------------------------


def roster_path(config: CoordinatorConfig) -> Path:
    """Where `export_roster` writes the roster: roster.toml in the coordinator directory."""
    return config.directory / ROSTER_FILE


def _overlap(store: Store, holder: str, now: datetime) -> tuple[bytes | None, datetime | None]:
    """A rotation's previous key and the end of its overlap, while that is still ahead."""
    found = store.key_overlap(holder)
    if found is None:
        return None, None
    until = datetime.fromisoformat(found[1])
    if until <= now:
        return None, None  # the overlap is over: the old key leaves the roster
    return found[0], until


def registry_roster(
    config: CoordinatorConfig, *, version: int, now: datetime | None = None
) -> Roster:
    """The roster the registry describes now, numbered `version`; nothing is written.

    Lists every registered partner, deactivated ones too (they stay members and keep
    their keys; a removed partner is no longer registered): its id, its name as
    organisation, its signing and agreement keys and the SHA-256 fingerprint of its
    current certificate, with the network name, the coordinator's manifest-signing key
    and the fingerprint of its TLS certificate (what every node pins). A key rotated less
    than its overlap before `now` is listed with its previous key and the end of the
    overlap (`coordinator.key_rotation`). ConfigError names a partner registered without
    an agreement key, and the fix.
    """
    moment = now or datetime.now(UTC)
    coordinator_key = signing.read_public_key(
        config.signing_public_key, missing="signing public key not found"
    )
    store = Store(config.database, readonly=True)
    try:
        partners = store.partners()
        overlaps = {p.id: _overlap(store, p.id, moment) for p in partners}
        coordinator_previous, coordinator_until = _overlap(store, COORDINATOR_HOLDER, moment)
    finally:
        store.close()
    entries = []
    for p in partners:
        if not p.agreement_key:
            raise ConfigError(
                f"partner {p.id!r} was registered without an agreement key, so the roster "
                f"cannot list it; ask its IT team for signing/node.x25519.pub (psi-node init "
                f"writes it; an older node makes one with a new init) and register it again "
                f"with `psi-coordinator partner add ... --agreement-key FILE`"
            )
        try:
            cert = x509.load_pem_x509_certificate(p.cert_pem.encode())
        except ValueError:
            raise ConfigError(f"partner {p.id!r}: stored certificate does not parse") from None
        fingerprint = pki.fingerprint(cert)
        if fingerprint != p.cert_fingerprint:
            raise ConfigError(
                f"partner {p.id!r}: stored certificate fingerprint {fingerprint} differs from "
                f"the registered {p.cert_fingerprint}; the database was changed by hand"
            )
        entries.append(
            RosterPartner(
                id=p.id,
                organisation=unicodedata.normalize("NFC", p.name),
                signing_key=p.signing_key,
                agreement_key=p.agreement_key,
                tls_fingerprint=bytes.fromhex(fingerprint),
                previous_signing_key=overlaps[p.id][0],
                previous_signing_key_valid_until=overlaps[p.id][1],
            )
        )
    return Roster(
        network=config.network,
        version=version,
        coordinator_signing_key=signing.public_key_bytes(coordinator_key),
        partners=tuple(entries),
        # Nodes admit only this coordinator certificate: a renewed one needs a new roster.
        coordinator_tls_fingerprint=bytes.fromhex(
            pki.fingerprint(pki.load_certificate(config.tls_cert))
        ),
        coordinator_previous_signing_key=coordinator_previous,
        coordinator_previous_signing_key_valid_until=coordinator_until,
    )


def load_exported_roster(config: CoordinatorConfig) -> Roster | None:
    """The roster `export_roster` wrote last, or None if there is none yet."""
    path = roster_path(config)
    if not path.exists():
        return None
    return load_roster(path)


def export_roster(
    config: CoordinatorConfig, *, actor: str = "operator", now: datetime | None = None
) -> tuple[Roster, list[str]]:
    """Write the registry's roster to `roster_path`; returns it and what changed.

    The version is the previous roster's plus one when anything changed (a partner
    added, removed, renamed, or with a new key or certificate); an export that would
    change nothing writes nothing, audits nothing and returns the previous roster with
    no changes. Audits "roster.exported" with the version and digest.
    """
    path = roster_path(config)
    previous = load_exported_roster(config)
    if previous is not None and previous.network != config.network:
        raise ConfigError(
            f"{path}: roster of network {previous.network!r}, this coordinator runs "
            f"{config.network!r}; move the file aside"
        )
    current = registry_roster(config, version=previous.version if previous else 1, now=now)
    if previous is not None:
        if current.digest == previous.digest:
            return previous, []
        current = replace(current, version=previous.version + 1)
    text = render_roster(current)
    # The roster's own parser is the one every node runs: what it refuses (fewer than two
    # partners, a name it would not show) must fail here, before anything is written.
    try:
        roster = parse_roster(text, source="the registry's roster")
    except ConfigError as exc:
        raise ConfigError(f"cannot export {path}: {exc}") from None
    pki.write_pem(path, text.encode("utf-8"))  # atomic, mode 0644: public keys only
    audit = open_audit(config, now=(lambda: now) if now is not None else None)
    try:
        audit.append(
            "roster.exported",
            actor=actor,
            on_behalf_of=config.network,
            access_point="cli",
            action="C" if previous is None else "U",
            details={
                "version": roster.version,
                "digest": roster.digest_hex,
                "partners": list(roster.ids),
                "previous_digest": previous.digest_hex if previous else "",
            },
        )
    finally:
        audit.close()
    return roster, diff_rosters(previous, roster)
