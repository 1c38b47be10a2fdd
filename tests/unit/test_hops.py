"""Tests for kruispunt.hops: signed hop chains refuse every way a coordinator can bend a route."""

from __future__ import annotations

import dataclasses
import hashlib
import random
from collections.abc import Callable

import pytest

from kruispunt import signing, wire
from kruispunt.hops import (
    CONTEXT_HOP,
    CONTEXT_ORIGIN,
    MAX_CHAIN_BYTES,
    MAX_CHUNKS,
    MAX_HOPS,
    Chain,
    ExpectedInput,
    HopRefused,
    HopStatement,
    OriginStatement,
    SignedHop,
    SignedOrigin,
    chunk_digest,
    chunk_digests,
    outputs_digest,
    proofs_digest,
    sign_hop,
    sign_origin,
    verify_chain,
)
from kruispunt.wire import POINT_BYTES

ROUND = "r20261201T154000-0123abcd"
OTHER_ROUND = "r20261201T154500-89abcdef"
MANIFEST = hashlib.sha256(b"manifest of this round").digest()
OTHER_MANIFEST = hashlib.sha256(b"manifest of another round").digest()
NAMES = ["gemeente", "corporatie", "schuldhulp", "school", "ggz", "energie"]
KEYS = {name: signing.generate_signing_key() for name in NAMES}
ROSTER = {name: key.public_key() for name, key in KEYS.items()}
OUTSIDER = signing.generate_signing_key()  # e.g. the coordinator's own key: not in the roster
COUNT = 10
CHUNK = 4  # 10 points in chunks of 4: three chunks, the last one shorter


def blinded(origin: str, count: int = COUNT) -> bytes:
    """Stand-in blinded points (hops digests bytes; it never decodes a point)."""
    return random.Random(origin).randbytes(count * POINT_BYTES)


def evaluate(packed: bytes, step: int) -> bytes:
    """A stand-in evaluation: every point replaced by a different 32-byte value, order kept."""
    return b"".join(
        hashlib.sha256(bytes([step]) + packed[i : i + POINT_BYTES]).digest()
        for i in range(0, len(packed), POINT_BYTES)
    )


def stand_in_proofs(packed: bytes, step: int, chunk_size: int = CHUNK) -> list[bytes]:
    """Stand-in proofs, one 64-byte value per chunk (hops digests them; it checks no proof)."""
    return [hashlib.sha512(bytes([step]) + chunk).digest() for chunk in split(packed, chunk_size)]


def split(packed: bytes, chunk_size: int = CHUNK) -> list[bytes]:
    return [chunk for _, chunk in wire.chunks(packed, POINT_BYTES, chunk_size)]


def refused(reason: str, call: Callable[[], object]) -> HopRefused:
    """Run `call`, assert HopRefused with `reason` in its reason, and return the error."""
    with pytest.raises(HopRefused) as caught:
        call()
    assert reason in caught.value.reason, caught.value.reason
    assert reason in str(caught.value)
    assert caught.value.reason.isascii()
    assert caught.value.reason.isprintable()
    return caught.value


class Net:
    """One round's ring of partners, with honest helpers to build and check routes."""

    def __init__(self, n: int, count: int = COUNT, chunk_size: int = CHUNK) -> None:
        self.partners = NAMES[:n]
        self.n = n
        self.count = count
        self.chunk_size = chunk_size
        #: (origin, step) -> (what that step's evaluator was given, its proofs): what the
        #: coordinator relays with the step's output to the next receiver.
        self.relay: dict[tuple[str, int], tuple[bytes, list[bytes]]] = {}

    def evaluator(self, origin: str, step: int) -> str:
        if step == self.n:
            return origin
        return self.partners[(self.partners.index(origin) - step) % self.n]

    def verify(self, chain: Chain, origin: str, step: int, **overrides: object) -> ExpectedInput:
        arguments: dict[str, object] = {
            "round_id": ROUND,
            "manifest_sha256": MANIFEST,
            "partners": self.partners,
            "origin": origin,
            "step": step,
            "signing_keys": ROSTER,
            "expected_count": self.count,
        }
        arguments.update(overrides)
        if "evaluator" not in arguments:
            arguments["evaluator"] = self.evaluator(origin, step)
        return verify_chain(chain, **arguments)  # type: ignore[arg-type]

    def feed(self, expected: ExpectedInput, packed: bytes) -> None:
        """Every chunk, and from step 2 on its source and proof as the coordinator relays them."""
        for index, chunk in enumerate(split(packed, self.chunk_size)):
            expected.check_chunk(index, chunk)
            self.vouch(expected, index)
        expected.finish()

    def vouch(self, expected: ExpectedInput, index: int) -> None:
        """Hand chunk `index`'s source and proof to `expected`, as the coordinator relays them."""
        relayed = self.relay.get((expected.origin, expected.step - 1))
        if expected.prover is not None and relayed is not None:
            source, proofs = relayed
            expected.check_source(index, split(source, self.chunk_size)[index])
            expected.record_proof(index, proofs[index])

    def statement(
        self, expected: ExpectedInput, packed: bytes, origin: str, step: int
    ) -> tuple[HopStatement, bytes]:
        """The evaluator's honest statement for `packed` at `step`, and its output."""
        output = evaluate(packed, step)
        proofs = stand_in_proofs(output, step, self.chunk_size)
        self.relay[(origin, step)] = (packed, proofs)
        statement = expected.hop_statement(
            chunk_digests(ROUND, origin, step, output, self.chunk_size),
            proof_digest=proofs_digest(ROUND, origin, step, proofs),
        )
        return statement, output

    def origin_statement(self, origin: str, packed: bytes) -> OriginStatement:
        return OriginStatement.for_points(
            round_id=ROUND,
            manifest_sha256=MANIFEST,
            origin=origin,
            packed=packed,
            chunk_size=self.chunk_size,
        )

    def start(self, origin: str) -> tuple[Chain, bytes]:
        packed = blinded(origin, self.count)
        return Chain(sign_origin(KEYS[origin], self.origin_statement(origin, packed))), packed

    def hop(self, chain: Chain, packed: bytes, origin: str, step: int) -> tuple[SignedHop, bytes]:
        """What the honest evaluator of `step` signs and returns, after checking its input."""
        expected = self.verify(chain, origin, step)
        self.feed(expected, packed)
        statement, output = self.statement(expected, packed, origin, step)
        return sign_hop(KEYS[self.evaluator(origin, step)], statement), output

    def walk(self, origin: str, until: int) -> tuple[Chain, bytes]:
        """The chain and the batch as they stand before step `until`, every hop honest."""
        chain, packed = self.start(origin)
        for step in range(1, until):
            signed, packed = self.hop(chain, packed, origin, step)
            chain = Chain.decode(chain.extend(signed).encode())
        return chain, packed


NET = Net(4)
ORIGIN = NET.partners[1]  # corporatie; its route: gemeente (1), school (2), schuldhulp (3)


class TestHappyPath:
    @pytest.mark.parametrize("n", range(2, 7))
    def test_every_origin_every_step(self, n: int) -> None:
        """Honest routes verify at every step for every origin, n = 2..6, through the codec."""
        net = Net(n)
        for origin in net.partners:
            chain, packed = net.start(origin)
            for step in range(1, n + 1):
                expected = net.verify(Chain.decode(chain.encode()), origin, step)
                assert expected.evaluator == net.evaluator(origin, step)
                assert expected.final is (step == n)
                assert (expected.count, expected.chunk_count) == (COUNT, 3)
                net.feed(expected, packed)
                assert expected.complete
                if step < n:
                    statement, output = net.statement(expected, packed, origin, step)
                    assert statement.signer == expected.evaluator
                    chain = chain.extend(sign_hop(KEYS[expected.evaluator], statement))
                    packed = output
            assert len(chain.hops) == n - 1

    def test_route_follows_the_orchestrator_schedule(self) -> None:
        """At step s node j evaluates the set of node (j + s) mod n: the route read backwards."""
        net = Net(5)
        for step in range(1, 5):
            for j, node in enumerate(net.partners):
                assert net.evaluator(net.partners[(j + step) % 5], step) == node

    def test_chunks_in_any_order(self) -> None:
        """Chunks may arrive in any order; each is checked against its own digest."""
        chain, packed = NET.walk(ORIGIN, 3)
        expected = NET.verify(chain, ORIGIN, 3)
        chunks = split(packed)
        for index in (2, 0, 1):
            expected.check_chunk(index, chunks[index])
            NET.vouch(expected, index)
        expected.finish()

    def test_empty_batch(self) -> None:
        """A batch of zero points has zero chunks and still verifies hop by hop."""
        net = Net(3, count=0)
        chain, packed = net.walk(ORIGIN, 3)
        assert packed == b""
        expected = net.verify(chain, ORIGIN, 3)
        assert expected.chunk_count == 0
        expected.finish()

    def test_exact_multiple_of_chunk_size(self) -> None:
        """A count that fills every chunk exactly has no short last chunk."""
        net = Net(3, count=8)
        chain, packed = net.walk(ORIGIN, 3)
        expected = net.verify(chain, ORIGIN, 3)
        assert expected.chunk_count == 2
        net.feed(expected, packed)

    def test_proof_digest_slot(self) -> None:
        """A hop may carry a 32-byte proof digest; it is signed and verified with the rest."""
        chain, packed = NET.start(ORIGIN)
        expected = NET.verify(chain, ORIGIN, 1)
        NET.feed(expected, packed)
        statement, output = NET.statement(expected, packed, ORIGIN, 1)
        digest = proofs_digest(ROUND, ORIGIN, 1, stand_in_proofs(output, 1))
        assert statement.proof_digest == digest
        chain = Chain.decode(chain.extend(sign_hop(KEYS[expected.evaluator], statement)).encode())
        assert chain.hops[0].statement.proof_digest == digest
        NET.feed(NET.verify(chain, ORIGIN, 2), output)


class TestPointsAppended:
    def test_points_appended_to_last_chunk(self) -> None:
        """Points appended to the last chunk change its length: refused before hashing."""
        chain, packed = NET.walk(ORIGIN, 2)
        expected = NET.verify(chain, ORIGIN, 2)
        chunks = split(packed)
        expected.check_chunk(0, chunks[0])
        expected.check_chunk(1, chunks[1])
        refused(
            "chunk 2 is 128 bytes, expected 2 points",
            lambda: expected.check_chunk(2, chunks[2] + blinded("x", 2)),
        )

    def test_chunk_appended(self) -> None:
        """A whole extra chunk after the signed ones is refused by its index."""
        chain, packed = NET.walk(ORIGIN, 2)
        expected = NET.verify(chain, ORIGIN, 2)
        NET.feed(expected, packed)
        refused("chunk index 3 is outside 0..2", lambda: expected.check_chunk(3, blinded("x", 4)))

    def test_count_raised_to_cover_appended_points(self) -> None:
        """Rewriting the origin's count and digests to cover extra points breaks its signature."""
        chain, packed = NET.start(ORIGIN)
        bigger = NET.origin_statement(ORIGIN, packed + blinded("x", 3))
        forged = Chain(SignedOrigin(bigger, chain.origin.signature))
        refused(
            "origin statement signature does not verify under corporatie's roster key",
            lambda: NET.verify(forged, ORIGIN, 1, expected_count=COUNT + 3),
        )


class TestPointsReplaced:
    def test_point_replaced(self) -> None:
        """One point swapped for H(x*) of the coordinator's choosing: the chunk is refused."""
        chain, packed = NET.walk(ORIGIN, 2)
        expected = NET.verify(chain, ORIGIN, 2)
        chunk = bytearray(split(packed)[1])
        rider = hashlib.sha256(b"H(x*)").digest()
        chunk[32:64] = rider
        error = refused(
            "chunk 1 does not match the digest signed at step 1",
            lambda: expected.check_chunk(1, bytes(chunk)),
        )
        assert rider.hex() not in str(error)
        assert repr(rider) not in str(error)

    def test_points_reordered(self) -> None:
        """Two points swapped within a chunk: the digest differs."""
        chain, packed = NET.start(ORIGIN)
        expected = NET.verify(chain, ORIGIN, 1)
        chunk = split(packed)[0]
        swapped = chunk[32:64] + chunk[:32] + chunk[64:]
        refused(
            "chunk 0 does not match the digest signed at step 0",
            lambda: expected.check_chunk(0, swapped),
        )

    def test_chunks_swapped(self) -> None:
        """A chunk presented under another chunk's index is refused (the index is hashed)."""
        net = Net(4, count=8)
        chain, packed = net.start(ORIGIN)
        expected = net.verify(chain, ORIGIN, 1)
        chunks = split(packed)
        refused("chunk 0 does not match", lambda: expected.check_chunk(0, chunks[1]))

    def test_hop_output_replaced_and_resigned_by_outsider(self) -> None:
        """The coordinator rewrites a hop's outputs and signs it itself: not a roster key."""
        chain, packed = NET.walk(ORIGIN, 2)
        ridden = bytearray(packed)
        ridden[:32] = hashlib.sha256(b"H(x*)").digest()
        hop = chain.hops[0].statement
        rewritten = dataclasses.replace(
            hop, output_chunk_digests=chunk_digests(ROUND, ORIGIN, 1, bytes(ridden), CHUNK)
        )
        forged = Chain(chain.origin, (sign_hop(OUTSIDER, rewritten),))
        refused(
            "hop statement 1 signature does not verify under gemeente's roster key",
            lambda: NET.verify(forged, ORIGIN, 2),
        )

    def test_batch_swapped_between_hops(self) -> None:
        """An evaluator signing a batch other than the one step 0 returned is named by step 2."""
        chain, _ = NET.start(ORIGIN)
        # The coordinator gives gemeente another batch; gemeente signs what it received.
        other_packed = blinded("schuldhulp")
        swapped_input = outputs_digest(
            ROUND, ORIGIN, 0, chunk_digests(ROUND, ORIGIN, 0, other_packed, CHUNK)
        )
        output = evaluate(other_packed, 1)
        statement = HopStatement(
            round_id=ROUND,
            manifest_sha256=MANIFEST,
            origin=ORIGIN,
            step=1,
            signer="gemeente",
            input_digest=swapped_input,
            output_chunk_digests=chunk_digests(ROUND, ORIGIN, 1, output, CHUNK),
        )
        forged = chain.extend(sign_hop(KEYS["gemeente"], statement))
        refused(
            "hop statement 1 received something step 0 did not return",
            lambda: NET.verify(forged, ORIGIN, 2),
        )


class TestRelabelledOrigin:
    def test_batch_presented_as_another_origins(self) -> None:
        """corporatie's chain presented as schuldhulp's batch: the statement names its origin."""
        chain, _ = NET.walk(ORIGIN, 2)
        relabelled_origin = "schuldhulp"
        evaluator = NET.evaluator(relabelled_origin, 2)
        refused(
            "origin statement names another origin than schuldhulp (relabelled)",
            lambda: NET.verify(chain, relabelled_origin, 2, evaluator=evaluator),
        )

    def test_origin_field_rewritten(self) -> None:
        """Rewriting the origin field keeps the old signature: the new origin's key refuses it."""
        chain, _ = NET.start(ORIGIN)
        rewritten = dataclasses.replace(chain.origin.statement, origin="schuldhulp")
        forged = Chain(SignedOrigin(rewritten, chain.origin.signature))
        refused(
            "origin statement signature does not verify under schuldhulp's roster key",
            lambda: NET.verify(forged, "schuldhulp", 1),
        )

    def test_hop_from_another_origins_route(self) -> None:
        """A hop statement lifted from another origin's route is refused."""
        chain, _ = NET.walk(ORIGIN, 2)
        other_chain, _ = NET.walk("schuldhulp", 2)
        mixed = Chain(chain.origin, other_chain.hops)
        refused(
            "hop statement 1 names another origin than corporatie (relabelled)",
            lambda: NET.verify(mixed, ORIGIN, 2),
        )


class TestOwnBatch:
    def test_step_zero_for_itself(self) -> None:
        """No node evaluates at step 0: the origin blinds, it does not evaluate."""
        chain, _ = NET.start(ORIGIN)
        refused("step 0 is outside 1..4", lambda: NET.verify(chain, ORIGIN, 0, evaluator=ORIGIN))

    @pytest.mark.parametrize("step", [1, 2, 3])
    def test_evaluator_is_origin(self, step: int) -> None:
        """A node is never asked to apply its key to its own batch before the final step."""
        chain, _ = NET.walk(ORIGIN, step)
        refused(
            f"corporatie is sent its own batch to evaluate at step {step}",
            lambda: NET.verify(chain, ORIGIN, step, evaluator=ORIGIN),
        )

    def test_wrong_evaluator_for_step(self) -> None:
        """A node asked to evaluate a step the ring order gives to another node refuses."""
        chain, _ = NET.walk(ORIGIN, 2)
        refused(
            "schuldhulp is not the evaluator of step 2 for corporatie's batch "
            "(the ring order names school)",
            lambda: NET.verify(chain, ORIGIN, 2, evaluator="schuldhulp"),
        )

    def test_step_beyond_final(self) -> None:
        """A step past the final one is refused."""
        chain, _ = NET.walk(ORIGIN, 4)
        refused("step 5 is outside 1..4", lambda: NET.verify(chain, ORIGIN, 5, evaluator=ORIGIN))

    def test_final_step_only_for_the_origin(self) -> None:
        """Only the origin verifies the full chain (step n): another node is refused."""
        chain, _ = NET.walk(ORIGIN, 4)
        refused(
            "gemeente is not the evaluator of step 4",
            lambda: NET.verify(chain, ORIGIN, 4, evaluator="gemeente"),
        )


class TestSkippedAndReorderedHops:
    def test_hop_skipped(self) -> None:
        """A batch sent on to step 2's node without step 1's hop is refused."""
        chain, _ = NET.start(ORIGIN)
        refused(
            "hop statement for step 1 is missing (skipped)", lambda: NET.verify(chain, ORIGIN, 2)
        )

    def test_middle_hop_skipped(self) -> None:
        """A chain with hops 1 and 3 (hop 2 left out) is refused by step 3's evaluator."""
        chain, _ = NET.walk(ORIGIN, 4)
        skipped = Chain(chain.origin, (chain.hops[0], chain.hops[2]))
        refused(
            "hop statement for step 2 is missing (skipped)",
            lambda: NET.verify(skipped, ORIGIN, 3),
        )

    def test_final_hop_skipped(self) -> None:
        """The origin refuses to finalize a batch that has not been through every node."""
        chain, _ = NET.walk(ORIGIN, 3)
        refused(
            "hop statement for step 3 is missing (skipped)",
            lambda: NET.verify(chain, ORIGIN, 4),
        )

    def test_hops_out_of_order(self) -> None:
        """Hop statements in the wrong order are refused."""
        chain, _ = NET.walk(ORIGIN, 4)
        reordered = Chain(chain.origin, (chain.hops[1], chain.hops[0], chain.hops[2]))
        refused("hop statements are out of order", lambda: NET.verify(reordered, ORIGIN, 4))

    def test_hop_repeated(self) -> None:
        """The same hop statement twice (a batch evaluated twice by one node) is refused."""
        chain, _ = NET.walk(ORIGIN, 2)
        doubled = Chain(chain.origin, (chain.hops[0], chain.hops[0]))
        refused("a hop statement appears twice", lambda: NET.verify(doubled, ORIGIN, 3))

    def test_extra_hops(self) -> None:
        """A chain longer than the step needs is refused."""
        chain, _ = NET.walk(ORIGIN, 3)
        refused(
            "chain holds 2 hop statements, step 2 needs 1", lambda: NET.verify(chain, ORIGIN, 2)
        )

    def test_off_route_evaluator(self) -> None:
        """A batch routed to a node the ring order does not name at that step is refused."""
        chain, packed = NET.start(ORIGIN)
        # The coordinator sends step 1 to school (ring order: gemeente); school signs it.
        statement = HopStatement(
            round_id=ROUND,
            manifest_sha256=MANIFEST,
            origin=ORIGIN,
            step=1,
            signer="school",
            input_digest=outputs_digest(ROUND, ORIGIN, 0, chain.origin.statement.chunk_digests),
            output_chunk_digests=chunk_digests(ROUND, ORIGIN, 1, evaluate(packed, 1), CHUNK),
        )
        off_route = chain.extend(sign_hop(KEYS["school"], statement))
        refused(
            "hop statement 1 names school as evaluator, the ring order gemeente",
            lambda: NET.verify(off_route, ORIGIN, 2),
        )


class TestReplay:
    def test_origin_statement_from_another_round(self) -> None:
        """An origin statement signed for another round is refused."""
        chain, _ = NET.start(ORIGIN)
        refused(
            "origin statement is for another round (replayed)",
            lambda: NET.verify(chain, ORIGIN, 1, round_id=OTHER_ROUND),
        )

    def test_origin_statement_from_another_manifest(self) -> None:
        """An origin statement signed under another manifest is refused."""
        chain, _ = NET.start(ORIGIN)
        refused(
            "origin statement is for another manifest (replayed)",
            lambda: NET.verify(chain, ORIGIN, 1, manifest_sha256=OTHER_MANIFEST),
        )

    def test_hop_statement_from_another_round(self) -> None:
        """A genuine hop statement from another round, spliced into this chain, is refused."""
        chain, packed = NET.start(ORIGIN)
        old = HopStatement(
            round_id=OTHER_ROUND,
            manifest_sha256=MANIFEST,
            origin=ORIGIN,
            step=1,
            signer="gemeente",
            input_digest=outputs_digest(ROUND, ORIGIN, 0, chain.origin.statement.chunk_digests),
            output_chunk_digests=chunk_digests(ROUND, ORIGIN, 1, evaluate(packed, 1), CHUNK),
        )
        spliced = chain.extend(sign_hop(KEYS["gemeente"], old))
        refused(
            "hop statement 1 is for another round (replayed)",
            lambda: NET.verify(spliced, ORIGIN, 2),
        )

    def test_hop_statement_from_another_manifest(self) -> None:
        """A hop statement signed under another manifest is refused."""
        chain, _ = NET.walk(ORIGIN, 2)
        hop = chain.hops[0]
        moved = dataclasses.replace(hop.statement, manifest_sha256=OTHER_MANIFEST)
        spliced = Chain(chain.origin, (sign_hop(KEYS["gemeente"], moved),))
        refused(
            "hop statement 1 is for another manifest (replayed)",
            lambda: NET.verify(spliced, ORIGIN, 2),
        )

    def test_proof_digest_is_signed(self) -> None:
        """Adding a proof digest to a signed hop leaves a signature that no longer verifies."""
        chain, _ = NET.walk(ORIGIN, 2)
        hop = chain.hops[0]
        edited = SignedHop(
            dataclasses.replace(hop.statement, proof_digest=bytes(32)), hop.signature
        )
        refused(
            "hop statement 1 signature does not verify under gemeente's roster key",
            lambda: NET.verify(Chain(chain.origin, (edited,)), ORIGIN, 2),
        )

    def test_hop_signature_replayed_as_origin_signature(self) -> None:
        """Contexts separate origin and hop signatures: one never verifies as the other."""
        chain, _ = NET.start(ORIGIN)
        data = chain.origin.statement.encode()
        signature = signing.sign(KEYS[ORIGIN], CONTEXT_HOP, data)
        forged = Chain(SignedOrigin(chain.origin.statement, signature))
        refused("origin statement signature does not verify", lambda: NET.verify(forged, ORIGIN, 1))
        signing.verify(ROSTER[ORIGIN], CONTEXT_ORIGIN, data, chain.origin.signature)


class TestForgedKeys:
    def test_origin_signed_by_outsider(self) -> None:
        """An origin statement signed by a key outside the roster is refused."""
        chain, _ = NET.start(ORIGIN)
        forged = Chain(sign_origin(OUTSIDER, chain.origin.statement))
        refused(
            "origin statement signature does not verify under corporatie's roster key",
            lambda: NET.verify(forged, ORIGIN, 1),
        )

    def test_hop_signed_by_another_partner(self) -> None:
        """A colluding partner cannot sign a hop in the name of the ring's evaluator."""
        chain, _ = NET.walk(ORIGIN, 2)
        forged = Chain(chain.origin, (sign_hop(KEYS["ggz"], chain.hops[0].statement),))
        refused(
            "hop statement 1 signature does not verify under gemeente's roster key",
            lambda: NET.verify(forged, ORIGIN, 2),
        )

    def test_keys_come_from_the_roster_only(self) -> None:
        """A roster that lacks the origin's key refuses; there is nowhere else to get one."""
        chain, _ = NET.start(ORIGIN)
        partial = {k: v for k, v in ROSTER.items() if k != ORIGIN}
        refused(
            "no roster signing key for corporatie",
            lambda: NET.verify(chain, ORIGIN, 1, signing_keys=partial),
        )

    def test_roster_with_substituted_key(self) -> None:
        """If the roster says another key, a statement signed with the real key is refused."""
        chain, _ = NET.start(ORIGIN)
        substituted = {**ROSTER, ORIGIN: OUTSIDER.public_key()}
        refused(
            "origin statement signature does not verify",
            lambda: NET.verify(chain, ORIGIN, 1, signing_keys=substituted),
        )

    def test_truncated_signature(self) -> None:
        """A malformed signature is refused like a wrong one."""
        chain, _ = NET.start(ORIGIN)
        forged = Chain(SignedOrigin(chain.origin.statement, chain.origin.signature[:63]))
        refused("origin statement signature does not verify", lambda: NET.verify(forged, ORIGIN, 1))


class TestCountAndChunking:
    def test_count_differs_from_consent(self) -> None:
        """The origin's signed count must equal its consented set size."""
        chain, _ = NET.start(ORIGIN)
        refused(
            "origin statement counts 10 points, the origin's consent 9",
            lambda: NET.verify(chain, ORIGIN, 1, expected_count=9),
        )

    def test_inconsistent_chunking_refused_on_decode(self) -> None:
        """A statement whose digest list does not fit count and chunk size does not decode."""
        chain, _ = NET.start(ORIGIN)
        good = chain.origin.statement.encode()
        # Patch chunk_size (just before the digest count) from 4 to 5: 10 points need 2 chunks.
        at = len(good) - 3 * 32 - 4 - 4
        assert good[at : at + 4] == (4).to_bytes(4, "big")
        bad = good[:at] + (5).to_bytes(4, "big") + good[at + 4 :]
        refused(
            "chunking is inconsistent: 3 chunk digests for 10 points in chunks of 5 (expected 2)",
            lambda: OriginStatement.decode(bad),
        )

    def test_hop_returns_other_chunk_count(self) -> None:
        """A hop that returned a different number of chunks than it received is refused."""
        chain, _ = NET.walk(ORIGIN, 2)
        hop = chain.hops[0].statement
        shorter = dataclasses.replace(hop, output_chunk_digests=hop.output_chunk_digests[:2])
        forged = Chain(chain.origin, (sign_hop(KEYS["gemeente"], shorter),))
        refused(
            "hop statement 1 returned 2 chunks, received 3", lambda: NET.verify(forged, ORIGIN, 2)
        )

    def test_duplicate_chunk(self) -> None:
        """A chunk delivered twice is refused the second time."""
        chain, packed = NET.start(ORIGIN)
        expected = NET.verify(chain, ORIGIN, 1)
        first = split(packed)[0]
        expected.check_chunk(0, first)
        refused("chunk 0 arrived twice", lambda: expected.check_chunk(0, first))

    def test_missing_chunk(self) -> None:
        """finish() refuses a batch with a chunk missing and names the first one."""
        chain, packed = NET.start(ORIGIN)
        expected = NET.verify(chain, ORIGIN, 1)
        chunks = split(packed)
        expected.check_chunk(0, chunks[0])
        expected.check_chunk(2, chunks[2])
        refused("1 of 3 chunks missing (first missing: chunk 1)", expected.finish)

    def test_no_chunks_at_all(self) -> None:
        """finish() refuses when nothing arrived."""
        chain, _ = NET.start(ORIGIN)
        expected = NET.verify(chain, ORIGIN, 1)
        refused("3 of 3 chunks missing (first missing: chunk 0)", expected.finish)

    def test_negative_chunk_index(self) -> None:
        """A negative chunk index is out of range, not a Python negative index."""
        chain, packed = NET.start(ORIGIN)
        expected = NET.verify(chain, ORIGIN, 1)
        refused(
            "chunk index -1 is outside 0..2", lambda: expected.check_chunk(-1, split(packed)[2])
        )

    def test_chunk_not_whole_points(self) -> None:
        """A chunk that is not a whole number of points is refused by its length."""
        chain, packed = NET.start(ORIGIN)
        expected = NET.verify(chain, ORIGIN, 1)
        refused(
            "chunk 0 is 127 bytes, expected 4 points (128 bytes)",
            lambda: expected.check_chunk(0, split(packed)[0][:-1]),
        )


class TestSigningOnlyAfterChecking:
    def test_hop_statement_before_finish(self) -> None:
        """An evaluator cannot build its statement before every input chunk has been checked."""
        chain, packed = NET.start(ORIGIN)
        expected = NET.verify(chain, ORIGIN, 1)
        expected.check_chunk(0, split(packed)[0])
        output = chunk_digests(ROUND, ORIGIN, 1, evaluate(packed, 1), CHUNK)
        with pytest.raises(ValueError, match="every input chunk"):
            expected.hop_statement(output)

    def test_no_hop_statement_at_final_step(self) -> None:
        """The finalizing origin signs no hop statement."""
        chain, packed = NET.walk(ORIGIN, 4)
        expected = NET.verify(chain, ORIGIN, 4)
        NET.feed(expected, packed)
        with pytest.raises(ValueError, match="finalizes"):
            expected.hop_statement(chunk_digests(ROUND, ORIGIN, 4, packed, CHUNK))

    def test_hop_statement_chunk_count(self) -> None:
        """The output must have as many chunks as the input."""
        chain, packed = NET.start(ORIGIN)
        expected = NET.verify(chain, ORIGIN, 1)
        NET.feed(expected, packed)
        output = chunk_digests(ROUND, ORIGIN, 1, evaluate(packed, 1), CHUNK)
        with pytest.raises(ValueError, match="output has 2 chunks, the input 3"):
            expected.hop_statement(output[:2])


class TestEvaluationProofs:
    """From step 2 on every chunk comes with its source and the evaluator's signed proofs."""

    def test_a_hop_without_a_proof_digest_is_refused(self) -> None:
        """A hop statement that commits to no evaluation proofs is refused at the next step."""
        chain, packed = NET.start(ORIGIN)
        expected = NET.verify(chain, ORIGIN, 1)
        NET.feed(expected, packed)
        output = chunk_digests(ROUND, ORIGIN, 1, evaluate(packed, 1), CHUNK)
        unproven = chain.extend(sign_hop(KEYS[expected.evaluator], expected.hop_statement(output)))
        refused(
            "hop statement 1 carries no digest of its evaluation proofs",
            lambda: NET.verify(unproven, ORIGIN, 2),
        )

    def test_the_prover_is_the_last_evaluator(self) -> None:
        """Step 1 takes the origin's points (no prover); later steps name the last hop's signer."""
        chain, _ = NET.start(ORIGIN)
        assert NET.verify(chain, ORIGIN, 1).prover is None
        chain, _ = NET.walk(ORIGIN, 3)
        assert NET.verify(chain, ORIGIN, 3).prover == NET.evaluator(ORIGIN, 2)
        chain, _ = NET.walk(ORIGIN, 4)
        assert NET.verify(chain, ORIGIN, 4).prover == NET.evaluator(ORIGIN, 3)

    def test_a_source_other_than_the_signed_one_is_refused(self) -> None:
        """A proof over points the previous evaluator was never given proves nothing."""
        chain, packed = NET.walk(ORIGIN, 3)
        source, _ = NET.relay[(ORIGIN, 2)]
        expected = NET.verify(chain, ORIGIN, 3)
        expected.check_chunk(0, split(packed)[0])
        swapped = split(source)[1][:POINT_BYTES] + split(source)[0][POINT_BYTES:]
        refused(
            "the source of chunk 0 does not match the digest signed at step 1",
            lambda: expected.check_source(0, swapped),
        )
        refused(
            "the source of chunk 0 is 96 bytes, expected 4 points",
            lambda: expected.check_source(0, split(source)[0][:96]),
        )

    def test_proofs_other_than_the_signed_ones_are_refused(self) -> None:
        """Proofs relayed in place of those the evaluator signed are refused at finish."""
        chain, packed = NET.walk(ORIGIN, 3)
        source, proofs = NET.relay[(ORIGIN, 2)]
        expected = NET.verify(chain, ORIGIN, 3)
        for index, chunk in enumerate(split(packed)):
            expected.check_chunk(index, chunk)
            expected.check_source(index, split(source)[index])
            expected.record_proof(index, proofs[(index + 1) % len(proofs)])
        refused(
            f"the evaluation proofs relayed are not those {NET.evaluator(ORIGIN, 2)} signed "
            "at step 2",
            expected.finish,
        )

    def test_a_chunk_without_its_proof_is_refused(self) -> None:
        """Every chunk must come with a proof before the batch is complete."""
        chain, packed = NET.walk(ORIGIN, 3)
        _, proofs = NET.relay[(ORIGIN, 2)]
        expected = NET.verify(chain, ORIGIN, 3)
        for index, chunk in enumerate(split(packed)):
            expected.check_chunk(index, chunk)
            if index:
                expected.record_proof(index, proofs[index])
        refused("a chunk arrived without the proof of", expected.finish)

    def test_a_batch_from_its_origin_takes_no_proof(self) -> None:
        """At step 1 there is no evaluation to prove: source and proof are not taken."""
        chain, packed = NET.start(ORIGIN)
        expected = NET.verify(chain, ORIGIN, 1)
        with pytest.raises(ValueError, match="carries no proof"):
            expected.check_source(0, split(packed)[0])
        with pytest.raises(ValueError, match="carries no proof"):
            expected.record_proof(0, bytes(64))

    def test_proofs_digest_binds_round_origin_step_and_order(self) -> None:
        """The proof digest changes with the round, the origin, the step and the order."""
        proofs = [bytes([i]) * 64 for i in range(3)]
        base = proofs_digest(ROUND, ORIGIN, 2, proofs)
        assert proofs_digest(OTHER_ROUND, ORIGIN, 2, proofs) != base
        assert proofs_digest(ROUND, NAMES[0], 2, proofs) != base
        assert proofs_digest(ROUND, ORIGIN, 3, proofs) != base
        assert proofs_digest(ROUND, ORIGIN, 2, proofs[::-1]) != base
        assert proofs_digest(ROUND, ORIGIN, 2, proofs[:2]) != base


class TestDigests:
    def test_chunk_digests_equal_chunk_digest(self) -> None:
        """The batch helper gives the same digests as hashing each chunk on its own."""
        packed = blinded("x", 10)
        one_by_one = tuple(
            chunk_digest(ROUND, ORIGIN, 2, index, chunk)
            for index, chunk in enumerate(split(packed))
        )
        assert chunk_digests(ROUND, ORIGIN, 2, packed, CHUNK) == one_by_one

    def test_exact_construction(self) -> None:
        """A chunk digest is SHA-256 over the documented length-prefixed encoding."""
        chunk = blinded("x", 3)

        def lp(data: bytes) -> bytes:
            return len(data).to_bytes(4, "big") + data

        manual = hashlib.sha256(
            lp(b"kruispunt/hops/chunk/v1")
            + lp(ROUND.encode())
            + lp(ORIGIN.encode())
            + (2).to_bytes(4, "big")
            + (5).to_bytes(4, "big")
            + (3).to_bytes(4, "big")
            + chunk
        ).digest()
        assert chunk_digest(ROUND, ORIGIN, 2, 5, chunk) == manual

    def test_digest_binds_context(self) -> None:
        """The same points hash differently for another round, origin, step or index."""
        chunk = blinded("x", 4)
        others = {
            chunk_digest(OTHER_ROUND, ORIGIN, 2, 0, chunk),
            chunk_digest(ROUND, "gemeente", 2, 0, chunk),
            chunk_digest(ROUND, ORIGIN, 3, 0, chunk),
            chunk_digest(ROUND, ORIGIN, 2, 1, chunk),
        }
        assert len(others) == 4
        assert chunk_digest(ROUND, ORIGIN, 2, 0, chunk) not in others

    def test_outputs_digest_binds_step(self) -> None:
        """A list digest of one step never stands for another step's list."""
        digests = chunk_digests(ROUND, ORIGIN, 1, blinded("x"), CHUNK)
        assert outputs_digest(ROUND, ORIGIN, 1, digests) != outputs_digest(
            ROUND, ORIGIN, 2, digests
        )

    @pytest.mark.parametrize("chunk_size", [0, 65537])
    def test_chunk_size_bounds(self, chunk_size: int) -> None:
        """Chunk sizes outside 1..MAX_CHUNK_POINTS are refused."""
        with pytest.raises(ValueError, match="chunk size"):
            chunk_digests(ROUND, ORIGIN, 0, blinded("x"), chunk_size)

    def test_partial_point(self) -> None:
        """Packed data that is not whole points is refused."""
        with pytest.raises(ValueError, match="multiple of 32"):
            chunk_digests(ROUND, ORIGIN, 0, b"\x01" * 33, CHUNK)
        with pytest.raises(ValueError, match="multiple of 32"):
            chunk_digest(ROUND, ORIGIN, 0, 0, b"\x01" * 33)


class TestCodec:
    def test_round_trip_is_exact(self) -> None:
        """decode(encode(x)) == x and the re-encoding is byte-identical."""
        chain, _ = NET.walk(ORIGIN, 4)
        data = chain.encode()
        decoded = Chain.decode(data)
        assert decoded == chain
        assert decoded.encode() == data
        for hop in chain.hops:
            assert HopStatement.decode(hop.statement.encode()) == hop.statement

    def test_compact(self) -> None:
        """A full chain of 4 partners over 3 chunks stays small (digests, not points)."""
        chain, _ = NET.walk(ORIGIN, 4)
        assert len(chain.encode()) < 4 * (3 * 32 + 64 + 200)

    def test_truncated(self) -> None:
        """Every truncation of a valid chain is refused as malformed, never a crash."""
        data = NET.walk(ORIGIN, 3)[0].encode()
        for cut in range(len(data)):
            with pytest.raises(HopRefused, match="malformed"):
                Chain.decode(data[:cut])

    def test_trailing_bytes(self) -> None:
        """Bytes after the last hop are refused."""
        data = NET.walk(ORIGIN, 2)[0].encode()
        refused("malformed chain: 1 trailing bytes", lambda: Chain.decode(data + b"\x00"))

    def test_wrong_label(self) -> None:
        """A statement's bytes are not a chain (domain labels differ)."""
        chain, _ = NET.start(ORIGIN)
        refused("wrong domain label", lambda: Chain.decode(chain.origin.statement.encode()))
        refused("wrong domain label", lambda: HopStatement.decode(chain.origin.statement.encode()))

    def test_oversized_chain(self) -> None:
        """A chain larger than the bound is refused before parsing."""
        refused(
            f"more than the {MAX_CHAIN_BYTES} allowed",
            lambda: Chain.decode(bytes(MAX_CHAIN_BYTES + 1)),
        )

    def test_absurd_hop_count(self) -> None:
        """A hop count beyond MAX_HOPS is refused without reading further."""
        chain, _ = NET.start(ORIGIN)
        data = chain.encode()
        absurd = data[:-4] + (0xFFFFFFFF).to_bytes(4, "big")
        refused(
            f"malformed chain: 4294967295 hop statements, at most {MAX_HOPS}",
            lambda: Chain.decode(absurd),
        )

    def test_absurd_digest_count(self) -> None:
        """A digest list claiming more than MAX_CHUNKS entries is refused before reading it."""
        chain, _ = NET.start(ORIGIN)
        good = chain.origin.statement.encode()
        at = len(good) - 3 * 32 - 4
        bad = good[:at] + (MAX_CHUNKS + 1).to_bytes(4, "big") + good[at + 4 :]
        refused(
            f"lists {MAX_CHUNKS + 1} chunks, at most {MAX_CHUNKS}",
            lambda: OriginStatement.decode(bad),
        )

    def test_absurd_field_length(self) -> None:
        """A length prefix larger than the field's bound is refused."""
        chain, _ = NET.start(ORIGIN)
        good = chain.origin.statement.encode()
        at = 4 + len(CONTEXT_ORIGIN)
        bad = good[:at] + (0x7FFFFFFF).to_bytes(4, "big") + good[at + 4 :]
        refused("round id is 2147483647 bytes, at most 64", lambda: OriginStatement.decode(bad))

    def test_malformed_round_id(self) -> None:
        """Decoded ids must be well formed (and so safe to name in a reason)."""
        chain, _ = NET.start(ORIGIN)
        good = chain.origin.statement.encode()
        bad = good.replace(ROUND.encode(), b"R" + ROUND[1:].encode())
        refused(
            "malformed origin statement: round id is malformed", lambda: OriginStatement.decode(bad)
        )

    def test_non_ascii_id(self) -> None:
        """A partner id with non-ASCII bytes is refused."""
        chain, _ = NET.start(ORIGIN)
        good = chain.origin.statement.encode()
        bad = good.replace(ORIGIN.encode(), "corporatié".encode()[:10])
        refused("origin is not ASCII", lambda: OriginStatement.decode(bad))

    def test_bad_proof_digest_length(self) -> None:
        """A proof digest must be empty or 32 bytes."""
        chain, _ = NET.walk(ORIGIN, 2)
        good = chain.hops[0].statement.encode()
        bad = good[: -(4 + 32)] + (3).to_bytes(4, "big") + b"abc"
        refused("proof digest must be empty or 32 bytes", lambda: HopStatement.decode(bad))

    def test_construction_checks_fields(self) -> None:
        """Building a statement with a bad field raises ValueError naming it."""
        chain, _ = NET.walk(ORIGIN, 2)
        hop = chain.hops[0].statement
        with pytest.raises(ValueError, match="step must be 1"):
            dataclasses.replace(hop, step=0)
        with pytest.raises(ValueError, match="signer is not a well-formed partner id"):
            dataclasses.replace(hop, signer="Gemeente Utrecht")
        with pytest.raises(ValueError, match="input digest"):
            dataclasses.replace(hop, input_digest=b"short")
        with pytest.raises(ValueError, match="count must be"):
            dataclasses.replace(chain.origin.statement, count=-1)
        with pytest.raises(ValueError, match="a chain holds at most"):
            Chain(chain.origin, (chain.hops[0],) * (MAX_HOPS + 1))

    def test_caller_errors_are_value_errors(self) -> None:
        """A bad partner list or an evaluator outside it is the caller's mistake."""
        chain, _ = NET.start(ORIGIN)
        with pytest.raises(ValueError, match="distinct"):
            NET.verify(chain, ORIGIN, 1, partners=["gemeente", "gemeente"])
        with pytest.raises(ValueError, match="not a partner"):
            NET.verify(chain, ORIGIN, 1, evaluator="ggz")
        refused(
            "the origin is not a partner of this round",
            lambda: NET.verify(chain, "ggz", 1, evaluator="gemeente"),
        )
