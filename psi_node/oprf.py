"""ristretto255 and the OPRF steps of RFC 9497 (mode 0, suite ristretto255-SHA512).

This is the only module that touches group elements and scalars; the round
logic calls a handful of functions from it, as pyca/cryptography's recipes
call into `hazmat`. All group arithmetic is libsodium's, reached through the
library that rbcl bundles; nothing here does arithmetic on curve points.

Batches are packed: `bytes` of 32-byte points (or 16-byte tags) laid end to
end, in input order.

Why libsodium is called through our own ctypes prototypes rather than rbcl's
wrappers. Not for speed: best of 25 runs of 2,048 points, the direct calls
did 16,800-17,100 scalar multiplications/s against 16,600-16,700 for the
wrappers, since ~60 us of each call is libsodium's own work. The reason is
key hygiene: rbcl's wrappers accept only immutable `bytes`, so every key
would pass through copies nobody can overwrite, while the direct calls read
scalars from ctypes buffers that RoundKey and every batch function zero with
sodium_memzero when done. They also write into one output buffer per batch.
The RFC 9497 vector tests check these bindings byte for byte. Parallelism is
`psi_node.pool`'s job.

Mapping to the protocol (DESIGN.md, "The matching round"):

* node i, step 1: `blind_inputs(inputs, key)`, that is `B = r_i * HashToGroup(x)`;
* node j, step 2: `evaluate(key, packed)`, that is `B <- k_j * B`;
* node i, step 3: `unblind_and_tag(inputs, key, packed)`, that is
  `T = (k_i * r_i^-1) * B` and tag = `Finalize(x, T)[:16]`.
"""

from __future__ import annotations

import ctypes
import hashlib
from collections.abc import Sequence

from kruispunt import tagkey
from kruispunt.errors import InvalidPoint, ProtocolError
from kruispunt.sodium import libsodium as _libsodium
from kruispunt.wire import POINT_BYTES, TAG_BYTES

__all__ = [
    "CONTEXT_STRING",
    "HASH_TO_GROUP_DST",
    "OUTPUT_BYTES",
    "POINT_BYTES",
    "SCALAR_BYTES",
    "TAG_BYTES",
    "RoundKey",
    "Scalar",
    "blind_inputs",
    "blind_rfc",
    "check_scalar",
    "evaluate",
    "evaluate_rfc",
    "expand_message_xmd",
    "finalize",
    "finalize_rfc",
    "hash_and_mult",
    "hash_to_group",
    "mult_and_finalize",
    "mult_and_keyed_tags",
    "random_scalar",
    "scalar_mult",
    "unblind_and_keyed_tag",
    "unblind_and_tag",
]

SCALAR_BYTES = 32
OUTPUT_BYTES = 64
"""Nh for SHA-512: the length of an RFC 9497 Finalize output."""

# RFC 9497, section 3.1: contextString = "OPRFV1-" || I2OSP(mode, 1) || "-" || identifier,
# mode 0x00 (OPRF), identifier "ristretto255-SHA512" (section 4.1).
CONTEXT_STRING = b"OPRFV1-\x00-ristretto255-SHA512"
# RFC 9497, section 4.1: HashToGroup uses DST = "HashToGroup-" || contextString.
HASH_TO_GROUP_DST = b"HashToGroup-" + CONTEXT_STRING

Scalar = bytes | bytearray | memoryview
"""A 32-byte little-endian scalar, canonical (below the group order) and non-zero."""

_FINALIZE_LABEL = b"Finalize"
_SHA512_BLOCK = 128  # s_in_bytes of SHA-512 (RFC 9380, section 5.3.1)
_SHA512_OUT = 64  # b_in_bytes of SHA-512
_UNIFORM_BYTES = 64  # what crypto_core_ristretto255_from_hash consumes

_ScalarBuffer = ctypes.c_char * SCALAR_BYTES

# ctypes prototypes over the libsodium that rbcl bundles. Every pointer is a
# c_void_p so that a Python int (buffer address + offset) can be passed
# without building a ctypes object per point.
_P = ctypes.c_void_p
_INT = ctypes.c_int
_scalarmult = ctypes.CFUNCTYPE(_INT, _P, _P, _P)(("crypto_scalarmult_ristretto255", _libsodium))
_from_hash = ctypes.CFUNCTYPE(_INT, _P, _P)(("crypto_core_ristretto255_from_hash", _libsodium))
_scalar_random = ctypes.CFUNCTYPE(None, _P)(("crypto_core_ristretto255_scalar_random", _libsodium))
_scalar_reduce = ctypes.CFUNCTYPE(None, _P, _P)(
    ("crypto_core_ristretto255_scalar_reduce", _libsodium)
)
_scalar_invert = ctypes.CFUNCTYPE(_INT, _P, _P)(
    ("crypto_core_ristretto255_scalar_invert", _libsodium)
)
_scalar_mul = ctypes.CFUNCTYPE(None, _P, _P, _P)(
    ("crypto_core_ristretto255_scalar_mul", _libsodium)
)
_memzero = ctypes.CFUNCTYPE(None, _P, ctypes.c_size_t)(("sodium_memzero", _libsodium))
_memcmp = ctypes.CFUNCTYPE(_INT, _P, _P, ctypes.c_size_t)(("sodium_memcmp", _libsodium))
_is_zero = ctypes.CFUNCTYPE(_INT, _P, ctypes.c_size_t)(("sodium_is_zero", _libsodium))


# --- hash to group ---------------------------------------------------------------


def expand_message_xmd(msg: bytes, dst: bytes, len_in_bytes: int) -> bytes:
    """Return `len_in_bytes` uniform bytes: RFC 9380, section 5.3.1, with H = SHA-512."""
    ell = -(-len_in_bytes // _SHA512_OUT)
    if len_in_bytes < 0 or ell > 255 or len_in_bytes > 65535 or len(dst) > 255:
        raise ValueError("expand_message_xmd parameters out of range")
    dst_prime = dst + bytes([len(dst)])
    msg_prime = bytes(_SHA512_BLOCK) + msg + len_in_bytes.to_bytes(2, "big") + b"\x00" + dst_prime
    b_0 = hashlib.sha512(msg_prime).digest()
    b_i = hashlib.sha512(b_0 + b"\x01" + dst_prime).digest()
    uniform = [b_i]
    for i in range(2, ell + 1):
        mixed = bytes(x ^ y for x, y in zip(b_0, b_i, strict=True))
        b_i = hashlib.sha512(mixed + bytes([i]) + dst_prime).digest()
        uniform.append(b_i)
    return b"".join(uniform)[:len_in_bytes]


# expand_message_xmd(x, HASH_TO_GROUP_DST, 64) has ell = 1, so it is two SHA-512
# calls; the first always starts with the same 128-byte Z_pad block, absorbed
# once here and copied per input. test_oprf checks this against the general form.
_H2G_DST_PRIME = HASH_TO_GROUP_DST + bytes([len(HASH_TO_GROUP_DST)])
_H2G_MSG_SUFFIX = _UNIFORM_BYTES.to_bytes(2, "big") + b"\x00" + _H2G_DST_PRIME
_H2G_B1_SUFFIX = b"\x01" + _H2G_DST_PRIME
_H2G_ZPAD = hashlib.sha512(bytes(_SHA512_BLOCK))


def _uniform_bytes(x: bytes) -> bytes:
    state = _H2G_ZPAD.copy()
    state.update(x)
    state.update(_H2G_MSG_SUFFIX)
    return hashlib.sha512(state.digest() + _H2G_B1_SUFFIX).digest()


def hash_to_group(inputs: Sequence[bytes]) -> bytes:
    """Return HashToGroup(x) for every input, packed.

    RFC 9497, section 4.1: hash_to_ristretto255 of RFC 9380 (appendix B), that
    is expand_message_xmd with SHA-512 to 64 bytes, then the one-way map of
    RFC 9496, section 4.3.4 (libsodium's crypto_core_ristretto255_from_hash).
    """
    out = ctypes.create_string_buffer(len(inputs) * POINT_BYTES)
    base = ctypes.addressof(out)
    for i, x in enumerate(inputs):
        _from_hash(base + i * POINT_BYTES, _uniform_bytes(x))
    return out.raw


# --- scalars and round keys -------------------------------------------------------


def _load_scalar(scalar: Scalar) -> ctypes.Array[ctypes.c_char]:
    """Copy a scalar into a fresh ctypes buffer after checking it; the caller wipes it."""
    if not isinstance(scalar, bytes | bytearray | memoryview):
        raise TypeError("scalar must be bytes, bytearray or memoryview")
    view = memoryview(scalar).cast("B")
    if view.nbytes != SCALAR_BYTES:
        raise ValueError(f"scalar must be {SCALAR_BYTES} bytes")
    buf = _ScalarBuffer.from_buffer_copy(view)
    if not _scalar_is_canonical_nonzero(buf):
        _memzero(buf, SCALAR_BYTES)
        raise ValueError("scalar must be canonical and non-zero")
    return buf


def _scalar_is_canonical_nonzero(buf: ctypes.Array[ctypes.c_char]) -> bool:
    # Canonical means s < group order, i.e. reducing s leaves it unchanged.
    # libsodium's scalarmult would otherwise silently drop bit 255.
    wide = (ctypes.c_char * (2 * SCALAR_BYTES))()
    reduced = _ScalarBuffer()
    ctypes.memmove(wide, buf, SCALAR_BYTES)
    _scalar_reduce(reduced, wide)
    canonical: bool = _memcmp(reduced, buf, SCALAR_BYTES) == 0
    nonzero: bool = _is_zero(buf, SCALAR_BYTES) == 0
    _memzero(wide, 2 * SCALAR_BYTES)
    _memzero(reduced, SCALAR_BYTES)
    return canonical and nonzero


def check_scalar(scalar: Scalar) -> None:
    """Raise TypeError or ValueError unless `scalar` is 32 bytes, canonical and non-zero."""
    _memzero(_load_scalar(scalar), SCALAR_BYTES)


def random_scalar() -> bytes:
    """Return a uniformly random non-zero scalar (libsodium's CSPRNG)."""
    buf = _ScalarBuffer()
    _scalar_random(buf)
    try:
        return buf.raw
    finally:
        _memzero(buf, SCALAR_BYTES)


class RoundKey:
    """One node's secrets for one round: key k, blinding r and unblinding k * r^-1.

    The scalars live in ctypes buffers that `wipe()` overwrites with zeros
    (sodium_memzero). The properties hand out read-only views of those
    buffers, not copies, so a wipe reaches every view. What Python cannot
    promise: `bytes` made from a view (`bytes(key.key)`) and scalars given to
    the constructor are immutable copies we cannot overwrite; the memory is
    not locked, so it may be swapped out; a core dump holds it. Keep such
    copies short-lived. Round keys refuse to be pickled, so they never cross
    into another process by accident.
    """

    __slots__ = ("_blind", "_key", "_unblind", "_wiped")

    def __init__(self, key: Scalar, blind: Scalar) -> None:
        """Hold the given key and blinding (use `generate()` for a fresh pair)."""
        self._key = _load_scalar(key)
        try:
            self._blind = _load_scalar(blind)
        except (TypeError, ValueError):
            _memzero(self._key, SCALAR_BYTES)
            raise
        inverse = _ScalarBuffer()
        # r is non-zero (checked above), so the inverse exists.
        _scalar_invert(inverse, self._blind)
        self._unblind = _ScalarBuffer()
        _scalar_mul(self._unblind, self._key, inverse)
        _memzero(inverse, SCALAR_BYTES)
        self._wiped = False

    @classmethod
    def generate(cls) -> RoundKey:
        """Return a round key with fresh random k and r."""
        key = _ScalarBuffer()
        blind = _ScalarBuffer()
        _scalar_random(key)
        _scalar_random(blind)
        try:
            return cls(memoryview(key), memoryview(blind))
        finally:
            _memzero(key, SCALAR_BYTES)
            _memzero(blind, SCALAR_BYTES)

    def _secret(self, buf: ctypes.Array[ctypes.c_char]) -> memoryview:
        if self._wiped:
            raise ValueError("round key has been wiped")
        return memoryview(buf).cast("B").toreadonly()

    @property
    def key(self) -> memoryview:
        """k: this node's evaluation key (read-only view, zeroed by `wipe()`)."""
        return self._secret(self._key)

    @property
    def blind_factor(self) -> memoryview:
        """r: this node's blinding of its own points (read-only view)."""
        return self._secret(self._blind)

    @property
    def unblind_factor(self) -> memoryview:
        """k * r^-1: turns this node's blinded points, once every other key is applied, into K*P."""
        return self._secret(self._unblind)

    @property
    def wiped(self) -> bool:
        """Whether `wipe()` has run."""
        return self._wiped

    def wipe(self) -> None:
        """Overwrite k, r and k * r^-1 with zeros; the key is unusable afterwards."""
        for buf in (self._key, self._blind, self._unblind):
            _memzero(buf, SCALAR_BYTES)
        self._wiped = True

    def __enter__(self) -> RoundKey:
        return self

    def __exit__(self, *exc: object) -> None:
        self.wipe()

    def __repr__(self) -> str:
        return "RoundKey(wiped)" if self._wiped else "RoundKey(<secret>)"

    def __reduce__(self) -> str:
        raise TypeError("round keys are not picklable")


# --- batch operations (what the pool runs per chunk) ------------------------------


def _packed_points(packed: bytes) -> tuple[ctypes.Array[ctypes.c_char], int]:
    if len(packed) % POINT_BYTES:
        raise InvalidPoint()
    # RFC 9496, section 4.3.1: an encoding >= p is non-canonical, and any with
    # bit 255 set is. The libsodium that rbcl bundles (1.0.18) ignores that bit
    # and would accept a second encoding of every point, so refuse it here.
    if max(packed[POINT_BYTES - 1 :: POINT_BYTES], default=0) & 0x80:
        raise InvalidPoint()
    return ctypes.create_string_buffer(bytes(packed), len(packed)), len(packed) // POINT_BYTES


def _mult_into(scalar: ctypes.Array[ctypes.c_char], packed: bytes) -> bytes:
    src, count = _packed_points(packed)
    out = ctypes.create_string_buffer(count * POINT_BYTES)
    src_base, out_base = ctypes.addressof(src), ctypes.addressof(out)
    failed = 0
    for offset in range(0, count * POINT_BYTES, POINT_BYTES):
        # -1 when the input is not a canonical encoding or the product is the
        # identity; with a non-zero scalar in a prime-order group the latter
        # means the input was the identity. Both are exactly what RFC 9497's
        # DeserializeElement rejects (section 2.1).
        failed |= _scalarmult(out_base + offset, scalar, src_base + offset)
    if failed:
        raise InvalidPoint()
    return out.raw


def scalar_mult(scalar: Scalar, packed: bytes) -> bytes:
    """Return scalar * P for every point P in `packed`, in order.

    Every point must be a canonical, non-identity ristretto255 encoding; any
    defect, including a length that is not a whole number of points, raises
    one opaque InvalidPoint that names neither the point nor its position.
    """
    buf = _load_scalar(scalar)
    try:
        return _mult_into(buf, packed)
    finally:
        _memzero(buf, SCALAR_BYTES)


def hash_and_mult(inputs: Sequence[bytes], scalar: Scalar) -> bytes:
    """Return scalar * HashToGroup(x) for every input, packed (RFC 9497 Blind with a given r)."""
    buf = _load_scalar(scalar)
    out = ctypes.create_string_buffer(len(inputs) * POINT_BYTES)
    base = ctypes.addressof(out)
    point = ctypes.create_string_buffer(POINT_BYTES)
    failed = 0
    try:
        for i, x in enumerate(inputs):
            _from_hash(point, _uniform_bytes(x))
            # Fails only if HashToGroup(x) is the identity (probability ~2^-252),
            # which RFC 9497 Blind also rejects.
            failed |= _scalarmult(base + i * POINT_BYTES, buf, point)
    finally:
        _memzero(buf, SCALAR_BYTES)
    if failed:
        raise InvalidPoint()
    return out.raw


def _finalize_one(x: bytes, unblinded: bytes) -> bytes:
    # RFC 9497, section 3.3.1, Finalize:
    # Hash(I2OSP(len(input), 2) || input || I2OSP(len(unblindedElement), 2) ||
    #      unblindedElement || "Finalize")
    if len(x) > 0xFFFF:
        raise ValueError("OPRF input longer than 65535 bytes")
    return hashlib.sha512(
        len(x).to_bytes(2, "big") + x + POINT_BYTES.to_bytes(2, "big") + unblinded + _FINALIZE_LABEL
    ).digest()


def finalize(inputs: Sequence[bytes], packed_unblinded: bytes) -> bytes:
    """Return the 16-byte tag Finalize(x, T)[:16] for every input x and its unblinded T, packed."""
    if len(packed_unblinded) != len(inputs) * POINT_BYTES:
        raise ProtocolError("point count does not match the number of inputs")
    return b"".join(
        _finalize_one(x, packed_unblinded[i * POINT_BYTES : (i + 1) * POINT_BYTES])[:TAG_BYTES]
        for i, x in enumerate(inputs)
    )


def mult_and_finalize(inputs: Sequence[bytes], scalar: Scalar, packed: bytes) -> bytes:
    """Return the tags Finalize(x, scalar * B)[:16] for every input x and its point B, packed."""
    if len(packed) != len(inputs) * POINT_BYTES:
        raise ProtocolError("point count does not match the number of inputs")
    return finalize(inputs, scalar_mult(scalar, packed))


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
    unblinded = scalar_mult(scalar, packed)
    outputs = b"".join(
        _finalize_one(x, unblinded[i * POINT_BYTES : (i + 1) * POINT_BYTES])
        for i, x in enumerate(inputs)
    )
    return tagkey.keyed_tags(tag_key, outputs)


# --- round-level steps (DESIGN.md, "The matching round") --------------------------


def blind_inputs(inputs: Sequence[bytes], key: RoundKey) -> bytes:
    """Step 1: B = r * HashToGroup(x) for every own input, packed in input order."""
    return hash_and_mult(inputs, key.blind_factor)


def evaluate(key: RoundKey, packed: bytes) -> bytes:
    """Step 2: B <- k * B for every point of another partner's batch, order kept."""
    return scalar_mult(key.key, packed)


def unblind_and_tag(inputs: Sequence[bytes], key: RoundKey, packed: bytes) -> bytes:
    """Step 3, one key: tags Finalize(x, (k * r^-1) * B)[:16] (the RFC 9497 shape)."""
    return mult_and_finalize(inputs, key.unblind_factor, packed)


def unblind_and_keyed_tag(
    inputs: Sequence[bytes], key: RoundKey, packed: bytes, tag_key: bytes
) -> bytes:
    """Step 3 of a round: keyed tags of Finalize(x, (k * r^-1) * B), every key applied."""
    return mult_and_keyed_tags(inputs, key.unblind_factor, packed, tag_key)


# --- RFC 9497 single-key OPRF (mode 0), the shape of the published vectors --------


def blind_rfc(input_: bytes, blind: Scalar) -> bytes:
    """RFC 9497, section 3.3.1, Blind with a given blind scalar: the BlindedElement."""
    return hash_and_mult([input_], blind)


def evaluate_rfc(sk: Scalar, blinded_element: bytes) -> bytes:
    """RFC 9497, section 3.3.1, BlindEvaluate: the EvaluationElement sk * BlindedElement."""
    if len(blinded_element) != POINT_BYTES:
        raise InvalidPoint()
    return scalar_mult(sk, blinded_element)


def finalize_rfc(input_: bytes, blind: Scalar, evaluated_element: bytes) -> bytes:
    """RFC 9497, section 3.3.1, Finalize: the 64-byte Output for one input."""
    if len(evaluated_element) != POINT_BYTES:
        raise InvalidPoint()
    inverse = _ScalarBuffer()
    blind_buf = _load_scalar(blind)
    try:
        _scalar_invert(inverse, blind_buf)
        unblinded = _mult_into(inverse, evaluated_element)
    finally:
        _memzero(inverse, SCALAR_BYTES)
        _memzero(blind_buf, SCALAR_BYTES)
    return _finalize_one(input_, unblinded)
