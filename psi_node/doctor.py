"""`psi-node doctor`: check a node's configuration, keys, certificates, inputs and log.

Every check a partner's IT team would otherwise do by hand before (and after) starting
the node: does node.toml load, are the keys owner-only and the certificate valid for
this partner and not about to expire, has the operator accepted a partner roster that
lists this node with its own keys, does each purpose have a usable export and a
policy, can results be written, does the audit log verify, and does `psi-node serve`
answer on its port.

What the node cannot check is whether the coordinator reaches it: connections go one
way only, from the coordinator to the nodes (the firewall rule is the partner's, the
probe is the coordinator's: `psi-coordinator doctor`). The node checks the next best
thing: that its own listener answers the standard health check over mutual TLS with
this node's certificate, exactly as the coordinator's call would be answered.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ed25519

from kruispunt import doctor, pki, signing
from kruispunt.doctor import FAIL, OK, WARN, Check, DoctorReport
from kruispunt.errors import ConfigError, KruispuntError
from kruispunt.roster import load_accepted_roster
from kruispunt.tomlfile import read_toml
from psi_node.audit import verify_file
from psi_node.config import CONFIG_NAME, InputConfig, NodeConfig, PolicyConfig, load_node_config
from psi_node.inputs import read_input
from psi_node.provision import roster_mismatches

__all__ = ["run_doctor"]

SERVICE = "kruispunt.v1.PsiNode"
_RENEW_HINT = "ask the network coordinator for a renewed certificate (psi-node install-cert)"


def run_doctor(
    directory: Path,
    *,
    now: datetime | None = None,
    check_coordinator: bool = True,
    env: Mapping[str, str] | None = None,
) -> DoctorReport:
    """Check the node in `directory`; never changes anything in it.

    `check_coordinator` runs the network check the node can do: a health call to its
    own listen address (see the module docstring for why it cannot call the
    coordinator). `env` is what `serve` would see (KRUISPUNT_NODE_LISTEN overrides
    the listen address).
    """
    moment = now or datetime.now(UTC)
    report = DoctorReport(f"psi-node doctor {directory}")
    try:
        config = load_node_config(directory, env=env)
    except ConfigError as exc:
        report.add(CONFIG_NAME, FAIL, f"{exc} (the other checks need it)")
        return report
    report.add(
        CONFIG_NAME,
        OK,
        f"partner {config.partner_id}, {_count(len(config.inputs), 'purpose')} configured",
    )
    raw = read_toml(directory / CONFIG_NAME)
    report.checks.append(doctor.check_private_directory("node directory", config.directory))

    tls_check, tls_key = doctor.check_private_key(
        "tls key",
        config.tls_key,
        kind="tls",
        owner_of=config.directory,
        written=doctor.configured_path(config.directory, raw, "tls", "key", "tls/node.key"),
    )
    report.checks.append(tls_check)
    ca_checks, ca = doctor.check_ca_certificate("network CA", config.tls_ca, now=moment)
    report.extend(ca_checks)
    network = _network(ca, config.tls_cert)
    cert: x509.Certificate | None = None
    if network is None:
        report.add("tls certificate", FAIL, f"{config.tls_cert}: no usable certificate or CA")
    else:
        cert_checks, cert = doctor.check_leaf_certificate(
            "tls certificate",
            config.tls_cert,
            ca=ca,
            expected=pki.Identity.partner(network, config.partner_id),
            key=tls_key,
            key_path=config.tls_key,
            now=moment,
            renew_hint=_RENEW_HINT,
        )
        report.extend(cert_checks)

    sign_check, sign_key = doctor.check_private_key(
        "signing key",
        config.signing_key,
        kind="signing",
        owner_of=config.directory,
        written=doctor.configured_path(
            config.directory, raw, "signing", "key", "signing/node.ed25519"
        ),
    )
    report.checks.append(sign_check)
    report.checks.append(_coordinator_key(config.coordinator_public_key))
    report.checks.append(_roster_check(config, directory))

    for purpose in sorted(set(config.inputs) | set(config.policies)):
        policy = config.policies.get(purpose)
        spec = config.inputs.get(purpose)
        if spec is not None:
            report.checks.append(
                _input_check(purpose, spec, policy, config.strict_input, directory)
            )
        report.checks.append(_policy_check(purpose, policy))
    if not config.inputs:
        report.add(
            "purposes",
            WARN,
            f"no [inputs.PURPOSE] in {CONFIG_NAME}: this node refuses every round until one is "
            "added",
        )

    report.checks.append(
        doctor.check_running_config(
            "running config",
            config.state_dir,
            CONFIG_NAME,
            sha256=config.sha256,
            fixed_sha256=config.fixed_sha256,
            reloaded="the policy and inputs",
            reload_hint=(
                "they take effect at the next round's manifest, or now with "
                "`systemctl reload psi-node` (or `kill -HUP {pid}`)"
            ),
            restart_hint="systemctl restart psi-node, or stop and start psi-node serve",
        )
    )
    report.checks.append(doctor.check_writable_directory("results folder", config.results_dir))
    report.checks.append(doctor.check_writable_directory("state folder", config.state_dir))
    report.checks.append(_audit_check(config.audit_log, sign_key))

    try:
        host, port = doctor.parse_address(config.listen)
        report.add("listen address", OK, f"{config.listen} (host {host or '*'}, port {port})")
    except ValueError as exc:
        report.add("listen address", FAIL, str(exc))
        return report
    if check_coordinator:
        if tls_key is None or cert is None or ca is None or network is None:
            report.add("serving", WARN, "not probed: needs a usable TLS key, certificate and CA")
        else:
            report.checks.append(
                doctor.check_listener(
                    "serving",
                    config.listen,
                    pki.Identity.partner(network, config.partner_id),
                    key_pem=pki.private_key_pem(tls_key),
                    cert_pem=pki.certificate_pem(cert),
                    ca_pem=pki.certificate_pem(ca),
                    service=SERVICE,
                    command="psi-node serve",
                )
            )
    return report


# ---------------------------------------------------------------------------------------


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _network(ca: x509.Certificate | None, cert_path: Path) -> str | None:
    """The network this node belongs to: from its CA, else from its own certificate."""
    if ca is not None:
        return pki.ca_network(ca)
    try:
        return pki.identity_from_certificate(pki.load_certificate(cert_path)).network
    except (ConfigError, pki.CertificateIdentityError):
        return None


def _coordinator_key(path: Path) -> Check:
    try:
        key = signing.read_public_key(path, missing="not found (psi-node install-cert installs it)")
    except ConfigError as exc:
        return Check("coordinator key", FAIL, str(exc))
    return Check("coordinator key", OK, f"{path}: Ed25519, key id {signing.key_id(key)}")


def _roster_check(config: NodeConfig, directory: Path) -> Check:
    """The accepted roster: there is one, and it lists this node with its own keys."""
    name = "partner roster"
    try:
        roster = load_accepted_roster(config.state_dir)
    except ConfigError as exc:
        return Check(name, FAIL, str(exc))
    if roster is None:
        return Check(
            name,
            FAIL,
            f"no roster accepted: psi-node roster accept {directory} ROSTER_FILE --digest HEX "
            "(the roster from the coordinator, the digest from the covenant); until then this "
            "node cannot check its partners' keys",
        )
    summary = (
        f"version {roster.version} of network {roster.network!r}, digest "
        f"{roster.digest_hex[:16]}…, {_count(len(roster.partners), 'partner')}"
    )
    try:
        problems = roster_mismatches(config, roster)
    except ConfigError as exc:
        return Check(name, FAIL, f"{summary}; cannot compare it with this node: {exc}")
    if problems:
        return Check(
            name,
            FAIL,
            f"{summary} does not match this node: {'; '.join(problems)}; ask the coordinator "
            "for a roster with this node's current keys and accept it",
        )
    return Check(name, OK, summary)


def _input_check(
    purpose: str, spec: InputConfig, policy: PolicyConfig | None, strict: bool, directory: Path
) -> Check:
    """Read the purpose's export as a round would; report the mapping and counts, never values."""
    name = f"input {purpose}"
    # The command reads node.toml itself, so it works as printed, with the mapping configured.
    hint = (
        f"{shlex.join(['psi-node', 'check-input', str(directory), '--purpose', purpose])} "
        "lists lines and reasons"
    )
    try:
        found = read_input(spec.spec())
    except KruispuntError as exc:
        return Check(name, FAIL, f"{exc}; then {hint}")
    except OSError as exc:
        return Check(name, FAIL, f"{spec.path}: cannot read ({exc.strerror})")
    r = found.report
    columns = f"; columns: {r.mapping.describe()}" if r.mapping is not None else ""
    counts = (
        f"{r.valid} usable of {_count(r.rows, 'row')} ({r.invalid} invalid, "
        f"{r.duplicate} duplicate, {r.objected} objected, {r.excluded} excluded){columns}"
    )
    if not r.usable:
        return Check(name, FAIL, f"{spec.path}: no usable rows: {counts}; {hint}")
    if strict and r.invalid:
        return Check(
            name,
            FAIL,
            f"{spec.path}: {counts}; strict_input is on, so rounds are refused; {hint}",
        )
    if policy is not None and policy.max_set_size is not None and r.valid > policy.max_set_size:
        return Check(
            name,
            FAIL,
            f"{spec.path}: {counts}; more than the policy's max_set_size "
            f"{policy.max_set_size}, so a round for this purpose would fail",
        )
    if r.invalid or r.exclusion_invalid:
        extra = f"; {r.exclusion_invalid} exclusion entries invalid" if r.exclusion_invalid else ""
        return Check(name, WARN, f"{spec.path}: {counts}{extra}; {hint}")
    return Check(name, OK, f"{spec.path}: {counts}")


def _policy_check(purpose: str, policy: PolicyConfig | None) -> Check:
    name = f"policy {purpose}"
    if policy is None:
        return Check(
            name,
            WARN,
            f"no [policy.{purpose}] in {CONFIG_NAME}: this node refuses every round for it",
        )
    terms = (
        f"legal basis {policy.legal_basis!r}; partners {', '.join(sorted(policy.partners))}; "
        f"threshold at least {policy.min_threshold}; disclosure up to {policy.max_disclosure}"
    )
    if policy.max_set_size is not None:
        terms += f"; sets up to {policy.max_set_size}"
    if policy.min_threshold < 2:
        return Check(
            name,
            WARN,
            f"{terms}; min_threshold {policy.min_threshold} accepts rounds that flag records "
            "held by this partner alone",
        )
    return Check(name, OK, terms)


def _audit_check(path: Path, sign_key: pki.PrivateKey | None) -> Check:
    name = "audit log"
    if not path.exists():
        return Check(
            name,
            WARN,
            f"{path}: not found; psi-node serve creates it on first start (if this node has "
            "served before, the log was removed)",
        )
    if not isinstance(sign_key, ed25519.Ed25519PrivateKey):
        return Check(name, FAIL, f"{path}: cannot verify without a usable signing key")
    try:
        result = verify_file(path, sign_key.public_key())
    except ConfigError as exc:
        return Check(name, FAIL, str(exc))
    if not result.ok:
        return Check(
            name,
            FAIL,
            f"{path}: does not verify at event {result.first_bad_seq}: {result.reason}",
        )
    return Check(name, OK, f"{path}: {_count(result.count, 'event')}, chain and signatures verify")
