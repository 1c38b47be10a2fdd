"""A throwaway test network PKI: CA, coordinator, operator, partners and an intruder.

Usage in any test::

    from tests.support.certs import make_test_pki

    pki = make_test_pki(tmp_path, network="test", partners=["a", "b"])
    server = make_server(AuthInterceptor(pki.network, rules))
    port = bind_secure_port(server, "127.0.0.1:0", pki.partner("a").server_credentials())
    channel = pki.coordinator.channel(f"127.0.0.1:{port}", pki.partner("a").identity)

Everything is also written to disk under ``tmp_path / "pki"`` (keys with mode 0600),
for code that loads its configuration from files. `foreign` holds a certificate for
the same identity as the first partner, issued by an unrelated CA that happens to use
the same network name: the most convincing impostor. It trusts the real network CA
(whose certificate is public), so only its own certificate can give it away.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import grpc
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from kruispunt import pki as _pki
from kruispunt import signing as _signing
from kruispunt import transport as _transport
from kruispunt.pki import Identity

__all__ = ["Party", "TestPki", "make_test_pki"]


@dataclass(frozen=True)
class Party:
    """One certificate holder: TLS key and certificate, a signing key, and their files."""

    identity: Identity
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    signing_key: ed25519.Ed25519PrivateKey
    ca_pem: bytes
    key_path: Path
    cert_path: Path
    signing_key_path: Path
    ca_path: Path

    @property
    def key_pem(self) -> bytes:
        return _pki.private_key_pem(self.key)

    @property
    def cert_pem(self) -> bytes:
        return _pki.certificate_pem(self.cert)

    @property
    def signing_public_key(self) -> ed25519.Ed25519PublicKey:
        return self.signing_key.public_key()

    def server_credentials(self) -> grpc.ServerCredentials:
        """mTLS server credentials for this party, trusting its own CA."""
        return _transport.server_credentials(self.key_pem, self.cert_pem, self.ca_pem)

    def channel(
        self, address: str, peer: Identity, options: tuple[tuple[str, Any], ...] = ()
    ) -> grpc.Channel:
        """An mTLS channel from this party to `peer` listening at `address`."""
        return _transport.secure_channel(
            address,
            peer,
            key_pem=self.key_pem,
            cert_pem=self.cert_pem,
            ca_pem=self.ca_pem,
            options=options,
        )


@dataclass(frozen=True)
class TestPki:
    """A complete test network PKI; see the module docstring."""

    __test__: ClassVar[bool] = False  # not a pytest test class, despite the name

    network: str
    directory: Path
    ca_key: ec.EllipticCurvePrivateKey
    ca_cert: x509.Certificate
    ca_path: Path
    ca_key_path: Path
    coordinator: Party
    operator: Party
    partners: dict[str, Party]
    foreign_ca_cert: x509.Certificate
    foreign_ca_path: Path
    foreign: Party
    _issued: list[Party] = field(default_factory=list, repr=False)

    @property
    def ca_pem(self) -> bytes:
        return _pki.certificate_pem(self.ca_cert)

    @property
    def foreign_ca_pem(self) -> bytes:
        return _pki.certificate_pem(self.foreign_ca_cert)

    def partner(self, partner_id: str) -> Party:
        """The partner named `partner_id`."""
        return self.partners[partner_id]

    def issue(self, identity: Identity, *, file_stem: str | None = None) -> Party:
        """Issue one more certificate from the network CA (e.g. a second operator)."""
        stem = file_stem or f"{identity.role.value}-{identity.name}-{len(self._issued)}"
        party = _make_party(self.directory, stem, identity, self.ca_key, self.ca_cert)
        self._issued.append(party)
        return party


def _make_party(
    directory: Path,
    stem: str,
    identity: Identity,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    *,
    via_csr: bool = False,
    trust: x509.Certificate | None = None,
) -> Party:
    trusted = trust if trust is not None else ca_cert
    key = _pki.generate_tls_key()
    if via_csr:
        cert = _pki.issue_certificate(ca_key, ca_cert, _pki.create_csr(key, identity), identity)
    else:
        cert = _pki.issue_for_key(ca_key, ca_cert, key.public_key(), identity)
    signing_key = _signing.generate_signing_key()
    key_path = directory / f"{stem}.key"
    cert_path = directory / f"{stem}.pem"
    signing_key_path = directory / f"{stem}.signing.key"
    ca_path = directory / f"{stem}.ca.pem"
    _pki.write_private_key(key_path, key)
    _pki.write_pem(cert_path, cert)
    _pki.write_private_key(signing_key_path, signing_key)
    _pki.write_pem(ca_path, trusted)
    return Party(
        identity=identity,
        key=key,
        cert=cert,
        signing_key=signing_key,
        ca_pem=_pki.certificate_pem(trusted),
        key_path=key_path,
        cert_path=cert_path,
        signing_key_path=signing_key_path,
        ca_path=ca_path,
    )


def make_test_pki(
    tmp_path: Path,
    network: str = "test",
    partners: list[str] | tuple[str, ...] = ("a", "b"),
    operator: str = "admin",
) -> TestPki:
    """Build a network CA and certificates for the coordinator, an operator and `partners`.

    Partner certificates go through the CSR path, as in production. Files land in
    ``tmp_path / "pki"``: ``ca.pem``, ``ca.key``, ``<stem>.key|.pem|.signing.key|.ca.pem``
    with stems ``coordinator``, ``operator``, ``partner-<id>`` and ``foreign``.
    """
    if not partners:
        raise ValueError("a test network needs at least one partner")
    directory = Path(tmp_path) / "pki"
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _pki.create_ca(network)
    ca_path = directory / "ca.pem"
    ca_key_path = directory / "ca.key"
    _pki.write_pem(ca_path, ca_cert)
    _pki.write_private_key(ca_key_path, ca_key)

    coordinator = _make_party(
        directory, "coordinator", Identity.coordinator(network), ca_key, ca_cert
    )
    operator_party = _make_party(
        directory, "operator", Identity.operator(network, operator), ca_key, ca_cert
    )
    partner_parties = {
        partner_id: _make_party(
            directory,
            f"partner-{partner_id}",
            Identity.partner(network, partner_id),
            ca_key,
            ca_cert,
            via_csr=True,
        )
        for partner_id in partners
    }

    foreign_ca_key, foreign_ca_cert = _pki.create_ca(network)
    foreign_ca_path = directory / "foreign-ca.pem"
    _pki.write_pem(foreign_ca_path, foreign_ca_cert)
    foreign = _make_party(
        directory,
        "foreign",
        Identity.partner(network, partners[0]),
        foreign_ca_key,
        foreign_ca_cert,
        trust=ca_cert,
    )
    return TestPki(
        network=network,
        directory=directory,
        ca_key=ca_key,
        ca_cert=ca_cert,
        ca_path=ca_path,
        ca_key_path=ca_key_path,
        coordinator=coordinator,
        operator=operator_party,
        partners=partner_parties,
        foreign_ca_cert=foreign_ca_cert,
        foreign_ca_path=foreign_ca_path,
        foreign=foreign,
    )
