"""psi_node.oprf against the published RFC 9497 test vectors (suite ristretto255-SHA512).

Every mode-0 (OPRF) vector is reproduced byte for byte: HashToGroup + Blind,
BlindEvaluate and Finalize. The VOPRF (mode 1) and POPRF (mode 2) vectors add
published data for the parts whose formulas those modes share with mode 0:
Blind (with the mode's own DST), and in mode 1 BlindEvaluate and Finalize,
including the batched vectors (mode 0 publishes none).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import rbcl

from kruispunt.errors import InvalidPoint
from psi_node import oprf
from tests.support import paths
from tests.support.points import IDENTITY, non_canonical_encodings

# Shipped with the tests (tests/vectors/README.md says where they come from).
VECTORS = paths.VECTORS / "rfc9497-ristretto255-sha512.json"


def load_suites() -> list[dict[str, Any]]:
    """The vector file's suites; a missing file fails the run rather than skipping it."""
    if not VECTORS.is_file():
        raise FileNotFoundError(f"RFC 9497 test vectors not found at {VECTORS}")
    suites: list[dict[str, Any]] = json.loads(VECTORS.read_text(encoding="utf-8"))
    return suites


def cases(mode: int) -> list[Any]:
    """One pytest param per vector of `mode`, each element list split on ','."""
    params = []
    for suite in load_suites():
        if suite["mode"] != mode or suite["identifier"] != "ristretto255-SHA512":
            continue
        for number, vector in enumerate(suite["vectors"], start=1):
            split = {
                field: [bytes.fromhex(part) for part in vector[field].split(",")]
                for field in ("Input", "Blind", "BlindedElement", "EvaluationElement", "Output")
            }
            params.append(
                pytest.param(
                    bytes.fromhex(suite["groupDST"]),
                    bytes.fromhex(suite["skSm"]),
                    split,
                    id=f"mode{mode}-vector{number}-batch{vector['Batch']}",
                )
            )
    return params


MODE0 = cases(0)
MODE1 = cases(1)
MODE2 = cases(2)


class TestVectorFile:
    """The vector file is present and holds what the tests rely on."""

    def test_mode0_vectors_exist(self) -> None:
        """There is at least one mode-0 vector, so the parametrised tests cannot pass vacuously."""
        assert len(MODE0) >= 2
        assert MODE1
        assert MODE2

    def test_mode0_dst_is_ours(self) -> None:
        """The mode-0 suite's groupDST is exactly our HashToGroup DST."""
        assert {p.values[0] for p in MODE0} == {oprf.HASH_TO_GROUP_DST}


class TestMode0:
    """RFC 9497 OPRF mode, section 3.3.1, byte for byte."""

    @pytest.mark.parametrize(("dst", "sk", "v"), MODE0)
    def test_blind(self, dst: bytes, sk: bytes, v: dict[str, list[bytes]]) -> None:
        """HashToGroup then Blind with the vector's blind reproduces BlindedElement."""
        for x, blind, expected in zip(v["Input"], v["Blind"], v["BlindedElement"], strict=True):
            assert oprf.blind_rfc(x, blind) == expected

    @pytest.mark.parametrize(("dst", "sk", "v"), MODE0)
    def test_evaluate(self, dst: bytes, sk: bytes, v: dict[str, list[bytes]]) -> None:
        """BlindEvaluate with skSm reproduces EvaluationElement."""
        for blinded, expected in zip(v["BlindedElement"], v["EvaluationElement"], strict=True):
            assert oprf.evaluate_rfc(sk, blinded) == expected

    @pytest.mark.parametrize(("dst", "sk", "v"), MODE0)
    def test_finalize(self, dst: bytes, sk: bytes, v: dict[str, list[bytes]]) -> None:
        """Finalize reproduces the 64-byte Output, and a round tag is its first 16 bytes."""
        for x, blind, evaluated, expected in zip(
            v["Input"], v["Blind"], v["EvaluationElement"], v["Output"], strict=True
        ):
            assert oprf.finalize_rfc(x, blind, evaluated) == expected
            unblinded = oprf.scalar_mult(sk, oprf.hash_to_group([x]))
            assert oprf.finalize([x], unblinded) == expected[: oprf.TAG_BYTES]

    @pytest.mark.parametrize(("dst", "sk", "v"), MODE0)
    def test_round_helpers_reproduce_the_output(
        self, dst: bytes, sk: bytes, v: dict[str, list[bytes]]
    ) -> None:
        """With k = skSm and r = Blind, the round helpers yield Output[:16]."""
        for x, blind, blinded, expected in zip(
            v["Input"], v["Blind"], v["BlindedElement"], v["Output"], strict=True
        ):
            # One node is both blinder and key holder: T = (k * r^-1) * (r * P) = k * P.
            key = oprf.RoundKey(sk, blind)
            assert oprf.blind_inputs([x], key) == blinded
            assert oprf.unblind_and_tag([x], key, blinded) == expected[:16]
            key.wipe()


class TestSharedFormulasInOtherModes:
    """Modes 1 and 2 share Blind (own DST); mode 1 shares BlindEvaluate and Finalize."""

    @pytest.mark.parametrize(("dst", "sk", "v"), MODE1 + MODE2)
    def test_blind_with_the_modes_dst(
        self, dst: bytes, sk: bytes, v: dict[str, list[bytes]]
    ) -> None:
        """expand_message_xmd with the mode's groupDST, from_hash and Blind give BlindedElement."""
        for x, blind, expected in zip(v["Input"], v["Blind"], v["BlindedElement"], strict=True):
            point = rbcl.crypto_core_ristretto255_from_hash(oprf.expand_message_xmd(x, dst, 64))
            assert oprf.scalar_mult(blind, point) == expected

    @pytest.mark.parametrize(("dst", "sk", "v"), MODE1)
    def test_batched_evaluate(self, dst: bytes, sk: bytes, v: dict[str, list[bytes]]) -> None:
        """One packed scalar_mult of all BlindedElements gives the packed EvaluationElements."""
        packed = b"".join(v["BlindedElement"])
        assert oprf.scalar_mult(sk, packed) == b"".join(v["EvaluationElement"])

    @pytest.mark.parametrize(("dst", "sk", "v"), MODE1)
    def test_finalize(self, dst: bytes, sk: bytes, v: dict[str, list[bytes]]) -> None:
        """Finalize reproduces every Output, batched vectors included."""
        for x, blind, evaluated, expected in zip(
            v["Input"], v["Blind"], v["EvaluationElement"], v["Output"], strict=True
        ):
            assert oprf.finalize_rfc(x, blind, evaluated) == expected


class TestRfcHelpersRejectBadElements:
    """The RFC-shaped helpers refuse what DeserializeElement refuses (RFC 9497, section 2.1)."""

    def test_evaluate_rejects_malformed_elements(self) -> None:
        """BlindEvaluate of any malformed or identity encoding raises the opaque InvalidPoint."""
        sk = oprf.random_scalar()
        for bad in non_canonical_encodings(oprf.hash_to_group([b"x"])):
            with pytest.raises(InvalidPoint):
                oprf.evaluate_rfc(sk, bad)

    @pytest.mark.parametrize("length", [0, 31, 33, 64])
    def test_evaluate_and_finalize_reject_wrong_lengths(self, length: int) -> None:
        """An element that is not exactly 32 bytes raises InvalidPoint, even two whole points."""
        sk = oprf.random_scalar()
        with pytest.raises(InvalidPoint):
            oprf.evaluate_rfc(sk, b"\x02" * length)
        with pytest.raises(InvalidPoint):
            oprf.finalize_rfc(b"x", sk, b"\x02" * length)

    def test_finalize_rejects_the_identity(self) -> None:
        """Finalize refuses an identity EvaluationElement."""
        with pytest.raises(InvalidPoint):
            oprf.finalize_rfc(b"x", oprf.random_scalar(), IDENTITY)
