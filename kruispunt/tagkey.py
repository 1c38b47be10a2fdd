"""A tag key the coordinator never holds: partners agree on it through the relay, sealed.

Without it, a tag is a public function of the RFC 9497 output, and a coordinator that
gets a point evaluated under the network key can compute tags itself. With it, a tag is
``HMAC-SHA256(tag_key, label || output)`` truncated (`keyed_tag`), and the tag key is
known to the round's partners only.

Per round every partner i draws a 32-byte secret s_i and seals it to every other
partner j's roster X25519 key (`TagKeyContribution.new`)::

    e        = a fresh X25519 key (one per recipient)
    binding  = "kruispunt/tag-key-share/v1" 0x00 str(round_id) str(sender)
               str(recipient) e_pub[32] pk_j[32]
    key      = HKDF-SHA256(X25519(e, pk_j), salt=manifest_sha256, info=binding)
    sealed   = e_pub[32] || nonce[12] || ChaCha20-Poly1305(key, nonce, s_i, ad=binding)

(92 bytes, `SEALED_BYTES`; ``str(s)`` is a u16 big-endian length and the ASCII text).
The recipient recomputes the binding from what it expects (`open_share`), so a share
moved to another round, manifest, sender or recipient, or altered in any byte, does not
open. Each key is used for one message only, so the random nonce is belt and braces.
Everybody then derives the same tag key from all secrets in the manifest's partner
order (`derive_tag_key`). No partner alone chooses the key: one honest partner's
secret makes it uniformly random.

What sealing does not give is the sender's authenticity: anyone holding pk_j can seal
something to j. The integrator puts ``sealed`` into the consent that the sender signs
with its roster Ed25519 key, and a recipient opens a share only from a consent whose
signature it has verified with the roster's key for that sender. The signed consent also
carries every share of the sender at once, so the coordinator cannot swap one share for
another of the same sender. A sender that seals different secrets to different
recipients splits the network into groups with different keys (its tags then match
nobody); `key_check` lets nodes compare keys through the coordinator to notice that.

Secrets are Python ``bytes``, which cannot be wiped reliably; drop every reference at the
end of the round.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from kruispunt.errors import ProtocolError, SignatureInvalid
from kruispunt.manifest import is_round_id
from kruispunt.purpose import ID_RE
from kruispunt.roster import AGREEMENT_KEY_BYTES, agreement_public_bytes, check_agreement_public_key
from kruispunt.wire import TAG_BYTES  # the tally's tag size: 128 bits, truncated

__all__ = [
    "AEAD_TAG_BYTES",
    "KEY_CHECK_BYTES",
    "KEY_CHECK_LABEL",
    "NONCE_BYTES",
    "OPRF_OUTPUT_BYTES",
    "SEALED_BYTES",
    "SECRET_BYTES",
    "SHARE_LABEL",
    "TAG_BYTES",
    "TAG_KEY_BYTES",
    "TAG_KEY_LABEL",
    "TAG_LABEL",
    "TagKeyContribution",
    "derive_tag_key",
    "key_check",
    "keyed_tag",
    "keyed_tags",
    "open_share",
]

# Labels contain no NUL and each is followed by one, so no input of one use can be read
# as an input of another.
SHARE_LABEL = b"kruispunt/tag-key-share/v1"
TAG_KEY_LABEL = b"kruispunt/tag-key/v1"
TAG_LABEL = b"kruispunt/tag/v1"
KEY_CHECK_LABEL = b"kruispunt/tag-key-check/v1"

SECRET_BYTES = 32
TAG_KEY_BYTES = 32
NONCE_BYTES = 12
AEAD_TAG_BYTES = 16
# e_pub || nonce || ciphertext of the 32-byte secret || Poly1305 tag.
SEALED_BYTES = AGREEMENT_KEY_BYTES + NONCE_BYTES + SECRET_BYTES + AEAD_TAG_BYTES
# RFC 9497 Finalize output for ristretto255-SHA512 (Nh = 64).
OPRF_OUTPUT_BYTES = 64
KEY_CHECK_BYTES = 16

_SHARE_OPAQUE = "sealed tag-key share does not open"


def _str(text: str) -> bytes:
    data = text.encode("ascii")
    return struct.pack(">H", len(data)) + data


def _check_partner_id(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if ID_RE.fullmatch(value) is None:
        raise ValueError(f"{what} is not a valid partner id")
    return value


def _check_round(round_id: object, manifest_sha256: object) -> None:
    if not isinstance(round_id, str):
        raise TypeError(f"round_id must be a str, not {type(round_id).__name__}")
    if not is_round_id(round_id):
        raise ValueError("round_id is malformed")
    if not isinstance(manifest_sha256, bytes):
        raise TypeError(f"manifest_sha256 must be bytes, not {type(manifest_sha256).__name__}")
    if len(manifest_sha256) != hashlib.sha256().digest_size:
        raise ValueError("manifest_sha256 must be 32 bytes")


def _binding(round_id: str, sender: str, recipient: str, e_pub: bytes, pk: bytes) -> bytes:
    return b"".join(
        (SHARE_LABEL, b"\x00", _str(round_id), _str(sender), _str(recipient), e_pub, pk)
    )


def _share_key(shared: bytes, manifest_sha256: bytes, binding: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=manifest_sha256, info=binding).derive(
        shared
    )


@dataclass(frozen=True, eq=False)
class TagKeyContribution:
    """One partner's secret for one round, and that secret sealed to every other partner.

    ``sealed`` maps each recipient's id to `SEALED_BYTES` bytes; it goes into the
    sender's signed consent. ``secret`` never leaves the node.
    """

    round_id: str
    manifest_sha256: bytes
    sender: str
    secret: bytes = field(repr=False)
    sealed: dict[str, bytes]

    @classmethod
    def new(
        cls,
        round_id: str,
        manifest_sha256: bytes,
        sender: str,
        recipients: Mapping[str, bytes],
        rng: Callable[[int], bytes] = os.urandom,
    ) -> TagKeyContribution:
        """Draw a secret and seal it to each recipient's raw X25519 key from the roster.

        `recipients` are the round's other partners (the sender itself is refused);
        `rng` is injectable for deterministic tests.
        """
        _check_round(round_id, manifest_sha256)
        _check_partner_id(sender, "sender")
        if not isinstance(recipients, Mapping):
            raise TypeError("recipients must map partner ids to X25519 public keys")
        if not recipients:
            raise ValueError("a tag key needs at least one other partner")
        if sender in recipients:
            raise ValueError("the sender does not seal its secret to itself")

        def draw(n: int) -> bytes:
            out = rng(n)
            if not isinstance(out, bytes) or len(out) != n:
                raise ValueError(f"rng must return {n} bytes")
            return out

        secret = draw(SECRET_BYTES)
        sealed: dict[str, bytes] = {}
        for recipient in sorted(recipients):
            _check_partner_id(recipient, "recipient")
            pk = check_agreement_public_key(recipients[recipient])
            ephemeral = x25519.X25519PrivateKey.from_private_bytes(draw(AGREEMENT_KEY_BYTES))
            e_pub = agreement_public_bytes(ephemeral)
            binding = _binding(round_id, sender, recipient, e_pub, pk)
            shared = ephemeral.exchange(x25519.X25519PublicKey.from_public_bytes(pk))
            key = _share_key(shared, manifest_sha256, binding)
            nonce = draw(NONCE_BYTES)
            sealed[recipient] = (
                e_pub + nonce + ChaCha20Poly1305(key).encrypt(nonce, secret, binding)
            )
        return cls(
            round_id=round_id,
            manifest_sha256=manifest_sha256,
            sender=sender,
            secret=secret,
            sealed=sealed,
        )


def open_share(
    sealed: bytes,
    *,
    round_id: str,
    manifest_sha256: bytes,
    sender: str,
    recipient: str,
    recipient_key: x25519.X25519PrivateKey,
) -> bytes:
    """The 32-byte secret that `sender` sealed to `recipient` for this round and manifest.

    Raises SignatureInvalid, with one message whatever went wrong (tampered bytes,
    another recipient or key, another round, manifest or sender, a malformed blob).
    Call it only on a share taken from `sender`'s verified, signed consent.
    """
    _check_round(round_id, manifest_sha256)
    _check_partner_id(sender, "sender")
    _check_partner_id(recipient, "recipient")
    if sender == recipient:
        raise ValueError("a partner does not open a share from itself")
    if not isinstance(recipient_key, x25519.X25519PrivateKey):
        raise TypeError(f"recipient_key must be X25519, not {type(recipient_key).__name__}")
    if not isinstance(sealed, bytes):
        raise TypeError(f"sealed share must be bytes, not {type(sealed).__name__}")
    if len(sealed) != SEALED_BYTES:
        raise SignatureInvalid(_SHARE_OPAQUE)
    e_pub = sealed[:AGREEMENT_KEY_BYTES]
    nonce = sealed[AGREEMENT_KEY_BYTES : AGREEMENT_KEY_BYTES + NONCE_BYTES]
    ciphertext = sealed[AGREEMENT_KEY_BYTES + NONCE_BYTES :]
    try:
        check_agreement_public_key(e_pub)
        shared = recipient_key.exchange(x25519.X25519PublicKey.from_public_bytes(e_pub))
    except ValueError:
        raise SignatureInvalid(_SHARE_OPAQUE) from None
    binding = _binding(round_id, sender, recipient, e_pub, agreement_public_bytes(recipient_key))
    key = _share_key(shared, manifest_sha256, binding)
    try:
        return ChaCha20Poly1305(key).decrypt(nonce, ciphertext, binding)
    except InvalidTag:
        raise SignatureInvalid(_SHARE_OPAQUE) from None


def derive_tag_key(
    contributions: Mapping[str, bytes],
    partners_in_manifest_order: Sequence[str],
    round_id: str,
    manifest_sha256: bytes,
) -> bytes:
    """The round's 32-byte tag key from every partner's secret, in manifest order.

    HKDF-SHA256 with the secrets concatenated (fixed length, so unambiguous) as input,
    the manifest hash as salt, and the round id and ordered partner list as info.
    Raises ProtocolError naming the partner when a secret is missing, extra or not
    `SECRET_BYTES` long.
    """
    _check_round(round_id, manifest_sha256)
    if isinstance(partners_in_manifest_order, str) or not isinstance(
        partners_in_manifest_order, Sequence
    ):
        raise TypeError("partners_in_manifest_order must be a sequence of partner ids")
    order = [_check_partner_id(p, "partner id") for p in partners_in_manifest_order]
    if len(set(order)) != len(order) or len(order) < 2:
        raise ValueError("the manifest order must list at least two distinct partners")
    missing = [p for p in order if p not in contributions]
    if missing:
        raise ProtocolError(f"tag key: no contribution from {', '.join(missing)}")
    listed = set(order)
    extra = sorted(str(p) for p in contributions if p not in listed)
    if extra:
        raise ProtocolError(f"tag key: contribution from outside the manifest: {', '.join(extra)}")
    for p in order:
        value = contributions[p]
        if not isinstance(value, bytes) or len(value) != SECRET_BYTES:
            raise ProtocolError(f"tag key: contribution of {p} is not {SECRET_BYTES} bytes")
    info = b"".join(
        [TAG_KEY_LABEL, b"\x00", _str(round_id), struct.pack(">H", len(order))]
        + [_str(p) for p in order]
    )
    return HKDF(
        algorithm=hashes.SHA256(), length=TAG_KEY_BYTES, salt=manifest_sha256, info=info
    ).derive(b"".join(contributions[p] for p in order))


def _check_tag_key(tag_key: object) -> bytes:
    if not isinstance(tag_key, bytes):
        raise TypeError(f"tag key must be bytes, not {type(tag_key).__name__}")
    if len(tag_key) != TAG_KEY_BYTES:
        raise ValueError(f"tag key must be {TAG_KEY_BYTES} bytes")
    return tag_key


def keyed_tag(tag_key: bytes, oprf_output: bytes) -> bytes:
    """The 16-byte tag: HMAC-SHA256(tag_key, TAG_LABEL || 0x00 || oprf_output) truncated."""
    _check_tag_key(tag_key)
    if not isinstance(oprf_output, bytes):
        raise TypeError(f"OPRF output must be bytes, not {type(oprf_output).__name__}")
    if len(oprf_output) != OPRF_OUTPUT_BYTES:
        raise ValueError(f"OPRF output must be {OPRF_OUTPUT_BYTES} bytes")
    mac = hmac.new(tag_key, TAG_LABEL + b"\x00" + oprf_output, hashlib.sha256)
    return mac.digest()[:TAG_BYTES]


def keyed_tags(tag_key: bytes, packed_outputs: bytes) -> bytes:
    """`keyed_tag` over packed OPRF outputs: n*64 bytes in, n*16 bytes out, order kept."""
    _check_tag_key(tag_key)
    if not isinstance(packed_outputs, bytes):
        raise TypeError(f"packed outputs must be bytes, not {type(packed_outputs).__name__}")
    if len(packed_outputs) % OPRF_OUTPUT_BYTES:
        raise ValueError(f"packed outputs must be a multiple of {OPRF_OUTPUT_BYTES} bytes")
    # Key and label absorbed once; each output then costs one state copy and two blocks.
    base = hmac.new(tag_key, TAG_LABEL + b"\x00", hashlib.sha256)
    out = []
    for i in range(0, len(packed_outputs), OPRF_OUTPUT_BYTES):
        mac = base.copy()
        mac.update(packed_outputs[i : i + OPRF_OUTPUT_BYTES])
        out.append(mac.digest()[:TAG_BYTES])
    return b"".join(out)


def key_check(tag_key: bytes, round_id: str) -> bytes:
    """A 16-byte value that shows whether two nodes derived the same tag key.

    Safe to send through the coordinator: a PRF output under a separate label, which
    tells nothing about the key or about any tag.
    """
    _check_tag_key(tag_key)
    if not isinstance(round_id, str) or not is_round_id(round_id):
        raise ValueError("round_id is malformed")
    mac = hmac.new(tag_key, KEY_CHECK_LABEL + b"\x00" + round_id.encode("ascii"), hashlib.sha256)
    return mac.digest()[:KEY_CHECK_BYTES]
