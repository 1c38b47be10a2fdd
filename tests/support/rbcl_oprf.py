"""RFC 9497 over libsodium (rbcl), one point at a time: the reference the native core is held to.

An independent second implementation of everything `kruispunt.native` does — HashToGroup,
Blind, BlindEvaluate, Finalize and the batched DLEQ proofs of section 2.2 — written from
the RFC with Python's hashlib and libsodium's group operations, so that the differential
tests (tests/unit/test_native.py) and `make bench` compare two codebases, not one with
itself. Slow on purpose: no batching, no threads, every point decoded by libsodium.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import rbcl

__all__ = [
    "blind",
    "evaluate",
    "expand_message_xmd",
    "finalize",
    "generate_proof",
    "hash_to_group",
    "hash_to_group_batch",
    "hash_to_scalar",
    "scalar_mult_batch",
    "verify_proof",
]

_BLOCK = 128
_OUT = 64
_L = 2**252 + 27742317777372353535851937790883648493


def expand_message_xmd(msg: bytes, dst: bytes, len_in_bytes: int) -> bytes:
    """RFC 9380, section 5.3.1, with H = SHA-512."""
    ell = -(-len_in_bytes // _OUT)
    if ell > 255 or len_in_bytes > 65535 or len(dst) > 255:
        raise ValueError("expand_message_xmd parameters out of range")
    dst_prime = dst + bytes([len(dst)])
    b_0 = hashlib.sha512(
        bytes(_BLOCK) + msg + len_in_bytes.to_bytes(2, "big") + b"\x00" + dst_prime
    ).digest()
    b_i = hashlib.sha512(b_0 + b"\x01" + dst_prime).digest()
    uniform = [b_i]
    for i in range(2, ell + 1):
        b_i = hashlib.sha512(
            bytes(x ^ y for x, y in zip(b_0, b_i, strict=True)) + bytes([i]) + dst_prime
        ).digest()
        uniform.append(b_i)
    return b"".join(uniform)[:len_in_bytes]


def hash_to_group(x: bytes, dst: bytes) -> bytes:
    """RFC 9497, section 4.1, HashToGroup: libsodium's from_hash on 64 uniform bytes."""
    point: bytes = rbcl.crypto_core_ristretto255_from_hash(expand_message_xmd(x, dst, 64))
    return point


def hash_to_group_batch(inputs: Sequence[bytes], dst: bytes) -> bytes:
    """HashToGroup of every input, packed, as the libsodium-based oprf of before did it.

    With 64 output bytes expand_message_xmd is two SHA-512 calls, the first always
    starting with the same 128-byte block: absorbed once, its state copied per input.
    This is the baseline `make bench` holds the native core against.
    """
    dst_prime = dst + bytes([len(dst)])
    suffix = (64).to_bytes(2, "big") + b"\x00" + dst_prime
    b1_suffix = b"\x01" + dst_prime
    zpad = hashlib.sha512(bytes(_BLOCK))
    out = []
    for x in inputs:
        state = zpad.copy()
        state.update(x)
        state.update(suffix)
        uniform = hashlib.sha512(state.digest() + b1_suffix).digest()
        out.append(rbcl.crypto_core_ristretto255_from_hash(uniform))
    return b"".join(out)


def hash_to_scalar(msg: bytes, dst: bytes) -> bytes:
    """RFC 9497, section 4.1, HashToScalar: 64 uniform bytes reduced modulo the order."""
    return (int.from_bytes(expand_message_xmd(msg, dst, 64), "little") % _L).to_bytes(32, "little")


def blind(x: bytes, r: bytes, dst: bytes) -> bytes:
    """Blind with a given r: r * HashToGroup(x)."""
    out: bytes = rbcl.crypto_scalarmult_ristretto255(r, hash_to_group(x, dst))
    return out


def evaluate(sk: bytes, blinded: bytes) -> bytes:
    """BlindEvaluate: sk * BlindedElement."""
    out: bytes = rbcl.crypto_scalarmult_ristretto255(sk, blinded)
    return out


def scalar_mult_batch(k: bytes, packed: bytes) -> bytes:
    """k * P for every point of a packed batch, one libsodium call per point."""
    return b"".join(
        rbcl.crypto_scalarmult_ristretto255(k, packed[i : i + 32])
        for i in range(0, len(packed), 32)
    )


def finalize(x: bytes, r: bytes, evaluated: bytes) -> bytes:
    """Finalize: Hash(len(x) || x || len(T) || T || "Finalize") with T = r^-1 * evaluated."""
    unblinded = rbcl.crypto_scalarmult_ristretto255(
        rbcl.crypto_core_ristretto255_scalar_invert(r), evaluated
    )
    return hashlib.sha512(
        len(x).to_bytes(2, "big") + x + b"\x00\x20" + unblinded + b"Finalize"
    ).digest()


def _lp(data: bytes) -> bytes:
    return len(data).to_bytes(2, "big") + data


def _composites(
    k: bytes | None, b: bytes, cs: Sequence[bytes], ds: Sequence[bytes], context: bytes
) -> tuple[bytes, bytes]:
    """ComputeCompositesFast (with k) or ComputeComposites (without), section 2.2.1."""
    seed = hashlib.sha512(_lp(b) + _lp(b"Seed-" + context)).digest()
    dst = b"HashToScalar-" + context
    m = z = None
    for i, (ci, di) in enumerate(zip(cs, ds, strict=True)):
        weight = hash_to_scalar(
            _lp(seed) + i.to_bytes(2, "big") + _lp(ci) + _lp(di) + b"Composite", dst
        )
        term = rbcl.crypto_scalarmult_ristretto255(weight, ci)
        m = term if m is None else rbcl.crypto_core_ristretto255_add(m, term)
        if k is None:
            term = rbcl.crypto_scalarmult_ristretto255(weight, di)
            z = term if z is None else rbcl.crypto_core_ristretto255_add(z, term)
    assert m is not None
    if k is not None:
        z = rbcl.crypto_scalarmult_ristretto255(k, m)
    assert z is not None
    return m, z


def _challenge(b: bytes, m: bytes, z: bytes, t2: bytes, t3: bytes, context: bytes) -> bytes:
    transcript = _lp(b) + _lp(m) + _lp(z) + _lp(t2) + _lp(t3) + b"Challenge"
    return hash_to_scalar(transcript, b"HashToScalar-" + context)


def generate_proof(
    k: bytes, cs: Sequence[bytes], ds: Sequence[bytes], r: bytes, context: bytes
) -> bytes:
    """GenerateProof(k, G, k*G, C, D) with randomness r: c || s (section 2.2.1)."""
    b = rbcl.crypto_scalarmult_ristretto255_base(k)
    m, z = _composites(k, b, cs, ds, context)
    t2 = rbcl.crypto_scalarmult_ristretto255_base(r)
    t3 = rbcl.crypto_scalarmult_ristretto255(r, m)
    c = _challenge(b, m, z, t2, t3, context)
    s = rbcl.crypto_core_ristretto255_scalar_sub(r, rbcl.crypto_core_ristretto255_scalar_mul(c, k))
    return c + s


def verify_proof(
    b: bytes, cs: Sequence[bytes], ds: Sequence[bytes], proof: bytes, context: bytes
) -> bool:
    """VerifyProof(G, B, C, D, proof) (section 2.2.2)."""
    c, s = proof[:32], proof[32:]
    m, z = _composites(None, b, cs, ds, context)

    def mul(scalar: bytes, point: bytes) -> bytes:
        out: bytes = rbcl.crypto_scalarmult_ristretto255_allow_scalar_zero(scalar, point)
        return out

    t2 = rbcl.crypto_core_ristretto255_add(
        rbcl.crypto_scalarmult_ristretto255_base_allow_scalar_zero(s), mul(c, b)
    )
    t3 = rbcl.crypto_core_ristretto255_add(mul(s, m), mul(c, z))
    return _challenge(b, m, z, t2, t3, context) == c
