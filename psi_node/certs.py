"""The certificates a node depends on: its own TLS certificate and the network CA.

What a serving node watches for expiry (`server.py`'s housekeeping warns
ahead of time) and what `psi-node doctor` checks in detail; kept apart from
the doctor so that serving never loads the diagnostics.
"""

from __future__ import annotations

from cryptography import x509

from kruispunt.expiry import readable_certificates
from psi_node.config import NodeConfig


def certificates(config: NodeConfig) -> dict[str, x509.Certificate]:
    """The certificates a serving node should watch for expiry, by label (unreadable ones left out).

    For the expiry reminder in the node's housekeeping loop (`psi_node.server`).
    """
    return readable_certificates(
        [
            (f"{config.tls_cert} (partner {config.partner_id})", config.tls_cert),
            (f"{config.tls_ca} (network CA)", config.tls_ca),
        ]
    )
