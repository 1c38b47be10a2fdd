"""Provisioning a partner node: keys and CSR (`init`), then the issued certificate (`install-cert`).

The node's TLS and signing private keys are made here and never leave this
directory: the coordinator receives only the CSR and the signing public key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kruispunt import pki, signing
from kruispunt.errors import ConfigError
from kruispunt.purpose import ID_RE
from psi_node.config import CONFIG_NAME

CONFIG_TEMPLATE = """\
# Kruispunt partner node configuration (created by `psi-node init`).
# Paths are relative to this file's directory.

[node]
partner_id = "{partner_id}"
name = "{name}"
# The only inbound connection is the coordinator's; open this port for its address only.
listen = "0.0.0.0:{port}"
log_level = "info"
# workers = 2              # processes for the elliptic-curve work (default: CPU count)
# strict_input = false     # true: refuse a round when any input row is invalid
# idle_timeout_seconds = 1800  # drop a round's keys when the coordinator goes silent this long

[tls]
key = "tls/node.key"       # private: never leaves this machine
cert = "tls/node.crt"      # from the coordinator (psi-node install-cert)
ca = "tls/ca.crt"          # the network CA

[signing]
key = "signing/node.ed25519"                   # signs consents and this node's audit log
coordinator_public_key = "signing/coordinator.pub"

[paths]
results = "results"        # result files, deleted when the purpose's retention ends
audit_log = "audit/node-audit.jsonl"
state = "state"

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
# allowed_subsets = []                  # other exact partner sets accepted, e.g. [["gemeente"]]
# purpose_version = 1                   # optional: only this version of the purpose
"""


@dataclass(frozen=True)
class NodeInitResult:
    """Where `init_node` put the node and the two files the coordinator needs."""

    directory: Path
    csr: Path
    signing_public_key: Path
    config: Path


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
    config = directory / CONFIG_NAME
    safe_name = name.replace("\\", "\\\\").replace('"', '\\"')
    config.write_text(
        CONFIG_TEMPLATE.format(partner_id=partner_id, name=safe_name, port=port), encoding="utf-8"
    )
    return NodeInitResult(
        directory, directory / "tls/node.csr", directory / "signing/node.pub", config
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
    try:
        coordinator_key = signing.load_public_key(coordinator_key_path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"{coordinator_key_path}: file not found") from None
    except ValueError as exc:
        raise ConfigError(f"{coordinator_key_path}: {exc}") from None
    pki.write_pem(directory / "tls/node.crt", cert)
    pki.write_pem(directory / "tls/ca.crt", ca)
    pki.write_pem(directory / "signing/coordinator.pub", signing.public_key_pem(coordinator_key))
    return identity
