"""Tests for kruispunt.signing: Ed25519 with context labels (domain separation)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from kruispunt import pki, signing
from kruispunt.errors import ConfigError, SignatureInvalid

# RFC 8032 section 7.1, TEST 2 (one-byte message 0x72).
RFC8032_SECRET = bytes.fromhex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
RFC8032_PUBLIC = bytes.fromhex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")
RFC8032_MESSAGE = bytes.fromhex("72")
RFC8032_SIGNATURE = bytes.fromhex(
    "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
    "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
)
CONTEXTS = [signing.CONTEXT_MANIFEST, signing.CONTEXT_CONSENT, signing.CONTEXT_AUDIT]
KEY = signing.generate_signing_key()


class TestSignVerify:
    @pytest.mark.parametrize("context", CONTEXTS)
    def test_round_trip(self, context: bytes) -> None:
        """A signature verifies under the key, context and data it was made with."""
        sig = signing.sign(KEY, context, b"payload")
        assert len(sig) == signing.SIGNATURE_BYTES
        signing.verify(KEY.public_key(), context, b"payload", sig)

    @pytest.mark.parametrize("made_for", CONTEXTS)
    @pytest.mark.parametrize("replayed_as", CONTEXTS)
    def test_no_cross_context_replay(self, made_for: bytes, replayed_as: bytes) -> None:
        """A signature made for one use does not verify as another."""
        sig = signing.sign(KEY, made_for, b"same bytes")
        if made_for == replayed_as:
            signing.verify(KEY.public_key(), replayed_as, b"same bytes", sig)
        else:
            with pytest.raises(SignatureInvalid):
                signing.verify(KEY.public_key(), replayed_as, b"same bytes", sig)

    def test_exact_construction(self) -> None:
        """The signed message is exactly context || 0x00 || data (RFC 8032 key, deterministic)."""
        key = ed25519.Ed25519PrivateKey.from_private_bytes(RFC8032_SECRET)
        data = b"manifest bytes"
        sig = signing.sign(key, signing.CONTEXT_MANIFEST, data)
        assert sig == key.sign(b"kruispunt/manifest/v1\x00" + data)

    def test_label_boundary_is_unambiguous(self) -> None:
        """Moving bytes between context and data changes the signed message."""
        sig = signing.sign(KEY, b"kruispunt/a", b"b/v1")
        with pytest.raises(SignatureInvalid):
            signing.verify(KEY.public_key(), b"kruispunt/ab/v1", b"", sig)

    def test_all_failures_look_alike(self) -> None:
        """Wrong key, tampered data, truncated or non-bytes signature: one opaque error."""
        sig = signing.sign(KEY, signing.CONTEXT_AUDIT, b"event")
        other = signing.generate_signing_key().public_key()
        attempts = [
            (other, b"event", sig),
            (KEY.public_key(), b"event!", sig),
            (KEY.public_key(), b"event", sig[:-1]),
            (KEY.public_key(), b"event", sig + b"\x00"),
            (KEY.public_key(), b"event", b"\x00" * 64),
            (KEY.public_key(), b"event", "not bytes"),
        ]
        messages = set()
        for public_key, data, signature in attempts:
            with pytest.raises(SignatureInvalid) as info:
                signing.verify(public_key, signing.CONTEXT_AUDIT, data, signature)  # type: ignore[arg-type]
            messages.add(str(info.value))
        assert messages == {"signature does not verify"}

    @settings(max_examples=40, deadline=None)
    @given(data=st.binary(max_size=256), bit=st.integers(min_value=0, max_value=511))
    def test_any_bit_flip_detected(self, data: bytes, bit: int) -> None:
        """Flipping any bit of a signature makes it fail."""
        sig = bytearray(signing.sign(KEY, signing.CONTEXT_CONSENT, data))
        signing.verify(KEY.public_key(), signing.CONTEXT_CONSENT, data, bytes(sig))
        sig[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(SignatureInvalid):
            signing.verify(KEY.public_key(), signing.CONTEXT_CONSENT, data, bytes(sig))

    @pytest.mark.parametrize(
        "context",
        [b"", b"manifest", b"kruispunt/", b"kruispunt/a\x00b", b"kruispunt/Manifest", b"x" * 200],
    )
    def test_malformed_context_refused(self, context: bytes) -> None:
        """A context that is not a kruispunt/ label is refused when signing and verifying."""
        with pytest.raises(ValueError, match="context"):
            signing.sign(KEY, context, b"d")
        with pytest.raises(ValueError, match="context"):
            signing.verify(KEY.public_key(), context, b"d", b"\x00" * 64)

    def test_wrong_types(self) -> None:
        """Non-bytes context or data and non-Ed25519 keys raise TypeError."""
        with pytest.raises(TypeError):
            signing.sign(KEY, "kruispunt/manifest/v1", b"d")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            signing.sign(KEY, signing.CONTEXT_MANIFEST, "d")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            signing.sign(pki.generate_tls_key(), signing.CONTEXT_MANIFEST, b"d")  # type: ignore[arg-type]


class TestPublicKeys:
    def test_rfc8032_vector(self) -> None:
        """The raw encoding and loader agree with RFC 8032 TEST 2."""
        key = ed25519.Ed25519PrivateKey.from_private_bytes(RFC8032_SECRET)
        assert signing.public_key_bytes(key.public_key()) == RFC8032_PUBLIC
        loaded = signing.load_public_key(RFC8032_PUBLIC)
        loaded.verify(RFC8032_SIGNATURE, RFC8032_MESSAGE)

    def test_pem_round_trip(self) -> None:
        """A public key survives PEM encoding."""
        pem = signing.public_key_pem(KEY.public_key())
        assert pem.startswith(b"-----BEGIN PUBLIC KEY-----")
        loaded = signing.load_public_key(pem)
        assert signing.public_key_bytes(loaded) == signing.public_key_bytes(KEY.public_key())

    @pytest.mark.parametrize("data", [b"", b"\x01" * 31, b"\x01" * 33, b"-----BEGIN nonsense"])
    def test_malformed_refused(self, data: bytes) -> None:
        """Data that is neither 32 raw bytes nor a PEM public key raises ValueError."""
        with pytest.raises(ValueError, match="Ed25519"):
            signing.load_public_key(data)

    def test_other_key_type_refused(self) -> None:
        """A PEM public key of another type raises ValueError."""
        pem = (
            pki.generate_tls_key()
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM,
                serialization.PublicFormat.SubjectPublicKeyInfo,
            )
        )
        with pytest.raises(ValueError, match="expected an Ed25519 public key"):
            signing.load_public_key(pem)

    def test_key_id(self) -> None:
        """key_id is 16 hex digits of SHA-256(raw key), stable and distinct per key."""
        public = signing.load_public_key(RFC8032_PUBLIC)
        key_id = signing.key_id(public)
        assert len(key_id) == 16
        assert key_id == hashlib.sha256(RFC8032_PUBLIC).hexdigest()[:16]
        assert signing.key_id(signing.generate_signing_key().public_key()) != key_id


class TestSigningKeyFiles:
    def test_round_trip(self, tmp_path: Path) -> None:
        """A signing key written with pki.write_private_key loads back and still signs."""
        pki.write_private_key(tmp_path / "signing.key", KEY)
        loaded = signing.load_signing_key(tmp_path / "signing.key")
        sig = signing.sign(loaded, signing.CONTEXT_AUDIT, b"e")
        signing.verify(KEY.public_key(), signing.CONTEXT_AUDIT, b"e", sig)

    def test_tls_key_refused(self, tmp_path: Path) -> None:
        """load_signing_key refuses a TLS key file, naming the file."""
        path = tmp_path / "tls.key"
        pki.write_private_key(path, pki.generate_tls_key())
        with pytest.raises(ConfigError, match="Ed25519") as info:
            signing.load_signing_key(path)
        assert str(path) in str(info.value)


class TestPublicKeyFiles:
    @pytest.mark.parametrize("form", ["raw", "pem"])
    def test_raw_and_pem_files_load(self, tmp_path: Path, form: str) -> None:
        """read_public_key reads a key file in either encoding load_public_key takes."""
        public = KEY.public_key()
        path = tmp_path / "key.pub"
        raw = signing.public_key_bytes(public)
        path.write_bytes(raw if form == "raw" else signing.public_key_pem(public))
        assert signing.public_key_bytes(signing.read_public_key(path)) == raw

    def test_missing_file_says_what_the_caller_says(self, tmp_path: Path) -> None:
        """A missing file is a ConfigError naming the path and the caller's hint."""
        path = tmp_path / "gone.pub"
        with pytest.raises(ConfigError) as info:
            signing.read_public_key(path)
        assert str(info.value) == f"{path}: file not found"
        with pytest.raises(ConfigError) as info:
            signing.read_public_key(path, missing="not installed (run install-cert)")
        assert str(info.value) == f"{path}: not installed (run install-cert)"

    def test_directory_and_garbage_name_the_path(self, tmp_path: Path) -> None:
        """An unreadable path or a file that is no Ed25519 key is a ConfigError with the path."""
        with pytest.raises(ConfigError, match=r"cannot read \(Is a directory\)") as info:
            signing.read_public_key(tmp_path)
        assert str(info.value).startswith(f"{tmp_path}: ")
        path = tmp_path / "bad.pub"
        path.write_bytes(b"-----BEGIN nonsense")
        with pytest.raises(ConfigError, match="not an Ed25519 public key") as info:
            signing.read_public_key(path)
        assert str(info.value).startswith(f"{path}: ")
