"""ristretto255 and the OPRF steps of RFC 9497 (suite ristretto255-SHA512).

This is the only module of the node that touches group elements and scalars; the
round logic calls a handful of functions from it, as pyca/cryptography's recipes
call into `hazmat`. The arithmetic is `kruispunt.native`, the Rust core in
`native/` (curve25519-dalek): packed batches, the GIL released, in parallel on one
shared thread pool that `set_workers` sizes (the node's `workers` setting). Its
decoding is strict RFC 9496: non-canonical encodings, bit 255 included, and the
identity are refused.

Batches are packed: `bytes` of 32-byte points (or 16-byte tags) laid end to end,
in input order.

Keys live in Rust memory (`native.Secret`), zeroed when wiped and when dropped;
they never cross into another process (there are no worker processes, and a
Secret refuses pickling). A scalar given as bytes is copied into a Secret for the
call and dropped after it.

Mapping to the protocol (DESIGN.md, "The matching round"):

* node i, step 1: `blind_inputs(inputs, key)`, that is `B = r_i * HashToGroup(x)`;
* node j, step 2: `evaluate(key, packed)`, that is `B <- k_j * B`;
* node i, step 3: `unblind_and_tag(inputs, key, packed)`, that is
  `T = (k_i * r_i^-1) * B` and tag = `Finalize(x, T)[:16]`.

The verifiable mode (RFC 9497 VOPRF, mode 1) adds batched DLEQ proofs that an
evaluation used the key behind a public key: `prove_evaluation`,
`verify_evaluation`, and per chunk `evaluate_and_prove` / `verify_chunks`.
"""

from __future__ import annotations

from collections.abc import Sequence

from kruispunt import native, tagkey
from kruispunt.errors import InvalidPoint, ProtocolError
from kruispunt.wire import POINT_BYTES, TAG_BYTES

__all__ = [
    "CONTEXT_STRING",
    "HASH_TO_GROUP_DST",
    "OUTPUT_BYTES",
    "POINT_BYTES",
    "PROOF_BYTES",
    "SCALAR_BYTES",
    "TAG_BYTES",
    "VOPRF_CONTEXT_STRING",
    "VOPRF_HASH_TO_GROUP_DST",
    "RoundKey",
    "Scalar",
    "backend",
    "blind_inputs",
    "blind_rfc",
    "check_scalar",
    "evaluate",
    "evaluate_and_prove",
    "evaluate_rfc",
    "expand_message_xmd",
    "finalize",
    "finalize_rfc",
    "hash_and_mult",
    "hash_to_group",
    "mult_and_finalize",
    "mult_and_keyed_tags",
    "prove_evaluation",
    "public_key",
    "random_scalar",
    "scalar_mult",
    "set_workers",
    "unblind_and_keyed_tag",
    "unblind_and_tag",
    "verify_chunks",
    "verify_evaluation",
    "workers",
]

SCALAR_BYTES = 32
OUTPUT_BYTES = 64
"""Nh for SHA-512: the length of an RFC 9497 Finalize output."""
PROOF_BYTES: int = native.PROOF_BYTES
"""A batched DLEQ proof: SerializeScalar(c) || SerializeScalar(s) (RFC 9497, section 2.2)."""

# RFC 9497, section 3.1: contextString = "OPRFV1-" || I2OSP(mode, 1) || "-" || identifier,
# mode 0x00 (OPRF), identifier "ristretto255-SHA512" (section 4.1).
CONTEXT_STRING = b"OPRFV1-\x00-ristretto255-SHA512"
# RFC 9497, section 4.1: HashToGroup uses DST = "HashToGroup-" || contextString.
HASH_TO_GROUP_DST = b"HashToGroup-" + CONTEXT_STRING
# Mode 0x01 (VOPRF): the DLEQ proofs hash under this context (sections 2.2.1, 3.1).
VOPRF_CONTEXT_STRING = b"OPRFV1-\x01-ristretto255-SHA512"
VOPRF_HASH_TO_GROUP_DST = b"HashToGroup-" + VOPRF_CONTEXT_STRING

Scalar = bytes | bytearray | memoryview
"""A 32-byte little-endian scalar, canonical (below the group order) and non-zero."""


# --- the thread pool ------------------------------------------------------------------


def set_workers(workers: int, chunk_points: int = 512) -> None:
    """Run the group work on `workers` threads, `chunk_points` points per task.

    One pool serves the whole process; a node sizes it from its `workers` setting.
    """
    if workers < 1 or chunk_points < 1:
        raise ValueError("workers and chunk_points must be positive")
    native.set_threads(workers, chunk_points)


def workers() -> int:
    """How many threads the group work runs on."""
    return native.threads()


def backend() -> str:
    """The arithmetic backend on this CPU: "avx512ifma", "avx2" or "serial"."""
    return native.backend()


# --- hash to group ---------------------------------------------------------------


def expand_message_xmd(msg: bytes, dst: bytes, len_in_bytes: int) -> bytes:
    """Return `len_in_bytes` uniform bytes: RFC 9380, section 5.3.1, with H = SHA-512."""
    if len_in_bytes < 0:
        raise ValueError("expand_message_xmd parameters out of range")
    return native.expand_message_xmd(msg, dst, len_in_bytes)


def hash_to_group(inputs: Sequence[bytes], dst: bytes = HASH_TO_GROUP_DST) -> bytes:
    """Return HashToGroup(x) for every input, packed.

    RFC 9497, section 4.1: hash_to_ristretto255 of RFC 9380 (appendix B), that
    is expand_message_xmd with SHA-512 to 64 bytes, then the one-way map of
    RFC 9496, section 4.3.4.
    """
    return native.hash_to_group(inputs, dst)


# --- scalars and round keys -------------------------------------------------------


def _secret(scalar: Scalar) -> native.Secret:
    """A Secret holding a checked copy of `scalar`; dropped (and zeroed) by the caller's end."""
    if not isinstance(scalar, bytes | bytearray | memoryview):
        raise TypeError("scalar must be bytes, bytearray or memoryview")
    return native.Secret(scalar)


def check_scalar(scalar: Scalar) -> None:
    """Raise TypeError or ValueError unless `scalar` is 32 bytes, canonical and non-zero."""
    _secret(scalar).wipe()


def random_scalar() -> bytes:
    """Return a uniformly random non-zero scalar (the operating system's CSPRNG)."""
    secret = native.Secret.random()
    try:
        return bytes(memoryview(secret))
    finally:
        secret.wipe()


def public_key(scalar: Scalar) -> bytes:
    """The encoding of scalar * G (RFC 9497's pkS for the key `scalar`)."""
    return _secret(scalar).public_key()


class RoundKey:
    """One node's secrets for one round: key k, blinding r and unblinding k * r^-1.

    The scalars live in Rust memory (`native.Secret`) that `wipe()` overwrites with
    zeros, as does dropping the key. The properties hand out read-only views of
    that memory, not copies, so a wipe reaches every view. What Python cannot
    promise: `bytes` made from a view (`bytes(key.key)`) and scalars given to the
    constructor are immutable copies we cannot overwrite; the memory is not
    locked, so it may be swapped out; a core dump holds it. Keep such copies
    short-lived. Round keys refuse to be pickled, so they never cross into
    another process by accident.
    """

    __slots__ = ("_blind", "_key", "_unblind", "_wiped")

    def __init__(self, key: Scalar, blind: Scalar) -> None:
        """Hold the given key and blinding (use `generate()` for a fresh pair)."""
        self._key = _secret(key)
        try:
            self._blind = _secret(blind)
        except (TypeError, ValueError):
            self._key.wipe()
            raise
        # r is non-zero (checked above), so the inverse exists.
        self._unblind = self._key.multiply(self._blind.invert())
        self._wiped = False

    @classmethod
    def generate(cls) -> RoundKey:
        """Return a round key with fresh random k and r."""
        key, blind = native.Secret.random(), native.Secret.random()
        try:
            return cls(memoryview(key), memoryview(blind))
        finally:
            key.wipe()
            blind.wipe()

    def _use(self, secret: native.Secret) -> native.Secret:
        if self._wiped:
            raise ValueError("round key has been wiped")
        return secret

    @property
    def key(self) -> memoryview:
        """k: this node's evaluation key (read-only view, zeroed by `wipe()`)."""
        return memoryview(self._use(self._key))

    @property
    def blind_factor(self) -> memoryview:
        """r: this node's blinding of its own points (read-only view)."""
        return memoryview(self._use(self._blind))

    @property
    def unblind_factor(self) -> memoryview:
        """k * r^-1: turns this node's blinded points, once every other key is applied, into K*P."""
        return memoryview(self._use(self._unblind))

    @property
    def public_key(self) -> bytes:
        """k * G: what a DLEQ proof of this node's evaluations is checked against."""
        return self._use(self._key).public_key()

    @property
    def wiped(self) -> bool:
        """Whether `wipe()` has run."""
        return self._wiped

    def wipe(self) -> None:
        """Overwrite k, r and k * r^-1 with zeros; the key is unusable afterwards."""
        for secret in (self._key, self._blind, self._unblind):
            secret.wipe()
        self._wiped = True

    def __enter__(self) -> RoundKey:
        return self

    def __exit__(self, *exc: object) -> None:
        self.wipe()

    def __repr__(self) -> str:
        return "RoundKey(wiped)" if self._wiped else "RoundKey(<secret>)"

    def __reduce__(self) -> str:
        raise TypeError("round keys are not picklable")


# --- batch operations ---------------------------------------------------------------


def _points(packed: bytes | bytearray | memoryview) -> bytes:
    """`packed` as bytes, or InvalidPoint if it is not a whole number of points."""
    if len(packed) % POINT_BYTES:
        raise InvalidPoint()
    return packed if isinstance(packed, bytes) else bytes(packed)


def _mult(secret: native.Secret, packed: bytes) -> bytes:
    try:
        return native.scalar_mult(secret, _points(packed))
    except native.InvalidPoint:
        pass
    # Raised outside the handler: one opaque error with nothing chained on, the
    # one the gRPC edge maps to a status.
    raise InvalidPoint()


def scalar_mult(scalar: Scalar, packed: bytes) -> bytes:
    """Return scalar * P for every point P in `packed`, in order.

    Every point must be a canonical, non-identity ristretto255 encoding; any
    defect, including a length that is not a whole number of points, raises
    one opaque InvalidPoint that names neither the point nor its position.
    """
    return _mult(_secret(scalar), packed)


def hash_and_mult(inputs: Sequence[bytes], scalar: Scalar, dst: bytes = HASH_TO_GROUP_DST) -> bytes:
    """Return scalar * HashToGroup(x) for every input, packed (RFC 9497 Blind with a given r)."""
    return native.hash_and_mult(inputs, dst, _secret(scalar))


def _outputs(inputs: Sequence[bytes], secret: native.Secret, packed: bytes) -> bytes:
    """RFC 9497 Finalize(x, secret * B), 64 bytes each, packed."""
    if len(packed) != len(inputs) * POINT_BYTES:
        raise ProtocolError("point count does not match the number of inputs")
    try:
        return native.mult_and_finalize(inputs, secret, _points(packed))
    except native.InvalidPoint:
        pass
    # Raised outside the handler: one opaque error with nothing chained on, the
    # one the gRPC edge maps to a status.
    raise InvalidPoint()


def _truncated(outputs: bytes) -> bytes:
    view = memoryview(outputs)
    return b"".join(view[i : i + TAG_BYTES] for i in range(0, len(outputs), OUTPUT_BYTES))


def finalize(inputs: Sequence[bytes], packed_unblinded: bytes) -> bytes:
    """Return the 16-byte tag Finalize(x, T)[:16] for every input x and its unblinded T, packed."""
    if len(packed_unblinded) != len(inputs) * POINT_BYTES:
        raise ProtocolError("point count does not match the number of inputs")
    return _truncated(native.finalize(inputs, bytes(packed_unblinded)))


def mult_and_finalize(inputs: Sequence[bytes], scalar: Scalar, packed: bytes) -> bytes:
    """Return the tags Finalize(x, scalar * B)[:16] for every input x and its point B, packed."""
    if len(packed) != len(inputs) * POINT_BYTES:
        raise ProtocolError("point count does not match the number of inputs")
    return _truncated(_outputs(inputs, _secret(scalar), packed))


def mult_and_keyed_tags(
    inputs: Sequence[bytes], scalar: Scalar, packed: bytes, tag_key: bytes
) -> bytes:
    """The round's tags: `tagkey.keyed_tag(tag_key, Finalize(x, scalar * B))` per input, packed.

    The RFC 9497 output is computed whole (64 bytes) and only then keyed, so the single-key
    path above still reproduces the RFC's vectors while a round's tags need the partners'
    tag key, which the coordinator never holds.
    """
    if len(packed) != len(inputs) * POINT_BYTES:
        raise ProtocolError("point count does not match the number of inputs")
    return tagkey.keyed_tags(tag_key, _outputs(inputs, _secret(scalar), packed))


# --- round-level steps (DESIGN.md, "The matching round") --------------------------


def blind_inputs(inputs: Sequence[bytes], key: RoundKey) -> bytes:
    """Step 1: B = r * HashToGroup(x) for every own input, packed in input order."""
    return native.hash_and_mult(inputs, HASH_TO_GROUP_DST, key._use(key._blind))


def evaluate(key: RoundKey, packed: bytes) -> bytes:
    """Step 2: B <- k * B for every point of another partner's batch, order kept."""
    return _mult(key._use(key._key), packed)


def unblind_and_tag(inputs: Sequence[bytes], key: RoundKey, packed: bytes) -> bytes:
    """Step 3, one key: tags Finalize(x, (k * r^-1) * B)[:16] (the RFC 9497 shape)."""
    return _truncated(_outputs(inputs, key._use(key._unblind), packed))


def unblind_and_keyed_tag(
    inputs: Sequence[bytes], key: RoundKey, packed: bytes, tag_key: bytes
) -> bytes:
    """Step 3 of a round: keyed tags of Finalize(x, (k * r^-1) * B), every key applied."""
    return tagkey.keyed_tags(tag_key, _outputs(inputs, key._use(key._unblind), packed))


# --- DLEQ proofs (RFC 9497, section 2.2, mode 1) -------------------------------------


def prove_evaluation(
    key: Scalar | RoundKey, blinded: bytes, evaluated: bytes, r: Scalar | None = None
) -> bytes:
    """One batched DLEQ proof that `evaluated` is k * `blinded`, for k behind k * G.

    RFC 9497, section 2.2.1, GenerateProof with A = G, B = k * G, C = blinded,
    D = evaluated, under the VOPRF context. `r` fixes the proof's randomness (the
    RFC's vectors do); None draws it fresh, as every real proof must.
    """
    secret = key._use(key._key) if isinstance(key, RoundKey) else _secret(key)
    randomness = None if r is None else _secret(r)
    try:
        return native.dleq_prove(
            secret, _points(blinded), _points(evaluated), VOPRF_CONTEXT_STRING, randomness
        )
    except native.InvalidPoint:
        pass
    # Raised outside the handler: one opaque error with nothing chained on, the
    # one the gRPC edge maps to a status.
    raise InvalidPoint()


def verify_evaluation(public: bytes, blinded: bytes, evaluated: bytes, proof: bytes) -> bool:
    """Whether `proof` shows `evaluated` = k * `blinded` for the k of `public` (section 2.2.2)."""
    return native.dleq_verify(
        bytes(public), bytes(blinded), bytes(evaluated), bytes(proof), VOPRF_CONTEXT_STRING
    )


def evaluate_and_prove(
    key: RoundKey, packed: bytes, chunk_points: int
) -> tuple[bytes, list[bytes]]:
    """Step 2 with proofs: k * B for every point, and one DLEQ proof per chunk of points."""
    try:
        return native.evaluate_and_prove(
            key._use(key._key), _points(packed), VOPRF_CONTEXT_STRING, chunk_points
        )
    except native.InvalidPoint:
        pass
    # Raised outside the handler: one opaque error with nothing chained on, the
    # one the gRPC edge maps to a status.
    raise InvalidPoint()


def verify_chunks(
    public: bytes, blinded: bytes, evaluated: bytes, proofs: Sequence[bytes], chunk_points: int
) -> bool:
    """Whether every chunk of `evaluated` carries a valid proof against `blinded`'s chunk."""
    return native.dleq_verify_chunks(
        bytes(public),
        bytes(blinded),
        bytes(evaluated),
        [bytes(p) for p in proofs],
        VOPRF_CONTEXT_STRING,
        chunk_points,
    )


# --- RFC 9497 single-key OPRF (mode 0), the shape of the published vectors --------


def blind_rfc(input_: bytes, blind: Scalar, dst: bytes = HASH_TO_GROUP_DST) -> bytes:
    """RFC 9497, section 3.3.1, Blind with a given blind scalar: the BlindedElement.

    `dst` is the mode's HashToGroup DST (mode 0's by default, VOPRF_HASH_TO_GROUP_DST
    for mode 1).
    """
    return hash_and_mult([input_], blind, dst)


def evaluate_rfc(sk: Scalar, blinded_element: bytes) -> bytes:
    """RFC 9497, section 3.3.1, BlindEvaluate: the EvaluationElement sk * BlindedElement."""
    if len(blinded_element) != POINT_BYTES:
        raise InvalidPoint()
    return scalar_mult(sk, blinded_element)


def finalize_rfc(input_: bytes, blind: Scalar, evaluated_element: bytes) -> bytes:
    """RFC 9497, section 3.3.1, Finalize: the 64-byte Output for one input."""
    if len(evaluated_element) != POINT_BYTES:
        raise InvalidPoint()
    return _outputs([input_], _secret(blind).invert(), evaluated_element)
