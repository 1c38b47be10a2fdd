"""A network round at the node: blind, evaluate, finalize, then stage what the coordinator found.

DESIGN.md, "The matching round" and "Threat model: an active coordinator". After consent
the node holds a fresh ristretto255 key k and blinding r (`psi_node.oprf.RoundKey`) and
its share of the round's tag key, sealed to every other partner. It then

* blinds its own records (r*H(x)) in an order of its own drawing, and signs what it sent;
* applies k to every other partner's points as the coordinator routes them through, but
  only to chunks that the route's signed statements vouch for and, after the first hop,
  whose DLEQ proof shows the previous evaluator applied the key it committed to in its
  consent; it proves its own evaluation per chunk and signs what it returned;
* turns its own points -- every other key applied, the route checked back to itself --
  into tags keyed with the partners' tag key, and commits to them (a signed Merkle root);
* stages the flagged records the coordinator reports, only when what it reports holds
  against the partners' signed consents and, under `partners` disclosure, an inclusion
  proof in each named co-holder's commitment.

The coordinator's word is never enough: every key comes from the roster this node's
operator accepted. Commit and abort are the shared ones (`psi_node.rounds`).
"""

from __future__ import annotations

import hmac
import random
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final, NamedTuple

import structlog

from kruispunt import hops, wire
from kruispunt.commitments import (
    Commitment,
    CommitmentRefused,
    InclusionProof,
    SignedRoot,
    sign_root,
    verify_inclusion,
    verify_root,
)
from kruispunt.errors import (
    AttackRefused,
    InvalidPoint,
    KruispuntError,
    ProtocolError,
    ResourceLimit,
    UnknownRound,
)
from kruispunt.manifest import VerifiedManifest, verify_consent
from kruispunt.roster import Roster
from kruispunt.tagkey import TagKeyContribution, derive_tag_key, key_check, open_share
from kruispunt.v1 import common_pb2, node_pb2
from psi_node import oprf
from psi_node.oprf import RoundKey
from psi_node.results import StagedResult, discard_staged, retention_deadline, stage_results
from psi_node.round_state import CONSENTED, STAGED, NodeRound, RoundContext, RoundMode

log = structlog.get_logger("psi_node.modes.network")

# Phases a network round passes at a node, between CONSENTED and STAGED.
BLINDED: Final = "blinded"
FINALIZED: Final = "finalized"  # tags made and committed to; none revealed yet
REVEALED: Final = "revealed"  # every partner's commitment received; tags sent
DELIVERING: Final = "delivering"  # results arriving in parts; nothing staged yet

#: (offset, points, chain): a chunk of a stream; the last carries the signed statements.
Chunk = tuple[int, bytes, bytes]
#: (offset, points, chain, proof): an evaluated chunk and its DLEQ proof (none on the last).
Evaluated = tuple[int, bytes, bytes, bytes]


class Received(NamedTuple):
    """A chunk of an evaluate or finalize request stream, as the coordinator relays it.

    `proof` is the previous evaluator's DLEQ proof that `points` is its committed key
    applied to `source`, the chunk it was given (both empty on a batch straight from its
    origin, and on the chain-only batch of an empty set).
    """

    offset: int
    points: bytes
    chain: bytes = b""
    proof: bytes = b""
    source: bytes = b""


@dataclass
class NetworkState:
    """A network round's secrets at this node and what it has checked so far."""

    key: RoundKey
    contribution: TagKeyContribution | None = None
    #: order[k] is the export row behind the k-th point this node sends (drawn per round).
    order: list[int] = field(default_factory=list)
    tag_key: bytes = b""
    #: Every partner's consented set size, from the consents it signed.
    sizes: dict[str, int] = field(default_factory=dict)
    #: Every partner's round public key k*G, from the consents it signed.
    public_keys: dict[str, bytes] = field(default_factory=dict)
    evaluated: set[str] = field(default_factory=set)
    #: This node's tags in sending order, kept until delivery to check co-holder proofs.
    tags: bytes = b""
    commitment: Commitment | None = None
    #: Every partner's Merkle root as this node received it at Reveal, before any tag left.
    roots: dict[str, bytes] = field(default_factory=dict)

    def wipe(self) -> None:
        """Zero the round key and forget the tag key and tags (idempotent)."""
        self.key.wipe()
        self.contribution = None
        self.tag_key = b""
        self.tags = b""
        self.commitment = None


def _start() -> NetworkState:
    return NetworkState(RoundKey.generate())


def _on_consent(rounds: RoundContext, rnd: NodeRound, consent: common_pb2.Consent) -> None:
    """Seal this node's tag-key contribution to every other partner's roster key."""
    state = _state(rnd)
    roster = _roster(rnd)
    me = rounds.config.partner_id
    state.contribution = TagKeyContribution.new(
        rnd.round_id,
        rnd.verified.sha256,
        me,
        {p: roster.partner(p).agreement_key for p in rnd.verified.partners if p != me},
    )
    consent.tag_key_shares.update(state.contribution.sealed)
    # Signed with the rest: every proof of this node's evaluations is checked against it.
    consent.evaluation_public_key = state.key.public_key
    # The permutation is drawn now and never leaves the node: rows travel in no export order.
    state.order = list(range(len(rnd.inputs.records)))
    random.SystemRandom().shuffle(state.order)


def _admits(verified: VerifiedManifest, size: int) -> str | None:
    """A set the manifest's chunking cannot sign (too many chunks) is refused at consent."""
    chunks = -(-size // verified.chunk_points)
    if chunks > hops.MAX_CHUNKS:
        return (
            f"a set of {size} records needs {chunks} chunks of {verified.chunk_points} points; "
            f"a signed batch holds at most {hops.MAX_CHUNKS}"
        )
    return None


MODE: Final = RoundMode("network", start=_start, on_consent=_on_consent, admits=_admits)


def blind(
    rounds: RoundContext, round_id: str, consents: Iterable[common_pb2.SignedConsent]
) -> Iterator[Chunk]:
    """Phase 1: check every partner's consent, then send r*H(x) in this round's own order.

    The last chunk carries the signed origin statement (count and chunk digests).
    """
    rnd = rounds.get_round(round_id, mode=MODE.name, phases=(CONSENTED,))
    state = _state(rnd)
    _accept_consents(rounds, rnd, state, list(consents))
    records = [rnd.inputs.records[i] for i in state.order]
    size = rnd.verified.chunk_points
    me = rounds.config.partner_id
    digests = []
    with rnd.lock:
        for offset in range(0, len(records), size):
            packed = rounds.blind_chunk(records[offset : offset + size], state.key)
            digests.append(hops.chunk_digest(round_id, me, 0, offset // size, packed))
            rnd.last_activity = time.monotonic()
            yield offset, packed, b""
        statement = hops.OriginStatement(
            round_id=round_id,
            manifest_sha256=rnd.verified.sha256,
            origin=me,
            count=len(records),
            chunk_size=size,
            chunk_digests=tuple(digests),
        )
        chain = hops.Chain(hops.sign_origin(rnd.signing_key, statement))
        rnd.phase = BLINDED
    yield len(records), b"", chain.encode()
    rounds.audit_event("records.sent", rnd, "E", set_size=len(records))
    log.info("blinded set sent", round_id=round_id, points=len(records))


def evaluate(
    rounds: RoundContext, round_id: str, origin: str, step: int, batches: Iterable[Received]
) -> Iterator[Evaluated]:
    """Phase 2: apply this node's key to another partner's points, order kept, and prove it.

    Only chunks that the route's signed statements vouch for, and (after step 1) whose
    proof verifies against the previous evaluator's committed key, are evaluated. Every
    chunk returned carries this node's DLEQ proof; the last carries the statements with
    this node's own added (its proof digest included).
    """
    rnd = rounds.get_round(round_id, mode=MODE.name, phases=(BLINDED,))
    state = _state(rnd)
    if origin == rounds.config.partner_id or origin not in rnd.verified.partners:
        raise AttackRefused("origin is not another partner of this round")
    if origin in state.evaluated:
        raise AttackRefused("this partner's set was already evaluated in this round")
    state.evaluated.add(origin)
    chain, expected = None, None
    size = rnd.verified.chunk_points
    digests: list[bytes] = []
    proofs: list[bytes] = []
    checks = _ProofChecks(state.public_keys)
    done = 0
    for offset, packed, carried, proof, source in batches:
        # What is malformed is refused as such; what is well formed must also be signed.
        count = wire.check_packed(packed, wire.POINT_BYTES)
        if offset != done:
            raise ProtocolError("batch offset out of order")
        if done + count > rnd.verified.purpose.max_set_size:
            raise ResourceLimit("more points than the purpose's maximum set size")
        if expected is None:
            chain, expected = _verify_route(rounds, rnd, state, origin, step, carried)
        elif carried:
            raise AttackRefused("signed statements arrive on the first batch only")
        if offset % size:
            raise AttackRefused("batch does not start at a chunk the origin signed")
        expected.check_chunk(offset // size, packed)
        done += count
        if not checks.holds(expected, offset // size, packed, proof, source):
            continue  # no point of a chunk that fails its proof is used
        out, made = rounds.evaluate_chunk(state.key, packed)
        digests.append(hops.chunk_digest(round_id, origin, step, offset // size, out))
        proofs.append(made)
        rnd.last_activity = time.monotonic()
        yield offset, out, b"", made
    if chain is None or expected is None:
        raise AttackRefused("evaluate stream carried no signed statements")
    expected.finish()
    checks.finish(expected)
    statement = expected.hop_statement(
        digests, proof_digest=hops.proofs_digest(round_id, origin, step, proofs)
    )
    signed = hops.sign_hop(rnd.signing_key, statement)
    yield done, b"", chain.extend(signed).encode(), b""
    log.info("evaluated", round_id=round_id, origin=origin, points=done)


def finalize(rounds: RoundContext, round_id: str, batches: Iterable[Received]) -> Iterator[bytes]:
    """Phase 3: own points with every other key in, the route checked: make the keyed tags
    and answer only the signed commitment to them (root and tag-key check).

    The tags stay here until every partner's commitment is fixed (`reveal`): a node that
    saw another's tags first could otherwise commit to a copy and pose as a co-holder.
    Every chunk's proof by the last evaluator is checked before the chunk is used.
    """
    rnd = rounds.get_round(round_id, mode=MODE.name, phases=(BLINDED,))
    state = _state(rnd)
    me = rounds.config.partner_id
    records = [rnd.inputs.records[i] for i in state.order]
    size = rnd.verified.chunk_points
    expected = None
    tags = bytearray()
    checks = _ProofChecks(state.public_keys)
    try:
        for offset, packed, carried, proof, source in batches:
            count = wire.check_packed(packed, wire.POINT_BYTES)
            done = len(tags) // wire.TAG_BYTES
            if offset != done or done + count > len(records):
                raise ProtocolError("finalize batch does not match this node's set")
            if expected is None:
                step = len(rnd.verified.partners)
                _, expected = _verify_route(rounds, rnd, state, me, step, carried)
            elif carried:
                raise AttackRefused("signed statements arrive on the first batch only")
            if offset % size:
                raise AttackRefused("batch does not start at a chunk this node signed")
            expected.check_chunk(offset // size, packed)
            if not checks.holds(expected, offset // size, packed, proof, source):
                # Nothing of a chunk that fails its proof is used; the place is kept.
                tags += bytes(count * wire.TAG_BYTES)
                continue
            tags += oprf.unblind_and_keyed_tag(
                records[offset : offset + count], state.key, packed, state.tag_key
            )
            rnd.last_activity = time.monotonic()
        if expected is None:
            raise AttackRefused("finalize stream carried no signed statements")
        expected.finish()
        checks.finish(expected)
    except BaseException:
        state.wipe()  # a failed finalize keeps no key
        raise
    state.key.wipe()  # the key's work is done; nothing later needs it
    state.tags = bytes(tags)
    tags.clear()  # this generator lives until its stream ends: free the copy now
    # The coordinator answers the inclusion proofs: this node keeps only root and salts.
    state.commitment = Commitment.build(state.tags, proofs=False)
    root = sign_root(
        rnd.signing_key,
        round_id=round_id,
        manifest_sha256=rnd.verified.sha256,
        partner=me,
        count=state.commitment.count,
        root=state.commitment.root,
        key_check=key_check(state.tag_key, round_id),
    )
    rnd.phase = FINALIZED
    yield root.encode()
    log.info("finalized", round_id=round_id, tags=len(records))


def reveal(
    rounds: RoundContext, round_id: str, roots: Mapping[str, bytes]
) -> Iterator[tuple[int, bytes, bytes]]:
    """Phase 4: check every partner's signed commitment, then send tags and their salts.

    Each root must verify against its partner's roster key for its consented count, this
    node's own must be the one it signed, and every tag-key check must equal this node's:
    partners that derived different tag keys (a share sealed inconsistently) would never
    match, so the round stops here, before a single tag is revealed.
    """
    rnd = rounds.get_round(round_id, mode=MODE.name, phases=(FINALIZED,))
    state = _state(rnd)
    assert state.commitment is not None
    me = rounds.config.partner_id
    partners = rnd.verified.partners
    if set(roots) != set(partners):
        raise AttackRefused("the commitments forwarded are not exactly this round's partners'")
    roster = _roster(rnd)
    mine = key_check(state.tag_key, round_id)
    verified: dict[str, bytes] = {}
    differ = []
    for pid in partners:
        try:
            signed = SignedRoot.decode(roots[pid])
            verified[pid] = verify_root(
                signed,
                roster.signing_keys(pid, rounds.now()),
                round_id=round_id,
                manifest_sha256=rnd.verified.sha256,
                partner=pid,
                count=state.sizes[pid],
            )
        except (CommitmentRefused, KruispuntError):
            raise AttackRefused(f"the tag commitment of {pid} does not verify") from None
        if not hmac.compare_digest(signed.key_check, mine):
            differ.append(pid)
    if verified[me] != state.commitment.root:
        raise AttackRefused("the commitment forwarded for this node is not the one it signed")
    if differ:
        raise AttackRefused(
            "partners derived another tag key than this node (" + ", ".join(differ) + "): "
            "a tag-key share was sealed inconsistently"
        )
    state.roots = verified
    rnd.phase = REVEALED
    stride = rnd.verified.chunk_points * wire.TAG_BYTES
    for start in range(0, len(state.tags), stride):
        yield (
            start // wire.TAG_BYTES,
            state.tags[start : start + stride],
            state.commitment.salts[start : start + stride],
        )
    rnd.last_activity = time.monotonic()
    log.info("tags revealed", round_id=round_id, tags=len(state.tags) // wire.TAG_BYTES)


def deliver(
    rounds: RoundContext, parts: Iterator[node_pb2.RoundResults]
) -> node_pb2.DeliveryReceipt:
    """Stage this node's results, once they hold against what the partners signed.

    They come in parts (`RoundResults`, each well under the message limit): the first
    names the round, the set sizes and the total count, every part the next flagged
    records. Each part is checked as it arrives -- under `partners` disclosure each
    co-holder proof against the root that co-holder signed before any tag was revealed --
    and its proofs are dropped; nothing is staged before the last part. One delivery at a
    time: the round is `DELIVERING` until it is staged, and back to `REVEALED` if a part
    is refused without the round being dropped.
    """
    first = next(parts, None)
    if first is None:
        raise ProtocolError("empty deliver stream")
    round_id = first.round_id
    rnd = rounds.get_round(round_id, mode=MODE.name, phases=(REVEALED,), then=DELIVERING)
    try:
        state = _state(rnd)
        if dict(first.set_sizes) != state.sizes:
            raise AttackRefused("set sizes differ from the partners' signed consents")
        taken = _Delivery(rnd, state, rounds.config.partner_id, first.flagged_count)
        taken.add(first)
        for part in parts:
            if part.round_id != round_id:
                raise ProtocolError("a deliver stream carries one round only")
            if part.set_sizes or part.flagged_count:
                raise ProtocolError("only the first part carries the set sizes and the count")
            rounds.get_round(round_id)  # still in flight: not aborted meanwhile
            taken.add(part)
        indices, coholders = taken.finish()
        staged = _stage(rounds, rnd, state, first, indices, coholders)
    except BaseException:
        if rnd.phase == DELIVERING:
            rnd.phase = REVEALED
        raise
    state.tags = b""
    rnd.staged = staged
    rnd.phase = STAGED
    rnd.last_activity = time.monotonic()
    try:
        rounds.get_round(round_id)
    except UnknownRound:
        # Aborted while this node was staging: the abort's removal may have come first.
        discard_staged(rounds.config.results_dir, round_id)
        raise
    rounds.audit_event(
        "results.received",
        rnd,
        "C",
        flagged_count=len(indices),
        set_sizes=dict(first.set_sizes),
    )
    return node_pb2.DeliveryReceipt(
        round_id=rnd.round_id,
        flagged_count=len(indices),
        result_path=str(staged.final_csv),
        result_sha256=staged.sha256,
        node_audit_head=rounds.audit_head(),
    )


def _stage(
    rounds: RoundContext,
    rnd: NodeRound,
    state: NetworkState,
    first: node_pb2.RoundResults,
    indices: list[int],
    coholders: list[list[str]] | None,
) -> StagedResult:
    """Write the flagged records, in the export's own row order, as staged results."""
    purpose = rnd.verified.purpose
    now = rounds.now()
    values = rnd.inputs.values
    # Back to export order: the result file lists rows as the partner's export does.
    ranked = sorted(range(len(indices)), key=lambda k: state.order[indices[k]])
    row_values = [values[state.order[indices[k]]] for k in ranked]
    if coholders is not None:
        coholders = [coholders[k] for k in ranked]
    return stage_results(
        rounds.config.results_dir,
        rnd.round_id,
        columns=rnd.inputs.columns,
        rows=row_values,
        coholders=coholders,
        metadata={
            "round_id": rnd.round_id,
            "purpose": purpose.id,
            "purpose_version": purpose.version,
            "threshold": purpose.threshold,
            "disclosure": purpose.disclosure,
            "flagged_count": len(indices),
            "set_sizes": dict(sorted(first.set_sizes.items())),
            "written_at": now.isoformat(),
            "delete_after": retention_deadline(now, purpose.result_retention_days).isoformat(),
        },
    )


class _Delivery:
    """The parts of one delivery as they arrive: each checked, only what is staged kept."""

    def __init__(self, rnd: NodeRound, state: NetworkState, me: str, count: int) -> None:
        self.rnd = rnd
        self.state = state
        self.me = me
        self.count = count
        self.size = len(rnd.inputs.records)
        if count > self.size:
            raise ProtocolError("more flagged records than this node's set holds")
        self.partners_disclosed = rnd.verified.purpose.disclosure == "partners"
        self.indices: list[int] = []
        self.coholders: list[list[str]] = []
        self._flagged = bytearray(self.size)

    def add(self, part: node_pb2.RoundResults) -> None:
        indices = list(part.flagged_indices)
        if len(self.indices) + len(indices) > self.count:
            raise ProtocolError("the parts carry more flagged indices than the count")
        for i in indices:
            if i >= self.size or self._flagged[i]:
                raise ProtocolError("flagged indices do not fit this node's set")
            self._flagged[i] = 1
        if self.partners_disclosed:
            masks = list(part.holder_masks)
            if len(masks) != len(indices):
                raise ProtocolError("holder masks do not match the flagged indices")
            self.coholders.extend(
                _checked_coholders(
                    self.rnd, self.state, self.me, len(self.indices), indices, masks, part.proofs
                )
            )
        elif part.holder_masks or part.proofs:
            raise ProtocolError("co-holders sent for a purpose that discloses counts only")
        self.indices.extend(indices)

    def finish(self) -> tuple[list[int], list[list[str]] | None]:
        if len(self.indices) != self.count:
            raise ProtocolError("flagged count does not match the indices")
        return self.indices, self.coholders if self.partners_disclosed else None


# -- checks against the roster ---------------------------------------------------------


def _accept_consents(
    rounds: RoundContext,
    rnd: NodeRound,
    state: NetworkState,
    consents: list[common_pb2.SignedConsent],
) -> None:
    """Verify every partner's forwarded consent and derive the round's tag key from them."""
    roster = _roster(rnd)
    partners = rnd.verified.partners
    me = rounds.config.partner_id
    if len(consents) != len(partners):
        raise AttackRefused(
            f"{len(consents)} consents forwarded for a round of {len(partners)} partners"
        )
    contributions: dict[str, bytes] = {}
    sizes: dict[str, int] = {}
    public_keys: dict[str, bytes] = {}
    for pid, signed in zip(partners, consents, strict=True):
        try:
            consent = verify_consent(
                signed,
                roster.signing_keys(pid, rounds.now()),
                round_id=rnd.round_id,
                partner_id=pid,
                manifest_sha256=rnd.verified.sha256,
            )
        except KruispuntError:
            raise AttackRefused(f"the consent forwarded for {pid} does not verify") from None
        if not consent.granted or consent.roster_sha256 != roster.digest:
            raise AttackRefused(f"the consent forwarded for {pid} is not a consent to this round")
        if consent.set_size > rnd.verified.purpose.max_set_size:
            raise AttackRefused(f"{pid} consented to more records than the purpose allows")
        if not _is_point(consent.evaluation_public_key):
            raise AttackRefused(f"the consent forwarded for {pid} commits to no evaluation key")
        sizes[pid] = consent.set_size
        public_keys[pid] = consent.evaluation_public_key
        if pid == me:
            continue
        try:
            contributions[pid] = open_share(
                consent.tag_key_shares[me],
                round_id=rnd.round_id,
                manifest_sha256=rnd.verified.sha256,
                sender=pid,
                recipient=me,
                recipient_key=rounds.agreement_key,
            )
        except (KeyError, KruispuntError):
            raise AttackRefused(f"the tag-key share from {pid} does not open") from None
    if sizes.get(me) != len(rnd.inputs.records) or public_keys[me] != state.key.public_key:
        raise AttackRefused("the consent forwarded for this node is not the one it gave")
    assert state.contribution is not None
    contributions[me] = state.contribution.secret
    state.tag_key = derive_tag_key(contributions, partners, rnd.round_id, rnd.verified.sha256)
    state.sizes = sizes
    state.public_keys = public_keys
    state.contribution = None


def _verify_route(
    rounds: RoundContext,
    rnd: NodeRound,
    state: NetworkState,
    origin: str,
    step: int,
    carried: bytes,
) -> tuple[hops.Chain, hops.ExpectedInput]:
    """The route's chain, verified against the roster up to this step, and its checker."""
    if not carried:
        raise AttackRefused("the batch carries no signed statements of its route")
    roster = _roster(rnd)
    chain = hops.Chain.decode(carried)
    expected = hops.verify_chain(
        chain,
        round_id=rnd.round_id,
        manifest_sha256=rnd.verified.sha256,
        partners=rnd.verified.partners,
        origin=origin,
        evaluator=rounds.config.partner_id,
        step=step,
        signing_keys={p: roster.signing_keys(p, rounds.now()) for p in rnd.verified.partners},
        expected_count=state.sizes[origin],
    )
    return chain, expected


class _ProofChecks:
    """The DLEQ proof of every chunk a stream relays, checked before the chunk is used.

    A batch straight from its origin carries neither proof nor source. Otherwise the
    source must be the chunk the previous evaluator was signed as given, and the proof
    valid for the public key in that evaluator's signed consent. A chunk whose proof
    fails is not used, but the stream is read to its end: only once the proofs relayed
    are known to be those the evaluator signed (`ExpectedInput.finish`) does the refusal
    name the evaluator, so that a coordinator cannot pin a proof of its own on a node.
    """

    def __init__(self, public_keys: Mapping[str, bytes]) -> None:
        self._public_keys = public_keys
        self.failed: int | None = None

    def holds(
        self, expected: hops.ExpectedInput, index: int, packed: bytes, proof: bytes, source: bytes
    ) -> bool:
        """Whether chunk `index` may be used; AttackRefused if its proof or source is missing
        or its source is not what was signed, InvalidPoint if a point is no group element."""
        prover = expected.prover
        if prover is None:
            if proof or source:
                raise AttackRefused("a batch straight from its origin carries no evaluation proof")
            return True
        if len(proof) != oprf.PROOF_BYTES:
            raise AttackRefused(f"chunk {index} arrived without the proof of {prover}'s evaluation")
        expected.check_source(index, source)
        expected.record_proof(index, proof)
        points = len(packed) // wire.POINT_BYTES
        if oprf.verify_chunks(self._public_keys[prover], source, packed, [proof], points):
            return True
        # A point that is no group element is refused as such, so that the coordinator's
        # check of what it relayed names its signer as before.
        wire.validate_points(packed)
        if self.failed is None:
            self.failed = index
        return False

    def finish(self, expected: hops.ExpectedInput) -> None:
        """After `expected.finish()`: AttackRefused naming the evaluator if a proof failed."""
        if self.failed is not None:
            raise AttackRefused(
                f"{expected.prover} evaluated chunk {self.failed} of {expected.origin}'s set "
                f"at step {expected.step - 1} with another key than it committed to: its "
                f"proof fails"
            )


def _checked_coholders(
    rnd: NodeRound,
    state: NetworkState,
    me: str,
    start: int,
    indices: list[int],
    masks: list[int],
    proofs: Iterable[node_pb2.CoholderProof],
) -> list[list[str]]:
    """Co-holders per flagged record of one part (its first is the `start`-th flagged
    record), each backed by an inclusion proof in the commitment that co-holder made
    before any tag was revealed (as this node received it)."""
    partners = rnd.verified.partners
    mine = 1 << partners.index(me)
    roots = state.roots
    proven: dict[tuple[int, str], InclusionProof] = {}
    for item in proofs:
        k = item.flagged - start
        if not 0 <= k < len(indices) or (k, item.partner) in proven:
            raise AttackRefused(
                "a co-holder proof names no flagged record of its part, or one twice"
            )
        proven[(k, item.partner)] = InclusionProof.decode(item.proof)
    out = []
    for k, (index, mask) in enumerate(zip(indices, masks, strict=True)):
        if mask >> len(partners):
            raise AttackRefused("a holder mask names partners outside this round")
        if not mask & mine:
            raise AttackRefused("a holder mask lacks this node, which holds the record")
        holders = [p for b, p in enumerate(partners) if mask >> b & 1]
        if len(holders) < rnd.verified.purpose.threshold:
            raise AttackRefused("a flagged record has fewer holders than the threshold")
        tag = state.tags[index * wire.TAG_BYTES : (index + 1) * wire.TAG_BYTES]
        for holder in holders:
            if holder == me:
                continue
            proof = proven.pop((k, holder), None)
            if proof is None:
                raise AttackRefused(f"no proof that {holder} holds a record it is named for")
            try:
                verify_inclusion(tag, proof, roots[holder], state.sizes[holder])
            except CommitmentRefused:
                raise AttackRefused(f"the proof that {holder} holds a record fails") from None
        out.append([h for h in holders if h != me])
    if proven:
        raise AttackRefused("co-holder proofs for partners no mask names")
    return out


def _is_point(encoding: bytes) -> bool:
    """Whether `encoding` is one canonical, non-identity ristretto255 point."""
    if len(encoding) != wire.POINT_BYTES:
        return False
    try:
        wire.validate_points(encoding)
    except InvalidPoint:
        return False
    return True


def _roster(rnd: NodeRound) -> Roster:
    if rnd.roster is None:
        raise ProtocolError("this round has no accepted roster")
    return rnd.roster


def _state(rnd: NodeRound) -> NetworkState:
    """The round's network state; a network round holds one from consent to commit."""
    state = rnd.state
    if not isinstance(state, NetworkState):
        raise ProtocolError("this round holds no network key")
    return state
