"""Unit tests of psi_node.oprf: hash-to-group, scalars, round keys, scalar multiplication, tags."""

from __future__ import annotations

import hashlib
import pickle

import pytest
import rbcl

from kruispunt.errors import InvalidPoint, ProtocolError
from psi_node import oprf
from tests.support.points import GROUP_ORDER, IDENTITY, high_bit_alias, non_canonical_encodings


def scalar(n: int) -> bytes:
    """A scalar as 32 little-endian bytes."""
    return n.to_bytes(32, "little")


class TestExpandMessageXmd:
    """expand_message_xmd with SHA-512 (RFC 9380, section 5.3.1)."""

    DST = b"QUUX-V01-CS02-with-expander-SHA512-256"

    @pytest.mark.parametrize(
        ("msg", "length", "expected"),
        [
            (b"", 32, "6b9a7312411d92f921c6f68ca0b6380730a1a4d982c507211a90964c394179ba"),
            (b"abc", 32, "0da749f12fbe5483eb066a5f595055679b976e93abe9be6f0f6318bce7aca8dc"),
            (
                b"abcdef0123456789",
                32,
                "087e45a86e2939ee8b91100af1583c4938e0f5fc6c9db4b107b83346bc967f58",
            ),
            (
                b"",
                128,
                "41b037d1734a5f8df225dd8c7de38f851efdb45c372887be655212d07251b921"
                "b052b62eaed99b46f72f2ef4cc96bfaf254ebbbec091e1a3b9e4fb5e5b619d2e"
                "0c5414800a1d882b62bb5cd1778f098b8eb6cb399d5d9d18f5d5842cf5d13d7e"
                "b00a7cff859b605da678b318bd0e65ebff70bec88c753b159a805d2c89c55961",
            ),
        ],
    )
    def test_rfc9380_vectors(self, msg: bytes, length: int, expected: str) -> None:
        """The output matches RFC 9380 appendix K.3, including a two-block (128-byte) output."""
        assert oprf.expand_message_xmd(msg, self.DST, length).hex() == expected

    @pytest.mark.parametrize(
        ("dst_len", "length"), [(256, 64), (10, 65536), (10, 255 * 64 + 1), (10, -1)]
    )
    def test_out_of_range_parameters_are_refused(self, dst_len: int, length: int) -> None:
        """A DST over 255 bytes, more than 255 blocks or a negative length raise ValueError."""
        with pytest.raises(ValueError, match="out of range"):
            oprf.expand_message_xmd(b"x", b"d" * dst_len, length)


class TestHashToGroup:
    """HashToGroup of RFC 9497 for ristretto255-SHA512."""

    def test_dst_is_the_rfc_context(self) -> None:
        """The DST is "HashToGroup-" followed by the mode-0 ristretto255-SHA512 context string."""
        assert oprf.HASH_TO_GROUP_DST == b"HashToGroup-OPRFV1-\x00-ristretto255-SHA512"

    @pytest.mark.parametrize("x", [b"", b"\x00", b"bsn:123456782", b"y" * 200, bytes(range(256))])
    def test_fast_path_equals_the_general_construction(self, x: bytes) -> None:
        """The precomputed-prefix hash equals expand_message_xmd(64) then libsodium's from_hash."""
        uniform = oprf.expand_message_xmd(x, oprf.HASH_TO_GROUP_DST, 64)
        assert oprf.hash_to_group([x]) == rbcl.crypto_core_ristretto255_from_hash(uniform)

    def test_packs_in_input_order(self) -> None:
        """A batch is the per-input points laid end to end in input order."""
        inputs = [b"a", b"b", b"c", b"a"]
        packed = oprf.hash_to_group(inputs)
        assert len(packed) == 4 * oprf.POINT_BYTES
        assert [packed[i * 32 : i * 32 + 32] for i in range(4)] == [
            oprf.hash_to_group([x]) for x in inputs
        ]
        assert packed[:32] == packed[96:] != packed[32:64]

    def test_points_are_valid_and_empty_batch_is_empty(self) -> None:
        """Every output is a valid non-identity point; no inputs give empty bytes."""
        packed = oprf.hash_to_group([b"%d" % i for i in range(20)])
        for i in range(0, len(packed), 32):
            assert rbcl.crypto_core_ristretto255_is_valid_point(packed[i : i + 32])
            assert packed[i : i + 32] != IDENTITY
        assert oprf.hash_to_group([]) == b""


class TestScalars:
    """Random scalars and the checks every scalar input goes through."""

    def test_random_scalars_are_canonical_distinct_and_nonzero(self) -> None:
        """random_scalar gives 32 bytes below the group order, non-zero, fresh each call."""
        drawn = {oprf.random_scalar() for _ in range(50)}
        assert len(drawn) == 50
        assert all(len(s) == 32 and 0 < int.from_bytes(s, "little") < GROUP_ORDER for s in drawn)

    @pytest.mark.parametrize(
        "bad",
        [scalar(0), scalar(GROUP_ORDER), scalar(GROUP_ORDER + 1), b"\xff" * 32, b"\x01" * 31],
    )
    def test_zero_non_canonical_or_short_scalars_raise_value_error(self, bad: bytes) -> None:
        """Zero, values >= the group order and wrong lengths are ValueError, never reduced."""
        point = oprf.hash_to_group([b"p"])
        with pytest.raises(ValueError, match="scalar must be"):
            oprf.scalar_mult(bad, point)

    def test_non_bytes_scalar_raises_type_error(self) -> None:
        """A scalar that is not bytes-like is a TypeError."""
        with pytest.raises(TypeError):
            oprf.scalar_mult("00" * 32, oprf.hash_to_group([b"p"]))  # type: ignore[arg-type]

    def test_largest_canonical_scalar_is_accepted(self) -> None:
        """order - 1 is canonical and acts as -1: applying it twice returns the point."""
        point = oprf.hash_to_group([b"p"])
        minus_one = scalar(GROUP_ORDER - 1)
        assert oprf.scalar_mult(minus_one, oprf.scalar_mult(minus_one, point)) == point


class TestRoundKey:
    """RoundKey: k, r, k * r^-1, and wiping."""

    def test_unblind_factor_turns_blinded_point_into_key_times_point(self) -> None:
        """(k * r^-1) * (r * P) == k * P."""
        key = oprf.RoundKey.generate()
        point = oprf.hash_to_group([b"household"])
        blinded = oprf.scalar_mult(key.blind_factor, point)
        assert oprf.scalar_mult(key.unblind_factor, blinded) == oprf.scalar_mult(key.key, point)

    def test_given_scalars_are_used_verbatim(self) -> None:
        """The constructor keeps the given k and r (injectable for deterministic tests)."""
        key = oprf.RoundKey(scalar(7), scalar(3))
        assert bytes(key.key) == scalar(7)
        assert bytes(key.blind_factor) == scalar(3)
        # 7 * 3^-1 mod order, computed independently in Python.
        assert bytes(key.unblind_factor) == scalar(7 * pow(3, -1, GROUP_ORDER) % GROUP_ORDER)

    def test_generate_draws_fresh_keys(self) -> None:
        """Two generated keys share neither k nor r."""
        a, b = oprf.RoundKey.generate(), oprf.RoundKey.generate()
        assert bytes(a.key) != bytes(b.key)
        assert bytes(a.blind_factor) != bytes(b.blind_factor)

    def test_views_are_read_only(self) -> None:
        """The properties are read-only views: a caller cannot overwrite the key through them."""
        key = oprf.RoundKey.generate()
        view = key.key
        with pytest.raises(TypeError):
            view[0] = 1

    def test_wipe_zeroes_every_view_and_blocks_further_use(self) -> None:
        """After wipe() views taken earlier read zeros and the properties raise ValueError."""
        key = oprf.RoundKey.generate()
        views = [key.key, key.blind_factor, key.unblind_factor]
        key.wipe()
        assert key.wiped
        assert all(bytes(v) == bytes(32) for v in views)
        for name in ("key", "blind_factor", "unblind_factor"):
            with pytest.raises(ValueError, match="wiped"):
                getattr(key, name)

    def test_a_wiped_scalar_is_refused_by_the_operations(self) -> None:
        """A view of a wiped key is the zero scalar, which scalar_mult refuses."""
        key = oprf.RoundKey.generate()
        view = key.key
        key.wipe()
        with pytest.raises(ValueError, match="scalar must be"):
            oprf.scalar_mult(view, oprf.hash_to_group([b"p"]))

    def test_context_manager_wipes(self) -> None:
        """Leaving a `with RoundKey` block wipes the key."""
        with oprf.RoundKey.generate() as key:
            assert not key.wiped
        assert key.wiped

    def test_repr_hides_the_secrets(self) -> None:
        """repr() shows no key material, before or after wiping."""
        key = oprf.RoundKey.generate()
        secret = bytes(key.key)
        assert secret.hex() not in repr(key)
        assert repr(key) == "RoundKey(<secret>)"
        key.wipe()
        assert repr(key) == "RoundKey(wiped)"

    def test_cannot_be_pickled(self) -> None:
        """Pickling a round key raises TypeError, so it cannot leave the process by accident."""
        with pytest.raises(TypeError, match="not picklable"):
            pickle.dumps(oprf.RoundKey.generate())

    def test_invalid_scalars_are_refused(self) -> None:
        """A zero key or blinding is a ValueError at construction."""
        with pytest.raises(ValueError, match="scalar must be"):
            oprf.RoundKey(scalar(0), scalar(1))
        with pytest.raises(ValueError, match="scalar must be"):
            oprf.RoundKey(scalar(1), scalar(0))


class TestScalarMult:
    """Batch scalar multiplication and its point validation."""

    def test_matches_libsodium_per_point_in_order(self) -> None:
        """Each output equals rbcl's own crypto_scalarmult_ristretto255, in input order."""
        k = oprf.random_scalar()
        points = [oprf.hash_to_group([b"%d" % i]) for i in range(10)]
        out = oprf.scalar_mult(k, b"".join(points))
        assert out == b"".join(rbcl.crypto_scalarmult_ristretto255(k, p) for p in points)

    def test_keys_commute(self) -> None:
        """k1 * (k2 * P) == k2 * (k1 * P): the order in which nodes apply keys does not matter."""
        k1, k2 = oprf.random_scalar(), oprf.random_scalar()
        packed = oprf.hash_to_group([b"a", b"b", b"c"])
        assert oprf.scalar_mult(k1, oprf.scalar_mult(k2, packed)) == oprf.scalar_mult(
            k2, oprf.scalar_mult(k1, packed)
        )

    def test_empty_batch(self) -> None:
        """No points in, no points out."""
        assert oprf.scalar_mult(oprf.random_scalar(), b"") == b""

    def test_every_malformed_encoding_raises_the_one_opaque_error(self) -> None:
        """RFC 9496 invalid encodings, the identity and aliases all raise InvalidPoint."""
        good = oprf.hash_to_group([b"good"])
        k = oprf.random_scalar()
        for bad in non_canonical_encodings(good):
            with pytest.raises(InvalidPoint) as caught:
                oprf.scalar_mult(k, bad)
            assert str(caught.value) == "invalid group element"

    def test_libsodium_alone_would_accept_the_high_bit_alias(self) -> None:
        """The bundled libsodium ignores bit 255, which is why oprf checks it (guards the check)."""
        good = oprf.hash_to_group([b"good"])
        assert rbcl.crypto_core_ristretto255_is_valid_point(high_bit_alias(good))

    @pytest.mark.parametrize("length", [1, 31, 33, 63, 65])
    def test_wrong_lengths_raise_the_one_opaque_error(self, length: int) -> None:
        """A packed batch that is not a whole number of points raises InvalidPoint."""
        with pytest.raises(InvalidPoint) as caught:
            oprf.scalar_mult(oprf.random_scalar(), bytes(range(length)))
        assert str(caught.value) == "invalid group element"

    def test_error_does_not_reveal_position(self) -> None:
        """A bad point first or last in a batch gives the same error, with no index in it."""
        good = oprf.hash_to_group([b"%d" % i for i in range(5)])
        k = oprf.random_scalar()
        messages = set()
        for packed in (IDENTITY + good, good + IDENTITY, good[:64] + b"\xff" * 32 + good[64:]):
            with pytest.raises(InvalidPoint) as caught:
                oprf.scalar_mult(k, packed)
            messages.add((str(caught.value), caught.value.args))
        assert messages == {("invalid group element", ("invalid group element",))}


class TestFinalize:
    """Finalize and the 16-byte round tags."""

    def test_tag_is_truncated_rfc_finalize_hash(self) -> None:
        """A tag is the first 16 bytes of SHA-512(len||x||len||T||"Finalize") (RFC 9497 3.3.1)."""
        x = b"bsn:111222333"
        t = oprf.hash_to_group([b"T"])
        expected = hashlib.sha512(b"\x00\x0d" + x + b"\x00\x20" + t + b"Finalize").digest()[:16]
        assert oprf.finalize([x], t) == expected

    def test_count_mismatch_is_a_protocol_error(self) -> None:
        """Fewer or more points than inputs raise ProtocolError."""
        t = oprf.hash_to_group([b"a", b"b"])
        with pytest.raises(ProtocolError):
            oprf.finalize([b"a"], t)
        with pytest.raises(ProtocolError):
            oprf.mult_and_finalize([b"a", b"b", b"c"], oprf.random_scalar(), t)

    def test_overlong_input_is_refused(self) -> None:
        """An input longer than 65535 bytes cannot be length-prefixed and raises ValueError."""
        with pytest.raises(ValueError, match="65535"):
            oprf.finalize([b"x" * 65536], oprf.hash_to_group([b"T"]))


class TestRoundSteps:
    """The round-level helpers against the RFC-shaped single-key OPRF."""

    def test_single_party_tag_equals_truncated_rfc_output(self) -> None:
        """blind -> unblind_and_tag with one key gives RFC 9497 Output[:16] for that key."""
        inputs = [b"bsn:111222333", b"address:5211AB|12|A|"]
        key = oprf.RoundKey.generate()
        tags = oprf.unblind_and_tag(inputs, key, oprf.blind_inputs(inputs, key))
        k, r = bytes(key.key), bytes(key.blind_factor)
        expected = b"".join(
            oprf.finalize_rfc(x, r, oprf.evaluate_rfc(k, oprf.blind_rfc(x, r)))[:16] for x in inputs
        )
        assert tags == expected

    def test_two_parties_agree_on_shared_inputs(self) -> None:
        """Two nodes with overlapping sets produce equal tags exactly for the shared inputs."""
        a_set = [b"shared-1", b"only-a", b"shared-2"]
        b_set = [b"shared-2", b"only-b", b"shared-1"]
        ka, kb = oprf.RoundKey.generate(), oprf.RoundKey.generate()
        a_tags = oprf.unblind_and_tag(a_set, ka, oprf.evaluate(kb, oprf.blind_inputs(a_set, ka)))
        b_tags = oprf.unblind_and_tag(b_set, kb, oprf.evaluate(ka, oprf.blind_inputs(b_set, kb)))
        assert a_tags[:16] == b_tags[32:48]
        assert a_tags[32:48] == b_tags[:16]
        assert a_tags[16:32] not in {b_tags[i : i + 16] for i in range(0, 48, 16)}

    def test_blinded_points_hide_the_input(self) -> None:
        """The same input blinded under two keys gives unrelated points (r is fresh per round)."""
        x = [b"bsn:111222333"]
        one = oprf.blind_inputs(x, oprf.RoundKey.generate())
        two = oprf.blind_inputs(x, oprf.RoundKey.generate())
        assert one != two
        assert oprf.hash_to_group(x) not in (one, two)
