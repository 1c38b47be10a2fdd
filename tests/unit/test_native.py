"""The native core (kruispunt.native) against libsodium (rbcl) and RFC 9497's vectors.

Two independent implementations must agree byte for byte: the Rust core through
psi_node.oprf, and tests/support/rbcl_oprf.py over libsodium. They are run on every
RFC 9497 vector of modes 0 and 1, proofs included with the RFC's fixed randomness,
and on random batches.
"""

from __future__ import annotations

import copy
import json
import os
import pickle
import random
import threading
from typing import Any

import pytest
import rbcl
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from kruispunt import native
from kruispunt.errors import InvalidPoint
from psi_node import oprf
from tests.support import paths
from tests.support import rbcl_oprf as ref
from tests.support.points import IDENTITY, high_bit_alias, non_canonical_encodings

VECTORS = paths.VECTORS / "rfc9497-ristretto255-sha512.json"
CONTEXTS = {0: oprf.CONTEXT_STRING, 1: oprf.VOPRF_CONTEXT_STRING}
P = 2**255 - 19


def vector_cases(mode: int) -> list[Any]:
    """One param per vector of `mode`: (suite, vector with every list split on ',')."""
    suites: list[dict[str, Any]] = json.loads(VECTORS.read_text(encoding="utf-8"))
    params = []
    for suite in suites:
        if suite["mode"] != mode:
            continue
        for number, vector in enumerate(suite["vectors"], start=1):
            split: dict[str, Any] = {
                field: [bytes.fromhex(part) for part in vector[field].split(",")]
                for field in ("Input", "Blind", "BlindedElement", "EvaluationElement", "Output")
            }
            if "Proof" in vector:
                split["proof"] = bytes.fromhex(vector["Proof"]["proof"])
                split["r"] = bytes.fromhex(vector["Proof"]["r"])
            params.append(pytest.param(suite, split, id=f"mode{mode}-vector{number}"))
    return params


MODE0 = vector_cases(0)
MODE1 = vector_cases(1)


class TestVectorsBothImplementations:
    """Every mode-0 and mode-1 vector, on the native core and on libsodium alike."""

    def test_there_are_vectors_of_both_modes(self) -> None:
        """Both modes have vectors, mode 1 with proofs, so nothing below passes vacuously."""
        assert len(MODE0) >= 2
        assert len(MODE1) >= 3
        assert all("proof" in p.values[1] for p in MODE1)

    @pytest.mark.parametrize(("suite", "v"), MODE0 + MODE1)
    def test_blind_evaluate_finalize(self, suite: dict[str, Any], v: dict[str, Any]) -> None:
        """Blind, BlindEvaluate (batched) and Finalize give the vector's bytes on both."""
        dst = bytes.fromhex(suite["groupDST"])
        sk = bytes.fromhex(suite["skSm"])
        for x, r, blinded in zip(v["Input"], v["Blind"], v["BlindedElement"], strict=True):
            assert oprf.blind_rfc(x, r, dst) == blinded
            assert ref.blind(x, r, dst) == blinded
        packed = b"".join(v["BlindedElement"])
        assert oprf.scalar_mult(sk, packed) == b"".join(v["EvaluationElement"])
        assert ref.scalar_mult_batch(sk, packed) == b"".join(v["EvaluationElement"])
        for x, r, evaluated, output in zip(
            v["Input"], v["Blind"], v["EvaluationElement"], v["Output"], strict=True
        ):
            assert oprf.finalize_rfc(x, r, evaluated) == output
            assert ref.finalize(x, r, evaluated) == output

    @pytest.mark.parametrize(("suite", "v"), MODE1)
    def test_public_key(self, suite: dict[str, Any], v: dict[str, Any]) -> None:
        """pkSm = skSm * G on the native core and on libsodium."""
        sk = bytes.fromhex(suite["skSm"])
        assert oprf.public_key(sk) == bytes.fromhex(suite["pkSm"])
        assert rbcl.crypto_scalarmult_ristretto255_base(sk) == bytes.fromhex(suite["pkSm"])

    @pytest.mark.parametrize(("suite", "v"), MODE1)
    def test_proof_byte_for_byte(self, suite: dict[str, Any], v: dict[str, Any]) -> None:
        """GenerateProof with the vector's r reproduces its proof on both, and both verify it."""
        sk, pk = bytes.fromhex(suite["skSm"]), bytes.fromhex(suite["pkSm"])
        blinded, evaluated = b"".join(v["BlindedElement"]), b"".join(v["EvaluationElement"])
        ctx = oprf.VOPRF_CONTEXT_STRING
        assert oprf.prove_evaluation(sk, blinded, evaluated, r=v["r"]) == v["proof"]
        assert (
            ref.generate_proof(sk, v["BlindedElement"], v["EvaluationElement"], v["r"], ctx)
            == v["proof"]
        )
        assert oprf.verify_evaluation(pk, blinded, evaluated, v["proof"])
        assert ref.verify_proof(pk, v["BlindedElement"], v["EvaluationElement"], v["proof"], ctx)

    @pytest.mark.parametrize(("suite", "v"), MODE1)
    def test_a_changed_proof_or_element_fails(
        self, suite: dict[str, Any], v: dict[str, Any]
    ) -> None:
        """Flipping a bit of the proof, or evaluating one element with another key, fails."""
        pk = bytes.fromhex(suite["pkSm"])
        blinded, evaluated = b"".join(v["BlindedElement"]), b"".join(v["EvaluationElement"])
        for i in (0, 33):
            bad = bytearray(v["proof"])
            bad[i] ^= 1
            assert not oprf.verify_evaluation(pk, blinded, evaluated, bytes(bad))
        wrong = oprf.scalar_mult(oprf.random_scalar(), v["BlindedElement"][0])
        assert not oprf.verify_evaluation(pk, blinded, wrong + evaluated[32:], v["proof"])


def batch(count: int, seed: int) -> list[bytes]:
    """`count` distinct pseudo-random inputs of varied length (0 to 40 bytes)."""
    rng = random.Random(seed)
    return [i.to_bytes(4, "big") + rng.randbytes(rng.randrange(0, 37)) for i in range(count)]


class TestDifferentialRandomBatches:
    """Random batches through both implementations give the same bytes."""

    @pytest.mark.parametrize("seed", range(3))
    def test_hash_blind_evaluate_finalize(self, seed: int) -> None:
        """HashToGroup, Blind, Evaluate and Finalize agree on 300 random inputs."""
        xs = batch(300, seed)
        r, k = oprf.random_scalar(), oprf.random_scalar()
        dst = oprf.HASH_TO_GROUP_DST
        assert oprf.hash_to_group(xs) == b"".join(ref.hash_to_group(x, dst) for x in xs)
        blinded = oprf.hash_and_mult(xs, r)
        assert blinded == b"".join(ref.blind(x, r, dst) for x in xs)
        evaluated = oprf.scalar_mult(k, blinded)
        assert evaluated == ref.scalar_mult_batch(k, blinded)
        outputs = [
            oprf.finalize_rfc(x, r, evaluated[i * 32 : i * 32 + 32]) for i, x in enumerate(xs)
        ]
        assert outputs == [
            ref.finalize(x, r, evaluated[i * 32 : i * 32 + 32]) for i, x in enumerate(xs)
        ]

    @pytest.mark.parametrize("size", [1, 2, 17, 200])
    def test_proofs_agree_and_cross_verify(self, size: int) -> None:
        """With the same r both make the same proof; each verifies the other's."""
        k, r = oprf.random_scalar(), oprf.random_scalar()
        blinded = oprf.hash_to_group(batch(size, size))
        evaluated = oprf.scalar_mult(k, blinded)
        cs = [blinded[i : i + 32] for i in range(0, len(blinded), 32)]
        ds = [evaluated[i : i + 32] for i in range(0, len(evaluated), 32)]
        ctx = oprf.VOPRF_CONTEXT_STRING
        proof = oprf.prove_evaluation(k, blinded, evaluated, r=r)
        assert proof == ref.generate_proof(k, cs, ds, r, ctx)
        assert ref.verify_proof(oprf.public_key(k), cs, ds, proof, ctx)
        fresh = oprf.prove_evaluation(k, blinded, evaluated)
        assert fresh != proof  # fresh randomness when none is given
        assert oprf.verify_evaluation(oprf.public_key(k), blinded, evaluated, fresh)

    def test_expand_message_xmd_agrees_at_every_length(self) -> None:
        """expand_message_xmd agrees for lengths 0..300 (ell from 0 to 5)."""
        for length in (0, 1, 63, 64, 65, 128, 129, 255, 300):
            assert oprf.expand_message_xmd(b"msg", b"DST", length) == ref.expand_message_xmd(
                b"msg", b"DST", length
            )


class TestChunkedProofs:
    """A hop's evaluation with one proof per chunk (evaluate_and_prove, verify_chunks)."""

    def test_every_chunk_verifies_and_evaluation_is_unchanged(self) -> None:
        """evaluate_and_prove gives evaluate's points and one valid proof per chunk."""
        key = oprf.RoundKey.generate()
        packed = oprf.hash_to_group(batch(50, 7))
        out, proofs = oprf.evaluate_and_prove(key, packed, chunk_points=16)
        assert out == oprf.evaluate(key, packed)
        assert len(proofs) == 4
        assert oprf.verify_chunks(key.public_key, packed, out, proofs, chunk_points=16)

    def test_one_wrong_point_fails_the_batch(self) -> None:
        """A single point evaluated under another key makes verification fail."""
        key = oprf.RoundKey.generate()
        packed = oprf.hash_to_group(batch(40, 8))
        out, proofs = oprf.evaluate_and_prove(key, packed, chunk_points=16)
        forged = out[: 35 * 32] + oprf.scalar_mult(oprf.random_scalar(), packed[35 * 32 : 36 * 32])
        forged += out[36 * 32 :]
        assert not oprf.verify_chunks(key.public_key, packed, forged, proofs, chunk_points=16)
        assert not oprf.verify_chunks(key.public_key, packed, out, proofs[:-1], chunk_points=16)
        other = oprf.RoundKey.generate().public_key
        assert not oprf.verify_chunks(other, packed, out, proofs, chunk_points=16)

    def test_a_wrong_key_evaluation_fails(self) -> None:
        """Points evaluated whole with another key do not verify against this key's proofs."""
        key, wrong = oprf.RoundKey.generate(), oprf.RoundKey.generate()
        packed = oprf.hash_to_group(batch(20, 9))
        _, proofs = oprf.evaluate_and_prove(key, packed, chunk_points=8)
        assert not oprf.verify_chunks(
            key.public_key, packed, oprf.evaluate(wrong, packed), proofs, chunk_points=8
        )


class TestStrictDecoding:
    """The native core refuses what RFC 9496 and RFC 9497 refuse, with no extra check of ours."""

    def test_every_malformed_encoding_is_refused(self) -> None:
        """RFC 9496's invalid encodings, the identity and both aliases raise native.InvalidPoint."""
        k = native.Secret.random()
        for bad in non_canonical_encodings(oprf.hash_to_group([b"x"])):
            with pytest.raises(native.InvalidPoint):
                native.scalar_mult(k, bad)
            with pytest.raises(native.InvalidPoint):
                native.validate_points(bad)

    def test_libsodium_accepts_the_high_bit_alias_that_native_refuses(self) -> None:
        """The bundled libsodium ignores bit 255 (why the old code checked it); native refuses."""
        good = oprf.hash_to_group([b"good"])
        assert rbcl.crypto_core_ristretto255_is_valid_point(high_bit_alias(good))
        with pytest.raises(InvalidPoint):
            oprf.scalar_mult(oprf.random_scalar(), high_bit_alias(good))

    def test_proofs_over_malformed_points(self) -> None:
        """Verifying over an undecodable element is False; proving over one is InvalidPoint."""
        k = oprf.random_scalar()
        good = oprf.hash_to_group([b"a"])
        proof = oprf.prove_evaluation(k, good, oprf.scalar_mult(k, good))
        assert not oprf.verify_evaluation(oprf.public_key(k), IDENTITY, good, proof)
        assert not oprf.verify_evaluation(IDENTITY, good, oprf.scalar_mult(k, good), proof)
        with pytest.raises(InvalidPoint):
            oprf.prove_evaluation(k, IDENTITY, good)


class TestSecret:
    """native.Secret: Rust memory, read-only views, wiped, never pickled or copied."""

    def test_views_read_in_place_and_read_zeros_once_wiped(self) -> None:
        """memoryview(secret) is read-only and shows zeros after wipe()."""
        secret = native.Secret(bytes([7]) + bytes(31))
        view = memoryview(secret)
        assert bytes(view) == bytes([7]) + bytes(31)
        with pytest.raises(TypeError):
            view[0] = 1
        secret.wipe()
        assert secret.wiped
        assert bytes(view) == bytes(32)
        with pytest.raises(ValueError, match="wiped"):
            secret.invert()

    def test_not_picklable_nor_copyable(self) -> None:
        """pickle, copy and deepcopy all raise TypeError."""
        secret = native.Secret.random()
        for attempt in (pickle.dumps, copy.copy, copy.deepcopy):
            with pytest.raises(TypeError, match="not"):
                attempt(secret)

    def test_scalar_arithmetic(self) -> None:
        """invert and multiply agree with Python's integers modulo the group order."""
        order = 2**252 + 27742317777372353535851937790883648493
        a, b = 1234567, 7654321
        sa = native.Secret(a.to_bytes(32, "little"))
        sb = native.Secret(b.to_bytes(32, "little"))
        product = int.from_bytes(bytes(memoryview(sa.multiply(sb))), "little")
        assert product == a * b % order
        inverse = int.from_bytes(bytes(memoryview(sa.invert())), "little")
        assert inverse == pow(a, -1, order)


class TestGil:
    def test_batch_work_releases_the_gil(self) -> None:
        """While a large batch multiplies in one thread, another Python thread keeps running."""
        k = native.Secret.random()
        packed = oprf.hash_to_group(batch(60_000, 1))
        worker = threading.Thread(target=native.scalar_mult, args=(k, packed))
        worker.start()
        spins = 0
        while spins < 1000:
            spins += 1
        alive_while_we_ran = worker.is_alive()
        worker.join()
        assert alive_while_we_ran


class TestEd25519Keys:
    """ed25519_is_valid_point: canonical, on the curve, prime order (the roster's key check)."""

    def test_real_keys_pass(self) -> None:
        """Fresh Ed25519 public keys are valid points."""
        for _ in range(20):
            raw = (
                Ed25519PrivateKey.generate()
                .public_key()
                .public_bytes(Encoding.Raw, PublicFormat.Raw)
            )
            assert native.ed25519_is_valid_point(raw)

    def test_torsion_small_order_and_non_canonical_fail(self) -> None:
        """A key plus the point of order 2, small-order points, y >= p and bad lengths fail."""
        raw = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        value = int.from_bytes(raw, "little")
        y, sign = value & ((1 << 255) - 1), value >> 255
        # (x, y) + (0, -1) = (-x, -y): on the curve, not small order, not in the subgroup.
        mixed = ((P - y) | ((sign ^ 1) << 255)).to_bytes(32, "little")
        assert not native.ed25519_is_valid_point(mixed)
        for bad in (
            b"\x01" + bytes(31),  # the identity
            bytes.fromhex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
            (P + 1).to_bytes(32, "little"),  # y = 1 written as p + 1
            os.urandom(31),
        ):
            assert not native.ed25519_is_valid_point(bad)


class TestReferenceBaseline:
    def test_the_benchmarks_libsodium_hash_path_agrees(self) -> None:
        """The prefix-state HashToGroup that `make bench` times for rbcl equals the native one."""
        xs = batch(100, 4)
        assert ref.hash_to_group_batch(xs, oprf.HASH_TO_GROUP_DST) == oprf.hash_to_group(xs)
