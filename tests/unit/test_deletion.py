"""Deletion receipts: kruispunt.deletion's signatures and the node's receipt book."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kruispunt import signing
from kruispunt.audit import ChainHead
from kruispunt.deletion import Deletion, sign_deletion, verify_deletion
from kruispunt.errors import ConfigError, SignatureInvalid
from kruispunt.v1 import node_pb2
from psi_node.deletions import RECEIPTS_FILE, ReceiptBook

MOMENT = datetime(2026, 2, 2, 9, 0, tzinfo=UTC)


def deletion(seq: int = 7, **changes: object) -> Deletion:
    fields: dict[str, object] = {
        "network": "testnet",
        "round_id": "r20260105T090000-0000abcd",
        "partner_id": "gemeente",
        "deleted_at": MOMENT,
        "delete_after": MOMENT,
        "result_sha256": b"\xcd" * 32,
        "flagged_count": 3,
        "files": 2,
        "node_head": ChainHead(seq, "ef" * 32),
    }
    fields.update(changes)
    return Deletion(**fields)  # type: ignore[arg-type]


class TestReceiptSignature:
    def test_a_signed_receipt_verifies_to_what_was_signed(self):
        """Sign then verify under the same key gives back every field."""
        key = signing.generate_signing_key()
        signed = sign_deletion(key, deletion())
        assert (
            verify_deletion(signed, key.public_key(), network="testnet", partner_id="gemeente")
            == deletion()
        )

    def test_another_key_or_a_context_label_mismatch_is_refused(self):
        """A receipt verifies under its node's key only, and not as another signed kind."""
        key = signing.generate_signing_key()
        signed = sign_deletion(key, deletion())
        with pytest.raises(SignatureInvalid):
            verify_deletion(
                signed,
                signing.generate_signing_key().public_key(),
                network="testnet",
                partner_id="gemeente",
            )
        as_consent = node_pb2.SignedDeletionReceipt(
            receipt=signed.receipt,
            signature=signing.sign(key, signing.CONTEXT_CONSENT, signed.receipt),
        )
        with pytest.raises(SignatureInvalid):
            verify_deletion(as_consent, key.public_key(), network="testnet", partner_id="gemeente")

    @pytest.mark.parametrize(
        "changes",
        [
            {"round_id": "../../etc/passwd"},
            {"result_sha256": b"short"},
            {"node_head": ChainHead(0, "ef" * 32)},
        ],
    )
    def test_a_signed_but_malformed_receipt_is_refused(self, changes):
        """A receipt its node signed but that names no round, digest or head is refused."""
        key = signing.generate_signing_key()
        signed = sign_deletion(key, deletion(**changes))
        with pytest.raises(SignatureInvalid):
            verify_deletion(signed, key.public_key(), network="testnet", partner_id="gemeente")


class TestReceiptBook:
    def test_receipts_after_a_number_oldest_first(self, tmp_path):
        """The book hands over the receipts numbered above the one asked after, in order."""
        key = signing.generate_signing_key()
        book = ReceiptBook(tmp_path)
        assert book.after(0) == []
        signed = {seq: sign_deletion(key, deletion(seq)) for seq in (9, 4, 12)}
        for seq, receipt in signed.items():
            book.keep(seq, receipt)
        assert book.after(0) == [signed[4], signed[9], signed[12]]
        assert book.after(9) == [signed[12]]
        assert book.after(12) == []
        assert (tmp_path / RECEIPTS_FILE).stat().st_mode & 0o777 == 0o600

    def test_a_damaged_line_is_named(self, tmp_path):
        """An edited or torn line is an error naming the file and the line, not a traceback."""
        book = ReceiptBook(tmp_path)
        book.keep(3, sign_deletion(signing.generate_signing_key(), deletion(3)))
        with (tmp_path / RECEIPTS_FILE).open("a") as fh:
            fh.write('{"seq": 4, "receipt": "zz"\n')
        with pytest.raises(ConfigError, match=rf"{RECEIPTS_FILE}, line 2: not a deletion receipt"):
            book.after(0)
