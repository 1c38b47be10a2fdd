"""Salted Merkle commitments to a node's tag list, so a co-holder claim can be checked.

DESIGN.md, "Threat model: an active coordinator", "Checkable results". Under `partners`
disclosure the coordinator tells node A that partner B holds A's tag t too. Without a
check it could say so falsely. Here every node commits to its tag list before the tally
(a Merkle root over salted leaves, signed with its roster key) and the coordinator passes
A an inclusion proof from B: A, which holds t, verifies that B's signed root contains t.

Construction (SHA-256 throughout)::

    leaf_i  = SHA-256("kruispunt/commitments/leaf/v1" 0x00 || salt_i || tag_i)
    node    = SHA-256("kruispunt/commitments/node/v1" 0x00 || left || right)
    root    = SHA-256("kruispunt/commitments/size/v1" 0x00 || u64 count || top)

`salt_i` is a fresh random 16 bytes per leaf, `tag_i` the 16-byte tag, in the node's own
(already permuted) tag order. The tree is built level by level, pairing neighbours; an odd
node at the end of a level is PROMOTED unchanged to the next level (never duplicated:
duplication lets two different lists share a root, as in Bitcoin's CVE-2012-2459). The
distinct leaf and node labels make an inner node impossible to pass off as a leaf or the
reverse (second preimages). `top` is the tree's last node (32 zero bytes for no tags);
hashing the count into the root fixes the tree's shape, so the verifier knows at which
levels a leaf has a sibling and how long a valid path is, and a proof checked against
the wrong count never verifies.

A proof reveals the leaf's salt and the sibling hashes on its path. Every sibling covers
salted leaves, so it says nothing about the tags under it: knowing or guessing another
tag does not let anyone recompute that leaf without its 128-bit salt.

Encodings (integers big-endian, ``lp(x)`` a u32 length then x)::

    root statement   lp("kruispunt/commitments/root/v1") lp(round_id) lp(manifest_sha256)
                     lp(partner) u64 count lp(root) lp(key_check)   signed under CONTEXT_ROOT
    SignedRoot       lp(root statement) signature[64]
    InclusionProof   u8 version (1) | u64 index | salt[16] | u8 path length | 32 * length

Every refusal raises `CommitmentRefused`, whose reason never holds a tag, salt or hash.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kruispunt import signing
from kruispunt.errors import AttackRefused, SignatureInvalid
from kruispunt.manifest import is_round_id
from kruispunt.purpose import ID_RE
from kruispunt.wire import TAG_BYTES

KEY_CHECK_BYTES = 16  # kruispunt.tagkey.KEY_CHECK_BYTES (tagkey imports roster, not this)

__all__ = [
    "CONTEXT_ROOT",
    "DIGEST_BYTES",
    "EMPTY_ROOT",
    "MAX_LEAVES",
    "MAX_PATH",
    "SALT_BYTES",
    "Commitment",
    "CommitmentRefused",
    "InclusionProof",
    "SignedRoot",
    "path_length",
    "sign_root",
    "verify_inclusion",
    "verify_root",
]

CONTEXT_ROOT = b"kruispunt/commitments/root/v1"
_LEAF = b"kruispunt/commitments/leaf/v1\x00"
_NODE = b"kruispunt/commitments/node/v1\x00"
_SIZE = b"kruispunt/commitments/size/v1\x00"

DIGEST_BYTES = 32
SALT_BYTES = 16
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")

EMPTY_ROOT = hashlib.sha256(_SIZE + _U64.pack(0) + bytes(32)).digest()
"""The root of a commitment to no tags; it has no inclusion proofs."""

MAX_PATH = 40
"""Longest path a proof may carry: a tree of up to 2**40 leaves."""

MAX_LEAVES = 2**MAX_PATH
"""Most tags one commitment may cover (far beyond any purpose's maximum set size)."""

_PROOF_VERSION = 1
_PROOF_HEAD = struct.Struct(">BQ")
_MAX_ID_BYTES = 64


class CommitmentRefused(AttackRefused):
    """A commitment, root or inclusion proof does not check out; `reason` says why.

    The reason names indices, counts and partner ids only, never a tag, salt or hash.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"commitment refused: {reason}")
        self.reason = reason


def _leaf(salt: bytes, tag: bytes) -> bytes:
    return hashlib.sha256(_LEAF + salt + tag).digest()


def _parent(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE + left + right).digest()


def _sized(count: int, top: bytes) -> bytes:
    return hashlib.sha256(_SIZE + _U64.pack(count) + top).digest()


def path_length(index: int, count: int) -> int:
    """How many sibling hashes the path of leaf `index` has in a tree of `count` leaves.

    A leaf has no sibling at a level where it is the promoted odd node at the end.
    ValueError if `index` is not in 0..count-1.
    """
    if not 0 <= index < count:
        raise ValueError(f"index {index} is outside 0..{count - 1}")
    length = 0
    while count > 1:
        if index ^ 1 < count:
            length += 1
        index >>= 1
        count = (count + 1) >> 1
    return length


@dataclass(frozen=True)
class InclusionProof:
    """What shows that one salted tag sits at `index` under a root: salt and sibling path.

    `siblings` run from the leaf's level up to just below the root, one per level where
    the leaf (or its ancestor) has a sibling.
    """

    index: int
    salt: bytes
    siblings: tuple[bytes, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "siblings", tuple(self.siblings))
        if isinstance(self.index, bool) or not isinstance(self.index, int):
            raise TypeError(f"index must be an int, not {type(self.index).__name__}")
        if not 0 <= self.index < MAX_LEAVES:
            raise ValueError(f"index must be 0..{MAX_LEAVES - 1}")
        if not isinstance(self.salt, bytes) or len(self.salt) != SALT_BYTES:
            raise ValueError(f"salt must be {SALT_BYTES} bytes")
        if len(self.siblings) > MAX_PATH:
            raise ValueError(f"path holds more than {MAX_PATH} siblings")
        for sibling in self.siblings:
            if not isinstance(sibling, bytes) or len(sibling) != DIGEST_BYTES:
                raise ValueError(f"every sibling must be a {DIGEST_BYTES}-byte hash")

    def encode(self) -> bytes:
        """The compact encoding (see the module docstring): 26 + 32 bytes per level."""
        return (
            _PROOF_HEAD.pack(_PROOF_VERSION, self.index)
            + self.salt
            + bytes([len(self.siblings)])
            + b"".join(self.siblings)
        )

    @classmethod
    def decode(cls, data: bytes) -> InclusionProof:
        """Parse `encode()`'s bytes strictly; CommitmentRefused says what is malformed."""
        if not isinstance(data, bytes):
            raise TypeError(f"proof must be bytes, not {type(data).__name__}")
        head = _PROOF_HEAD.size + SALT_BYTES + 1
        if len(data) < head:
            raise CommitmentRefused("malformed inclusion proof: truncated")
        version, index = _PROOF_HEAD.unpack_from(data)
        if version != _PROOF_VERSION:
            raise CommitmentRefused(f"malformed inclusion proof: unknown version {version}")
        length = data[head - 1]
        if length > MAX_PATH:
            raise CommitmentRefused(
                f"malformed inclusion proof: path of {length} siblings, at most {MAX_PATH}"
            )
        if len(data) != head + length * DIGEST_BYTES:
            raise CommitmentRefused(
                f"malformed inclusion proof: {len(data)} bytes for a path of {length} siblings"
            )
        siblings = tuple(
            data[start : start + DIGEST_BYTES] for start in range(head, len(data), DIGEST_BYTES)
        )
        try:
            return cls(index, data[_PROOF_HEAD.size : head - 1], siblings)
        except ValueError as exc:
            raise CommitmentRefused(f"malformed inclusion proof: {exc}") from None


#: Digests made before they are packed together (`Commitment.build`): bounds the memory
#: of one level's loose bytes objects to about 5 MB.
_HASHED_AT_ONCE = 65536


class Commitment:
    """A salted Merkle commitment to a tag list: its root, and the tree for inclusion proofs.

    Holds the salts and, unless built with `proofs=False`, every level of the tree, each
    level packed into one bytes object (32 bytes per node, about 64 bytes per tag in all);
    never the tags. Build it with `Commitment.build` (a node: it needs only the root and the
    salts) or `Commitment.with_salts` (the coordinator: it answers the proofs).
    """

    def __init__(self, salts: bytes, count: int, top: bytes, levels: list[bytes]) -> None:
        self._salts = salts
        self._count = count
        self._levels = levels
        self._root = _sized(count, top)

    @classmethod
    def with_salts(cls, tags_packed: bytes, salts: bytes) -> Commitment:
        """The commitment a node built over `tags_packed` with these salts (the relay's copy,
        which answers inclusion proofs).

        ValueError if there is not exactly one 16-byte salt per tag.
        """
        if len(salts) * TAG_BYTES != len(tags_packed) * SALT_BYTES:
            raise ValueError("one 16-byte salt per tag is needed")
        return cls.build(tags_packed, rng=lambda _n: bytes(salts))

    @classmethod
    def build(
        cls,
        tags_packed: bytes,
        rng: Callable[[int], bytes] = os.urandom,
        *,
        proofs: bool = True,
    ) -> Commitment:
        """Commit to `tags_packed` (16-byte tags end to end) in their order, salting each leaf.

        `rng(n)` must return n random bytes; it is called once, for all the salts. With
        `proofs=False` each level is dropped once the next is made: the root and salts
        remain, `proof` is refused, and a million tags take 16 MB instead of 80.
        ValueError if the tags are not whole or more than MAX_LEAVES.
        """
        if not isinstance(tags_packed, bytes):
            raise TypeError(f"tags must be bytes, not {type(tags_packed).__name__}")
        count, rest = divmod(len(tags_packed), TAG_BYTES)
        if rest:
            raise ValueError(f"packed tags length {len(tags_packed)} is not a multiple of 16")
        if count > MAX_LEAVES:
            raise ValueError(f"at most {MAX_LEAVES} tags per commitment")
        salts = rng(count * SALT_BYTES)
        if not isinstance(salts, bytes) or len(salts) != count * SALT_BYTES:
            raise ValueError(f"rng must return exactly {count * SALT_BYTES} bytes")
        sha256 = hashlib.sha256
        leaf_label, node_label = _LEAF, _NODE
        width = DIGEST_BYTES
        step = _HASHED_AT_ONCE
        # Comprehensions with local names: this loop is the whole cost (about 2 hashes a
        # tag). Each joins `step` digests at a time, so no level is ever held as a list of
        # a million bytes objects (about 80 bytes each), only as packed bytes.
        level = b"".join(
            b"".join(
                [
                    sha256(
                        leaf_label + salts[at : at + SALT_BYTES] + tags_packed[at : at + TAG_BYTES]
                    ).digest()
                    for at in range(
                        start, min(start + step * TAG_BYTES, len(tags_packed)), TAG_BYTES
                    )
                ]
            )
            for start in range(0, len(tags_packed), step * TAG_BYTES)
        )
        levels = [level]
        while len(level) > width:
            pairs = len(level) - width
            upper = b"".join(
                b"".join(
                    [
                        sha256(node_label + level[i : i + 2 * width]).digest()
                        for i in range(start, min(start + step * 2 * width, pairs), 2 * width)
                    ]
                )
                for start in range(0, pairs, step * 2 * width)
            )
            if len(level) // width % 2:
                upper += level[-width:]
            level = upper
            if proofs:
                levels.append(upper)
        top = level if count else bytes(DIGEST_BYTES)
        return cls(salts, count, top, levels if proofs else [])

    @property
    def count(self) -> int:
        """How many tags this commits to."""
        return self._count

    @property
    def root(self) -> bytes:
        """The 32-byte root over the tree and its size (`EMPTY_ROOT` for no tags)."""
        return self._root

    @property
    def salts(self) -> bytes:
        """Every leaf's 16-byte salt, end to end, in tag order."""
        return self._salts

    def proof(self, index: int) -> InclusionProof:
        """The inclusion proof of the tag at `index`; ValueError if out of range, or if the
        tree was not kept (`build(proofs=False)`)."""
        count = self.count
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"index must be an int, not {type(index).__name__}")
        if not 0 <= index < count:
            raise ValueError(f"index {index} is outside 0..{count - 1}")
        if not self._levels:
            raise ValueError("this commitment was built without its tree (proofs=False)")
        width = DIGEST_BYTES
        siblings = []
        at = index
        for level in self._levels[:-1]:
            if (at ^ 1) * width < len(level):
                siblings.append(level[(at ^ 1) * width : (at ^ 1) * width + width])
            at >>= 1
        salt = self._salts[index * SALT_BYTES : (index + 1) * SALT_BYTES]
        return InclusionProof(index, salt, tuple(siblings))


def verify_inclusion(tag: bytes, proof: InclusionProof, root: bytes, count: int) -> None:
    """Return if `proof` shows `tag` in the tree of `count` leaves under `root`.

    Raises CommitmentRefused otherwise: index out of range, a path of the wrong length
    for that index and count, or a recomputed root that differs (wrong tag, salt, index
    or sibling). Take `root` and `count` from a `verify_root`-checked SignedRoot.
    """
    if not isinstance(tag, bytes) or len(tag) != TAG_BYTES:
        raise ValueError(f"tag must be {TAG_BYTES} bytes")
    if not isinstance(root, bytes) or len(root) != DIGEST_BYTES:
        raise ValueError(f"root must be {DIGEST_BYTES} bytes")
    if count < 1:
        raise CommitmentRefused("the commitment holds no tags")
    if not 0 <= proof.index < count:
        raise CommitmentRefused(f"proof index {proof.index} is outside 0..{count - 1}")
    expected = path_length(proof.index, count)
    if len(proof.siblings) != expected:
        raise CommitmentRefused(
            f"proof path has {len(proof.siblings)} siblings, leaf {proof.index} of {count} "
            f"needs {expected}"
        )
    node = _leaf(proof.salt, tag)
    siblings = iter(proof.siblings)
    index, size = proof.index, count
    while size > 1:
        if index ^ 1 < size:
            sibling = next(siblings)
            node = _parent(sibling, node) if index & 1 else _parent(node, sibling)
        index >>= 1
        size = (size + 1) >> 1
    if _sized(count, node) != root:
        raise CommitmentRefused(f"proof for leaf {proof.index} does not lead to the signed root")


@dataclass(frozen=True)
class SignedRoot:
    """A node's signed claim: in this round and manifest, my `count` tags have this root."""

    round_id: str
    manifest_sha256: bytes
    partner: str
    count: int
    root: bytes
    signature: bytes
    #: `tagkey.key_check` of the tag key the node derived: partners compare these before any
    #: tag is revealed, so a share sealed inconsistently stops the round instead of silently
    #: splitting the network into partners whose tags never match.
    key_check: bytes = b""

    def __post_init__(self) -> None:
        if not isinstance(self.key_check, bytes) or len(self.key_check) not in (0, KEY_CHECK_BYTES):
            raise ValueError(f"key check must be empty or {KEY_CHECK_BYTES} bytes")
        if not isinstance(self.round_id, str) or not is_round_id(self.round_id):
            raise ValueError("round id is malformed")
        if not isinstance(self.manifest_sha256, bytes) or len(self.manifest_sha256) != 32:
            raise ValueError("manifest digest must be 32 bytes")
        if not isinstance(self.partner, str) or ID_RE.fullmatch(self.partner) is None:
            raise ValueError("partner is not a well-formed partner id")
        if isinstance(self.count, bool) or not isinstance(self.count, int):
            raise ValueError("count must be an integer")
        if not 0 <= self.count <= MAX_LEAVES:
            raise ValueError(f"count must be 0..{MAX_LEAVES}")
        if not isinstance(self.root, bytes) or len(self.root) != DIGEST_BYTES:
            raise ValueError(f"root must be {DIGEST_BYTES} bytes")
        if not isinstance(self.signature, bytes):
            raise ValueError("signature must be bytes")

    def statement(self) -> bytes:
        """The canonical bytes the signature covers (see the module docstring)."""
        return b"".join(
            (
                _lp(CONTEXT_ROOT),
                _lp(self.round_id.encode("ascii")),
                _lp(self.manifest_sha256),
                _lp(self.partner.encode("ascii")),
                _U64.pack(self.count),
                _lp(self.root),
                _lp(self.key_check),
            )
        )

    def encode(self) -> bytes:
        """The transport encoding: the statement, length-prefixed, then the signature."""
        return _lp(self.statement()) + self.signature

    @classmethod
    def decode(cls, data: bytes) -> SignedRoot:
        """Parse `encode()`'s bytes strictly; CommitmentRefused says what is malformed."""
        if not isinstance(data, bytes):
            raise TypeError(f"signed root must be bytes, not {type(data).__name__}")
        reader = _Reader(data)
        statement = _Reader(reader.blob("statement", 512))
        if statement.blob("label", 64) != CONTEXT_ROOT:
            raise CommitmentRefused("malformed signed root: wrong domain label")
        round_id = statement.text("round id")
        manifest_sha256 = statement.blob("manifest digest", 32)
        partner = statement.text("partner")
        count = statement.u64()
        root = statement.blob("root", DIGEST_BYTES)
        key_check = statement.blob("key check", KEY_CHECK_BYTES)
        statement.end()
        signature = reader.fixed(signing.SIGNATURE_BYTES)
        reader.end()
        try:
            return cls(round_id, manifest_sha256, partner, count, root, signature, key_check)
        except ValueError as exc:
            raise CommitmentRefused(f"malformed signed root: {exc}") from None


def _lp(data: bytes) -> bytes:
    return _U32.pack(len(data)) + data


class _Reader:
    """A bounds-checked cursor over untrusted bytes; every defect is a CommitmentRefused."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def fixed(self, size: int) -> bytes:
        end = self._pos + size
        if end > len(self._data):
            raise CommitmentRefused("malformed signed root: truncated")
        out = self._data[self._pos : end]
        self._pos = end
        return out

    def u64(self) -> int:
        value: int = _U64.unpack(self.fixed(_U64.size))[0]
        return value

    def blob(self, field: str, limit: int) -> bytes:
        size: int = _U32.unpack(self.fixed(_U32.size))[0]
        if size > limit:
            raise CommitmentRefused(
                f"malformed signed root: {field} is {size} bytes, at most {limit}"
            )
        return self.fixed(size)

    def text(self, field: str) -> str:
        raw = self.blob(field, _MAX_ID_BYTES)
        if not raw.isascii():
            raise CommitmentRefused(f"malformed signed root: {field} is not ASCII")
        return raw.decode("ascii")

    def end(self) -> None:
        if self._pos != len(self._data):
            raise CommitmentRefused(
                f"malformed signed root: {len(self._data) - self._pos} trailing bytes"
            )


def sign_root(
    key: Ed25519PrivateKey,
    *,
    round_id: str,
    manifest_sha256: bytes,
    partner: str,
    count: int,
    root: bytes,
    key_check: bytes = b"",
) -> SignedRoot:
    """`partner`'s signed claim that its `count` tags in this round have Merkle root `root`
    (and, when given, that its tag key has this `key_check`)."""
    unsigned = SignedRoot(round_id, manifest_sha256, partner, count, root, b"", key_check)
    signature = signing.sign(key, CONTEXT_ROOT, unsigned.statement())
    return SignedRoot(round_id, manifest_sha256, partner, count, root, signature, key_check)


def verify_root(
    signed: SignedRoot,
    key: signing.Verifier,
    *,
    round_id: str,
    manifest_sha256: bytes,
    partner: str,
    count: int,
) -> bytes:
    """Return the root if `signed` is `partner`'s root for this round, manifest and count.

    `key` is the partner's ROSTER signing key; `count` its set size from its signed
    consent. CommitmentRefused names the first mismatch, or an invalid signature.
    """
    if signed.round_id != round_id:
        raise CommitmentRefused("signed root is for another round (replayed)")
    if signed.manifest_sha256 != manifest_sha256:
        raise CommitmentRefused("signed root is for another manifest (replayed)")
    if signed.partner != partner:
        raise CommitmentRefused(f"signed root is not {partner}'s")
    if signed.count != count:
        raise CommitmentRefused(
            f"signed root covers {signed.count} tags, {partner}'s consent {count}"
        )
    try:
        signing.verify(key, CONTEXT_ROOT, signed.statement(), signed.signature)
    except SignatureInvalid:
        raise CommitmentRefused(
            f"root signature does not verify under {partner}'s roster key"
        ) from None
    return signed.root
