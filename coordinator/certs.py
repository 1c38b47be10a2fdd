"""The certificates a coordinator depends on: the CA, its own and every partner's.

What a serving coordinator watches for expiry (`server.py`'s housekeeping warns
ahead of time); `psi-coordinator doctor` checks the same files in detail. Kept
apart from the doctor so that serving never loads the diagnostics.
"""

from __future__ import annotations

from cryptography import x509

from coordinator.config import CoordinatorConfig
from coordinator.store import Store
from kruispunt.expiry import readable_certificates


def certificates(config: CoordinatorConfig) -> dict[str, x509.Certificate]:
    """Certificates a serving coordinator should watch for expiry, by label.

    The CA, the coordinator's own TLS and operator certificates, and every registered
    partner's; for `kruispunt.expiry.expiry_warnings` in the housekeeping loop.
    Unreadable files are left out (the doctor reports them).
    """
    out = readable_certificates(
        [
            (f"{config.tls_ca} (network CA)", config.tls_ca),
            (f"{config.tls_cert} (coordinator)", config.tls_cert),
            (f"{config.operator_cert} (operator)", config.operator_cert),
        ]
    )
    store = Store(config.database)
    try:
        partners = store.partners()
    finally:
        store.close()
    for partner in partners:
        if not partner.active:
            continue
        try:
            out[f"of partner {partner.id}"] = x509.load_pem_x509_certificate(
                partner.cert_pem.encode()
            )
        except ValueError:
            continue
    return out
