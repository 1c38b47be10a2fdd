"""Hop-by-hop authenticated batches: every step of a blinded set's route is signed and checked.

DESIGN.md, "Threat model: an active coordinator", "Authenticated hops". The coordinator
relays every batch, so without this it could ride points of its own choosing along a
batch, swap a batch for another or skip a node. Here every party that touches a batch
signs what it did, and every receiver checks the whole chain back to the origin against
the roster's keys before it evaluates a single point.

The route of origin o, at ring position p_o in the manifest's partner order
``partners[0..n-1]``:

* step 0: o blinds its set and signs an `OriginStatement` (count, chunk digests);
* step s = 1..n-1: ``partners[(p_o - s) mod n]`` applies its key and signs a
  `HopStatement` (digest of what it received, digests of what it returned). This is the
  orchestrator's schedule read the other way: at step s node j works on the set of node
  (j + s) mod n;
* step n: o verifies the full chain (all n-1 hops) and finalizes.

A receiver calls `verify_chain` with the step it is about to perform; the returned
`ExpectedInput` checks every chunk as it arrives (`check_chunk`), so a bad chunk is
refused before any more work, and `finish()` refuses a batch with chunks missing. An
evaluator then builds its own statement with `ExpectedInput.hop_statement`, which is only
possible once every input chunk has been checked. A node evaluates each (origin, step) at
most once per round: the chain for a step is the same every time it is asked.

Encodings (all integers big-endian; ``lp(x)`` is a u32 length followed by x; strings are
ASCII; a digest list is a u32 count followed by that many 32-byte digests)::

    OriginStatement  lp("kruispunt/hops/origin/v1") lp(round_id) lp(manifest_sha256)
                     lp(origin) u64 count u32 chunk_size digests(chunk_digests)
    HopStatement     lp("kruispunt/hops/hop/v1") lp(round_id) lp(manifest_sha256)
                     lp(origin) u32 step lp(signer) lp(input_digest)
                     digests(output_chunk_digests) lp(proof_digest)
    Chain            lp("kruispunt/hops/chain/v1") lp(origin statement) signature[64]
                     u32 hops, then per hop: lp(hop statement) signature[64]
    chunk digest     SHA-256(lp("kruispunt/hops/chunk/v1") lp(round_id) lp(origin)
                     u32 step u32 index u32 points || packed points)
    list digest      SHA-256(lp("kruispunt/hops/outputs/v1") lp(round_id) lp(origin)
                     u32 step || digests(chunk digests))
    proof digest     SHA-256(lp("kruispunt/hops/proofs/v1") lp(round_id) lp(origin)
                     u32 step u32 count || lp(proof) per chunk)

The origin statement is signed under `CONTEXT_ORIGIN`, a hop statement under `CONTEXT_HOP`
(`kruispunt.signing` adds the domain separation). Decoding is strict (no trailing bytes,
every field bounded), so a decoded statement re-encodes to the exact bytes that were signed.
``proof_digest`` is the digest of the hop's batched DLEQ proofs, one per output chunk
(RFC 9497, section 2.2): each proves that the chunk is the evaluator's committed key
(``k*G`` in its signed consent) applied to the chunk it was given. `verify_chain` refuses a
hop statement without one. The next receiver is sent, with every chunk, the chunk the
evaluator was given (`ExpectedInput.check_source`) and the proof (`record_proof`), checks
the proof itself (the group arithmetic is the node's, `psi_node.oprf.verify_chunks`) and,
at `finish()`, that the proofs it was relayed are those the evaluator signed: a failed
proof names the evaluator, and the coordinator cannot pin a proof of its own on one.

Every refusal raises `HopRefused`, whose reason names steps, chunk indices, counts and
partner ids, never point bytes.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kruispunt import signing
from kruispunt.errors import AttackRefused, SignatureInvalid
from kruispunt.manifest import is_round_id
from kruispunt.purpose import ID_RE, MAX_PARTNERS
from kruispunt.wire import POINT_BYTES

__all__ = [
    "CONTEXT_HOP",
    "CONTEXT_ORIGIN",
    "DIGEST_BYTES",
    "MAX_CHAIN_BYTES",
    "MAX_CHUNKS",
    "MAX_CHUNK_POINTS",
    "MAX_HOPS",
    "Chain",
    "ExpectedInput",
    "HopRefused",
    "HopStatement",
    "OriginStatement",
    "SignedHop",
    "SignedOrigin",
    "chunk_digest",
    "chunk_digests",
    "outputs_digest",
    "proofs_digest",
    "sign_hop",
    "sign_origin",
    "verify_chain",
]

CONTEXT_ORIGIN = b"kruispunt/hops/origin/v1"
CONTEXT_HOP = b"kruispunt/hops/hop/v1"
_LABEL_CHAIN = b"kruispunt/hops/chain/v1"
_LABEL_CHUNK = b"kruispunt/hops/chunk/v1"
_LABEL_OUTPUTS = b"kruispunt/hops/outputs/v1"
_LABEL_PROOFS = b"kruispunt/hops/proofs/v1"

DIGEST_BYTES = 32
"""SHA-256: chunk digests, list digests, the proof digest."""

MAX_CHUNK_POINTS = 65536
"""Largest chunk a statement may declare: 2 MiB of points, well inside one gRPC message."""

MAX_CHUNKS = 4096
"""Most chunks per statement: 16M points at the default 4096 points per chunk."""

MAX_HOPS = MAX_PARTNERS - 1
"""A round has at most MAX_PARTNERS partners, so a batch visits at most this many others."""

# Labels, ids and fixed fields take well under 1 KiB; the digest list is the rest.
_MAX_STATEMENT_BYTES = 1024 + MAX_CHUNKS * DIGEST_BYTES
_MAX_ID_BYTES = 64
_SIGNATURE_BYTES = signing.SIGNATURE_BYTES

MAX_CHAIN_BYTES = (
    4 + len(_LABEL_CHAIN) + 4 + (MAX_HOPS + 1) * (4 + _MAX_STATEMENT_BYTES + _SIGNATURE_BYTES)
)
"""An encoded chain longer than this is refused before parsing (about 8.4 MiB)."""

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_STEP_INDEX_POINTS = struct.Struct(">III")


class HopRefused(AttackRefused):
    """A batch or its chain of signed statements does not fit the round; `reason` says why.

    The reason names steps, chunk indices, counts and partner ids only, never point
    bytes, so it is safe in logs, audit rows and errors sent over the wire.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"hop chain refused: {reason}")
        self.reason = reason


def _lp(data: bytes) -> bytes:
    return _U32.pack(len(data)) + data


def _digest_list(digests: Sequence[bytes]) -> bytes:
    return _U32.pack(len(digests)) + b"".join(digests)


def _chunks_for(count: int, chunk_size: int) -> int:
    return -(-count // chunk_size)


def _id_problem(value: object, field: str) -> str | None:
    if not isinstance(value, str) or ID_RE.fullmatch(value) is None:
        return f"{field} is not a well-formed partner id"
    return None


def _digest_problem(value: object, field: str) -> str | None:
    if not isinstance(value, bytes) or len(value) != DIGEST_BYTES:
        return f"{field} is not a {DIGEST_BYTES}-byte digest"
    return None


def _digests_problem(values: tuple[object, ...], field: str) -> str | None:
    if len(values) > MAX_CHUNKS:
        return f"{field} lists more than {MAX_CHUNKS} chunks"
    for value in values:
        if not isinstance(value, bytes) or len(value) != DIGEST_BYTES:
            return f"{field} holds an item that is not a {DIGEST_BYTES}-byte digest"
    return None


def _binding_problem(round_id: object, manifest_sha256: object) -> str | None:
    if not isinstance(round_id, str) or not is_round_id(round_id):
        return "round id is malformed"
    return _digest_problem(manifest_sha256, "manifest digest")


def _first(*problems: str | None) -> str | None:
    return next((p for p in problems if p is not None), None)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class OriginStatement:
    """What an origin blinded: its count and the digest of every chunk, signed by the origin.

    Construction checks every field (ValueError names the field), including that the
    digest list has exactly one entry per chunk of `chunk_size` points.
    """

    round_id: str
    manifest_sha256: bytes
    origin: str
    count: int
    chunk_size: int
    chunk_digests: tuple[bytes, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "chunk_digests", tuple(self.chunk_digests))
        problem = _first(
            _binding_problem(self.round_id, self.manifest_sha256),
            _id_problem(self.origin, "origin"),
            _digests_problem(self.chunk_digests, "chunk digests"),
        )
        if problem is None:
            problem = self._chunking_problem()
        if problem is not None:
            raise ValueError(problem)

    def _chunking_problem(self) -> str | None:
        if not _is_int(self.count) or self.count < 0:
            return "count must be a non-negative integer"
        if not _is_int(self.chunk_size) or not 1 <= self.chunk_size <= MAX_CHUNK_POINTS:
            return f"chunk size must be 1..{MAX_CHUNK_POINTS} points"
        expected = _chunks_for(self.count, self.chunk_size)
        if len(self.chunk_digests) != expected:
            return (
                f"chunking is inconsistent: {len(self.chunk_digests)} chunk digests for "
                f"{self.count} points in chunks of {self.chunk_size} (expected {expected})"
            )
        return None

    @classmethod
    def for_points(
        cls,
        *,
        round_id: str,
        manifest_sha256: bytes,
        origin: str,
        packed: bytes,
        chunk_size: int,
    ) -> OriginStatement:
        """The statement an origin signs for its blinded batch `packed` (step 0)."""
        return cls(
            round_id=round_id,
            manifest_sha256=manifest_sha256,
            origin=origin,
            count=len(packed) // POINT_BYTES,
            chunk_size=chunk_size,
            chunk_digests=chunk_digests(round_id, origin, 0, packed, chunk_size),
        )

    def encode(self) -> bytes:
        """The canonical bytes this statement is signed as (see the module docstring)."""
        return b"".join(
            (
                _lp(CONTEXT_ORIGIN),
                _lp(self.round_id.encode("ascii")),
                _lp(self.manifest_sha256),
                _lp(self.origin.encode("ascii")),
                _U64.pack(self.count),
                _U32.pack(self.chunk_size),
                _digest_list(self.chunk_digests),
            )
        )

    @classmethod
    def decode(cls, data: bytes) -> OriginStatement:
        """Parse `encode()`'s bytes strictly; HopRefused names the malformed field."""
        what = "origin statement"
        reader = _Reader(data, what)
        reader.label(CONTEXT_ORIGIN)
        round_id = reader.text("round id")
        manifest_sha256 = reader.blob("manifest digest", DIGEST_BYTES)
        origin = reader.text("origin")
        count = reader.u64()
        chunk_size = reader.u32()
        digests = reader.digests("chunk digests")
        reader.end()
        try:
            return cls(round_id, manifest_sha256, origin, count, chunk_size, digests)
        except ValueError as exc:
            raise HopRefused(f"malformed {what}: {exc}") from None


@dataclass(frozen=True)
class HopStatement:
    """What one evaluator received and returned at one step, signed by that evaluator.

    `input_digest` is the list digest (`outputs_digest`) of the previous statement's
    chunk digests; `output_chunk_digests` are the digests of the chunks it returned.
    `proof_digest` is empty or the 32-byte digest of this hop's evaluation proof.
    """

    round_id: str
    manifest_sha256: bytes
    origin: str
    step: int
    signer: str
    input_digest: bytes
    output_chunk_digests: tuple[bytes, ...]
    proof_digest: bytes = b""

    def __post_init__(self) -> None:
        object.__setattr__(self, "output_chunk_digests", tuple(self.output_chunk_digests))
        step_problem = None
        if not _is_int(self.step) or not 1 <= self.step <= MAX_HOPS:
            step_problem = f"step must be 1..{MAX_HOPS}"
        proof_problem = None
        if not isinstance(self.proof_digest, bytes) or len(self.proof_digest) not in (
            0,
            DIGEST_BYTES,
        ):
            proof_problem = f"proof digest must be empty or {DIGEST_BYTES} bytes"
        problem = _first(
            _binding_problem(self.round_id, self.manifest_sha256),
            _id_problem(self.origin, "origin"),
            step_problem,
            _id_problem(self.signer, "signer"),
            _digest_problem(self.input_digest, "input digest"),
            _digests_problem(self.output_chunk_digests, "output chunk digests"),
            proof_problem,
        )
        if problem is not None:
            raise ValueError(problem)

    def encode(self) -> bytes:
        """The canonical bytes this statement is signed as (see the module docstring)."""
        return b"".join(
            (
                _lp(CONTEXT_HOP),
                _lp(self.round_id.encode("ascii")),
                _lp(self.manifest_sha256),
                _lp(self.origin.encode("ascii")),
                _U32.pack(self.step),
                _lp(self.signer.encode("ascii")),
                _lp(self.input_digest),
                _digest_list(self.output_chunk_digests),
                _lp(self.proof_digest),
            )
        )

    @classmethod
    def decode(cls, data: bytes) -> HopStatement:
        """Parse `encode()`'s bytes strictly; HopRefused names the malformed field."""
        what = "hop statement"
        reader = _Reader(data, what)
        reader.label(CONTEXT_HOP)
        round_id = reader.text("round id")
        manifest_sha256 = reader.blob("manifest digest", DIGEST_BYTES)
        origin = reader.text("origin")
        step = reader.u32()
        signer = reader.text("signer")
        input_digest = reader.blob("input digest", DIGEST_BYTES)
        outputs = reader.digests("output chunk digests")
        proof_digest = reader.blob("proof digest", DIGEST_BYTES)
        reader.end()
        try:
            return cls(
                round_id, manifest_sha256, origin, step, signer, input_digest, outputs, proof_digest
            )
        except ValueError as exc:
            raise HopRefused(f"malformed {what}: {exc}") from None


@dataclass(frozen=True)
class SignedOrigin:
    """An origin statement with the origin's Ed25519 signature over its encoding."""

    statement: OriginStatement
    signature: bytes


@dataclass(frozen=True)
class SignedHop:
    """A hop statement with the evaluator's Ed25519 signature over its encoding."""

    statement: HopStatement
    signature: bytes


@dataclass(frozen=True)
class Chain:
    """The origin's signed statement and the signed hop statements so far, in step order."""

    origin: SignedOrigin
    hops: tuple[SignedHop, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "hops", tuple(self.hops))
        if len(self.hops) > MAX_HOPS:
            raise ValueError(f"a chain holds at most {MAX_HOPS} hop statements")

    def extend(self, hop: SignedHop) -> Chain:
        """This chain with `hop` appended (what an evaluator passes on with its output)."""
        return Chain(self.origin, (*self.hops, hop))

    def encode(self) -> bytes:
        """The compact transport encoding (see the module docstring)."""
        parts = [
            _lp(_LABEL_CHAIN),
            _lp(self.origin.statement.encode()),
            self.origin.signature,
            _U32.pack(len(self.hops)),
        ]
        for hop in self.hops:
            parts += (_lp(hop.statement.encode()), hop.signature)
        return b"".join(parts)

    @classmethod
    def decode(cls, data: bytes) -> Chain:
        """Parse `encode()`'s bytes strictly and within bounds; HopRefused says what is wrong.

        Decoding checks form only; `verify_chain` checks signatures and the route.
        """
        if not isinstance(data, bytes):
            raise TypeError(f"chain must be bytes, not {type(data).__name__}")
        if len(data) > MAX_CHAIN_BYTES:
            raise HopRefused(f"chain is {len(data)} bytes, more than the {MAX_CHAIN_BYTES} allowed")
        reader = _Reader(data, "chain")
        reader.label(_LABEL_CHAIN)
        origin_statement = OriginStatement.decode(reader.blob("origin statement"))
        origin = SignedOrigin(origin_statement, reader.fixed(_SIGNATURE_BYTES))
        count = reader.u32()
        if count > MAX_HOPS:
            raise HopRefused(f"malformed chain: {count} hop statements, at most {MAX_HOPS}")
        hops = []
        for _ in range(count):
            hop_statement = HopStatement.decode(reader.blob("hop statement"))
            hops.append(SignedHop(hop_statement, reader.fixed(_SIGNATURE_BYTES)))
        reader.end()
        return cls(origin, tuple(hops))


class _Reader:
    """A bounds-checked cursor over untrusted bytes; every defect is a HopRefused."""

    def __init__(self, data: bytes, what: str) -> None:
        self._data = data
        self._pos = 0
        self._what = what

    def _refuse(self, detail: str) -> HopRefused:
        return HopRefused(f"malformed {self._what}: {detail}")

    def fixed(self, size: int) -> bytes:
        end = self._pos + size
        if end > len(self._data):
            raise self._refuse("truncated")
        out = self._data[self._pos : end]
        self._pos = end
        return out

    def u32(self) -> int:
        value: int = _U32.unpack(self.fixed(_U32.size))[0]
        return value

    def u64(self) -> int:
        value: int = _U64.unpack(self.fixed(_U64.size))[0]
        return value

    def blob(self, field: str, limit: int = _MAX_STATEMENT_BYTES) -> bytes:
        size = self.u32()
        if size > limit:
            raise self._refuse(f"{field} is {size} bytes, at most {limit}")
        return self.fixed(size)

    def text(self, field: str) -> str:
        raw = self.blob(field, _MAX_ID_BYTES)
        if not raw.isascii():
            raise self._refuse(f"{field} is not ASCII")
        return raw.decode("ascii")

    def label(self, expected: bytes) -> None:
        if self.blob("label", 64) != expected:
            raise self._refuse("wrong domain label (not this kind of message, or another version)")

    def digests(self, field: str) -> tuple[bytes, ...]:
        count = self.u32()
        if count > MAX_CHUNKS:
            raise self._refuse(f"{field} lists {count} chunks, at most {MAX_CHUNKS}")
        raw = self.fixed(count * DIGEST_BYTES)
        return tuple(raw[i : i + DIGEST_BYTES] for i in range(0, len(raw), DIGEST_BYTES))

    def end(self) -> None:
        if self._pos != len(self._data):
            raise self._refuse(f"{len(self._data) - self._pos} trailing bytes")


def _route_prefix(label: bytes, round_id: str, origin: str) -> bytes:
    return _lp(label) + _lp(round_id.encode("ascii")) + _lp(origin.encode("ascii"))


def chunk_digest(round_id: str, origin: str, step: int, index: int, chunk: bytes) -> bytes:
    """SHA-256 of one chunk of packed points, bound to round, origin, step and chunk index.

    `step` is the step that produced the chunk (0 for the origin's blinded batch).
    ValueError if `chunk` is not a whole number of points.
    """
    points, rest = divmod(len(chunk), POINT_BYTES)
    if rest:
        raise ValueError(f"chunk length {len(chunk)} is not a multiple of {POINT_BYTES}")
    hasher = hashlib.sha256(_route_prefix(_LABEL_CHUNK, round_id, origin))
    hasher.update(_STEP_INDEX_POINTS.pack(step, index, points))
    hasher.update(chunk)
    return hasher.digest()


def chunk_digests(
    round_id: str, origin: str, step: int, packed: bytes, chunk_size: int
) -> tuple[bytes, ...]:
    """The digest of every `chunk_size`-point chunk of `packed` (the last may be shorter).

    Equal to `chunk_digest` of each chunk in turn. ValueError if `packed` is not a whole
    number of points or `chunk_size` is out of range.
    """
    if not 1 <= chunk_size <= MAX_CHUNK_POINTS:
        raise ValueError(f"chunk size must be 1..{MAX_CHUNK_POINTS} points")
    if len(packed) % POINT_BYTES:
        raise ValueError(f"packed length {len(packed)} is not a multiple of {POINT_BYTES}")
    # One prefix hasher copied per chunk; memoryview slices hash the points without copying.
    base = hashlib.sha256(_route_prefix(_LABEL_CHUNK, round_id, origin))
    view = memoryview(packed)
    stride = chunk_size * POINT_BYTES
    out = []
    for index, start in enumerate(range(0, len(packed), stride)):
        chunk = view[start : start + stride]
        hasher = base.copy()
        hasher.update(_STEP_INDEX_POINTS.pack(step, index, len(chunk) // POINT_BYTES))
        hasher.update(chunk)
        out.append(hasher.digest())
    return tuple(out)


def outputs_digest(round_id: str, origin: str, step: int, digests: Sequence[bytes]) -> bytes:
    """SHA-256 of the chunk digest list that step `step` produced: the next hop's input digest."""
    hasher = hashlib.sha256(_route_prefix(_LABEL_OUTPUTS, round_id, origin))
    hasher.update(_U32.pack(step))
    hasher.update(_digest_list(digests))
    return hasher.digest()


def proofs_digest(round_id: str, origin: str, step: int, proofs: Sequence[bytes]) -> bytes:
    """SHA-256 of the per-chunk proofs step `step` produced: its hop statement's proof digest."""
    hasher = hashlib.sha256(_route_prefix(_LABEL_PROOFS, round_id, origin))
    hasher.update(_U32.pack(step) + _U32.pack(len(proofs)))
    for proof in proofs:
        hasher.update(_lp(proof))
    return hasher.digest()


def sign_origin(key: Ed25519PrivateKey, statement: OriginStatement) -> SignedOrigin:
    """The origin's signature over `statement` (context `CONTEXT_ORIGIN`)."""
    return SignedOrigin(statement, signing.sign(key, CONTEXT_ORIGIN, statement.encode()))


def sign_hop(key: Ed25519PrivateKey, statement: HopStatement) -> SignedHop:
    """The evaluator's signature over `statement` (context `CONTEXT_HOP`)."""
    return SignedHop(statement, signing.sign(key, CONTEXT_HOP, statement.encode()))


class ExpectedInput:
    """The batch a verified chain promises, checked chunk by chunk as it arrives.

    Made by `verify_chain`. `step` is the step the receiver performs (n: finalize); the
    chunks are those that step `step - 1` signed. From step 2 on, `prover` is the partner
    that evaluated at step `step - 1`: every chunk then comes with the chunk it was given
    (`check_source`, against step `step - 2`'s digests) and its proof (`record_proof`),
    and `finish()` holds the proofs to the digest `prover` signed. Not thread-safe: one
    stream feeds it.
    """

    def __init__(
        self,
        *,
        round_id: str,
        manifest_sha256: bytes,
        origin: str,
        evaluator: str,
        step: int,
        final: bool,
        count: int,
        chunk_size: int,
        digests: tuple[bytes, ...],
        prover: str | None = None,
        source_digests: tuple[bytes, ...] = (),
        proof_digest: bytes = b"",
    ) -> None:
        self.round_id = round_id
        self.manifest_sha256 = manifest_sha256
        self.origin = origin
        self.evaluator = evaluator
        self.step = step
        self.final = final
        self.count = count
        self.chunk_size = chunk_size
        self._digests = digests
        self._seen = bytearray(len(digests))
        self._received = 0
        self.prover = prover
        self._source_digests = source_digests
        self._proof_digest = proof_digest
        self._proofs: list[bytes | None] = [None] * len(digests)
        # What this evaluator's own HopStatement names as its input (see hop_statement).
        self.input_digest = outputs_digest(round_id, origin, step - 1, digests)

    @property
    def chunk_count(self) -> int:
        return len(self._digests)

    @property
    def complete(self) -> bool:
        """True once every chunk has been received and matched its signed digest."""
        return self._received == len(self._digests)

    def expected_points(self, index: int) -> int:
        """How many points chunk `index` must hold."""
        if not 0 <= index < len(self._digests):
            raise HopRefused(f"chunk index {index} is outside 0..{len(self._digests) - 1}")
        return min(self.chunk_size, self.count - index * self.chunk_size)

    def check_chunk(self, index: int, packed_points: bytes) -> None:
        """Return if chunk `index` is exactly what the last statement signed; else HopRefused.

        Refuses an index out of range, a chunk already received, a chunk of the wrong
        length (points appended or dropped) and a chunk whose digest differs (points
        replaced or reordered).
        """
        if not _is_int(index):
            raise TypeError(f"chunk index must be an int, not {type(index).__name__}")
        points = self.expected_points(index)
        if self._seen[index]:
            raise HopRefused(f"chunk {index} arrived twice")
        if len(packed_points) != points * POINT_BYTES:
            raise HopRefused(
                f"chunk {index} is {len(packed_points)} bytes, expected {points} points "
                f"({points * POINT_BYTES} bytes)"
            )
        digest = chunk_digest(self.round_id, self.origin, self.step - 1, index, packed_points)
        if digest != self._digests[index]:
            raise HopRefused(
                f"chunk {index} does not match the digest signed at step {self.step - 1}"
            )
        self._seen[index] = 1
        self._received += 1

    def check_source(self, index: int, packed_points: bytes) -> None:
        """Return if `packed_points` is chunk `index` as the prover was given it; else HopRefused.

        The chunk a proof speaks about must be the one step `step - 2` signed (the origin's
        at step 2), or a proof over points of the coordinator's choosing would pass.
        """
        if self.prover is None:
            raise ValueError("a batch straight from its origin carries no proof")
        points = self.expected_points(index)
        if len(packed_points) != points * POINT_BYTES:
            raise HopRefused(
                f"the source of chunk {index} is {len(packed_points)} bytes, expected "
                f"{points} points"
            )
        digest = chunk_digest(self.round_id, self.origin, self.step - 2, index, packed_points)
        if digest != self._source_digests[index]:
            raise HopRefused(
                f"the source of chunk {index} does not match the digest signed at step "
                f"{self.step - 2}"
            )

    def record_proof(self, index: int, proof: bytes) -> None:
        """Keep chunk `index`'s proof (checked by the caller) for `finish()`'s digest check."""
        if self.prover is None:
            raise ValueError("a batch straight from its origin carries no proof")
        self.expected_points(index)
        self._proofs[index] = bytes(proof)

    def finish(self) -> None:
        """Return if every chunk has arrived and matched; HopRefused names what is missing.

        From step 2 on, also that the proofs relayed are exactly those the prover signed.
        """
        if not self.complete:
            missing = self._seen.index(0)
            raise HopRefused(
                f"{len(self._digests) - self._received} of {len(self._digests)} chunks missing "
                f"(first missing: chunk {missing})"
            )
        if self.prover is None:
            return
        if any(p is None for p in self._proofs):
            raise HopRefused(f"a chunk arrived without the proof of {self.prover}'s evaluation")
        proofs = [p for p in self._proofs if p is not None]
        digest = proofs_digest(self.round_id, self.origin, self.step - 1, proofs)
        if digest != self._proof_digest:
            raise HopRefused(
                f"the evaluation proofs relayed are not those {self.prover} signed at step "
                f"{self.step - 1}"
            )

    def hop_statement(
        self, output_chunk_digests: Sequence[bytes], proof_digest: bytes = b""
    ) -> HopStatement:
        """The statement this evaluator signs for its output; only after `finish()` succeeds.

        ValueError at the origin's final step (nothing to sign), before every input chunk
        has been checked, or if the output has a different number of chunks.
        """
        if self.final:
            raise ValueError("the final step finalizes; it signs no hop statement")
        if not self.complete:
            raise ValueError("sign only after every input chunk has been checked")
        if len(output_chunk_digests) != len(self._digests):
            raise ValueError(
                f"output has {len(output_chunk_digests)} chunks, the input {len(self._digests)}"
            )
        return HopStatement(
            round_id=self.round_id,
            manifest_sha256=self.manifest_sha256,
            origin=self.origin,
            step=self.step,
            signer=self.evaluator,
            input_digest=self.input_digest,
            output_chunk_digests=tuple(output_chunk_digests),
            proof_digest=proof_digest,
        )


def _check_binding(
    round_id: str, manifest_sha256: bytes, origin: str, statement: OriginStatement | HopStatement
) -> str | None:
    if isinstance(statement, OriginStatement):
        what = "origin statement"
    else:
        what = f"hop statement {statement.step}"
    if statement.round_id != round_id:
        return f"{what} is for another round (replayed)"
    if statement.manifest_sha256 != manifest_sha256:
        return f"{what} is for another manifest (replayed)"
    if statement.origin != origin:
        return f"{what} names another origin than {origin} (relabelled)"
    return None


def _roster_key(signing_keys: Mapping[str, signing.Verifier], partner: str) -> signing.Verifier:
    key = signing_keys.get(partner)
    if key is None:
        raise HopRefused(f"no roster signing key for {partner}")
    return key


def _route_problem(hops: tuple[SignedHop, ...], needed: int) -> str | None:
    steps = [hop.statement.step for hop in hops]
    if steps == list(range(1, len(steps) + 1)):
        if len(steps) < needed:
            return f"hop statement for step {len(steps) + 1} is missing (skipped)"
        if len(steps) > needed:
            return f"chain holds {len(steps)} hop statements, step {needed + 1} needs {needed}"
        return None
    if len(set(steps)) != len(steps):
        return "a hop statement appears twice"
    if sorted(steps) == list(range(1, len(steps) + 1)):
        return "hop statements are out of order"
    missing = next(t for t in range(1, len(steps) + 2) if t not in steps)
    return f"hop statement for step {missing} is missing (skipped)"


def verify_chain(
    chain: Chain,
    *,
    round_id: str,
    manifest_sha256: bytes,
    partners: Sequence[str],
    origin: str,
    evaluator: str,
    step: int,
    signing_keys: Mapping[str, signing.Verifier],
    expected_count: int,
) -> ExpectedInput:
    """Check `chain` for the step `evaluator` is about to perform on `origin`'s batch.

    `partners` is the manifest's ring order, `signing_keys` the ROSTER's Ed25519 keys (a
    key is never taken from the chain), `expected_count` the set size the origin signed in
    its consent, `evaluator` the calling node itself. `step` is 1..n-1 to evaluate, n for
    the origin to finalize. Every statement must be for this round and manifest, name
    this origin, verify under the roster key of the partner the ring order puts at its
    step, and take as input what the step before returned. Returns the `ExpectedInput`
    that checks the arriving chunks; HopRefused with a specific reason otherwise.
    """
    ring = list(partners)
    n = len(ring)
    if n < 2 or len(set(ring)) != n or n > MAX_PARTNERS:
        raise ValueError(f"partners must be 2..{MAX_PARTNERS} distinct ids")
    if evaluator not in ring:
        raise ValueError("the evaluator (this node) is not a partner of the round")
    if origin not in ring:
        raise HopRefused("the origin is not a partner of this round")
    if not _is_int(step) or not 1 <= step <= n:
        raise HopRefused(f"step {step} is outside 1..{n}")
    at = ring.index(origin)
    if step < n and evaluator == origin:
        raise HopRefused(f"{origin} is sent its own batch to evaluate at step {step}")
    expected_evaluator = origin if step == n else ring[(at - step) % n]
    if evaluator != expected_evaluator:
        raise HopRefused(
            f"{evaluator} is not the evaluator of step {step} for {origin}'s batch "
            f"(the ring order names {expected_evaluator})"
        )

    first = chain.origin.statement
    problem = _check_binding(round_id, manifest_sha256, origin, first)
    if problem is not None:
        raise HopRefused(problem)
    try:
        signing.verify(
            _roster_key(signing_keys, origin),
            CONTEXT_ORIGIN,
            first.encode(),
            chain.origin.signature,
        )
    except SignatureInvalid:
        raise HopRefused(
            f"origin statement signature does not verify under {origin}'s roster key"
        ) from None
    if first.count != expected_count:
        raise HopRefused(
            f"origin statement counts {first.count} points, the origin's consent {expected_count}"
        )

    problem = _route_problem(chain.hops, step - 1)
    if problem is not None:
        raise HopRefused(problem)
    previous = first.chunk_digests
    before: tuple[bytes, ...] = ()
    for t, signed in enumerate(chain.hops, start=1):
        hop = signed.statement
        problem = _check_binding(round_id, manifest_sha256, origin, hop)
        if problem is not None:
            raise HopRefused(problem)
        expected_signer = ring[(at - t) % n]
        if hop.signer != expected_signer:
            raise HopRefused(
                f"hop statement {t} names {hop.signer} as evaluator, the ring order "
                f"{expected_signer}"
            )
        try:
            signing.verify(
                _roster_key(signing_keys, expected_signer),
                CONTEXT_HOP,
                hop.encode(),
                signed.signature,
            )
        except SignatureInvalid:
            raise HopRefused(
                f"hop statement {t} signature does not verify under {expected_signer}'s roster key"
            ) from None
        if hop.input_digest != outputs_digest(round_id, origin, t - 1, previous):
            raise HopRefused(f"hop statement {t} received something step {t - 1} did not return")
        if len(hop.output_chunk_digests) != len(previous):
            raise HopRefused(
                f"hop statement {t} returned {len(hop.output_chunk_digests)} chunks, "
                f"received {len(previous)}"
            )
        if not hop.proof_digest:
            raise HopRefused(f"hop statement {t} carries no digest of its evaluation proofs")
        before, previous = previous, hop.output_chunk_digests

    return ExpectedInput(
        round_id=round_id,
        manifest_sha256=manifest_sha256,
        origin=origin,
        evaluator=evaluator,
        step=step,
        final=step == n,
        count=first.count,
        chunk_size=first.chunk_size,
        digests=previous,
        prover=chain.hops[-1].statement.signer if chain.hops else None,
        source_digests=before,
        proof_digest=chain.hops[-1].statement.proof_digest if chain.hops else b"",
    )
