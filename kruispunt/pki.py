"""The network's PKI: identities bound to certificates, the network CA, and key files.

One network CA, whose key the coordinator's operator keeps offline, issues every
TLS certificate. A partner sends a CSR; its private key never leaves it. Each leaf
certificate names its holder twice, and nothing else:

* one URI SAN, ``kruispunt://<network>/coordinator``,
  ``kruispunt://<network>/partner/<id>`` or ``kruispunt://<network>/operator/<name>``,
  which the server interceptor reads to decide what the caller may do;
* one DNS SAN, ``coordinator.<network>.kruispunt.internal``,
  ``<id>.partner.<network>.kruispunt.internal`` or
  ``<name>.operator.<network>.kruispunt.internal``, which clients pass as the TLS
  target name so that the handshake itself proves "this is partner X", whatever
  address it listens on.

TLS keys are EC P-256 (what gRPC's BoringSSL handles everywhere); signing keys are
Ed25519 (`kruispunt.signing`). Both are stored as unencrypted PKCS#8 PEM files
created with mode 0600; loading refuses symlinks and group- or world-readable files.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import grpc
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificatePublicKeyTypes,
    PrivateKeyTypes,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kruispunt.errors import ConfigError, KruispuntError

__all__ = [
    "CA_VALIDITY_DAYS",
    "DNS_SUFFIX",
    "LEAF_VALIDITY_DAYS",
    "URI_SCHEME",
    "CertificateIdentityError",
    "CsrRejected",
    "Identity",
    "PrivateKey",
    "Role",
    "atomic_write",
    "ca_network",
    "certificate_expires_in",
    "certificate_pem",
    "create_ca",
    "create_csr",
    "create_csr_for_name",
    "fingerprint",
    "generate_tls_key",
    "identity_from_certificate",
    "issue_certificate",
    "issue_for_key",
    "load_certificate",
    "load_csr",
    "load_private_key",
    "load_tls_key",
    "private_key_pem",
    "read_private_key_file",
    "same_public_key",
    "verify_issued_by",
    "write_pem",
    "write_private_key",
]

URI_SCHEME = "kruispunt"
DNS_SUFFIX = "kruispunt.internal"
CA_VALIDITY_DAYS = 3650
# 90 days: a certificate that leaks stops working within a quarter even if nobody notices,
# and renewal becomes routine (the 30-day warning of kruispunt.expiry leaves two months of
# use, one month to renew), as ACME made it for the web.
LEAF_VALIDITY_DAYS = 90
# Backdate notBefore a little so a peer whose clock runs slightly behind accepts a fresh cert.
_CLOCK_SKEW = dt.timedelta(minutes=5)
_CA_COMMON_NAME = "Kruispunt network CA"
_ORGANIZATION = "Kruispunt"

# A DNS label (RFC 1123): lowercase letters, digits and inner hyphens, at most 63 characters.
# Stricter than [a-z0-9][a-z0-9-]{0,62}: a label may not end in a hyphen either.
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_LABEL_RE = re.compile(_LABEL)
_URI_RE = re.compile(
    rf"kruispunt://(?P<network>{_LABEL})/"
    rf"(?:(?P<coordinator>coordinator)|(?P<role>partner|operator)/(?P<name>{_LABEL}))"
)

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


class CertificateIdentityError(KruispuntError):
    """A certificate carries no Kruispunt identity, or more than one."""

    status = grpc.StatusCode.UNAUTHENTICATED


class CsrRejected(KruispuntError, ValueError):
    """A certificate signing request is badly signed or asks for another identity."""

    status = grpc.StatusCode.INVALID_ARGUMENT


class Role(enum.StrEnum):
    """What a certificate holder is in the network."""

    COORDINATOR = "coordinator"
    PARTNER = "partner"
    OPERATOR = "operator"


def _check_label(kind: str, value: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{kind} must be a str, not {type(value).__name__}")
    if _LABEL_RE.fullmatch(value) is None:
        raise ValueError(
            f"invalid {kind} {value!r}: use 1 to 63 lowercase letters, digits and hyphens, "
            "starting and ending with a letter or digit"
        )


@dataclass(frozen=True)
class Identity:
    """Who holds a certificate: a role, a name within the role, and the network.

    The coordinator's name is always ``"coordinator"``; use `Identity.coordinator`.
    """

    role: Role
    name: str
    network: str

    def __post_init__(self) -> None:
        try:
            role = Role(self.role)
        except ValueError:
            raise ValueError(
                f"invalid role {self.role!r}: expected one of {', '.join(Role)}"
            ) from None
        object.__setattr__(self, "role", role)
        _check_label("network name", self.network)
        if role is Role.COORDINATOR:
            if self.name != Role.COORDINATOR.value:
                raise ValueError("the coordinator's identity name must be 'coordinator'")
        else:
            _check_label(f"{role.value} id", self.name)

    @classmethod
    def coordinator(cls, network: str) -> Self:
        """The coordinator of `network`."""
        return cls(Role.COORDINATOR, Role.COORDINATOR.value, network)

    @classmethod
    def partner(cls, network: str, partner_id: str) -> Self:
        """Partner `partner_id` of `network`."""
        return cls(Role.PARTNER, partner_id, network)

    @classmethod
    def operator(cls, network: str, name: str) -> Self:
        """Operator `name` of `network` (uses the coordinator's admin service)."""
        return cls(Role.OPERATOR, name, network)

    @classmethod
    def from_uri(cls, uri: str) -> Self:
        """Parse a ``kruispunt://`` URI; raise ValueError if it is not exactly one."""
        if not isinstance(uri, str):
            raise TypeError(f"identity URI must be a str, not {type(uri).__name__}")
        match = _URI_RE.fullmatch(uri)
        if match is None:
            raise ValueError(
                "not a Kruispunt identity URI: expected kruispunt://<network>/coordinator, "
                "kruispunt://<network>/partner/<id> or kruispunt://<network>/operator/<name>"
            )
        if match["coordinator"]:
            return cls.coordinator(match["network"])
        return cls(Role(match["role"]), match["name"], match["network"])

    @property
    def uri(self) -> str:
        """The URI SAN that names this identity."""
        if self.role is Role.COORDINATOR:
            return f"{URI_SCHEME}://{self.network}/coordinator"
        return f"{URI_SCHEME}://{self.network}/{self.role.value}/{self.name}"

    @property
    def server_name(self) -> str:
        """The DNS SAN, used as TLS server name (grpc.ssl_target_name_override)."""
        if self.role is Role.COORDINATOR:
            return f"coordinator.{self.network}.{DNS_SUFFIX}"
        return f"{self.name}.{self.role.value}.{self.network}.{DNS_SUFFIX}"

    def __str__(self) -> str:
        return self.uri


def _now(now: dt.datetime | None) -> dt.datetime:
    if now is None:
        return dt.datetime.now(dt.UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(dt.UTC)


def identity_from_certificate(cert: x509.Certificate) -> Identity:
    """Read the holder's identity from `cert`'s subjectAltName.

    Requires exactly one URI SAN, a valid Kruispunt identity URI, and DNS SANs (if any)
    equal to that identity's server name; raises CertificateIdentityError otherwise.
    """
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise CertificateIdentityError("certificate has no subjectAltName") from None
    except ValueError:  # a malformed extension
        raise CertificateIdentityError("certificate extensions do not parse") from None
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    if len(uris) != 1:
        raise CertificateIdentityError(
            f"certificate must carry exactly one URI SAN, found {len(uris)}"
        )
    try:
        identity = Identity.from_uri(uris[0])
    except ValueError:
        raise CertificateIdentityError("certificate URI SAN is not a Kruispunt identity") from None
    dns_names = san.get_values_for_type(x509.DNSName)
    if any(name != identity.server_name for name in dns_names):
        raise CertificateIdentityError("certificate DNS SAN does not match its URI SAN")
    return identity


def generate_tls_key() -> ec.EllipticCurvePrivateKey:
    """A fresh EC P-256 key for TLS."""
    return ec.generate_private_key(ec.SECP256R1())


def _ca_name(network: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORGANIZATION),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, network),
            x509.NameAttribute(NameOID.COMMON_NAME, _CA_COMMON_NAME),
        ]
    )


def create_ca(
    network: str,
    *,
    now: dt.datetime | None = None,
    days: int = CA_VALIDITY_DAYS,
    key: ec.EllipticCurvePrivateKey | None = None,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """Create the self-signed network CA for `network`: (key, certificate).

    The CA may sign leaves only (pathlen 0) and, through a critical name constraint,
    only DNS names under ``<network>.kruispunt.internal``.
    """
    _check_label("network name", network)
    if days < 1:
        raise ValueError("days must be at least 1")
    start = _now(now)
    if key is None:
        key = generate_tls_key()
    _check_tls_public_key(key.public_key())
    name = _ca_name(network)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - _CLOCK_SKEW)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.NameConstraints(
                permitted_subtrees=[x509.DNSName(f"{network}.{DNS_SUFFIX}")],
                excluded_subtrees=None,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def ca_network(ca_cert: x509.Certificate) -> str:
    """The network a CA certificate made by `create_ca` serves."""
    units = ca_cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    value = units[0].value if len(units) == 1 else None
    if not isinstance(value, str) or _LABEL_RE.fullmatch(value) is None:
        raise CertificateIdentityError("certificate is not a Kruispunt network CA")
    return value


def create_csr(
    key: ec.EllipticCurvePrivateKey, identity: Identity
) -> x509.CertificateSigningRequest:
    """A CSR for `identity`, signed by `key` (the key stays with its holder)."""
    _check_tls_public_key(key.public_key())
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(_leaf_name(identity))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(identity.uri), x509.DNSName(identity.server_name)]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )


def create_csr_for_name(
    key: ec.EllipticCurvePrivateKey, name: str
) -> x509.CertificateSigningRequest:
    """A CSR naming only `name` (CN), for a holder that does not know its network yet.

    The issuer adds the network, role and SANs; `issue_certificate` accepts it for any
    identity whose name is `name`.
    """
    _check_label("id", name)
    _check_tls_public_key(key.public_key())
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .sign(key, hashes.SHA256())
    )


def _leaf_name(identity: Identity) -> x509.Name:
    # CN is capped at 64 characters, too short for the URI; the SANs carry the identity.
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORGANIZATION),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, identity.network),
            x509.NameAttribute(NameOID.COMMON_NAME, identity.name),
        ]
    )


def _check_tls_public_key(public_key: object) -> None:
    if not (
        isinstance(public_key, ec.EllipticCurvePublicKey)
        and isinstance(public_key.curve, ec.SECP256R1)
    ):
        raise ValueError("TLS keys must be EC P-256 keys")


def issue_certificate(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    csr: x509.CertificateSigningRequest,
    identity: Identity,
    *,
    days: int = LEAF_VALIDITY_DAYS,
    now: dt.datetime | None = None,
) -> x509.Certificate:
    """Sign a leaf certificate for `identity` over the key in `csr`.

    The issuer decides the names: the CSR's requested extensions are ignored. The CSR
    must be validly self-signed, carry an EC P-256 key and have CN equal to
    ``identity.name``; if it requests URI SANs they must be exactly ``identity.uri``.
    Raises CsrRejected otherwise.
    """
    if not csr.is_signature_valid:
        raise CsrRejected("CSR signature does not verify")
    public_key = csr.public_key()
    try:
        _check_tls_public_key(public_key)
    except ValueError:
        raise CsrRejected("CSR key must be an EC P-256 key") from None
    common_names = [attr.value for attr in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if common_names != [identity.name]:
        raise CsrRejected(
            f"CSR subject CN does not match the {identity.role.value} id {identity.name!r}"
        )
    try:
        requested = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        requested = None
    except ValueError:
        raise CsrRejected("CSR extensions do not parse") from None
    if requested is not None:
        uris = requested.get_values_for_type(x509.UniformResourceIdentifier)
        if uris and uris != [identity.uri]:
            raise CsrRejected(f"CSR asks for another identity than {identity.uri}")
    assert isinstance(public_key, ec.EllipticCurvePublicKey)  # checked above
    return issue_for_key(ca_key, ca_cert, public_key, identity, days=days, now=now)


def issue_for_key(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    public_key: ec.EllipticCurvePublicKey,
    identity: Identity,
    *,
    days: int = LEAF_VALIDITY_DAYS,
    now: dt.datetime | None = None,
) -> x509.Certificate:
    """Sign a leaf certificate for `identity` over `public_key` (keys made locally at init).

    Validity is capped at the CA's own expiry. EKU serverAuth and clientAuth on every
    leaf, so a certificate used in the wrong place fails our role check, not TLS.
    """
    if days < 1:
        raise ValueError("days must be at least 1")
    _check_tls_public_key(public_key)
    network = ca_network(ca_cert)
    if identity.network != network:
        raise ValueError(f"identity belongs to network {identity.network!r}, the CA to {network!r}")
    if not same_public_key(ca_key.public_key(), ca_cert.public_key()):
        raise ValueError("CA key does not match the CA certificate")
    start = _now(now)
    not_after = min(start + dt.timedelta(days=days), ca_cert.not_valid_after_utc)
    if not_after <= start:
        raise ValueError("the CA certificate has expired")
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder()
        .subject_name(_leaf_name(identity))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(max(start - _CLOCK_SKEW, ca_cert.not_valid_before_utc))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(identity.uri), x509.DNSName(identity.server_name)]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )


def _spki(public_key: CertificatePublicKeyTypes) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def same_public_key(a: CertificatePublicKeyTypes, b: CertificatePublicKeyTypes) -> bool:
    """Whether two public keys are the same key (e.g. a certificate's and a key file's)."""
    return _spki(a) == _spki(b)


def verify_issued_by(
    cert: x509.Certificate, ca_cert: x509.Certificate, *, now: dt.datetime | None = None
) -> Identity:
    """Check `cert` was signed by `ca_cert` and is valid at `now`; return its identity.

    For certificates read from disk (gRPC verifies the chain of live peers itself).
    Raises CertificateIdentityError.
    """
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        raise CertificateIdentityError("certificate was not issued by the network CA") from None
    moment = _now(now)
    if not cert.not_valid_before_utc <= moment <= cert.not_valid_after_utc:
        raise CertificateIdentityError("certificate is not valid at this time")
    identity = identity_from_certificate(cert)
    if identity.network != ca_network(ca_cert):
        raise CertificateIdentityError("certificate names another network than its CA")
    return identity


def certificate_expires_in(cert: x509.Certificate, now: dt.datetime | None = None) -> dt.timedelta:
    """Time left until `cert` expires (negative once it has)."""
    return cert.not_valid_after_utc - _now(now)


def fingerprint(cert: x509.Certificate) -> str:
    """The SHA-256 fingerprint of `cert`'s DER encoding, lowercase hex."""
    return cert.fingerprint(hashes.SHA256()).hex()


# ---------------------------------------------------------------------------------------
# PEM files


def private_key_pem(key: PrivateKey) -> bytes:
    """`key` as unencrypted PKCS#8 PEM."""
    if not isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise TypeError(f"unsupported private key type {type(key).__name__}")
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def certificate_pem(cert: x509.Certificate) -> bytes:
    """`cert` as PEM."""
    return cert.public_bytes(serialization.Encoding.PEM)


def atomic_write(path: str | os.PathLike[str], data: bytes, mode: int, *, exclusive: bool) -> None:
    """Write `data` to a new temporary file with `mode`, move it into place, fsync the folder.

    Created with O_CREAT|O_EXCL and the final mode, so it is never readable by
    others, not even while being written. `exclusive` refuses to replace `path`
    (FileExistsError).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)  # the umask may have narrowed it
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if exclusive:
            os.link(tmp, path)  # fails if path exists: never overwrite a key
        else:
            os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    # The rename is durable only once the directory entry is on disk.
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_private_key(path: str | os.PathLike[str], key: PrivateKey) -> None:
    """Write `key` as PKCS#8 PEM to a new file with mode 0600.

    Raises FileExistsError rather than replace an existing key.
    """
    atomic_write(path, private_key_pem(key), 0o600, exclusive=True)


def write_pem(
    path: str | os.PathLike[str],
    obj: x509.Certificate | x509.CertificateSigningRequest | bytes,
) -> None:
    """Atomically write a certificate, CSR or ready PEM bytes (mode 0644, replaces)."""
    if isinstance(obj, x509.Certificate | x509.CertificateSigningRequest):
        data = obj.public_bytes(serialization.Encoding.PEM)
    elif isinstance(obj, bytes):
        if b"PRIVATE KEY" in obj:
            raise ValueError("use write_private_key for private keys")
        data = obj
    else:
        raise TypeError(f"cannot write {type(obj).__name__} as PEM")
    atomic_write(path, data, 0o644, exclusive=False)


def read_private_key_file(
    path: str | os.PathLike[str], *, what: str = "private key"
) -> PrivateKeyTypes:
    """An unencrypted PEM private key, of any type, from a file that only its owner can read.

    Raises ConfigError naming the file (as `what`: "private key", "agreement key")
    and the fix if it is missing, a symlink, not a regular file, readable by group
    or others, or not an unencrypted PEM private key. The callers check the type.
    """
    path = Path(path)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} file not found") from None
    if stat.S_ISLNK(info.st_mode):
        raise ConfigError(f"{path}: {what} file is a symlink; refer to the real file instead")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot open {what} file ({exc.strerror})") from None
    # fdopen fails on a directory with a raw IsADirectoryError: check the file type first.
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise ConfigError(f"{path}: {what} path is not a regular file")
    with os.fdopen(fd, "rb") as handle:
        if info.st_mode & 0o077:
            raise ConfigError(
                f"{path}: {what} file is accessible by group or others "
                f"(mode {stat.S_IMODE(info.st_mode):04o}); fix with: chmod 600 {path}"
            )
        data = handle.read()
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ConfigError(f"{path}: not an unencrypted PEM private key") from None


def load_private_key(path: str | os.PathLike[str]) -> PrivateKey:
    """Load an EC P-256 or Ed25519 private key from a PEM file that only its owner can read.

    Raises ConfigError naming the file and the fix if it is missing, a symlink, not a
    regular file, readable by group or others, or does not hold such a key
    (`read_private_key_file`).
    """
    key = read_private_key_file(path)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    raise ConfigError(f"{Path(path)}: private key must be EC P-256 (TLS) or Ed25519 (signing)")


def load_tls_key(path: str | os.PathLike[str]) -> ec.EllipticCurvePrivateKey:
    """`load_private_key`, requiring an EC P-256 TLS key."""
    key = load_private_key(path)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{Path(path)}: expected an EC P-256 TLS key, found a signing key")
    return key


def load_certificate(path: str | os.PathLike[str]) -> x509.Certificate:
    """Load one PEM certificate; ConfigError names the file if it cannot be read."""
    path = Path(path)
    data = _read(path, "certificate")
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        raise ConfigError(f"{path}: not a PEM certificate") from None


def load_csr(path: str | os.PathLike[str]) -> x509.CertificateSigningRequest:
    """Load one PEM CSR; ConfigError names the file if it cannot be read."""
    path = Path(path)
    data = _read(path, "certificate signing request")
    try:
        return x509.load_pem_x509_csr(data)
    except ValueError:
        raise ConfigError(f"{path}: not a PEM certificate signing request") from None


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what} file ({exc.strerror})") from None
