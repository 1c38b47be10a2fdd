"""Tests for kruispunt.evaluation_proofs: the coordinator's check of a hop's DLEQ proofs."""

from __future__ import annotations

from kruispunt import evaluation_proofs
from psi_node import oprf


def evaluated(count: int = 5) -> tuple[oprf.RoundKey, bytes, bytes, bytes]:
    """(key, source, evaluated, proof): one honestly proven chunk of `count` points."""
    key = oprf.RoundKey.generate()
    source = oprf.hash_to_group([f"bsn:{i:09d}".encode() for i in range(count)])
    out, proofs = oprf.evaluate_and_prove(key, source, count)
    return key, source, out, proofs[0]


class TestVerifyChunk:
    def test_the_context_is_the_nodes(self) -> None:
        """The coordinator checks under the same VOPRF context the nodes prove under."""
        assert evaluation_proofs.VOPRF_CONTEXT_STRING == oprf.VOPRF_CONTEXT_STRING
        assert evaluation_proofs.PROOF_BYTES == oprf.PROOF_BYTES

    def test_an_honest_proof_verifies(self) -> None:
        """A chunk evaluated and proven with the committed key passes."""
        key, source, out, proof = evaluated()
        assert evaluation_proofs.verify_chunk(key.public_key, source, out, proof)

    def test_another_key_fails(self) -> None:
        """A proof made with another key than the committed one fails."""
        _, source, out, proof = evaluated()
        other = oprf.RoundKey.generate()
        assert not evaluation_proofs.verify_chunk(other.public_key, source, out, proof)

    def test_another_source_fails(self) -> None:
        """The proof speaks of the chunk the evaluator was given, not another."""
        key, source, out, proof = evaluated()
        moved = source[32:] + source[:32]
        assert not evaluation_proofs.verify_chunk(key.public_key, moved, out, proof)

    def test_malformed_input_fails_without_raising(self) -> None:
        """Lengths that do not fit, an empty chunk and a short proof are all just False."""
        key, source, out, proof = evaluated()
        public = key.public_key
        assert not evaluation_proofs.verify_chunk(public, source, out[:-32], proof)
        assert not evaluation_proofs.verify_chunk(public, source + b"x", out + b"x", proof)
        assert not evaluation_proofs.verify_chunk(public, b"", b"", proof)
        assert not evaluation_proofs.verify_chunk(public, source, out, proof[:-1])
        assert not evaluation_proofs.verify_chunk(b"\xff" * 32, source, out, proof)
