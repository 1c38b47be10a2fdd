"""Provisioning a partner node: keys and CSR (`init`), the certificate (`install-cert`), the roster.

The node's TLS, signing and agreement private keys are made here and never leave
this directory: the coordinator receives only the CSR and the two public keys
(signing/node.pub, and signing/node.x25519.pub in the format of
`kruispunt.agreement_file`). `accept_network_roster` is `psi-node roster accept`:
the operator accepts the partner roster by the digest written in the covenant,
after this node checked that the roster lists it with its own keys and certificate
and names the coordinator key installed with the certificate.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from kruispunt import pki, signing
from kruispunt.agreement_file import write_agreement_public_key
from kruispunt.errors import ConfigError
from kruispunt.purpose import ID_RE
from kruispunt.roster import (
    Roster,
    accept_roster,
    agreement_public_bytes,
    generate_agreement_key,
    load_agreement_key,
    load_roster,
    save_agreement_key,
)
from psi_node.audit import NodeAudit
from psi_node.config import CONFIG_NAME, NodeConfig, load_node_config
from psi_node.signing_keys import load_node_keys

CONFIG_TEMPLATE = """\
# Kruispunt partner node configuration (created by `psi-node init`).
# Paths are relative to this file's directory.

[node]
partner_id = "{partner_id}"
name = "{name}"
# The only inbound connection is the coordinator's; open this port for its address only.
listen = "0.0.0.0:{port}"
log_level = "info"
# workers = 2              # threads for the elliptic-curve work (default: CPU count)
# strict_input = false     # true: refuse a round when any input row is invalid
# idle_timeout_seconds = 1800  # drop a round's keys when the coordinator goes silent this long

[tls]
key = "tls/node.key"       # private: never leaves this machine
cert = "tls/node.crt"      # from the coordinator (psi-node install-cert)
ca = "tls/ca.crt"          # the network CA

[signing]
key = "signing/node.ed25519"                   # signs consents and this node's audit log
agreement_key = "signing/node.x25519"          # X25519: opens what partners seal to this node
coordinator_public_key = "signing/coordinator.pub"

[paths]
results = "results"        # result files, deleted when the purpose's retention ends
audit_log = "audit/node-audit.jsonl"
state = "state"

# A Prometheus endpoint (/metrics): rounds, phase times, points, refusals, certificate days.
# Off unless set; loopback only, unless allow_remote = true (it has no authentication).
# [metrics]
# listen = "127.0.0.1:9464"

# One [inputs.PURPOSE] and one [policy.PURPOSE] for every purpose this organisation
# agreed to. Example (uncomment and adapt):
#
# [inputs.vroegsignalering]
# path = "/srv/kruispunt/export/huurachterstand.csv"
# kind = "bsn"                          # or "address"
# columns = {{ bsn = "BSN" }}            # address: postcode, huisnummer, huisletter, toevoeging
# objection_column = "bezwaar"          # rows marked here never leave the node
# exclusion_file = "/srv/kruispunt/export/uitsluitingen.csv"
#
# [policy.vroegsignalering]
# legal_basis = "AVG art. 6(1)(c); Wgs art. 3a"   # must equal the purpose's basis for us
# partners = ["gemeente", "woonbron", "schuldhulp"]  # whom we agreed to match with
# min_threshold = 2                     # refuse rounds with a lower threshold
# max_disclosure = "count"              # or "partners": may co-holders be named to others?
# max_set_size = 50000                  # required: refuse purposes that allow larger sets
# max_retention_days = 90               # refuse purposes that keep results longer
# min_round_interval_hours = 24         # refuse a round sooner than this after the last
# max_set_change_percent = 50           # refuse a set half or 1.5x the last round's size
# allowed_subsets = []                  # other exact partner sets accepted, e.g. [["gemeente"]]
# purpose_version = 1                   # optional: only this version of the purpose
"""


@dataclass(frozen=True)
class NodeInitResult:
    """Where `init_node` put the node and the three files the coordinator needs."""

    directory: Path
    csr: Path
    signing_public_key: Path
    config: Path
    agreement_public_key: Path


def init_node(
    directory: Path, partner_id: str, name: str, *, port: int = 50051, network: str | None = None
) -> NodeInitResult:
    """Create a node directory with fresh keys, a CSR and a commented node.toml.

    Without `network` the CSR names only the partner id (as its CN); the network
    comes from the CA certificate at install-cert time.
    """
    if not ID_RE.match(partner_id):
        raise ConfigError(
            "partner id: a letter, then lowercase letters, digits and dashes (no 8-digit runs)"
        )
    pki.Identity.partner(network or "pending", partner_id)  # validates the network name
    if (directory / CONFIG_NAME).exists():
        raise ConfigError(f"{directory}: already holds a node ({CONFIG_NAME} exists)")
    for sub in ("tls", "signing", "results", "audit", "state"):
        (directory / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    tls_key = pki.generate_tls_key()
    pki.write_private_key(directory / "tls/node.key", tls_key)
    csr = (
        pki.create_csr(tls_key, pki.Identity.partner(network, partner_id))
        if network
        else pki.create_csr_for_name(tls_key, partner_id)
    )
    pki.write_pem(directory / "tls/node.csr", csr)
    sign_key = signing.generate_signing_key()
    pki.write_private_key(directory / "signing/node.ed25519", sign_key)
    pki.write_pem(directory / "signing/node.pub", signing.public_key_pem(sign_key.public_key()))
    agreement_key = generate_agreement_key()
    save_agreement_key(directory / "signing/node.x25519", agreement_key)
    write_agreement_public_key(directory / "signing/node.x25519.pub", agreement_key)
    config = directory / CONFIG_NAME
    safe_name = name.replace("\\", "\\\\").replace('"', '\\"')
    config.write_text(
        CONFIG_TEMPLATE.format(partner_id=partner_id, name=safe_name, port=port), encoding="utf-8"
    )
    return NodeInitResult(
        directory,
        directory / "tls/node.csr",
        directory / "signing/node.pub",
        config,
        directory / "signing/node.x25519.pub",
    )


def install_certificate(
    directory: Path,
    *,
    cert_path: Path,
    ca_path: Path,
    coordinator_key_path: Path,
    partner_id: str,
) -> pki.Identity:
    """Check and install the issued certificate, the CA and the coordinator's signing key."""
    cert = pki.load_certificate(cert_path)
    ca = pki.load_certificate(ca_path)
    try:
        identity = pki.verify_issued_by(cert, ca)
    except pki.CertificateIdentityError as exc:
        raise ConfigError(f"{cert_path}: {exc}") from None
    if identity.role != pki.Role.PARTNER or identity.name != partner_id:
        raise ConfigError(f"{cert_path}: certificate is for {identity}, not partner {partner_id!r}")
    key = pki.load_tls_key(directory / "tls/node.key")
    if not pki.same_public_key(cert.public_key(), key.public_key()):
        raise ConfigError(f"{cert_path}: certificate does not match this node's key tls/node.key")
    coordinator_key = signing.read_public_key(coordinator_key_path)
    pki.write_pem(directory / "tls/node.crt", cert)
    pki.write_pem(directory / "tls/ca.crt", ca)
    pki.write_pem(directory / "signing/coordinator.pub", signing.public_key_pem(coordinator_key))
    return identity


def accept_network_roster(
    node_dir: Path,
    roster_path: Path,
    digest_hex: str,
    *,
    actor: str = "operator",
    now: datetime | None = None,
) -> tuple[Roster, list[str]]:
    """Accept the roster at `roster_path` on the node in `node_dir`; returns it and the changes.

    `digest_hex` is the digest as written in the covenant (groups and upper case are
    fine). Refused with a ConfigError saying what differs: another digest, a roster of
    another network, one that does not list this node, or lists it with another signing
    key, agreement key or TLS certificate, one whose coordinator key is not the key
    installed with the certificate, or an older version than the accepted one
    (`kruispunt.roster.accept_roster`). Audits "roster.accepted" in the node log.
    """
    config = load_node_config(node_dir)
    roster = load_roster(roster_path)
    # Only a roster with the typed digest is worth comparing: for any other the digest
    # mismatch (accept_roster's refusal) is the one thing the operator must hear.
    typed = re.sub(r"[\s:]", "", digest_hex).lower()
    if hmac.compare_digest(roster.digest_hex.encode(), typed.encode()):
        problems = roster_mismatches(config, roster)
        if problems:
            raise ConfigError(
                f"{roster_path}: roster version {roster.version} does not match this node, "
                f"so it is not accepted: " + "; ".join(problems)
            )
    accepted, changes = accept_roster(config.state_dir, roster_path, digest_hex)
    installed = _coordinator_key_bytes(config.coordinator_public_key)
    if installed != accepted.coordinator_signing_key:
        # The roster rotated the manifest key from the installed one (roster_mismatches):
        # the installed key follows, as the accepted roster is the node's trust anchor.
        pki.write_pem(
            config.coordinator_public_key,
            signing.public_key_pem(accepted.coordinator_public_key),
        )
    audit = NodeAudit(
        config.audit_log,
        signing.load_signing_key(config.signing_key),
        now=(lambda: now) if now is not None else None,
        key_path=config.signing_key,
    )
    try:
        audit.append(
            "roster.accepted",
            actor=actor,
            on_behalf_of=config.partner_id,
            access_point="cli",
            action="U",
            details={
                "version": accepted.version,
                "digest": accepted.digest_hex,
                "changes": len(changes),
                "network": accepted.network,
            },
        )
    finally:
        audit.close()
    return accepted, changes


def _short(raw: bytes) -> str:
    return raw.hex()[:16] + "…"


def roster_mismatches(config: NodeConfig, roster: Roster) -> list[str]:
    """What in `roster` disagrees with this node; empty when the roster lists it rightly.

    Compares the network (of the installed CA), the coordinator key installed with the
    certificate, and this node's own entry: signing key, agreement key and the
    fingerprint of its installed TLS certificate. ConfigError if a file it compares
    with is missing or unreadable.
    """
    problems: list[str] = []
    ca = pki.load_certificate(config.tls_ca)
    try:
        network = pki.ca_network(ca)
    except pki.CertificateIdentityError as exc:
        raise ConfigError(f"{config.tls_ca}: {exc}") from None
    if roster.network != network:
        problems.append(f"it is for network {roster.network!r}, this node is in {network!r}")
    coordinator = _coordinator_key_bytes(config.coordinator_public_key)
    # A roster that rotates the manifest key names the installed key as the previous one:
    # accepting it moves the installed key on (`accept_network_roster`).
    if coordinator not in (roster.coordinator_signing_key, roster.coordinator_previous_signing_key):
        problems.append(
            f"its coordinator signing key is {_short(roster.coordinator_signing_key)}, the key "
            f"installed with this node's certificate ({config.coordinator_public_key}) is "
            f"{_short(coordinator)}"
        )
    entry = next((p for p in roster.partners if p.id == config.partner_id), None)
    if entry is None:
        problems.append(
            f"it does not list this node (partner {config.partner_id!r}); it lists "
            + ", ".join(roster.ids)
        )
        return problems
    keys = load_node_keys(config)
    # After `rotate-signing-key` a roster may still name the previous key (not registered
    # yet) or already the new one: the node signs with whichever its roster names.
    held = keys.named_by(entry.signing_key) or keys.current
    own_signing = signing.public_key_bytes(held.public_key())
    own_agreement = agreement_public_bytes(load_agreement_key(config.agreement_key))
    own_fingerprint = bytes.fromhex(pki.fingerprint(pki.load_certificate(config.tls_cert)))
    for label, listed, own, where in (
        ("signing key", entry.signing_key, own_signing, config.signing_key),
        ("agreement key", entry.agreement_key, own_agreement, config.agreement_key),
        ("TLS certificate fingerprint", entry.tls_fingerprint, own_fingerprint, config.tls_cert),
    ):
        if listed != own:
            problems.append(
                f"it lists partner {config.partner_id!r} with {label} {_short(listed)}, "
                f"this node's ({where}) is {_short(own)}"
            )
    return problems


def _coordinator_key_bytes(path: Path) -> bytes:
    key = signing.read_public_key(
        path, missing="no coordinator key; install the certificate first (psi-node install-cert)"
    )
    return signing.public_key_bytes(key)
