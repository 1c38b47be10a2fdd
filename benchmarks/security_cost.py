"""What the defences against an active coordinator cost one round: counted, timed here, summed.

DESIGN.md, "Threat model: an active coordinator". A round without authenticated hops,
the partners' tag key and the tag commitments no longer exists (and no switch turns
them off), so their cost is not measured as the difference of two rounds. It is a cost
model calibrated in the same run, as the efficiency figure of `round_bench.py` is:

    security CPU seconds = sum over components of count(round) x cost per operation
    security_seconds     = security CPU seconds x contention / cores
    security_share       = security_seconds / the round's wall seconds

`security_counts` derives every count exactly from the round's parameters and summary
(set sizes, chunk size, threshold, disclosure, the overlap histogram and flagged counts).
`calibrate_security` times, in this process, the product's own functions on data of the
round's size: `hops.chunk_digests` over real packed points, `signing.sign`/`verify` over
real hop statements, `manifest.verify_consent` over a real signed consent carrying its
sealed shares, `TagKeyContribution.new`, `open_share`, `derive_tag_key`,
`tagkey.keyed_tags` against the plain 16-byte truncation it replaced,
`Commitment.build`, `Commitment.with_salts`, `verify_root`, and an inclusion proof's
making (`Commitment.proof` + encode) and checking (decode + `verify_inclusion`). The
best of a few repetitions is kept. These timings run on one core of a machine whose
other core may be idle; `contention` (the thread pool's per-core multiplication cost
with every core busy over its cost with one worker, from the same run's calibration,
at least 1) scales them to the busy machine the round ran on.

Per round, n partners, set sizes m_i, M = sum m_i (DESIGN.md names each step):

* chunk digests: the origin digests its blinded set, each evaluator digests what it
  checks and what it returns, the origin checks its set again before finalizing, and
  every receiver from step 2 on checks the source of the proof it is relayed:
  (3n - 1) x M points digested (SHA-256, `hops.chunk_digests`);
* evaluation proofs: every evaluation of a point is proven (a batched DLEQ proof per
  chunk, made with the evaluation by `oprf.evaluate_and_prove`, timed alone as
  `oprf.prove_evaluation`) and checked once by the next receiver (`oprf.verify_chunks`):
  (n - 1) x M points proven and verified;
* Ed25519 signatures: per node an origin statement, a hop statement per evaluation
  (n - 1) and a signed root: n(n + 1) signs;
* chain verification: evaluating origin o's set at step s verifies the origin
  statement and s - 1 hop statements (s signatures); finalizing verifies all n:
  n x (n(n - 1)/2 + n) = n^2 (n + 1)/2 verifies;
* forwarded consents: every node verifies all n signed consents: n^2;
* tag key: every node seals its secret to n - 1 partners at consent and opens n - 1
  shares at Blind (n(n - 1) of each) and derives the key once (n);
* keyed tags: per record HMAC-SHA256 over the 64-byte RFC 9497 output instead of taking
  its first 16 bytes (M; the SHA-512 Finalize itself is unchanged and not counted);
* commitments: every node builds a salted Merkle tree over its m_i tags (M leaves) and,
  at Reveal, verifies every partner's signed root before it sends a tag (n^2); under
  `partners` disclosure the coordinator verifies n signed roots and rebuilds the n
  trees from tags and salts (M leaves), makes an inclusion proof per flagged record per
  co-holder (sum over tags held by k >= threshold partners of k(k - 1), from the overlap
  histogram), and each node verifies each proof against the roots it received.

Left out, each well under a millisecond per round: encoding and decoding the statements
and chains, the list digests over the chunk digests, the coordinator's index of flagged
tag positions, and the transport of the chains, salts and proofs (in the round's wall
time, not in this model).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from kruispunt import hops, signing, tagkey
from kruispunt.commitments import (
    Commitment,
    InclusionProof,
    sign_root,
    verify_inclusion,
    verify_root,
)
from kruispunt.manifest import new_round_id, sign_consent, verify_consent
from kruispunt.roster import agreement_public_bytes, generate_agreement_key
from kruispunt.v1 import common_pb2
from kruispunt.wire import POINT_BYTES, TAG_BYTES
from psi_node import oprf

__all__ = [
    "COMPONENTS",
    "RoundShape",
    "SecurityCalibration",
    "SecurityCounts",
    "calibrate_security",
    "proof_count",
    "security_cost",
    "security_counts",
]

CALIBRATION_REPS = 3
CALIBRATION_SIGNATURES = 200
CALIBRATION_PROOFS = 2000
MAX_CALIBRATION_POINTS = 200_000
"""Buffers longer than this are not built for calibration: the per-item cost is flat."""

COMPONENTS = (
    "chunk_digests",
    "signatures",
    "chain_verification",
    "consent_verification",
    "tag_key",
    "keyed_tags",
    "commitment_build",
    "coordinator_rebuild",
    "root_verification",
    "inclusion_proofs",
    "evaluation_proofs",
)
"""The breakdown, in the order printed."""


@dataclass(frozen=True)
class RoundShape:
    """What a round's security work depends on: its parameters and its summary."""

    set_sizes: tuple[int, ...]
    """Per partner, in manifest order."""
    chunk_points: int
    threshold: int
    disclosure: str
    """"partners" (co-holders named and proven) or "count"."""
    histogram: Mapping[int, int]
    """Distinct tags held by exactly k partners, per k (the round summary's histogram)."""
    flagged: tuple[int, ...]
    """Flagged records per partner, in manifest order."""

    @property
    def n(self) -> int:
        return len(self.set_sizes)

    @property
    def records(self) -> int:
        return sum(self.set_sizes)


@dataclass(frozen=True)
class SecurityCounts:
    """How often a round performs each piece of work the defences add (whole network)."""

    digested_points: int
    chunk_digests: int
    signs: int
    chain_verifies: int
    consent_verifies: int
    seals: int
    opens: int
    key_derivations: int
    keyed_tags: int
    committed_leaves: int
    rebuilt_leaves: int
    root_verifies_coordinator: int
    root_verifies_nodes: int
    proofs: int
    proven_points: int
    """Points evaluated with a DLEQ proof, each checked once by the next receiver."""

    @property
    def signature_verifies(self) -> int:
        """Every Ed25519 verification of the round: chains, consents and signed roots."""
        return (
            self.chain_verifies
            + self.consent_verifies
            + self.root_verifies_coordinator
            + self.root_verifies_nodes
        )


def proof_count(shape: RoundShape) -> int:
    """Inclusion proofs a round under `partners` disclosure makes: one per flagged record
    per co-holder.

    A tag held by k >= threshold partners is a flagged record at each of the k, with k - 1
    co-holders each. A flagged record beyond what the histogram accounts for is a
    duplicate input of a partner; it is given n - 1 co-holders (at most).
    """
    if shape.disclosure != "partners":
        return 0
    over = {k: c for k, c in shape.histogram.items() if k >= shape.threshold}
    proofs = sum(c * k * (k - 1) for k, c in over.items())
    duplicates = max(0, sum(shape.flagged) - sum(c * k for k, c in over.items()))
    return proofs + duplicates * (shape.n - 1)


def security_counts(shape: RoundShape) -> SecurityCounts:
    """Every count of the model (module docstring), exactly, for one round of this shape."""
    n, total = shape.n, shape.records
    chunks = sum(-(-m // shape.chunk_points) for m in shape.set_sizes)
    partners_disclosed = shape.disclosure == "partners"
    return SecurityCounts(
        digested_points=(3 * n - 1) * total,
        chunk_digests=(3 * n - 1) * chunks,
        signs=n + n * (n - 1) + n,
        chain_verifies=n * (n * (n - 1) // 2 + n),
        consent_verifies=n * n,
        seals=n * (n - 1),
        opens=n * (n - 1),
        key_derivations=n,
        keyed_tags=total,
        committed_leaves=total,
        rebuilt_leaves=total if partners_disclosed else 0,
        root_verifies_coordinator=n if partners_disclosed else 0,
        root_verifies_nodes=n * n,
        proofs=proof_count(shape),
        proven_points=(n - 1) * total,
    )


@dataclass(frozen=True)
class SecurityCalibration:
    """What each piece of security work costs one core here, timed through the real code."""

    digest_per_point: float
    sign: float
    verify: float
    consent_verify: float
    seal: float
    open: float
    derive: float
    keyed_tag_per_output: float
    """Keyed tags (join of the 64-byte outputs and `keyed_tags`) minus the truncation."""
    plain_tag_per_output: float
    """The truncation it replaces (`output[:16]` joined), for reference."""
    commit_per_leaf: float
    rebuild_per_leaf: float
    root_verify: float
    proof_make: float
    proof_verify: float
    dleq_prove_per_point: float
    """`oprf.prove_evaluation` per point (the proof without its evaluation), on one worker."""
    dleq_verify_per_point: float
    """`oprf.verify_chunks` per point, on one worker."""
    sample_points: int
    """Points (and tags) the per-item costs were timed over."""


def _best(fn: Callable[[], object], reps: int = CALIBRATION_REPS) -> float:
    """The fastest of `reps` calls of fn, in seconds (the least disturbed by other work)."""
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _packed_points(inputs: Sequence[bytes], count: int) -> bytes:
    """`count` real blinded points: r*H(x) of the inputs, repeated to length (SHA-256's
    cost does not depend on the bytes, so repeating real points is as good as new ones)."""
    base = oprf.hash_and_mult(list(inputs), oprf.random_scalar())
    reps = -(-count // (len(base) // POINT_BYTES))
    return (base * reps)[: count * POINT_BYTES]


def calibrate_security(
    inputs: Sequence[bytes], shape: RoundShape, *, reps: int = CALIBRATION_REPS
) -> SecurityCalibration:
    """Time every component on data of the round's shape (module docstring).

    `inputs` are real canonical identifiers (the round's own export rows), used for the
    blinded points and the Finalize outputs; the buffers are as long as the round's
    largest set (at most MAX_CALIBRATION_POINTS).
    """
    n = shape.n
    m = max(1, min(max(shape.set_sizes), MAX_CALIBRATION_POINTS))
    round_id = new_round_id(datetime.now(UTC))
    manifest_sha256 = hashlib.sha256(b"calibration manifest").digest()
    partners = [f"p{i + 1:02d}" for i in range(n)]
    signing_keys = [signing.generate_signing_key() for _ in partners]
    agreement_keys = [generate_agreement_key() for _ in partners]

    packed = _packed_points(inputs[: min(len(inputs), 4096)], m)
    digest = _best(
        lambda: hops.chunk_digests(round_id, partners[0], 1, packed, shape.chunk_points), reps
    )

    digests = hops.chunk_digests(round_id, partners[0], 1, packed, shape.chunk_points)
    statement = hops.HopStatement(
        round_id=round_id,
        manifest_sha256=manifest_sha256,
        origin=partners[0],
        step=1,
        signer=partners[-1],
        input_digest=hops.outputs_digest(round_id, partners[0], 0, digests),
        output_chunk_digests=digests,
    ).encode()
    key, public = signing_keys[-1], signing_keys[-1].public_key()
    signature = signing.sign(key, hops.CONTEXT_HOP, statement)
    per = CALIBRATION_SIGNATURES

    def sign_many() -> None:
        for _ in range(per):
            signing.sign(key, hops.CONTEXT_HOP, statement)

    def verify_many() -> None:
        for _ in range(per):
            signing.verify(public, hops.CONTEXT_HOP, statement, signature)

    sign_cost = _best(sign_many, reps) / per
    verify_cost = _best(verify_many, reps) / per

    # A consent as a node signs it: set size, roster digest, its shares sealed to the others.
    others = {
        p: agreement_public_bytes(k) for p, k in zip(partners[1:], agreement_keys[1:], strict=True)
    }

    def seal_one() -> tagkey.TagKeyContribution:
        return tagkey.TagKeyContribution.new(round_id, manifest_sha256, partners[0], others)

    contribution = seal_one()
    seal = _best(lambda: [seal_one() for _ in range(20)], reps) / (20 * (n - 1))
    body = common_pb2.Consent(
        round_id=round_id,
        partner_id=partners[0],
        granted=True,
        manifest_sha256=manifest_sha256,
        legal_basis="calibration",
        set_size=m,
        decided_at_unix=int(time.time()),
        roster_sha256=hashlib.sha256(b"calibration roster").digest(),
    )
    body.tag_key_shares.update(contribution.sealed)
    signed_consent = sign_consent(signing_keys[0], body)
    consent_public = signing_keys[0].public_key()

    def verify_consents() -> None:
        for _ in range(per):
            verify_consent(
                signed_consent,
                consent_public,
                round_id=round_id,
                partner_id=partners[0],
                manifest_sha256=manifest_sha256,
            )

    consent_cost = _best(verify_consents, reps) / per

    def open_many() -> None:
        for _ in range(20):
            tagkey.open_share(
                contribution.sealed[partners[1]],
                round_id=round_id,
                manifest_sha256=manifest_sha256,
                sender=partners[0],
                recipient=partners[1],
                recipient_key=agreement_keys[1],
            )

    open_cost = _best(open_many, reps) / 20
    secrets = {p: os.urandom(tagkey.SECRET_BYTES) for p in partners}
    derive = (
        _best(
            lambda: [
                tagkey.derive_tag_key(secrets, partners, round_id, manifest_sha256)
                for _ in range(100)
            ],
            reps,
        )
        / 100
    )

    # Finalize outputs of real identifiers; the round joins them and keys each.
    ids = list(inputs[: min(len(inputs), 4096)])
    outputs = [
        hashlib.sha512(x + packed[i * POINT_BYTES : (i + 1) * POINT_BYTES]).digest()
        for i, x in enumerate(ids)
    ]
    outputs = (outputs * -(-m // len(outputs)))[:m]
    tag_key = tagkey.derive_tag_key(secrets, partners, round_id, manifest_sha256)
    keyed = _best(lambda: tagkey.keyed_tags(tag_key, b"".join(outputs)), reps) / m
    plain = _best(lambda: b"".join(o[:TAG_BYTES] for o in outputs), reps) / m

    tags = tagkey.keyed_tags(tag_key, b"".join(outputs))
    commit = _best(lambda: Commitment.build(tags), reps) / m
    tree = Commitment.build(tags)
    rebuild = _best(lambda: Commitment.with_salts(tags, tree.salts), reps) / m
    root = sign_root(
        signing_keys[0],
        round_id=round_id,
        manifest_sha256=manifest_sha256,
        partner=partners[0],
        count=m,
        root=tree.root,
    )

    def verify_roots() -> None:
        for _ in range(per):
            verify_root(
                root,
                consent_public,
                round_id=round_id,
                manifest_sha256=manifest_sha256,
                partner=partners[0],
                count=m,
            )

    root_cost = _best(verify_roots, reps) / per
    step = max(1, m // CALIBRATION_PROOFS)
    indices = list(range(0, m, step))
    make = _best(lambda: [tree.proof(i).encode() for i in indices], reps)
    encoded = [tree.proof(i).encode() for i in indices]

    def check_proofs() -> None:
        for i, data in zip(indices, encoded, strict=True):
            verify_inclusion(
                tags[i * TAG_BYTES : (i + 1) * TAG_BYTES], InclusionProof.decode(data), tree.root, m
            )

    check = _best(check_proofs, reps) / len(indices)
    prove, verify_dleq = _dleq_costs(packed, shape.chunk_points, reps)
    return SecurityCalibration(
        digest_per_point=digest / m,
        sign=sign_cost,
        verify=verify_cost,
        consent_verify=consent_cost,
        seal=seal,
        open=open_cost,
        derive=derive,
        keyed_tag_per_output=keyed - plain,
        plain_tag_per_output=plain,
        commit_per_leaf=commit,
        rebuild_per_leaf=rebuild,
        root_verify=root_cost,
        proof_make=make / len(indices),
        proof_verify=check,
        dleq_prove_per_point=prove / m,
        dleq_verify_per_point=verify_dleq / m,
        sample_points=m,
    )


def _dleq_costs(packed: bytes, chunk_points: int, reps: int) -> tuple[float, float]:
    """(proving, verifying) the evaluation of `packed` in chunks, on one worker thread.

    One worker, as every other component is timed on one core; the model scales by the
    contention and divides by the cores like the rest. The proof is timed alone
    (`oprf.prove_evaluation` per chunk): the evaluation it comes with is the round's own.
    """
    before = oprf.workers()
    oprf.set_workers(1)
    stride = chunk_points * POINT_BYTES
    try:
        with oprf.RoundKey.generate() as key:
            out, proofs = oprf.evaluate_and_prove(key, packed, chunk_points)
            public = key.public_key
            pairs = [
                (packed[at : at + stride], out[at : at + stride])
                for at in range(0, len(packed), stride)
            ]
            prove = _best(lambda: [oprf.prove_evaluation(key, c, d) for c, d in pairs], reps)
        verify = _best(lambda: oprf.verify_chunks(public, packed, out, proofs, chunk_points), reps)
    finally:
        oprf.set_workers(before)
    return prove, verify


def security_cost(
    counts: SecurityCounts,
    cal: SecurityCalibration,
    *,
    cores: int,
    contention: float,
    round_seconds: float,
) -> dict[str, Any]:
    """security_seconds, security_share and the CPU seconds of every component."""
    root_verifies = counts.root_verifies_coordinator + counts.root_verifies_nodes
    cpu = {
        "chunk_digests": counts.digested_points * cal.digest_per_point,
        "signatures": counts.signs * cal.sign,
        "chain_verification": counts.chain_verifies * cal.verify,
        "consent_verification": counts.consent_verifies * cal.consent_verify,
        "tag_key": counts.seals * cal.seal
        + counts.opens * cal.open
        + counts.key_derivations * cal.derive,
        "keyed_tags": counts.keyed_tags * cal.keyed_tag_per_output,
        "commitment_build": counts.committed_leaves * cal.commit_per_leaf,
        "coordinator_rebuild": counts.rebuilt_leaves * cal.rebuild_per_leaf,
        "root_verification": root_verifies * cal.root_verify,
        "inclusion_proofs": counts.proofs * (cal.proof_make + cal.proof_verify),
        "evaluation_proofs": counts.proven_points
        * (cal.dleq_prove_per_point + cal.dleq_verify_per_point),
    }
    assert tuple(cpu) == COMPONENTS
    factor = max(1.0, contention)
    total = sum(cpu.values()) * factor
    seconds = total / cores
    return {
        "security_cpu_seconds": total,
        "security_seconds": seconds,
        "security_share": seconds / round_seconds if round_seconds else 0.0,
        "contention": factor,
        "components_cpu_seconds": {k: v * factor for k, v in cpu.items()},
        "counts": asdict(counts) | {"signature_verifies": counts.signature_verifies},
        "calibration": asdict(cal),
    }
