"""The agreement public key file a node sends to the coordinator with its CSR.

`psi-node init` writes the public half of the node's X25519 agreement key to
``signing/node.x25519.pub``; `psi-coordinator partner add --agreement-key` reads it.
The file is one line: the raw 32-byte X25519 public key (RFC 7748) as 64 lowercase hex
digits, then a newline. That is exactly the text of the key's ``agreement_key`` field in
the partner roster (`kruispunt.roster`), so an operator can find the file's key in the
roster by eye or with grep, and a key mangled in transit (a wrapped e-mail line, a lost
digit) is refused rather than registered.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import x25519

from kruispunt import pki
from kruispunt.errors import ConfigError
from kruispunt.roster import agreement_public_bytes, check_agreement_public_key

__all__ = [
    "MAX_FILE_BYTES",
    "agreement_key_id",
    "agreement_public_text",
    "read_agreement_public_key",
    "write_agreement_public_key",
]

#: Far more than one line of 64 hex digits: anything larger is not this file.
MAX_FILE_BYTES = 1024
_KEY_ID_HEX = 16
_HEX_RE = re.compile(r"[0-9a-fA-F]*")


def agreement_public_text(raw: bytes) -> str:
    """The file's text for the raw X25519 public key `raw`: 64 lowercase hex and a newline."""
    return check_agreement_public_key(raw).hex() + "\n"


def agreement_key_id(raw: bytes) -> str:
    """A short stable name for an agreement key: the first 16 hex digits of SHA-256(raw)."""
    return hashlib.sha256(raw).hexdigest()[:_KEY_ID_HEX]


def write_agreement_public_key(
    path: str | os.PathLike[str], key: x25519.X25519PrivateKey | x25519.X25519PublicKey
) -> None:
    """Write the public half of `key` to `path` (mode 0644: it is public), atomically."""
    pki.write_pem(path, agreement_public_text(agreement_public_bytes(key)).encode("ascii"))


def read_agreement_public_key(path: str | os.PathLike[str]) -> bytes:
    """The raw 32-byte X25519 key in an agreement public key file.

    ConfigError names the file and the reason: missing, unreadable, a private key sent
    by mistake, not 64 hex digits, or not a usable X25519 key.
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{path}: agreement public key file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not an agreement public key file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read agreement public key ({exc.strerror})") from None
    if b"PRIVATE KEY" in data:
        raise ConfigError(
            f"{path}: this is a private key; the partner sends only signing/node.x25519.pub "
            "(and should make a new key, since this one has left its machine)"
        )
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_FILE_BYTES} bytes; not an agreement key")
    try:
        text = data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise ConfigError(
            f"{path}: not an agreement public key (expected one line of 64 hex digits)"
        ) from None
    if len(text) != 64 or _HEX_RE.fullmatch(text) is None:
        raise ConfigError(
            f"{path}: not an agreement public key: expected one line of 64 hex digits "
            f"(as psi-node init writes to signing/node.x25519.pub), found {len(text)} characters"
            + ("" if _HEX_RE.fullmatch(text) else " that are not all hex digits")
        )
    try:
        return check_agreement_public_key(bytes.fromhex(text))
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None
