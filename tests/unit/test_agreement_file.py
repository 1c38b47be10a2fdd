"""The agreement public key file: what psi-node init writes is what partner add reads."""

from __future__ import annotations

import hashlib

import pytest

from kruispunt import pki
from kruispunt.agreement_file import (
    agreement_key_id,
    agreement_public_text,
    read_agreement_public_key,
    write_agreement_public_key,
)
from kruispunt.errors import ConfigError
from kruispunt.roster import agreement_public_bytes, generate_agreement_key


class TestFormat:
    def test_written_file_is_one_line_of_hex_and_reads_back(self, tmp_path):
        """The file is the raw key as 64 lowercase hex digits and a newline, mode 0644."""
        key = generate_agreement_key()
        path = tmp_path / "node.x25519.pub"
        write_agreement_public_key(path, key)
        raw = agreement_public_bytes(key)
        assert path.read_text(encoding="ascii") == raw.hex() + "\n"
        assert path.stat().st_mode & 0o777 == 0o644
        assert read_agreement_public_key(path) == raw

    def test_public_key_object_writes_the_same_file(self, tmp_path):
        """Writing from the public half gives the same text as from the private key."""
        key = generate_agreement_key()
        write_agreement_public_key(tmp_path / "a", key)
        write_agreement_public_key(tmp_path / "b", key.public_key())
        assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()

    def test_upper_case_and_surrounding_whitespace_are_read(self, tmp_path):
        """A key re-typed in upper case, or with a blank line after it, is the same key."""
        raw = agreement_public_bytes(generate_agreement_key())
        path = tmp_path / "k.pub"
        path.write_text("  " + raw.hex().upper() + "\r\n\n", encoding="ascii")
        assert read_agreement_public_key(path) == raw

    def test_key_id_is_a_sha256_prefix(self):
        """agreement_key_id is the first 16 hex digits of SHA-256 over the raw key."""
        raw = agreement_public_bytes(generate_agreement_key())
        assert agreement_key_id(raw) == hashlib.sha256(raw).hexdigest()[:16]

    def test_text_refuses_an_unusable_key(self):
        """agreement_public_text checks the key it is given (all zeros is low order)."""
        with pytest.raises(ValueError, match="low-order"):
            agreement_public_text(bytes(32))


class TestRefusals:
    def test_missing_file_names_it(self, tmp_path):
        """A missing file is a ConfigError naming the path."""
        with pytest.raises(ConfigError, match=r"nope\.pub: agreement public key file not found"):
            read_agreement_public_key(tmp_path / "nope.pub")

    def test_directory_is_refused(self, tmp_path):
        """A directory given for the file is named as such."""
        with pytest.raises(ConfigError, match="is a directory"):
            read_agreement_public_key(tmp_path)

    def test_private_key_sent_by_mistake_is_refused(self, tmp_path):
        """The private key file is refused with the name of the file to send instead."""
        path = tmp_path / "node.x25519"
        path.write_bytes(pki.private_key_pem(pki.generate_tls_key()))
        with pytest.raises(ConfigError, match=r"private key.*node\.x25519\.pub"):
            read_agreement_public_key(path)

    @pytest.mark.parametrize(
        ("text", "reason"),
        [
            ("ab" * 31 + "\n", "found 62 characters"),
            ("ab" * 33 + "\n", "found 66 characters"),
            ("zz" * 32 + "\n", "not all hex digits"),
            ("ab" * 16 + "\n" + "ab" * 16 + "\n", "found 65 characters"),
            ("", "found 0 characters"),
        ],
    )
    def test_not_64_hex_digits_is_refused(self, tmp_path, text, reason):
        """A truncated, padded, wrapped or non-hex line is refused, naming the file."""
        path = tmp_path / "k.pub"
        path.write_text(text, encoding="ascii")
        with pytest.raises(ConfigError, match=reason) as info:
            read_agreement_public_key(path)
        assert str(path) in str(info.value)

    def test_pem_public_key_is_refused(self, tmp_path):
        """A PEM file (say the signing key, node.pub) is not the agreement key file."""
        path = tmp_path / "node.pub"
        path.write_text("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n")
        with pytest.raises(ConfigError, match="expected one line of 64 hex digits"):
            read_agreement_public_key(path)

    def test_low_order_point_is_refused(self, tmp_path):
        """64 hex digits that encode a small-order point are not a usable key."""
        path = tmp_path / "k.pub"
        path.write_text("00" * 32 + "\n", encoding="ascii")
        with pytest.raises(ConfigError, match="low-order"):
            read_agreement_public_key(path)

    def test_binary_file_is_refused(self, tmp_path):
        """Bytes that are not ASCII are refused without a traceback."""
        path = tmp_path / "k.pub"
        path.write_bytes(b"\xff" * 64)
        with pytest.raises(ConfigError, match="not an agreement public key"):
            read_agreement_public_key(path)

    def test_oversized_file_is_refused(self, tmp_path):
        """A large file is refused before it is parsed."""
        path = tmp_path / "k.pub"
        path.write_text("a" * 5000, encoding="ascii")
        with pytest.raises(ConfigError, match="larger than"):
            read_agreement_public_key(path)
