"""`psi-coordinator doctor`: check the coordinator's set-up and whether every node answers.

Checks coordinator.toml and its schedules, the CA certificate (and the CA key, if it is
on this machine at all: it may well be offline), the coordinator's TLS and operator
certificates and keys, the signing key, the database and its audit chain, the operator
registry (someone may use the admin service, init's certificate is still admitted), every
registered partner's certificate, that every purpose names registered partners only,
that the exported partner roster (roster.toml) still describes the registry, and,
unless told not to, each partner node: the coordinator opens the same mutual-TLS
channel a round uses and calls the node's standard gRPC health check. That is the
one check of the firewall path a partner cannot do from its side.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ed25519

from coordinator.audit import verify_database
from coordinator.config import AUDIT_KEY, CONFIG_NAME, CoordinatorConfig, load_coordinator_config
from coordinator.provision import load_exported_roster, registry_roster, roster_path
from coordinator.schedule import next_run, parse_cron
from coordinator.store import OperatorCert, Partner, Store
from kruispunt import doctor, pki, signing
from kruispunt.doctor import FAIL, OK, WARN, Check, DoctorReport
from kruispunt.errors import ConfigError
from kruispunt.purpose import Purpose
from kruispunt.roster import diff_rosters
from kruispunt.tomlfile import read_toml
from kruispunt.wording import plural

__all__ = ["run_doctor"]

SERVICE = "kruispunt.v1.Coordinator"
NODE_SERVICE = "kruispunt.v1.PsiNode"
_MAX_PROBES = 16


def run_doctor(
    directory: Path,
    *,
    now: datetime | None = None,
    check_partners: bool = True,
    env: Mapping[str, str] | None = None,
) -> DoctorReport:
    """Check the coordinator in `directory`; changes nothing.

    `check_partners` runs the checks that open connections: a health call to every
    active partner node (in parallel, `kruispunt.doctor.PROBE_TIMEOUT_SECONDS` each)
    and to this coordinator's own admin service. `env` is what `serve` would see.
    """
    moment = now or datetime.now(UTC)
    report = DoctorReport(f"psi-coordinator doctor {directory}")
    try:
        config = load_coordinator_config(directory, env=env)
    except ConfigError as exc:
        report.add(CONFIG_NAME, FAIL, f"{exc} (the other checks need it)")
        report.extend(_raw_schedule_checks(directory, moment))
        return report
    report.add(
        CONFIG_NAME,
        OK,
        f"network {config.network}, admin service on {config.listen}, "
        f"{len(config.schedules)} scheduled purpose(s)",
    )
    report.checks.append(doctor.check_private_directory("coordinator directory", config.directory))
    report.checks.append(
        doctor.check_running_config(
            "running config",
            config.directory,
            CONFIG_NAME,
            sha256=config.sha256,
            fixed_sha256=config.fixed_sha256,
            reloaded="the schedules",
            reload_hint=(
                "the next runs shown below are not the ones the server follows until "
                "`systemctl reload psi-coordinator` (or `kill -HUP {pid}`)"
            ),
            restart_hint="systemctl restart psi-coordinator, or stop and start its serve",
        )
    )
    raw = read_toml(directory / CONFIG_NAME)

    ca_checks, ca = doctor.check_ca_certificate(
        "network CA", config.tls_ca, network=config.network, now=moment
    )
    report.extend(ca_checks)
    report.checks.append(
        _ca_key_check(
            config, ca, doctor.configured_path(config.directory, raw, "tls", "ca_key", "ca/ca.key")
        )
    )

    tls_check, tls_key = doctor.check_private_key(
        "tls key",
        config.tls_key,
        kind="tls",
        owner_of=config.directory,
        written=doctor.configured_path(config.directory, raw, "tls", "key", "tls/coordinator.key"),
    )
    report.checks.append(tls_check)
    tls_certs, tls_cert = doctor.check_leaf_certificate(
        "tls certificate",
        config.tls_cert,
        ca=ca,
        expected=pki.Identity.coordinator(config.network),
        key=tls_key,
        key_path=config.tls_key,
        now=moment,
        renew_hint=f"psi-coordinator renew {directory}",
    )
    report.extend(tls_certs)

    op_check, op_key = doctor.check_private_key(
        "operator key",
        config.operator_key,
        kind="tls",
        owner_of=config.directory,
        written=doctor.configured_path(
            config.directory, raw, "operator", "key", "operator/operator.key"
        ),
    )
    report.checks.append(op_check)
    operator = _operator_identity(config)
    if operator is None:
        report.add(
            "operator certificate",
            FAIL,
            f"{config.operator_cert}: missing, unreadable or not an operator certificate",
        )
    else:
        op_certs, _ = doctor.check_leaf_certificate(
            "operator certificate",
            config.operator_cert,
            ca=ca,
            expected=operator,
            key=op_key,
            key_path=config.operator_key,
            now=moment,
            renew_hint=f"psi-coordinator renew {directory}",
        )
        report.extend(op_certs)

    sign_check, sign_key = doctor.check_private_key(
        "signing key",
        config.signing_key,
        kind="signing",
        owner_of=config.directory,
        written=doctor.configured_path(
            config.directory, raw, "signing", "key", "signing/coordinator.ed25519"
        ),
    )
    report.checks.append(sign_check)
    _public_key_check(report, config, sign_key)
    audit_public_key = _audit_key_checks(report, config, raw, sign_key)

    store = _open_store(report, config, audit_public_key)
    if store is None:
        report.extend(_schedule_checks(config, None, moment))
        return report
    try:
        partners = store.partners()
        purposes = store.purposes()
        operators = store.operator_certs()
    finally:
        store.close()
    report.checks.append(_operator_registry_check(config, operators, moment))
    report.extend(_partner_checks(config, partners, ca, moment))
    report.extend(_purpose_checks(partners, purposes))
    report.checks.append(_roster_check(config, directory))
    report.extend(_schedule_checks(config, purposes, moment))

    if check_partners:
        if tls_key is None or tls_cert is None or ca is None:
            report.add("partners reachable", WARN, "not probed: needs the coordinator's TLS set-up")
        else:
            tls = (
                pki.private_key_pem(tls_key),
                pki.certificate_pem(tls_cert),
                pki.certificate_pem(ca),
            )
            report.checks.append(
                doctor.check_listener(
                    "admin service",
                    config.listen,
                    pki.Identity.coordinator(config.network),
                    key_pem=tls[0],
                    cert_pem=tls[1],
                    ca_pem=tls[2],
                    service=SERVICE,
                    command="psi-coordinator serve",
                )
            )
            report.extend(_reachability(config, partners, tls))
    return report


def _roster_check(config: CoordinatorConfig, directory: Path) -> Check:
    """roster.toml exists and lists exactly the registry's partners and keys."""
    name = "partner roster"
    path = roster_path(config)
    fix = f"psi-coordinator roster export {directory}, then every node accepts the new version"
    try:
        exported = load_exported_roster(config)
    except ConfigError as exc:
        return Check(name, FAIL, f"{exc}; write a new one with {fix}")
    if exported is None:
        return Check(name, WARN, f"{path}: not exported yet; {fix}")
    try:
        current = registry_roster(config, version=exported.version)
    except ConfigError as exc:
        return Check(name, FAIL, f"the registry cannot give a roster: {exc}")
    summary = (
        f"{path}: version {exported.version}, digest {exported.digest_hex[:16]}…, "
        f"{plural(len(exported.partners), 'partner')}"
    )
    if current.digest != exported.digest:
        changes = diff_rosters(exported, current)
        return Check(
            name,
            WARN,
            f"{summary}; stale: the registry changed since ({'; '.join(changes)}); {fix}",
        )
    return Check(name, OK, f"{summary}; matches the registry")


# ---------------------------------------------------------------------------------------
# Keys and certificates


def _ca_key_check(config: CoordinatorConfig, ca: x509.Certificate | None, written: Path) -> Check:
    name = "CA key"
    path = config.ca_key
    if not path.exists() and not written.is_symlink():
        return Check(
            name,
            OK,
            f"{path}: not on this machine (kept offline; pass --ca-key to partner add/renew, "
            "operator add and renew)",
        )
    check, key = doctor.check_private_key(
        name, path, kind="tls", owner_of=config.directory, written=written
    )
    if key is None or ca is None:
        return check
    if not pki.same_public_key(key.public_key(), ca.public_key()):
        return Check(name, FAIL, f"{path}: does not match the CA certificate {config.tls_ca}")
    if check.status != OK:
        return check
    # Nothing online needs it: every command that issues a certificate asks for --ca-key.
    return Check(
        name,
        WARN,
        f"{check.detail}; matches the CA certificate, but it is still on this machine: move "
        f"{path.parent} to offline media and pass --ca-key PATH when issuing certificates",
    )


def _operator_identity(config: CoordinatorConfig) -> pki.Identity | None:
    """The operator the operator certificate names (any name the operator chose at init)."""
    try:
        identity = pki.identity_from_certificate(pki.load_certificate(config.operator_cert))
    except (ConfigError, pki.CertificateIdentityError):
        return None
    if identity.role != pki.Role.OPERATOR:
        return None
    return pki.Identity.operator(config.network, identity.name)


def _operator_registry_check(
    config: CoordinatorConfig, operators: list[OperatorCert], now: datetime
) -> Check:
    """Someone may use the admin service, init's certificate still counts, none has expired."""
    name = "operators"
    active = [o for o in operators if o.active]
    if not active:
        return Check(
            name,
            WARN,
            "no active operator: nobody can run or cancel rounds; issue one with "
            f"`psi-coordinator operator add {config.directory} NAME`",
        )
    problems = []
    try:
        configured = pki.fingerprint(pki.load_certificate(config.operator_cert))
    except ConfigError:
        configured = None  # the operator certificate check names it
    if configured is not None and configured not in {o.cert_fingerprint for o in active}:
        problems.append(
            f"{config.operator_cert} is not a registered certificate of an active operator: "
            "the admin service refuses it"
        )
    for o in active:
        expiry = datetime.fromisoformat(o.not_after)
        if expiry <= now:
            problems.append(f"the certificate of operator {o.name!r} has expired")
    names = sorted({o.name for o in active})
    summary = f"{len(names)} active operator(s): {', '.join(names)}"
    if problems:
        return Check(name, WARN, f"{summary}; " + "; ".join(problems))
    return Check(name, OK, summary)


def _public_key_check(
    report: DoctorReport, config: CoordinatorConfig, sign_key: pki.PrivateKey | None
) -> ed25519.Ed25519PublicKey | None:
    """Check the published signing key matches the private one; return the key to verify with."""
    name = "signing public key"
    path = config.signing_public_key
    published: ed25519.Ed25519PublicKey | None
    try:
        published = signing.read_public_key(
            path, missing="not found (partners verify manifests with it)"
        )
    except ConfigError as exc:
        report.add(name, FAIL, str(exc))
        published = None
    own = sign_key.public_key() if isinstance(sign_key, ed25519.Ed25519PrivateKey) else None
    if published is not None:
        if own is not None and signing.public_key_bytes(own) != signing.public_key_bytes(published):
            report.add(
                name,
                FAIL,
                f"{path}: does not match {config.signing_key}; partners would refuse every "
                "manifest",
            )
        else:
            report.add(name, OK, f"{path}: key id {signing.key_id(published)}")
    return own if own is not None else published


def _audit_key_checks(
    report: DoctorReport,
    config: CoordinatorConfig,
    raw: Mapping[str, object],
    sign_key: pki.PrivateKey | None,
) -> ed25519.Ed25519PublicKey | None:
    """Check the audit signing key: configured, apart from the manifest key, its public half
    published; return the key the audit log verifies with."""
    name = "audit signing key"
    if not config.audit_key_separate:
        report.add(
            name,
            FAIL,
            f"{CONFIG_NAME} names no [audit] key: this directory predates the audit key's "
            "split from the manifest key, so its audit log is signed with the manifest key "
            "(online, next to the database). It keeps working so, and officers verify with "
            f"{config.signing_public_key}; a new key cannot continue this chain. To separate "
            "them, set up a new coordinator directory (psi-coordinator init), which writes "
            f"{AUDIT_KEY}, and keep this directory's export and public key with the records",
        )
        return _load_public(config.signing_public_key)
    check, key = doctor.check_private_key(
        name,
        config.audit_key,
        kind="signing",
        owner_of=config.directory,
        written=doctor.configured_path(config.directory, raw, "audit", "key", AUDIT_KEY),
    )
    own = key.public_key() if isinstance(key, ed25519.Ed25519PrivateKey) else None
    manifest = sign_key.public_key() if isinstance(sign_key, ed25519.Ed25519PrivateKey) else None
    if (
        own is not None
        and manifest is not None
        and signing.public_key_bytes(own) == signing.public_key_bytes(manifest)
    ):
        report.add(name, FAIL, f"{config.audit_key}: the same key as the manifest key")
    else:
        report.checks.append(check)
    published = _load_public(config.audit_public_key)
    pub_name = "audit public key"
    if published is None:
        report.add(
            pub_name,
            FAIL,
            f"{config.audit_public_key}: missing or unreadable (officers verify with it)",
        )
    elif own is not None and signing.public_key_bytes(own) != signing.public_key_bytes(published):
        report.add(pub_name, FAIL, f"{config.audit_public_key}: does not match {config.audit_key}")
    else:
        report.add(pub_name, OK, f"{config.audit_public_key}: key id {signing.key_id(published)}")
    return own if own is not None else published


def _load_public(path: Path) -> ed25519.Ed25519PublicKey | None:
    try:
        return signing.load_public_key(path.read_bytes())
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------------------------------
# Database, partners, purposes, schedules


def _open_store(
    report: DoctorReport, config: CoordinatorConfig, public_key: ed25519.Ed25519PublicKey | None
) -> Store | None:
    path = config.database
    if not path.is_file():
        report.add("database", FAIL, f"{path}: not found (psi-coordinator init creates it)")
        return None
    try:
        store = Store(path)
    except (ConfigError, sqlite3.Error) as exc:
        report.add("database", FAIL, f"{path}: cannot open ({exc})")
        return None
    report.add("database", OK, f"{path}: opens")
    if public_key is None:
        report.add("audit log", FAIL, f"{path}: cannot verify without the audit public key")
        return store
    try:
        result = verify_database(path, public_key)
    except ConfigError as exc:
        report.add("audit log", FAIL, str(exc))
        return store
    if result.ok:
        report.add("audit log", OK, f"{result.count} events, chain and signatures verify")
    else:
        report.add(
            "audit log",
            FAIL,
            f"does not verify at event {result.first_bad_seq}: {result.reason}",
        )
    return store


def _partner_checks(
    config: CoordinatorConfig,
    partners: list[Partner],
    ca: x509.Certificate | None,
    now: datetime,
) -> list[Check]:
    if not partners:
        return [Check("partners", WARN, "no partner registered yet (psi-coordinator partner add)")]
    checks: list[Check] = []
    for partner in partners:
        name = f"partner {partner.id} certificate"
        if not partner.active:
            checks.append(Check(name, OK, "partner inactive: not checked"))
            continue
        try:
            cert = x509.load_pem_x509_certificate(partner.cert_pem.encode())
        except ValueError:
            checks.append(Check(name, FAIL, "the stored certificate does not parse"))
            continue
        if pki.fingerprint(cert) != partner.cert_fingerprint:
            checks.append(
                Check(name, FAIL, "the stored certificate does not match its stored fingerprint")
            )
            continue
        found, _ = doctor.check_leaf_certificate(
            name,
            cert,
            ca=ca,
            expected=pki.Identity.partner(config.network, partner.id),
            now=now,
            renew_hint=f"psi-coordinator partner renew {config.directory} {partner.id}",
        )
        checks.extend(found)
    return checks


def _purpose_checks(partners: list[Partner], purposes: list[Purpose]) -> list[Check]:
    active = {p.id for p in partners if p.active}
    checks = []
    for purpose in purposes:
        name = f"purpose {purpose.id}"
        missing = [pid for pid in purpose.partners if pid not in active]
        if missing:
            checks.append(
                Check(
                    name,
                    FAIL,
                    f"names partner(s) not registered: {', '.join(missing)}; every round for "
                    "it is refused (partner add, or purpose add with a corrected list)",
                )
            )
        else:
            checks.append(
                Check(
                    name,
                    OK,
                    f"version {purpose.version}, {purpose.mode}, partners "
                    f"{', '.join(purpose.partners)} registered",
                )
            )
    return checks


def _schedule_checks(
    config: CoordinatorConfig, purposes: list[Purpose] | None, now: datetime
) -> list[Check]:
    known = None if purposes is None else {p.id for p in purposes}
    checks = []
    for i, sched in enumerate(config.schedules, start=1):
        name = f"schedule #{i} {sched.purpose}"
        if known is not None and sched.purpose not in known:
            checks.append(
                Check(
                    name,
                    FAIL,
                    f"purpose {sched.purpose!r} is not registered: the round "
                    f"scheduled at {sched.cron!r} would not start",
                )
            )
            continue
        checks.append(_cron_check(name, sched.cron, now, source=f"[[schedule]] #{i}"))
    return checks


def _raw_schedule_checks(directory: Path, now: datetime) -> list[Check]:
    """Every schedule's cron, read straight from the TOML: the loader stops at the first bad one."""
    try:
        data = read_toml(directory / CONFIG_NAME)
    except ConfigError:
        return []
    raw = data.get("schedule", [])
    if not isinstance(raw, list):
        return []
    checks = []
    for i, item in enumerate(raw, start=1):
        if not isinstance(item, dict) or "cron" not in item:
            continue
        name = f"schedule #{i} {item.get('purpose', '?')}"
        checks.append(_cron_check(name, str(item["cron"]), now, source=f"[[schedule]] #{i}"))
    return checks


def _cron_check(name: str, cron: str, now: datetime, *, source: str) -> Check:
    try:
        parse_cron(cron, source=source)
    except ConfigError as exc:
        return Check(name, FAIL, str(exc))
    when = next_run(cron, now.astimezone())
    return Check(name, OK, f"cron {cron!r}, next run {when.strftime('%Y-%m-%d %H:%M %z')}")


# ---------------------------------------------------------------------------------------
# Reachability


def _reachability(
    config: CoordinatorConfig, partners: list[Partner], tls: tuple[bytes, bytes, bytes]
) -> list[Check]:
    active = [p for p in partners if p.active]
    if not active:
        return []
    key_pem, cert_pem, _ca_pem = tls

    def probe(partner: Partner) -> doctor.Probe:
        # As a round connects: only the registered certificate (transport.pinned_channel).
        return doctor.probe_health(
            partner.address,
            pki.Identity.partner(config.network, partner.id),
            key_pem=key_pem,
            cert_pem=cert_pem,
            ca_pem=partner.cert_pem.encode(),
            service=NODE_SERVICE,
        )

    with ThreadPoolExecutor(max_workers=min(_MAX_PROBES, len(active))) as pool:
        results = list(pool.map(probe, active))
    checks = []
    for partner, result in zip(active, results, strict=True):
        name = f"partner {partner.id} reachable"
        if result.serving:
            checks.append(Check(name, OK, f"{partner.address}: health SERVING over mTLS"))
        elif result.status is not None:
            checks.append(Check(name, FAIL, f"{partner.address}: node reports {result.status}"))
        elif result.error is not None and "handshake failed" in result.error.lower():
            checks.append(
                Check(
                    name,
                    FAIL,
                    f"{partner.address}: the node's certificate is not the registered one "
                    f"({partner.cert_fingerprint[:16]}...): install the certificate of "
                    "`partner renew` at the node and restart it",
                )
            )
        else:
            checks.append(Check(name, FAIL, f"{partner.address}: unreachable ({result.error})"))
    return checks
