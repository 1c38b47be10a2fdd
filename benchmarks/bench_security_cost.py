"""The security cost model counts what a round really does (benchmarks/security_cost.py).

Two checks: the counts for n = 2 and n = 5 against figures worked out by hand from
DESIGN.md's round, and against a real round in this process (real gRPC servers and
mTLS, `tests/support/network.py`) whose signing, digest, tag-key, commitment and proof
calls are counted as they happen. A protocol change that adds work without updating the
model fails the second.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from benchmarks import security_cost as sc
from kruispunt import commitments, hops, signing, tagkey
from kruispunt.commitments import Commitment
from kruispunt.manifest import CONSENT_CONTEXT
from kruispunt.wire import POINT_BYTES, TAG_BYTES
from psi_node import oprf
from psi_node.modes import network as node_network
from tests.support.network import TestNetwork, build_network


def shape(n: int, m: int, *, disclosure: str = "partners") -> sc.RoundShape:
    """n partners of m records; 10 % of each partner's records shared with one other."""
    pairs = m * n // 20
    return sc.RoundShape(
        set_sizes=(m,) * n,
        chunk_points=4096,
        threshold=2,
        disclosure=disclosure,
        histogram={1: n * m - 2 * pairs, 2: pairs} | {k: 0 for k in range(3, n + 1)},
        flagged=(2 * pairs // n,) * n,
    )


class TestCountsByHand:
    """The model's counts for the two benchmark shapes, worked out step by step."""

    def test_two_partners(self) -> None:
        """2 x 100,000: 25 chunks a set; each node digests 4 sets' worth of points."""
        c = sc.security_counts(shape(2, 100_000))
        # Blind (own set), evaluate (input and output of the other's), finalize (own again,
        # and the source of the other's proof: its own blinded set).
        assert c.digested_points == 2 * (100_000 + 2 * 100_000 + 100_000 + 100_000)
        assert c.chunk_digests == 2 * 5 * 25
        assert c.proven_points == 200_000
        assert c.signs == 2 * (1 + 1 + 1)  # origin, one hop, root
        assert c.chain_verifies == 2 * (1 + 2)  # step 1: origin; finalize: origin + hop
        assert c.consent_verifies == 4
        assert (c.seals, c.opens, c.key_derivations) == (2, 2, 2)
        assert c.keyed_tags == c.committed_leaves == c.rebuilt_leaves == 200_000
        assert (c.root_verifies_coordinator, c.root_verifies_nodes) == (2, 4)  # Reveal: n^2
        assert c.proofs == 2 * 10_000  # each flagged record, its one co-holder
        assert c.signature_verifies == 6 + 4 + 2 + 4

    def test_five_partners(self) -> None:
        """5 x 20,000: steps 1..4 verify 1..4 signatures per set, finalize 5."""
        c = sc.security_counts(shape(5, 20_000))
        # Origin, each evaluator's input and output, the origin again; and from step 2 on
        # every receiver the source of the proof it is relayed (3 evaluators + finalize).
        assert c.digested_points == 5 * (20_000 + 4 * 2 * 20_000 + 20_000 + 4 * 20_000)
        assert c.proven_points == 4 * 100_000
        assert c.chunk_digests == 5 * 14 * 5
        assert c.signs == 5 * (1 + 4 + 1)
        assert c.chain_verifies == 5 * (1 + 2 + 3 + 4 + 5)
        assert c.consent_verifies == 25
        assert (c.seals, c.opens, c.key_derivations) == (20, 20, 5)
        assert c.keyed_tags == c.committed_leaves == c.rebuilt_leaves == 100_000
        assert (c.root_verifies_coordinator, c.root_verifies_nodes) == (5, 25)
        assert c.proofs == 2 * 5_000
        assert c.signature_verifies == 75 + 25 + 5 + 25

    def test_count_disclosure_has_no_coordinator_checks(self) -> None:
        """Under `count` disclosure the coordinator rebuilds no tree, checks no root and
        makes no proof; the nodes still check every root before they reveal a tag."""
        c = sc.security_counts(shape(5, 20_000, disclosure="count"))
        assert c.committed_leaves == 100_000
        assert (c.rebuilt_leaves, c.root_verifies_coordinator, c.root_verifies_nodes) == (0, 0, 25)
        assert c.proofs == 0

    def test_proofs_of_a_tag_held_three_times(self) -> None:
        """A tag at 3 partners is flagged 3 times, with 2 co-holders each: 6 proofs."""
        s = sc.RoundShape((10, 10, 10), 4096, 2, "partners", {1: 27, 2: 0, 3: 1}, (1, 1, 1))
        assert sc.proof_count(s) == 6


class TestCostArithmetic:
    """security_cost() sums count x cost, scales by contention, divides by the cores."""

    def test_share(self) -> None:
        counts = sc.security_counts(shape(2, 1000))
        cal = sc.SecurityCalibration(
            digest_per_point=1e-6,
            sign=0.0,
            verify=0.0,
            consent_verify=0.0,
            seal=0.0,
            open=0.0,
            derive=0.0,
            keyed_tag_per_output=0.0,
            plain_tag_per_output=0.0,
            commit_per_leaf=0.0,
            rebuild_per_leaf=0.0,
            root_verify=0.0,
            proof_make=0.0,
            proof_verify=0.0,
            dleq_prove_per_point=0.0,
            dleq_verify_per_point=0.0,
            sample_points=1000,
        )
        out = sc.security_cost(counts, cal, cores=2, contention=1.5, round_seconds=0.012)
        cpu = counts.digested_points * 1e-6 * 1.5
        assert out["security_cpu_seconds"] == pytest.approx(cpu)
        assert out["security_seconds"] == pytest.approx(cpu / 2)
        assert out["security_share"] == pytest.approx(cpu / 2 / 0.012)
        assert out["components_cpu_seconds"]["chunk_digests"] == pytest.approx(cpu)
        # Contention below 1 (a noisy calibration) never makes the work cheaper.
        low = sc.security_cost(counts, cal, cores=2, contention=0.7, round_seconds=0.012)
        assert low["contention"] == 1.0

    def test_calibration_times_every_component(self) -> None:
        """Calibrating on a small shape gives a positive cost for every operation."""
        cal = sc.calibrate_security(
            [f"bsn:{i:09d}".encode() for i in range(300)], shape(3, 300), reps=1
        )
        for name, value in vars(cal).items():
            if name != "sample_points":
                assert 0 < value < 0.05, name
        assert cal.sample_points == 300


class _Calls:
    """What the defences did during one in-process round, counted as it happened."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()

    def add(self, key: str, amount: int = 1) -> None:
        with self.lock:
            self.counts[key] += amount


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> _Calls:
    """Wrap every function whose work the model counts, in the modules that call it."""
    seen = _Calls()
    sign, verify = signing.sign, signing.verify
    signed_contexts = {hops.CONTEXT_ORIGIN, hops.CONTEXT_HOP, commitments.CONTEXT_ROOT}

    def counting_sign(key: Any, context: bytes, data: bytes) -> bytes:
        if context in signed_contexts:
            seen.add("signs")
        return sign(key, context, data)

    def counting_verify(key: Any, context: bytes, data: bytes, signature: bytes) -> None:
        kind = {
            hops.CONTEXT_ORIGIN: "chain",
            hops.CONTEXT_HOP: "chain",
            commitments.CONTEXT_ROOT: "root",
            CONSENT_CONTEXT: "consent",
        }.get(context)
        if kind:
            seen.add(f"verify_{kind}")
        verify(key, context, data, signature)

    monkeypatch.setattr(signing, "sign", counting_sign)
    monkeypatch.setattr(signing, "verify", counting_verify)

    digest, digests = hops.chunk_digest, hops.chunk_digests

    def counting_digest(round_id: str, origin: str, step: int, index: int, chunk: bytes) -> bytes:
        seen.add("digested_points", len(chunk) // POINT_BYTES)
        return digest(round_id, origin, step, index, chunk)

    def counting_digests(
        round_id: str, origin: str, step: int, packed: bytes, chunk_size: int
    ) -> tuple[bytes, ...]:
        seen.add("digested_points", len(packed) // POINT_BYTES)
        return digests(round_id, origin, step, packed, chunk_size)

    monkeypatch.setattr(hops, "chunk_digest", counting_digest)
    monkeypatch.setattr(hops, "chunk_digests", counting_digests)

    new = tagkey.TagKeyContribution.new.__func__  # type: ignore[attr-defined]

    def counting_new(cls: type, *args: Any, **kwargs: Any) -> Any:
        out = new(cls, *args, **kwargs)
        seen.add("seals", len(out.sealed))
        return out

    monkeypatch.setattr(tagkey.TagKeyContribution, "new", classmethod(counting_new))
    _count_calls(monkeypatch, seen, node_network, "open_share", "opens")
    _count_calls(monkeypatch, seen, node_network, "derive_tag_key", "key_derivations")
    _count_calls(monkeypatch, seen, node_network, "verify_inclusion", "proof_verifies")

    build = Commitment.build.__func__  # type: ignore[attr-defined]
    with_salts = Commitment.with_salts.__func__  # type: ignore[attr-defined]
    proof = Commitment.proof

    def counting_build(cls: type, tags: bytes, *args: Any, **kwargs: Any) -> Any:
        seen.add("built_leaves", len(tags) // TAG_BYTES)
        return build(cls, tags, *args, **kwargs)

    def counting_with_salts(cls: type, tags: bytes, salts: bytes) -> Any:
        seen.add("rebuilt_leaves", len(tags) // TAG_BYTES)
        return with_salts(cls, tags, salts)

    def counting_proof(self: Commitment, index: int) -> Any:
        seen.add("proofs_made")
        return proof(self, index)

    monkeypatch.setattr(Commitment, "build", classmethod(counting_build))
    monkeypatch.setattr(Commitment, "with_salts", classmethod(counting_with_salts))
    monkeypatch.setattr(Commitment, "proof", counting_proof)

    keyed = oprf.unblind_and_keyed_tag

    def counting_keyed(inputs: Any, *args: Any) -> bytes:
        seen.add("keyed_tags", len(inputs))
        return keyed(inputs, *args)

    monkeypatch.setattr(oprf, "unblind_and_keyed_tag", counting_keyed)

    prove, check = oprf.evaluate_and_prove, oprf.verify_chunks

    def counting_prove(key: Any, packed: bytes, *args: Any) -> Any:
        seen.add("proven_points", len(packed) // POINT_BYTES)
        return prove(key, packed, *args)

    def counting_check(public: bytes, blinded: bytes, *args: Any) -> bool:
        seen.add("verified_points", len(blinded) // POINT_BYTES)
        return check(public, blinded, *args)

    monkeypatch.setattr(oprf, "evaluate_and_prove", counting_prove)
    monkeypatch.setattr(oprf, "verify_chunks", counting_check)
    return seen


def _count_calls(
    monkeypatch: pytest.MonkeyPatch, seen: _Calls, module: Any, name: str, key: str
) -> None:
    original: Callable[..., Any] = getattr(module, name)

    def counting(*args: Any, **kwargs: Any) -> Any:
        seen.add(key)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counting)


@pytest.mark.parametrize("n", [2, 5])
def test_counts_match_a_real_round(n: int, calls: _Calls, tmp_path: Path) -> None:
    """Every count of the model equals what an in-process round of n partners did."""
    partners = [f"p{i + 1:02d}" for i in range(n)]
    net: TestNetwork = build_network(
        tmp_path, partners, per_partner=40, overlaps={2: 6, n: 3} if n > 2 else {2: 8}
    )
    try:
        for pid in partners:
            net.start_node(pid)
        net.start_coordinator()
        net.add_purpose(max_set_size=1000)
        calls.counts.clear()  # the set-up signs and verifies too; only the round counts
        summary = net.run()
    finally:
        net.close()
    assert summary.state == "completed", summary.reason
    by_partner = {p.partner_id: p for p in summary.partners}
    round_shape = sc.RoundShape(
        set_sizes=tuple(by_partner[p].set_size for p in partners),
        chunk_points=net.config.chunk_points,
        threshold=summary.threshold,
        disclosure="partners",
        histogram=dict(summary.overlap_histogram),
        flagged=tuple(by_partner[p].flagged_count for p in partners),
    )
    model = sc.security_counts(round_shape)
    got = calls.counts
    assert got["digested_points"] == model.digested_points
    assert got["signs"] == model.signs
    assert got["verify_chain"] == model.chain_verifies
    # The coordinator checks each consent as it arrives, as it did before the defences.
    assert got["verify_consent"] == model.consent_verifies + n
    assert got["verify_root"] == model.root_verifies_coordinator + model.root_verifies_nodes
    assert (got["seals"], got["opens"], got["key_derivations"]) == (
        model.seals,
        model.opens,
        model.key_derivations,
    )
    assert got["keyed_tags"] == model.keyed_tags
    assert got["built_leaves"] - got["rebuilt_leaves"] == model.committed_leaves
    assert got["rebuilt_leaves"] == model.rebuilt_leaves
    assert got["proofs_made"] == got["proof_verifies"] == model.proofs > 0
    assert got["proven_points"] == got["verified_points"] == model.proven_points > 0
