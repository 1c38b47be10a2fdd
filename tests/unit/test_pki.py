"""Tests for kruispunt.pki: identities, the network CA, issuance and key files."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from kruispunt import expiry, pki
from kruispunt.errors import ConfigError, KruispuntError
from kruispunt.pki import CertificateIdentityError, CsrRejected, Identity, Role

NOW = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)
LABELS = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", fullmatch=True)


@pytest.fixture(scope="module")
def ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    return pki.create_ca("test", now=NOW)


def _leaf(
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate], identity: Identity
) -> x509.Certificate:
    ca_key, ca_cert = ca
    return pki.issue_for_key(
        ca_key, ca_cert, pki.generate_tls_key().public_key(), identity, now=NOW
    )


def _raw_cert(san: list[x509.GeneralName] | None) -> x509.Certificate:
    """A self-signed certificate with exactly the SANs given (None: no SAN extension)."""
    key = pki.generate_tls_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW)
        .not_valid_after(NOW + dt.timedelta(days=1))
    )
    if san is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(key, hashes.SHA256())


class TestIdentity:
    def test_partner_names(self) -> None:
        """A partner identity has the agreed URI and DNS server name."""
        identity = Identity.partner("zuid", "gemeente-a")
        assert identity.uri == "kruispunt://zuid/partner/gemeente-a"
        assert identity.server_name == "gemeente-a.partner.zuid.kruispunt.internal"
        assert str(identity) == identity.uri

    def test_coordinator_names(self) -> None:
        """The coordinator's identity has the agreed URI and DNS server name."""
        identity = Identity.coordinator("zuid")
        assert identity.uri == "kruispunt://zuid/coordinator"
        assert identity.server_name == "coordinator.zuid.kruispunt.internal"
        assert identity.role is Role.COORDINATOR

    def test_operator_names(self) -> None:
        """An operator identity has the agreed URI and DNS server name."""
        identity = Identity.operator("zuid", "jan")
        assert identity.uri == "kruispunt://zuid/operator/jan"
        assert identity.server_name == "jan.operator.zuid.kruispunt.internal"

    def test_role_given_as_string(self) -> None:
        """A role passed as a string is stored as the Role enum."""
        assert Identity("partner", "a", "n").role is Role.PARTNER  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        "bad",
        ["", "A", "Gemeente", "-a", "a-", "a.b", "a_b", "a b", "é", "a" * 64, "a/b"],
    )
    def test_invalid_names_refused(self, bad: str) -> None:
        """Ids and network names that are not DNS labels raise ValueError naming the rule."""
        with pytest.raises(ValueError, match="lowercase letters, digits and hyphens"):
            Identity.partner("n", bad)
        with pytest.raises(ValueError, match="network name"):
            Identity.partner(bad, "a")

    def test_longest_label_accepted(self) -> None:
        """A 63-character id is a valid DNS label."""
        assert Identity.partner("n", "a" * 63).name == "a" * 63

    def test_unknown_role_refused(self) -> None:
        """An unknown role raises ValueError listing the roles."""
        with pytest.raises(ValueError, match="coordinator, partner, operator"):
            Identity("admin", "a", "n")  # type: ignore[arg-type]

    def test_coordinator_name_fixed(self) -> None:
        """A coordinator identity with another name is refused."""
        with pytest.raises(ValueError, match="'coordinator'"):
            Identity(Role.COORDINATOR, "other", "n")

    def test_non_string_refused(self) -> None:
        """A non-string id raises TypeError."""
        with pytest.raises(TypeError):
            Identity.partner("n", 5)  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        "uri",
        [
            "kruispunt://n/coordinator",
            "kruispunt://n/partner/a",
            "kruispunt://n/operator/jan",
        ],
    )
    def test_from_uri_round_trip(self, uri: str) -> None:
        """from_uri parses every role's URI back to the same URI."""
        assert Identity.from_uri(uri).uri == uri

    @pytest.mark.parametrize(
        "uri",
        [
            "https://n/partner/a",
            "kruispunt://n/partner",
            "kruispunt://n/partner/",
            "kruispunt://n/partner/a/",
            "kruispunt://n/partner/a?x=1",
            "kruispunt://n/partner/a#f",
            "kruispunt://n/coordinator/x",
            "kruispunt://n/ca",
            "kruispunt://N/partner/a",
            "kruispunt://n/partner/A",
            "kruispunt:///partner/a",
            " kruispunt://n/partner/a",
            "kruispunt://n/partner/a\n",
        ],
    )
    def test_from_uri_malformed(self, uri: str) -> None:
        """from_uri refuses anything but an exact identity URI."""
        with pytest.raises(ValueError, match="not a Kruispunt identity URI"):
            Identity.from_uri(uri)

    @settings(max_examples=50, deadline=None)
    @given(network=LABELS, name=LABELS, role=st.sampled_from([Role.PARTNER, Role.OPERATOR]))
    def test_any_valid_identity_round_trips(self, network: str, name: str, role: Role) -> None:
        """Every valid identity survives URI parsing unchanged."""
        identity = Identity(role, name, network)
        assert Identity.from_uri(identity.uri) == identity


class TestIdentityInCertificate:
    @settings(max_examples=25, deadline=None)
    @given(name=LABELS, role=st.sampled_from([Role.PARTNER, Role.OPERATOR]))
    def test_any_identity_survives_issuance(
        self, ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate], name: str, role: Role
    ) -> None:
        """Every valid identity issued by the CA reads back unchanged from its certificate."""
        identity = Identity(role, name, "test")
        assert pki.identity_from_certificate(_leaf(ca, identity)) == identity


class TestCertificateAuthority:
    def test_ca_constraints(self, ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
        """The CA is CA:TRUE pathlen 0, signs certs and CRLs only, and is self-signed."""
        _, cert = ca
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        assert bc.critical
        assert bc.value.ca
        assert bc.value.path_length == 0
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        assert ku.key_cert_sign
        assert ku.crl_sign
        assert not ku.digital_signature
        cert.verify_directly_issued_by(cert)

    def test_ca_name_constraint(
        self, ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]
    ) -> None:
        """The CA may only certify DNS names under its own network's domain."""
        nc = ca[1].extensions.get_extension_for_class(x509.NameConstraints)
        assert nc.critical
        assert nc.value.permitted_subtrees == [x509.DNSName("test.kruispunt.internal")]

    def test_ca_validity_uses_now(
        self, ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]
    ) -> None:
        """The CA is valid from (slightly before) `now` for ten years."""
        _, cert = ca
        assert cert.not_valid_before_utc <= NOW < cert.not_valid_before_utc + dt.timedelta(hours=1)
        assert cert.not_valid_after_utc == NOW + dt.timedelta(days=3650)

    def test_ca_network(self, ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
        """ca_network reads the network name back from the CA certificate."""
        assert pki.ca_network(ca[1]) == "test"

    def test_naive_now_refused(self) -> None:
        """A timezone-naive `now` is refused rather than guessed."""
        with pytest.raises(ValueError, match="timezone-aware"):
            pki.create_ca("test", now=dt.datetime(2025, 1, 1))

    def test_tls_key_is_p256(self) -> None:
        """TLS keys are EC P-256."""
        assert isinstance(pki.generate_tls_key().curve, ec.SECP256R1)


class TestIssuance:
    def test_leaf_extensions(self, ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
        """A leaf carries exactly the identity's URI and DNS SANs, both EKUs, CA:FALSE."""
        identity = Identity.partner("test", "a")
        cert = _leaf(ca, identity)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert list(san) == [
            x509.UniformResourceIdentifier(identity.uri),
            x509.DNSName(identity.server_name),
        ]
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        assert bc.critical
        assert not bc.value.ca
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        assert ku.digital_signature
        assert not ku.key_cert_sign
        cert.verify_directly_issued_by(ca[1])
        assert pki.identity_from_certificate(cert) == identity

    def test_leaf_validity(self, ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
        """A leaf is valid for 90 days from `now` by default, inside the 30-day warning at 60."""
        cert = _leaf(ca, Identity.coordinator("test"))
        assert pki.LEAF_VALIDITY_DAYS == 90
        assert cert.not_valid_after_utc == NOW + dt.timedelta(days=90)
        assert pki.certificate_expires_in(cert, NOW) == dt.timedelta(days=90)
        assert pki.certificate_expires_in(cert, NOW + dt.timedelta(days=91)) < dt.timedelta(0)
        warn_from = NOW + dt.timedelta(days=90 - expiry.EXPIRY_WARN_DAYS)
        assert expiry.expiry_warnings({"leaf": cert}, warn_from - dt.timedelta(days=1)) == []
        assert len(expiry.expiry_warnings({"leaf": cert}, warn_from + dt.timedelta(days=1))) == 1

    def test_leaf_capped_at_ca_expiry(
        self, ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]
    ) -> None:
        """A leaf never outlives the CA that signed it."""
        ca_key, ca_cert = ca
        late = ca_cert.not_valid_after_utc - dt.timedelta(days=10)
        cert = pki.issue_for_key(
            ca_key,
            ca_cert,
            pki.generate_tls_key().public_key(),
            Identity.coordinator("test"),
            now=late,
        )
        assert cert.not_valid_after_utc == ca_cert.not_valid_after_utc

    def test_issue_after_ca_expiry_refused(
        self, ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]
    ) -> None:
        """An expired CA issues nothing."""
        ca_key, ca_cert = ca
        with pytest.raises(ValueError, match="expired"):
            pki.issue_for_key(
                ca_key,
                ca_cert,
                pki.generate_tls_key().public_key(),
                Identity.coordinator("test"),
                now=ca_cert.not_valid_after_utc,
            )

    def test_csr_path(self, ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
        """A partner's CSR yields a certificate over the partner's own key."""
        ca_key, ca_cert = ca
        key = pki.generate_tls_key()
        identity = Identity.partner("test", "woonstad")
        cert = pki.issue_certificate(ca_key, ca_cert, pki.create_csr(key, identity), identity)
        assert cert.public_key() == key.public_key()
        assert pki.verify_issued_by(cert, ca_cert) == identity

    def test_csr_without_network(
        self, ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]
    ) -> None:
        """A CSR naming only the partner id is issued with the full identity the CA decides."""
        ca_key, ca_cert = ca
        key = pki.generate_tls_key()
        csr = pki.create_csr_for_name(key, "woonstad")
        assert len(csr.extensions) == 0
        identity = Identity.partner("test", "woonstad")
        cert = pki.issue_certificate(ca_key, ca_cert, csr, identity)
        assert pki.identity_from_certificate(cert) == identity
        with pytest.raises(CsrRejected, match="CN does not match"):
            pki.issue_certificate(ca_key, ca_cert, csr, Identity.partner("test", "other"))

    def test_csr_for_invalid_name_refused(self) -> None:
        """create_csr_for_name validates the name like an identity does."""
        with pytest.raises(ValueError, match="lowercase"):
            pki.create_csr_for_name(pki.generate_tls_key(), "Woonstad")

    def test_same_public_key(self, ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
        """same_public_key matches a certificate to its key and to no other."""
        key = pki.generate_tls_key()
        cert = pki.issue_for_key(ca[0], ca[1], key.public_key(), Identity.coordinator("test"))
        assert pki.same_public_key(cert.public_key(), key.public_key())
        assert not pki.same_public_key(cert.public_key(), pki.generate_tls_key().public_key())

    def test_csr_extensions_ignored(
        self, ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]
    ) -> None:
        """Names and rights a CSR asks for beyond its identity are not granted."""
        ca_key, ca_cert = ca
        key = pki.generate_tls_key()
        identity = Identity.partner("test", "a")
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "a")]))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.UniformResourceIdentifier(identity.uri), x509.DNSName("evil.example")]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        cert = pki.issue_certificate(ca_key, ca_cert, csr, identity)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == [identity.server_name]
        assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca

    def test_csr_for_other_partner_refused(
        self, ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]
    ) -> None:
        """A CSR made for partner b cannot be registered as partner a."""
        ca_key, ca_cert = ca
        csr = pki.create_csr(pki.generate_tls_key(), Identity.partner("test", "b"))
        with pytest.raises(CsrRejected, match="CN does not match"):
            pki.issue_certificate(ca_key, ca_cert, csr, Identity.partner("test", "a"))

    def test_csr_uri_for_other_identity_refused(
        self, ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]
    ) -> None:
        """A CSR whose CN matches but whose URI SAN names someone else is refused."""
        ca_key, ca_cert = ca
        key = pki.generate_tls_key()
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "a")]))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.UniformResourceIdentifier("kruispunt://test/coordinator")]
                ),
                critical=False,
            )
            .sign(key, hashes.SHA256())
        )
        with pytest.raises(CsrRejected, match="another identity"):
            pki.issue_certificate(ca_key, ca_cert, csr, Identity.partner("test", "a"))

    def test_csr_bad_signature_refused(
        self, ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]
    ) -> None:
        """A CSR whose self-signature does not verify is refused."""
        ca_key, ca_cert = ca
        identity = Identity.partner("test", "a")
        csr = pki.create_csr(pki.generate_tls_key(), identity)
        der = csr.public_bytes(serialization.Encoding.DER)
        # Flip the last bit of the ECDSA signature's s value: still DER, no longer valid.
        forged = x509.load_der_x509_csr(der[:-1] + bytes([der[-1] ^ 1]))
        assert not forged.is_signature_valid
        with pytest.raises(CsrRejected, match="signature"):
            pki.issue_certificate(ca_key, ca_cert, forged, identity)

    def test_csr_wrong_key_type_refused(
        self, ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]
    ) -> None:
        """A CSR over a key other than EC P-256 is refused."""
        ca_key, ca_cert = ca
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "a")]))
            .sign(ed25519.Ed25519PrivateKey.generate(), None)
        )
        with pytest.raises(CsrRejected, match="P-256"):
            pki.issue_certificate(ca_key, ca_cert, csr, Identity.partner("test", "a"))

    def test_csr_rejection_is_kruispunt_error(self) -> None:
        """CsrRejected is a KruispuntError and a ValueError mapping to INVALID_ARGUMENT."""
        assert issubclass(CsrRejected, KruispuntError)
        assert issubclass(CsrRejected, ValueError)
        assert CsrRejected.status.name == "INVALID_ARGUMENT"

    def test_other_network_refused(
        self, ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]
    ) -> None:
        """The CA of network test does not certify identities of another network."""
        with pytest.raises(ValueError, match="network"):
            _leaf(ca, Identity.partner("other", "a"))

    def test_mismatched_ca_key_refused(
        self, ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]
    ) -> None:
        """Issuing with a key that is not the CA certificate's key is refused."""
        with pytest.raises(ValueError, match="does not match"):
            pki.issue_for_key(
                pki.generate_tls_key(),
                ca[1],
                pki.generate_tls_key().public_key(),
                Identity.coordinator("test"),
            )


class TestIdentityFromCertificate:
    def test_no_san(self) -> None:
        """A certificate without subjectAltName has no identity."""
        with pytest.raises(CertificateIdentityError, match="no subjectAltName"):
            pki.identity_from_certificate(_raw_cert(None))

    def test_two_uris(self) -> None:
        """A certificate naming two identities is ambiguous and refused."""
        cert = _raw_cert(
            [
                x509.UniformResourceIdentifier("kruispunt://n/partner/a"),
                x509.UniformResourceIdentifier("kruispunt://n/coordinator"),
            ]
        )
        with pytest.raises(CertificateIdentityError, match="exactly one URI SAN, found 2"):
            pki.identity_from_certificate(cert)

    def test_no_uri(self) -> None:
        """A certificate with only a DNS SAN has no identity."""
        cert = _raw_cert([x509.DNSName("a.partner.n.kruispunt.internal")])
        with pytest.raises(CertificateIdentityError, match="found 0"):
            pki.identity_from_certificate(cert)

    def test_foreign_uri(self) -> None:
        """A URI SAN that is not a Kruispunt identity is refused."""
        cert = _raw_cert([x509.UniformResourceIdentifier("https://example.org/a")])
        with pytest.raises(CertificateIdentityError, match="not a Kruispunt identity"):
            pki.identity_from_certificate(cert)

    def test_dns_disagrees_with_uri(self) -> None:
        """A DNS SAN naming another holder than the URI SAN is refused."""
        cert = _raw_cert(
            [
                x509.UniformResourceIdentifier("kruispunt://n/partner/a"),
                x509.DNSName("b.partner.n.kruispunt.internal"),
            ]
        )
        with pytest.raises(CertificateIdentityError, match="does not match"):
            pki.identity_from_certificate(cert)

    def test_error_maps_to_unauthenticated(self) -> None:
        """CertificateIdentityError is a KruispuntError mapping to UNAUTHENTICATED."""
        assert issubclass(CertificateIdentityError, KruispuntError)
        assert CertificateIdentityError.status.name == "UNAUTHENTICATED"


class TestVerifyIssuedBy:
    def test_foreign_ca(self, ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
        """A certificate from another CA (even with the same network name) is refused."""
        foreign = pki.create_ca("test", now=NOW)
        cert = _leaf(foreign, Identity.partner("test", "a"))
        with pytest.raises(CertificateIdentityError, match="not issued by the network CA"):
            pki.verify_issued_by(cert, ca[1], now=NOW)

    def test_expired(self, ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
        """An expired certificate is refused."""
        cert = _leaf(ca, Identity.partner("test", "a"))
        with pytest.raises(CertificateIdentityError, match="not valid at this time"):
            pki.verify_issued_by(cert, ca[1], now=NOW + dt.timedelta(days=398))

    def test_valid(self, ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
        """A current certificate from the CA yields its identity."""
        identity = Identity.operator("test", "jan")
        assert pki.verify_issued_by(_leaf(ca, identity), ca[1], now=NOW) == identity


class TestFingerprint:
    def test_sha256_of_der(self, ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
        """The fingerprint is the lowercase hex SHA-256 of the DER certificate."""
        cert = ca[1]
        expected = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
        assert pki.fingerprint(cert) == expected


class TestKeyFiles:
    def test_round_trip_tls_and_signing(self, tmp_path: Path) -> None:
        """EC and Ed25519 keys written are read back identical."""
        tls, sig = pki.generate_tls_key(), ed25519.Ed25519PrivateKey.generate()
        pki.write_private_key(tmp_path / "tls.key", tls)
        pki.write_private_key(tmp_path / "sig.key", sig)
        assert pki.private_key_pem(pki.load_tls_key(tmp_path / "tls.key")) == pki.private_key_pem(
            tls
        )
        assert pki.private_key_pem(pki.load_private_key(tmp_path / "sig.key")) == (
            pki.private_key_pem(sig)
        )

    def test_mode_0600_despite_umask(self, tmp_path: Path) -> None:
        """A key file is created 0600 even under a permissive umask."""
        old = os.umask(0)
        try:
            pki.write_private_key(tmp_path / "k", pki.generate_tls_key())
        finally:
            os.umask(old)
        assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600
        assert [p.name for p in tmp_path.iterdir()] == ["k"]  # no temporary file left

    def test_created_private_from_the_start(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The key file is opened with O_CREAT|O_EXCL and mode 0600: never readable by others."""
        calls: list[tuple[int, int]] = []
        real_open = os.open

        def spy(path: Any, flags: int, mode: int = 0o777, **kwargs: Any) -> int:
            calls.append((flags, mode))
            return real_open(path, flags, mode, **kwargs)

        monkeypatch.setattr(os, "open", spy)
        pki.write_private_key(tmp_path / "k", pki.generate_tls_key())
        assert calls
        flags, mode = calls[0]
        assert flags & os.O_CREAT
        assert flags & os.O_EXCL
        assert flags & os.O_NOFOLLOW
        assert mode == 0o600

    def test_refuses_to_overwrite(self, tmp_path: Path) -> None:
        """An existing key is never replaced."""
        path = tmp_path / "k"
        first = pki.generate_tls_key()
        pki.write_private_key(path, first)
        with pytest.raises(FileExistsError):
            pki.write_private_key(path, pki.generate_tls_key())
        assert pki.private_key_pem(pki.load_tls_key(path)) == pki.private_key_pem(first)
        assert [p.name for p in tmp_path.iterdir()] == ["k"]

    @pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o601])
    def test_refuses_readable_by_others(self, tmp_path: Path, mode: int) -> None:
        """A key file accessible by group or others is refused, naming the file and the fix."""
        path = tmp_path / "k"
        pki.write_private_key(path, pki.generate_tls_key())
        path.chmod(mode)
        with pytest.raises(ConfigError, match="chmod 600") as info:
            pki.load_private_key(path)
        assert str(path) in str(info.value)
        assert f"{mode:04o}" in str(info.value)

    def test_owner_read_only_accepted(self, tmp_path: Path) -> None:
        """A key file with mode 0400 is accepted."""
        path = tmp_path / "k"
        pki.write_private_key(path, pki.generate_tls_key())
        path.chmod(0o400)
        pki.load_private_key(path)

    def test_refuses_symlink(self, tmp_path: Path) -> None:
        """A key path that is a symlink is refused, even to a well-protected key."""
        real = tmp_path / "real.key"
        pki.write_private_key(real, pki.generate_tls_key())
        link = tmp_path / "link.key"
        link.symlink_to(real)
        with pytest.raises(ConfigError, match="symlink") as info:
            pki.load_private_key(link)
        assert str(link) in str(info.value)

    def test_missing_file(self, tmp_path: Path) -> None:
        """A missing key file is a ConfigError naming the file."""
        with pytest.raises(ConfigError, match="not found"):
            pki.load_private_key(tmp_path / "absent.key")

    def test_directory(self, tmp_path: Path) -> None:
        """A key path that is a directory is a ConfigError naming it, not an IsADirectoryError."""
        folder = tmp_path / "keys"
        folder.mkdir(mode=0o700)
        with pytest.raises(ConfigError) as info:
            pki.load_private_key(folder)
        assert str(info.value) == f"{folder}: private key path is not a regular file"

    def test_agreement_keys_read_through_the_same_checks(self, tmp_path: Path) -> None:
        """read_private_key_file returns any key type, naming the file as the caller's kind."""
        path = tmp_path / "agreement.pem"
        key = x25519.X25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        pki.atomic_write(path, pem, 0o600, exclusive=True)
        loaded = pki.read_private_key_file(path, what="agreement key")
        assert isinstance(loaded, x25519.X25519PrivateKey)
        with pytest.raises(ConfigError, match="must be EC P-256"):
            pki.load_private_key(path)
        path.chmod(0o640)
        with pytest.raises(ConfigError, match="agreement key file is accessible by group"):
            pki.read_private_key_file(path, what="agreement key")

    def test_garbage(self, tmp_path: Path) -> None:
        """A file that is not a PEM key is a ConfigError, without echoing its contents."""
        path = tmp_path / "k"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b"123456782 secret")
        os.close(fd)
        with pytest.raises(ConfigError, match="not an unencrypted PEM private key") as info:
            pki.load_private_key(path)
        assert "123456782" not in str(info.value)

    def test_other_curve_refused(self, tmp_path: Path) -> None:
        """A key on a curve other than P-256 is refused."""
        path = tmp_path / "k"
        key = ec.generate_private_key(ec.SECP384R1())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(
            fd,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        os.close(fd)
        with pytest.raises(ConfigError, match="P-256"):
            pki.load_private_key(path)

    def test_tls_loader_refuses_signing_key(self, tmp_path: Path) -> None:
        """load_tls_key refuses an Ed25519 key."""
        pki.write_private_key(tmp_path / "k", ed25519.Ed25519PrivateKey.generate())
        with pytest.raises(ConfigError, match="EC P-256 TLS key"):
            pki.load_tls_key(tmp_path / "k")


class TestPemFiles:
    def test_certificate_round_trip(
        self, tmp_path: Path, ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]
    ) -> None:
        """A certificate written is read back equal, world-readable 0644."""
        path = tmp_path / "ca.pem"
        pki.write_pem(path, ca[1])
        assert pki.load_certificate(path) == ca[1]
        assert stat.S_IMODE(path.stat().st_mode) == 0o644

    def test_replaces_existing(
        self, tmp_path: Path, ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]
    ) -> None:
        """write_pem replaces a certificate (renewal) and leaves no temporary file."""
        path = tmp_path / "leaf.pem"
        first = _leaf(ca, Identity.coordinator("test"))
        second = _leaf(ca, Identity.coordinator("test"))
        pki.write_pem(path, first)
        pki.write_pem(path, second)
        assert pki.load_certificate(path) == second
        assert [p.name for p in tmp_path.iterdir()] == ["leaf.pem"]

    def test_csr_round_trip(self, tmp_path: Path) -> None:
        """A CSR written is read back equal."""
        csr = pki.create_csr(pki.generate_tls_key(), Identity.partner("test", "a"))
        pki.write_pem(tmp_path / "a.csr", csr)
        assert pki.load_csr(tmp_path / "a.csr") == csr

    def test_refuses_private_key_bytes(self, tmp_path: Path) -> None:
        """write_pem will not write a private key world-readable."""
        with pytest.raises(ValueError, match="write_private_key"):
            pki.write_pem(tmp_path / "k", pki.private_key_pem(pki.generate_tls_key()))

    def test_bad_certificate_file(self, tmp_path: Path) -> None:
        """A file that is not a certificate is a ConfigError naming the file."""
        path = tmp_path / "x.pem"
        path.write_bytes(b"nonsense")
        with pytest.raises(ConfigError, match="not a PEM certificate") as info:
            pki.load_certificate(path)
        assert str(path) in str(info.value)
        with pytest.raises(ConfigError, match="not a PEM certificate signing request"):
            pki.load_csr(path)

    def test_missing_certificate_file(self, tmp_path: Path) -> None:
        """A missing certificate file is a ConfigError naming the file."""
        with pytest.raises(ConfigError, match="not found"):
            pki.load_certificate(tmp_path / "absent.pem")
