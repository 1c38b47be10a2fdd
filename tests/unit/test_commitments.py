"""Tests for kruispunt.commitments: salted Merkle commitments and checkable co-holder claims."""

from __future__ import annotations

import dataclasses
import hashlib
import random

import pytest

from kruispunt import signing
from kruispunt.commitments import (
    CONTEXT_ROOT,
    EMPTY_ROOT,
    MAX_PATH,
    SALT_BYTES,
    Commitment,
    CommitmentRefused,
    InclusionProof,
    SignedRoot,
    path_length,
    sign_root,
    verify_inclusion,
    verify_root,
)
from kruispunt.wire import TAG_BYTES

ROUND = "r20261201T154000-0123abcd"
OTHER_ROUND = "r20261201T154500-89abcdef"
MANIFEST = hashlib.sha256(b"manifest of this round").digest()
OTHER_MANIFEST = hashlib.sha256(b"manifest of another round").digest()
KEY = signing.generate_signing_key()
OTHER_KEY = signing.generate_signing_key()
SIZES = [1, 2, 3, 7, 8, 1000]


def tag_list(count: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(count * TAG_BYTES)


def tag_at(tags: bytes, index: int) -> bytes:
    return tags[index * TAG_BYTES : (index + 1) * TAG_BYTES]


def seeded(seed: int) -> random.Random:
    return random.Random(seed)


def refused(reason: str, call: object) -> CommitmentRefused:
    """Run `call`, assert CommitmentRefused with `reason` in its reason, and return it."""
    assert callable(call)
    with pytest.raises(CommitmentRefused) as caught:
        call()
    assert reason in caught.value.reason, caught.value.reason
    assert caught.value.reason.isascii()
    assert caught.value.reason.isprintable()
    return caught.value


def build(count: int, seed: int = 0) -> tuple[bytes, Commitment]:
    tags = tag_list(count, seed)
    return tags, Commitment.build(tags, rng=seeded(seed + 1).randbytes)


class TestValidProofs:
    @pytest.mark.parametrize("count", SIZES)
    def test_every_leaf_verifies(self, count: int) -> None:
        """Every tag's proof verifies against the root, through the codec, for several sizes."""
        tags, commitment = build(count)
        assert commitment.count == count
        for index in range(count):
            proof = InclusionProof.decode(commitment.proof(index).encode())
            assert len(proof.siblings) == path_length(index, count)
            verify_inclusion(tag_at(tags, index), proof, commitment.root, count)

    @pytest.mark.parametrize("count", SIZES)
    def test_matches_reference_tree(self, count: int) -> None:
        """The root equals a straightforward recursive reference of the documented tree."""
        tags, commitment = build(count)
        salts = commitment.salts
        assert len(salts) == count * SALT_BYTES

        def leaf(i: int) -> bytes:
            salt = salts[i * SALT_BYTES : (i + 1) * SALT_BYTES]
            return hashlib.sha256(
                b"kruispunt/commitments/leaf/v1\x00" + salt + tag_at(tags, i)
            ).digest()

        level = [leaf(i) for i in range(count)]
        while len(level) > 1:
            upper = [
                hashlib.sha256(
                    b"kruispunt/commitments/node/v1\x00" + level[i] + level[i + 1]
                ).digest()
                for i in range(0, len(level) - 1, 2)
            ]
            if len(level) % 2:  # the odd node is promoted, not duplicated
                upper.append(level[-1])
            level = upper
        expected = hashlib.sha256(
            b"kruispunt/commitments/size/v1\x00" + count.to_bytes(8, "big") + level[0]
        ).digest()
        assert commitment.root == expected

    def test_single_leaf_has_empty_path(self) -> None:
        """A one-tag tree's proof has no siblings."""
        tags, commitment = build(1)
        assert commitment.proof(0).siblings == ()
        verify_inclusion(tags, commitment.proof(0), commitment.root, 1)

    def test_promoted_leaf_has_short_path(self) -> None:
        """The odd last leaf of 7 skips the levels where it has no sibling."""
        assert [path_length(i, 7) for i in range(7)] == [3, 3, 3, 3, 3, 3, 2]
        assert [path_length(i, 5) for i in range(5)] == [3, 3, 3, 3, 1]

    def test_empty_commitment(self) -> None:
        """No tags: the documented empty root, no proofs."""
        commitment = Commitment.build(b"")
        assert commitment.count == 0
        assert commitment.root == EMPTY_ROOT
        with pytest.raises(ValueError, match="outside"):
            commitment.proof(0)

    def test_rng_called_once_for_all_salts(self) -> None:
        """Salts come from one rng call of 16 bytes per tag."""
        calls: list[int] = []

        def rng(size: int) -> bytes:
            calls.append(size)
            return bytes(size)

        Commitment.build(tag_list(5), rng=rng)
        assert calls == [5 * SALT_BYTES]

    def test_fresh_salts_by_default(self) -> None:
        """Two commitments to the same tags (os.urandom salts) have different roots."""
        tags = tag_list(8)
        assert Commitment.build(tags).root != Commitment.build(tags).root

    def test_bad_input(self) -> None:
        """Partial tags, wrong type or a short rng are refused."""
        with pytest.raises(ValueError, match="multiple of 16"):
            Commitment.build(b"\x00" * 17)
        with pytest.raises(TypeError):
            Commitment.build(bytearray(16))  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="rng must return exactly 32 bytes"):
            Commitment.build(tag_list(2), rng=lambda size: bytes(size - 1))


class TestTamperRefused:
    @pytest.fixture
    def setup(self) -> tuple[bytes, Commitment]:
        return build(7)

    def test_wrong_tag(self, setup: tuple[bytes, Commitment]) -> None:
        """A tag the partner does not hold at that leaf is refused."""
        tags, commitment = setup
        refused(
            "proof for leaf 2 does not lead to the signed root",
            lambda: verify_inclusion(tag_at(tags, 3), commitment.proof(2), commitment.root, 7),
        )

    def test_wrong_salt(self, setup: tuple[bytes, Commitment]) -> None:
        """Another salt gives another leaf: refused."""
        tags, commitment = setup
        proof = dataclasses.replace(commitment.proof(2), salt=bytes(SALT_BYTES))
        refused(
            "does not lead to the signed root",
            lambda: verify_inclusion(tag_at(tags, 2), proof, commitment.root, 7),
        )

    @pytest.mark.parametrize(("real", "claimed"), [(2, 3), (0, 1), (1, 0), (4, 2), (3, 5)])
    def test_wrong_index(self, setup: tuple[bytes, Commitment], real: int, claimed: int) -> None:
        """A proof moved to another index (same path length) is refused."""
        tags, commitment = setup
        proof = dataclasses.replace(commitment.proof(real), index=claimed)
        refused(
            f"proof for leaf {claimed} does not lead to the signed root",
            lambda: verify_inclusion(tag_at(tags, real), proof, commitment.root, 7),
        )

    def test_index_to_promoted_leaf(self, setup: tuple[bytes, Commitment]) -> None:
        """A proof moved to the promoted last leaf has the wrong path length."""
        tags, commitment = setup
        proof = dataclasses.replace(commitment.proof(5), index=6)
        refused(
            "proof path has 3 siblings, leaf 6 of 7 needs 2",
            lambda: verify_inclusion(tag_at(tags, 5), proof, commitment.root, 7),
        )

    def test_index_out_of_range(self, setup: tuple[bytes, Commitment]) -> None:
        """An index beyond the committed count is refused."""
        tags, commitment = setup
        proof = dataclasses.replace(commitment.proof(6), index=7)
        refused(
            "proof index 7 is outside 0..6",
            lambda: verify_inclusion(tag_at(tags, 6), proof, commitment.root, 7),
        )

    @pytest.mark.parametrize("level", [0, 1, 2])
    def test_wrong_sibling(self, setup: tuple[bytes, Commitment], level: int) -> None:
        """Any sibling changed (one bit) is refused."""
        tags, commitment = setup
        proof = commitment.proof(1)
        siblings = list(proof.siblings)
        siblings[level] = bytes([siblings[level][0] ^ 1]) + siblings[level][1:]
        bad = dataclasses.replace(proof, siblings=tuple(siblings))
        refused(
            "does not lead to the signed root",
            lambda: verify_inclusion(tag_at(tags, 1), bad, commitment.root, 7),
        )

    def test_siblings_swapped(self, setup: tuple[bytes, Commitment]) -> None:
        """Siblings in the wrong order are refused."""
        tags, commitment = setup
        proof = commitment.proof(1)
        bad = dataclasses.replace(proof, siblings=proof.siblings[::-1])
        refused(
            "does not lead to the signed root",
            lambda: verify_inclusion(tag_at(tags, 1), bad, commitment.root, 7),
        )

    def test_truncated_path(self, setup: tuple[bytes, Commitment]) -> None:
        """A path missing its last sibling (an inner node offered as the answer) is refused."""
        tags, commitment = setup
        proof = commitment.proof(1)
        bad = dataclasses.replace(proof, siblings=proof.siblings[:-1])
        refused(
            "proof path has 2 siblings, leaf 1 of 7 needs 3",
            lambda: verify_inclusion(tag_at(tags, 1), bad, commitment.root, 7),
        )

    def test_extended_path(self, setup: tuple[bytes, Commitment]) -> None:
        """A path with an extra sibling is refused."""
        tags, commitment = setup
        proof = commitment.proof(1)
        bad = dataclasses.replace(proof, siblings=(*proof.siblings, bytes(32)))
        refused(
            "proof path has 4 siblings",
            lambda: verify_inclusion(tag_at(tags, 1), bad, commitment.root, 7),
        )

    @pytest.mark.parametrize("claimed", [6, 8])
    def test_count_mismatch(self, setup: tuple[bytes, Commitment], claimed: int) -> None:
        """Checked against another count, even a proof with a fitting path length fails."""
        tags, commitment = setup
        # Leaf 0 has 3 siblings in trees of 6, 7 and 8 leaves: only the sized root tells.
        assert path_length(0, claimed) == 3
        refused(
            "proof for leaf 0 does not lead to the signed root",
            lambda: verify_inclusion(
                tag_at(tags, 0), commitment.proof(0), commitment.root, claimed
            ),
        )

    def test_root_of_another_commitment(self, setup: tuple[bytes, Commitment]) -> None:
        """A proof from one commitment does not verify under another's root (same tags)."""
        tags, commitment = setup
        other = Commitment.build(tags, rng=seeded(99).randbytes)
        refused(
            "does not lead to the signed root",
            lambda: verify_inclusion(tag_at(tags, 4), commitment.proof(4), other.root, 7),
        )

    def test_inner_node_as_leaf(self) -> None:
        """Second preimage: an inner node's children cannot be passed off as salt || tag.

        A proof one level short presents the inner node above leaves 0 and 1 as if it were
        a leaf: the signed count refuses the short path, and under a smaller count the
        leaf label and the sized root still refuse it.
        """
        tags, commitment = build(4)
        proof = commitment.proof(0)
        short = dataclasses.replace(proof, index=0, siblings=proof.siblings[1:])
        refused(
            "proof path has 1 siblings, leaf 0 of 4 needs 2",
            lambda: verify_inclusion(tag_at(tags, 0), short, commitment.root, 4),
        )
        refused(
            "does not lead to the signed root",
            lambda: verify_inclusion(tag_at(tags, 0), short, commitment.root, 2),
        )

    def test_no_tags(self) -> None:
        """Nothing can be proven in an empty commitment."""
        proof = InclusionProof(0, bytes(SALT_BYTES), ())
        refused(
            "the commitment holds no tags",
            lambda: verify_inclusion(bytes(16), proof, EMPTY_ROOT, 0),
        )

    def test_caller_errors(self, setup: tuple[bytes, Commitment]) -> None:
        """A tag or root of the wrong length is the caller's mistake (ValueError)."""
        tags, commitment = setup
        with pytest.raises(ValueError, match="tag must be 16 bytes"):
            verify_inclusion(tags[:15], commitment.proof(0), commitment.root, 7)
        with pytest.raises(ValueError, match="root must be 32 bytes"):
            verify_inclusion(tag_at(tags, 0), commitment.proof(0), commitment.root[:31], 7)


class TestHiding:
    def test_proof_reveals_no_other_tag(self) -> None:
        """A proof holds no other tag, and a guessed tag cannot be confirmed against a sibling."""
        tags, commitment = build(2)
        proof = commitment.proof(0)
        other_tag = tag_at(tags, 1)
        assert other_tag not in proof.encode()
        # Even guessing the right tag, without salt_1 no salt the verifier can try gives the
        # sibling leaf: here the verifier's own salt and an all-zero salt.
        for salt in (proof.salt, bytes(SALT_BYTES)):
            guess = hashlib.sha256(b"kruispunt/commitments/leaf/v1\x00" + salt + other_tag)
            assert guess.digest() != proof.siblings[0]

    def test_same_tags_different_salts_unlinkable(self) -> None:
        """The same tag list committed twice gives unrelated siblings (fresh salts)."""
        tags = tag_list(8)
        first = Commitment.build(tags, rng=seeded(1).randbytes).proof(0)
        second = Commitment.build(tags, rng=seeded(2).randbytes).proof(0)
        assert not set(first.siblings) & set(second.siblings)


class TestProofCodec:
    def test_exact_encoding(self) -> None:
        """version, u64 index, salt, u8 path length, siblings."""
        proof = InclusionProof(5, bytes(range(16)), (b"\x01" * 32, b"\x02" * 32))
        data = proof.encode()
        assert data == (
            b"\x01"
            + (5).to_bytes(8, "big")
            + bytes(range(16))
            + b"\x02"
            + b"\x01" * 32
            + b"\x02" * 32
        )
        assert InclusionProof.decode(data) == proof

    def test_compact(self) -> None:
        """A proof in a tree of 100 000 leaves is 26 + 17 * 32 bytes."""
        assert len(InclusionProof(0, bytes(16), (bytes(32),) * 17).encode()) == 26 + 17 * 32

    def test_truncated(self) -> None:
        """Every truncation of a valid proof is refused."""
        data = build(1000)[1].proof(3).encode()
        for cut in range(len(data)):
            with pytest.raises(CommitmentRefused, match="malformed inclusion proof"):
                InclusionProof.decode(data[:cut])

    def test_trailing_bytes(self) -> None:
        """Bytes after the path are refused."""
        data = build(8)[1].proof(3).encode()
        refused(
            "malformed inclusion proof: 123 bytes for a path of 3",
            lambda: InclusionProof.decode(data + b"\x00"),
        )

    def test_absurd_path_length(self) -> None:
        """A path length beyond MAX_PATH is refused before reading the path."""
        data = b"\x01" + bytes(8) + bytes(16) + bytes([255])
        refused(f"path of 255 siblings, at most {MAX_PATH}", lambda: InclusionProof.decode(data))

    def test_absurd_index(self) -> None:
        """An index beyond MAX_LEAVES is refused."""
        data = b"\x01" + b"\xff" * 8 + bytes(16) + b"\x00"
        refused("index must be", lambda: InclusionProof.decode(data))

    def test_unknown_version(self) -> None:
        """Another encoding version is refused."""
        data = b"\x02" + bytes(8) + bytes(16) + b"\x00"
        refused("unknown version 2", lambda: InclusionProof.decode(data))

    def test_construction_checks(self) -> None:
        """Bad salts, siblings or paths are refused on construction."""
        with pytest.raises(ValueError, match="salt must be 16 bytes"):
            InclusionProof(0, bytes(15), ())
        with pytest.raises(ValueError, match="32-byte hash"):
            InclusionProof(0, bytes(16), (bytes(31),))
        with pytest.raises(ValueError, match="more than 40"):
            InclusionProof(0, bytes(16), (bytes(32),) * (MAX_PATH + 1))
        with pytest.raises(TypeError):
            InclusionProof(True, bytes(16), ())


def signed(commitment: Commitment, partner: str = "corporatie") -> SignedRoot:
    return sign_root(
        KEY,
        round_id=ROUND,
        manifest_sha256=MANIFEST,
        partner=partner,
        count=commitment.count,
        root=commitment.root,
    )


def check(claim: SignedRoot, **overrides: object) -> bytes:
    arguments: dict[str, object] = {
        "round_id": ROUND,
        "manifest_sha256": MANIFEST,
        "partner": "corporatie",
        "count": 7,
    }
    arguments.update(overrides)
    key = arguments.pop("key", KEY.public_key())
    return verify_root(claim, key, **arguments)  # type: ignore[arg-type]


class TestSignedRoot:
    def test_round_trip(self) -> None:
        """A signed root verifies and then backs inclusion proofs, through the codec."""
        tags, commitment = build(7)
        root = SignedRoot.decode(signed(commitment).encode())
        verified = check(root)
        assert verified == commitment.root
        verify_inclusion(tag_at(tags, 3), commitment.proof(3), verified, root.count)

    def test_exact_statement(self) -> None:
        """The signature covers the documented length-prefixed statement."""
        _, commitment = build(7)
        root = signed(commitment)

        def lp(data: bytes) -> bytes:
            return len(data).to_bytes(4, "big") + data

        statement = (
            lp(b"kruispunt/commitments/root/v1")
            + lp(ROUND.encode())
            + lp(MANIFEST)
            + lp(b"corporatie")
            + (7).to_bytes(8, "big")
            + lp(commitment.root)
            + lp(b"")  # no key check given
        )
        assert root.statement() == statement
        signing.verify(KEY.public_key(), CONTEXT_ROOT, statement, root.signature)

    def test_key_check_is_signed_and_round_trips(self) -> None:
        """A root with a key check carries it through encode/decode, under the signature."""
        _, commitment = build(7)
        check = bytes(range(16))
        root = sign_root(
            KEY,
            round_id=ROUND,
            manifest_sha256=MANIFEST,
            partner="corporatie",
            count=7,
            root=commitment.root,
            key_check=check,
        )
        decoded = SignedRoot.decode(root.encode())
        assert decoded.key_check == check
        forged = SignedRoot(ROUND, MANIFEST, "corporatie", 7, commitment.root, root.signature)
        with pytest.raises(CommitmentRefused):
            verify_root(
                forged,
                KEY.public_key(),
                round_id=ROUND,
                manifest_sha256=MANIFEST,
                partner="corporatie",
                count=7,
            )

    def test_another_partner(self) -> None:
        """A root signed for one partner is not another partner's."""
        _, commitment = build(7)
        refused(
            "signed root is not schuldhulp's",
            lambda: check(signed(commitment), partner="schuldhulp"),
        )

    def test_another_round(self) -> None:
        """A root from another round is refused."""
        _, commitment = build(7)
        refused(
            "signed root is for another round (replayed)",
            lambda: check(signed(commitment), round_id=OTHER_ROUND),
        )

    def test_another_manifest(self) -> None:
        """A root under another manifest is refused."""
        _, commitment = build(7)
        refused(
            "signed root is for another manifest (replayed)",
            lambda: check(signed(commitment), manifest_sha256=OTHER_MANIFEST),
        )

    def test_count_mismatch(self) -> None:
        """A root covering another count than the partner's consent is refused."""
        _, commitment = build(7)
        refused(
            "signed root covers 7 tags, corporatie's consent 8",
            lambda: check(signed(commitment), count=8),
        )

    def test_forged_signature(self) -> None:
        """A root signed by a key other than the partner's roster key is refused."""
        _, commitment = build(7)
        forged = dataclasses.replace(
            signed(commitment),
            signature=signing.sign(OTHER_KEY, CONTEXT_ROOT, signed(commitment).statement()),
        )
        refused(
            "root signature does not verify under corporatie's roster key", lambda: check(forged)
        )
        refused(
            "root signature does not verify",
            lambda: check(signed(commitment), key=OTHER_KEY.public_key()),
        )

    @pytest.mark.parametrize(
        "change",
        [
            {"root": bytes(32)},
            {"count": 8},
            {"partner": "schuldhulp"},
            {"round_id": OTHER_ROUND},
            {"manifest_sha256": OTHER_MANIFEST},
        ],
    )
    def test_field_edited_under_signature(self, change: dict[str, object]) -> None:
        """Editing any signed field leaves a signature that no longer verifies."""
        _, commitment = build(7)
        edited = dataclasses.replace(signed(commitment), **change)  # type: ignore[arg-type]
        # The verifier expects the edited values (else an earlier check names the field).
        expected = {k: v for k, v in change.items() if k != "root"}
        refused("root signature does not verify", lambda: check(edited, **expected))

    def test_signature_from_other_context(self) -> None:
        """A signature over the same bytes for another use (a consent) does not verify."""
        _, commitment = build(7)
        root = signed(commitment)
        other = signing.sign(KEY, signing.CONTEXT_CONSENT, root.statement())
        refused(
            "root signature does not verify",
            lambda: check(dataclasses.replace(root, signature=other)),
        )

    def test_decode_bounds(self) -> None:
        """Truncations, trailing bytes, absurd lengths and wrong labels are refused."""
        _, commitment = build(7)
        data = signed(commitment).encode()
        for cut in range(len(data)):
            with pytest.raises(CommitmentRefused, match="malformed signed root"):
                SignedRoot.decode(data[:cut])
        refused("1 trailing bytes", lambda: SignedRoot.decode(data + b"\x00"))
        absurd = (0xFFFFFFFF).to_bytes(4, "big") + data[4:]
        refused("statement is 4294967295 bytes, at most 512", lambda: SignedRoot.decode(absurd))
        relabelled = data.replace(b"commitments/root", b"commitments/leaf")
        refused("wrong domain label", lambda: SignedRoot.decode(relabelled))
        bad_id = data.replace(b"corporatie", b"Corporatie")
        refused("partner is not a well-formed partner id", lambda: SignedRoot.decode(bad_id))
