"""The network CA's private key: kept offline, asked for by path, checked before use.

`psi-coordinator init` writes the CA key apart from everything the serving
coordinator reads, in its own folder (`OFFLINE_CA_DIR`, or one `--ca-key-dir`
names), and says how to move it to offline media. Nothing online needs it: only
issuing a certificate does (`partner add`, `partner renew`, `operator add`, `renew`),
and each of those takes it as `--ca-key PATH`. `load_ca_key` refuses a missing
option, a missing file, a key others can read and a key that is not the network
CA's, each with the file and the fix.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from coordinator.config import CoordinatorConfig
from kruispunt import pki
from kruispunt.errors import ConfigError

__all__ = ["OFFLINE_CA_DIR", "OFFLINE_CA_KEY", "load_ca_key"]

#: The folder `init` writes the CA key to, under the coordinator directory by default.
OFFLINE_CA_DIR = "ca-offline"
#: The key's file name in that folder.
OFFLINE_CA_KEY = "ca.key"


def load_ca_key(
    config: CoordinatorConfig, path: Path | None, *, task: str
) -> ec.EllipticCurvePrivateKey:
    """The network CA key at `path`, for `task` (e.g. "partner add"); ConfigError says why not.

    `path` None means the operator did not give one: the error names the option and
    where `init` put the key. The key must be the private half of the CA certificate
    (`config.tls_ca`), or nothing it signs would be accepted anywhere.
    """
    if path is None:
        raise ConfigError(
            f"{task} needs the network CA key: pass --ca-key PATH (init wrote it to "
            f"{config.directory / OFFLINE_CA_DIR / OFFLINE_CA_KEY}; keep it on offline media "
            "and mount it only to issue certificates)"
        )
    if not path.exists():
        raise ConfigError(f"{path}: no CA key there (--ca-key); is the offline media mounted?")
    key = pki.load_tls_key(path)
    ca_cert = pki.load_certificate(config.tls_ca)
    if not pki.same_public_key(key.public_key(), ca_cert.public_key()):
        raise ConfigError(
            f"{path}: not the key of the network CA {config.tls_ca} (--ca-key); "
            "use the ca.key init wrote for this coordinator"
        )
    return key
