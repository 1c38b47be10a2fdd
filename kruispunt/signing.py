"""Ed25519 signatures for manifests, consents and the audit log, with domain separation.

Every signature covers ``context || 0x00 || data``, where the context is a label such
as ``b"kruispunt/manifest/v1"``. A signature made for one use therefore never verifies
for another: a signed consent cannot be replayed as a manifest or an audit event,
even if the two payloads happened to share bytes. Labels contain no NUL byte, so the
split between label and data is unambiguous.

Verification failures raise one opaque `SignatureInvalid`, whatever went wrong
(wrong key, wrong context, tampered data, malformed signature).

A verifier may hold more than one key for one signer: during a key rotation's overlap
window the roster names a partner's (or the coordinator's) new key and, until a date,
its previous one (`KeySet`, built by `kruispunt.roster`). `verify` accepts a signature
by any key of the set.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from kruispunt.errors import ConfigError, SignatureInvalid
from kruispunt.pki import load_private_key

__all__ = [
    "CONTEXT_AUDIT",
    "CONTEXT_CONSENT",
    "CONTEXT_MANIFEST",
    "PUBLIC_KEY_BYTES",
    "SIGNATURE_BYTES",
    "KeySet",
    "Verifier",
    "generate_signing_key",
    "key_id",
    "load_public_key",
    "load_signing_key",
    "public_key_bytes",
    "public_key_pem",
    "read_public_key",
    "sign",
    "verify",
]

CONTEXT_MANIFEST = b"kruispunt/manifest/v1"
CONTEXT_CONSENT = b"kruispunt/consent/v1"
CONTEXT_AUDIT = b"kruispunt/audit/v1"

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
# 16 hex digits (64 bits): a label to pick the right key, not a security boundary.
_KEY_ID_HEX = 16
_CONTEXT_RE = re.compile(rb"kruispunt/[a-z0-9][a-z0-9/._-]{0,99}")


def _check_context(context: bytes) -> None:
    if not isinstance(context, bytes):
        raise TypeError(f"context must be bytes, not {type(context).__name__}")
    if _CONTEXT_RE.fullmatch(context) is None:
        raise ValueError(
            "context must be a label like b'kruispunt/manifest/v1' "
            "(lowercase ASCII, starting with 'kruispunt/', no NUL)"
        )


def _message(context: bytes, data: bytes) -> bytes:
    _check_context(context)
    if not isinstance(data, bytes):
        raise TypeError(f"data must be bytes, not {type(data).__name__}")
    return context + b"\x00" + data


@dataclass(frozen=True)
class KeySet:
    """Ed25519 keys of one signer, any of which `verify` accepts (a rotation's overlap)."""

    keys: tuple[ed25519.Ed25519PublicKey, ...]

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError("a key set holds at least one key")
        for key in self.keys:
            if not isinstance(key, ed25519.Ed25519PublicKey):
                raise TypeError(f"public key must be Ed25519, not {type(key).__name__}")


#: What `verify` takes: one key, or the keys a roster accepts for one signer right now.
Verifier = ed25519.Ed25519PublicKey | KeySet


def generate_signing_key() -> ed25519.Ed25519PrivateKey:
    """A fresh Ed25519 signing key."""
    return ed25519.Ed25519PrivateKey.generate()


def sign(key: ed25519.Ed25519PrivateKey, context: bytes, data: bytes) -> bytes:
    """Sign ``context || 0x00 || data``; returns the 64-byte signature."""
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise TypeError(f"signing key must be Ed25519, not {type(key).__name__}")
    return key.sign(_message(context, data))


def verify(public_key: Verifier, context: bytes, data: bytes, signature: bytes) -> None:
    """Return if `signature` is `public_key`'s signature of `data` under `context`.

    With a `KeySet`, a signature by any one of its keys will do. Raises SignatureInvalid
    otherwise, with the same message for every cause.
    """
    if isinstance(public_key, KeySet):
        keys = public_key.keys
    elif isinstance(public_key, ed25519.Ed25519PublicKey):
        keys = (public_key,)
    else:
        raise TypeError(f"public key must be Ed25519, not {type(public_key).__name__}")
    message = _message(context, data)
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_BYTES:
        raise SignatureInvalid()
    for key in keys:
        try:
            key.verify(signature, message)
        except InvalidSignature:
            continue
        return
    raise SignatureInvalid()


def public_key_bytes(public_key: ed25519.Ed25519PublicKey) -> bytes:
    """The raw 32-byte encoding of `public_key` (RFC 8032)."""
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_pem(public_key: ed25519.Ed25519PublicKey) -> bytes:
    """`public_key` as SubjectPublicKeyInfo PEM."""
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_public_key(data: bytes) -> ed25519.Ed25519PublicKey:
    """Load an Ed25519 public key from its raw 32 bytes or from PEM.

    Raises ValueError if `data` is neither.
    """
    if not isinstance(data, bytes):
        raise TypeError(f"public key data must be bytes, not {type(data).__name__}")
    if len(data) == PUBLIC_KEY_BYTES:
        return ed25519.Ed25519PublicKey.from_public_bytes(data)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        raise ValueError("not an Ed25519 public key (raw 32 bytes or PEM)") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise ValueError(f"expected an Ed25519 public key, found {type(key).__name__}")
    return key


def read_public_key(
    path: str | os.PathLike[str], *, missing: str = "file not found"
) -> ed25519.Ed25519PublicKey:
    """The Ed25519 public key in the file at `path` (raw 32 bytes or PEM).

    Raises ConfigError naming the path and the reason: `missing` when there is
    no such file (say what puts it there), else why it cannot be read or used.
    """
    name = os.fspath(path)
    try:
        with open(name, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise ConfigError(f"{name}: {missing}") from None
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read ({exc.strerror})") from None
    try:
        return load_public_key(data)
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def key_id(public_key: ed25519.Ed25519PublicKey) -> str:
    """A short stable name for `public_key`: the first 16 hex digits of SHA-256(raw key)."""
    return hashlib.sha256(public_key_bytes(public_key)).hexdigest()[:_KEY_ID_HEX]


def load_signing_key(path: str | os.PathLike[str]) -> ed25519.Ed25519PrivateKey:
    """Load an Ed25519 key written by `kruispunt.pki.write_private_key` (owner-only file)."""
    key = load_private_key(path)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ConfigError(f"{os.fspath(path)}: expected an Ed25519 signing key, found a TLS key")
    return key
