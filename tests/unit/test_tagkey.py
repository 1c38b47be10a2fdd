"""Tests for kruispunt.tagkey: a per-round tag key the partners agree on, the relay never holds."""

from __future__ import annotations

import hashlib
import hmac
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives.asymmetric import x25519

from kruispunt import roster, tagkey
from kruispunt.errors import ProtocolError, SignatureInvalid
from kruispunt.tagkey import TagKeyContribution

ROUND = "r20261201T154000-0a1b2c3d"
OTHER_ROUND = "r20261201T154000-0a1b2c3e"
MANIFEST = hashlib.sha256(b"signed manifest bytes").digest()
OTHER_MANIFEST = hashlib.sha256(b"another manifest").digest()
NAMES = ["gemeente", "corporatie", "schuldhulp", "ggz", "onderwijs", "energie"]
# RFC 9497 Appendix A.1.1 (OPRF(ristretto255, SHA-512)), test vectors 1 and 2: Output.
RFC9497_OUTPUTS = [
    bytes.fromhex(
        "527759c3d9366f277d8c6020418d96bb393ba2afb20ff90df23fb7708264e2f3"
        "ab9135e3bd69955851de4b1f9fe8a0973396719b7912ba9ee8aa7d0b5e24bcf6"
    ),
    bytes.fromhex(
        "f4a74c9c592497375e796aa837e907b1a045d34306a749db9f34221f7e750cb4"
        "f2a6413a6bf6fa5e19ba6348eb673934a722a7ede2e7621306d18951e7cf2c73"
    ),
]


@dataclass
class Network:
    """Partners (manifest order) with their agreement keys, and one contribution each."""

    order: list[str]
    keys: dict[str, x25519.X25519PrivateKey]
    contributions: dict[str, TagKeyContribution]

    def public(self, pid: str) -> bytes:
        return roster.agreement_public_bytes(self.keys[pid])

    def open(self, sender: str, recipient: str, **override: object) -> bytes:
        args: dict[str, object] = {
            "round_id": ROUND,
            "manifest_sha256": MANIFEST,
            "sender": sender,
            "recipient": recipient,
            "recipient_key": self.keys[recipient],
        }
        args.update(override)
        sealed = (
            args.pop("sealed") if "sealed" in args else self.contributions[sender].sealed[recipient]
        )
        return tagkey.open_share(sealed, **args)  # type: ignore[arg-type]

    def tag_key_of(self, me: str) -> bytes:
        """What node `me` derives: its own secret plus every share sealed to it."""
        secrets = {me: self.contributions[me].secret}
        for sender in self.order:
            if sender != me:
                secrets[sender] = self.open(sender, me)
        return tagkey.derive_tag_key(secrets, self.order, ROUND, MANIFEST)


def build(n: int, *, round_id: str = ROUND, manifest: bytes = MANIFEST) -> Network:
    order = NAMES[:n]
    keys = {pid: roster.generate_agreement_key() for pid in order}
    pubs = {pid: roster.agreement_public_bytes(k) for pid, k in keys.items()}
    contributions = {
        pid: TagKeyContribution.new(
            round_id, manifest, pid, {q: pubs[q] for q in order if q != pid}
        )
        for pid in order
    }
    return Network(order, keys, contributions)


NET = build(3)


def opaque(call: Callable[[], object]) -> str:
    with pytest.raises(SignatureInvalid) as exc:
        call()
    return str(exc.value)


class TestAgreement:
    @pytest.mark.parametrize("n", [2, 3, 4, 5, 6])
    def test_everybody_derives_the_same_key(self, n: int) -> None:
        """With n partners, every partner derives one and the same 32-byte tag key."""
        net = build(n)
        keys = {net.tag_key_of(pid) for pid in net.order}
        assert len(keys) == 1
        (key,) = keys
        assert len(key) == tagkey.TAG_KEY_BYTES
        secrets = {pid: c.secret for pid, c in net.contributions.items()}
        assert key == tagkey.derive_tag_key(secrets, net.order, ROUND, MANIFEST)
        checks = {tagkey.key_check(net.tag_key_of(pid), ROUND) for pid in net.order}
        assert len(checks) == 1

    def test_sealed_layout(self) -> None:
        """Each share is e_pub || nonce || ciphertext of fixed length, one per other partner."""
        for sender, c in NET.contributions.items():
            assert set(c.sealed) == set(NET.order) - {sender}
            assert len(c.secret) == tagkey.SECRET_BYTES
            for sealed in c.sealed.values():
                assert len(sealed) == tagkey.SEALED_BYTES == 92
                assert c.secret not in sealed
                roster.check_agreement_public_key(sealed[:32])
            # A fresh ephemeral key per recipient.
            assert len({s[:32] for s in c.sealed.values()}) == len(c.sealed)

    def test_documented_construction(self) -> None:
        """Opening with the docstring's recipe, written out here, gives the secret back."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        def lp(text: str) -> bytes:
            return len(text).to_bytes(2, "big") + text.encode()

        sealed = NET.contributions["gemeente"].sealed["corporatie"]
        e_pub, nonce, ct = sealed[:32], sealed[32:44], sealed[44:]
        pk = NET.public("corporatie")
        binding = (
            b"kruispunt/tag-key-share/v1\x00"
            + lp(ROUND)
            + lp("gemeente")
            + lp("corporatie")
            + e_pub
            + pk
        )
        shared = NET.keys["corporatie"].exchange(x25519.X25519PublicKey.from_public_bytes(e_pub))
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=MANIFEST, info=binding).derive(shared)
        secret = ChaCha20Poly1305(key).decrypt(nonce, ct, binding)
        assert secret == NET.contributions["gemeente"].secret

    def test_deterministic_with_injected_rng(self) -> None:
        """The same rng gives the same secret and shares; another rng gives others."""
        pubs = {pid: NET.public(pid) for pid in NET.order[1:]}

        def rng(seed: int) -> Callable[[int], bytes]:
            r = random.Random(seed)
            return r.randbytes

        a = TagKeyContribution.new(ROUND, MANIFEST, NET.order[0], pubs, rng=rng(1))
        b = TagKeyContribution.new(ROUND, MANIFEST, NET.order[0], pubs, rng=rng(1))
        c = TagKeyContribution.new(ROUND, MANIFEST, NET.order[0], pubs, rng=rng(2))
        assert (a.secret, a.sealed) == (b.secret, b.sealed)
        assert a.secret != c.secret
        assert a.sealed != c.sealed

    def test_secret_not_in_repr(self) -> None:
        """The secret never shows in a repr (logs, tracebacks)."""
        c = NET.contributions["gemeente"]
        assert c.secret.hex() not in repr(c)
        assert repr(c.secret) not in repr(c)

    def test_different_rounds_give_unrelated_keys(self) -> None:
        """The same secrets under another round id or manifest give other keys."""
        secrets = {pid: c.secret for pid, c in NET.contributions.items()}
        keys = {
            tagkey.derive_tag_key(secrets, NET.order, ROUND, MANIFEST),
            tagkey.derive_tag_key(secrets, NET.order, OTHER_ROUND, MANIFEST),
            tagkey.derive_tag_key(secrets, NET.order, ROUND, OTHER_MANIFEST),
        }
        assert len(keys) == 3
        fresh = build(3)
        assert fresh.tag_key_of(fresh.order[0]) not in keys

    def test_order_is_bound(self) -> None:
        """Listing the partners in another order than the manifest's gives another key."""
        secrets = {pid: c.secret for pid, c in NET.contributions.items()}
        a = tagkey.derive_tag_key(secrets, NET.order, ROUND, MANIFEST)
        b = tagkey.derive_tag_key(secrets, list(reversed(NET.order)), ROUND, MANIFEST)
        assert a != b

    def test_every_contribution_counts(self) -> None:
        """Changing any one partner's secret changes the key."""
        secrets = {pid: c.secret for pid, c in NET.contributions.items()}
        base = tagkey.derive_tag_key(secrets, NET.order, ROUND, MANIFEST)
        for pid in NET.order:
            changed = dict(secrets, **{pid: os.urandom(32)})
            assert tagkey.derive_tag_key(changed, NET.order, ROUND, MANIFEST) != base


class TestCoordinator:
    def test_relay_cannot_open_any_share(self) -> None:
        """Holding every sealed share but no partner's agreement key, nothing opens."""
        relay_key = x25519.X25519PrivateKey.generate()
        for sender, c in NET.contributions.items():
            for recipient, sealed in c.sealed.items():
                with pytest.raises(SignatureInvalid):
                    tagkey.open_share(
                        sealed,
                        round_id=ROUND,
                        manifest_sha256=MANIFEST,
                        sender=sender,
                        recipient=recipient,
                        recipient_key=relay_key,
                    )

    def test_relay_key_in_place_of_a_partner(self) -> None:
        """A share sealed to the relay's key (roster not used) cannot be opened by the partner."""
        relay_key = x25519.X25519PrivateKey.generate()
        forged = TagKeyContribution.new(
            ROUND, MANIFEST, "gemeente", {"corporatie": roster.agreement_public_bytes(relay_key)}
        )
        opaque(lambda: NET.open("gemeente", "corporatie", sealed=forged.sealed["corporatie"]))

    def test_key_check_does_not_reveal_tags(self) -> None:
        """The key check is neither the key nor any tag under it."""
        key = NET.tag_key_of("gemeente")
        check = tagkey.key_check(key, ROUND)
        assert len(check) == tagkey.KEY_CHECK_BYTES
        assert check not in key
        assert check != tagkey.key_check(key, OTHER_ROUND)
        assert check not in tagkey.keyed_tags(key, b"".join(RFC9497_OUTPUTS))


class TestTampering:
    @pytest.mark.parametrize("position", range(tagkey.SEALED_BYTES))
    def test_every_byte_is_authenticated(self, position: int) -> None:
        """Flipping any bit of any byte of a share makes it refuse to open."""
        sealed = bytearray(NET.contributions["gemeente"].sealed["corporatie"])
        sealed[position] ^= 1 << (position % 8)
        opaque(lambda: NET.open("gemeente", "corporatie", sealed=bytes(sealed)))

    @pytest.mark.parametrize("length", [0, 1, 44, 91, 93, 184])
    def test_wrong_length(self, length: int) -> None:
        """A share that is not SEALED_BYTES long is refused, opaquely."""
        base = NET.contributions["gemeente"].sealed["corporatie"]
        sealed = (base * 3)[:length]
        opaque(lambda: NET.open("gemeente", "corporatie", sealed=sealed))

    @pytest.mark.parametrize("u", [0, 1, 2**255 - 20, 2**255 - 19])
    def test_low_order_ephemeral_key(self, u: int) -> None:
        """A share whose ephemeral key is of small order or non-canonical is refused."""
        base = NET.contributions["gemeente"].sealed["corporatie"]
        sealed = u.to_bytes(32, "little") + base[32:]
        opaque(lambda: NET.open("gemeente", "corporatie", sealed=sealed))

    def test_wrong_recipient(self) -> None:
        """A share for one partner does not open for another, by key or by name."""
        share_for_b = NET.contributions["gemeente"].sealed["corporatie"]
        # C opens B's share as itself.
        opaque(lambda: NET.open("gemeente", "schuldhulp", sealed=share_for_b))
        # C claims to be B but holds only its own key.
        opaque(
            lambda: NET.open(
                "gemeente", "corporatie", sealed=share_for_b, recipient_key=NET.keys["schuldhulp"]
            )
        )
        # B's key, but the name C (the relay relabelled it).
        opaque(
            lambda: NET.open(
                "gemeente", "schuldhulp", sealed=share_for_b, recipient_key=NET.keys["corporatie"]
            )
        )

    def test_wrong_round(self) -> None:
        """A share of one round does not open in another."""
        opaque(lambda: NET.open("gemeente", "corporatie", round_id=OTHER_ROUND))

    def test_wrong_manifest(self) -> None:
        """A share bound to one manifest does not open under another."""
        opaque(lambda: NET.open("gemeente", "corporatie", manifest_sha256=OTHER_MANIFEST))

    def test_swapped_sender(self) -> None:
        """A share relabelled as another sender's does not open."""
        share = NET.contributions["gemeente"].sealed["corporatie"]
        opaque(lambda: NET.open("schuldhulp", "corporatie", sealed=share))

    def test_errors_are_opaque(self) -> None:
        """Every failure gives the same message."""
        share = NET.contributions["gemeente"].sealed["corporatie"]
        messages = {
            opaque(lambda: NET.open("gemeente", "corporatie", sealed=share[:-1] + b"\x00")),
            opaque(lambda: NET.open("gemeente", "corporatie", sealed=share[:10])),
            opaque(lambda: NET.open("gemeente", "corporatie", round_id=OTHER_ROUND)),
            opaque(lambda: NET.open("schuldhulp", "corporatie", sealed=share)),
            opaque(lambda: NET.open("gemeente", "corporatie", sealed=bytes(32) + share[32:])),
        }
        assert messages == {"sealed tag-key share does not open"}

    def test_argument_checks(self) -> None:
        """Programming errors are TypeError or ValueError, not the opaque error."""
        with pytest.raises(TypeError):
            NET.open("gemeente", "corporatie", recipient_key=b"\x01" * 32)
        with pytest.raises(TypeError):
            NET.open("gemeente", "corporatie", sealed=bytearray(92))
        with pytest.raises(ValueError, match="round_id"):
            NET.open("gemeente", "corporatie", round_id="round-1")
        with pytest.raises(ValueError, match="manifest_sha256"):
            NET.open("gemeente", "corporatie", manifest_sha256=b"short")
        with pytest.raises(ValueError, match="from itself"):
            NET.open("gemeente", "gemeente", recipient_key=NET.keys["gemeente"], sealed=bytes(92))
        share = NET.contributions["gemeente"].sealed["corporatie"]
        with pytest.raises(ValueError, match="sender is not a valid partner id"):
            NET.open("Gemeente", "corporatie", sealed=share)


class TestNew:
    def test_refuses_sealing_to_itself(self) -> None:
        """The sender is not one of its own recipients."""
        with pytest.raises(ValueError, match="to itself"):
            TagKeyContribution.new(
                ROUND, MANIFEST, "gemeente", {"gemeente": NET.public("gemeente")}
            )

    def test_refuses_no_recipients(self) -> None:
        """A contribution needs someone to seal to."""
        with pytest.raises(ValueError, match="at least one other partner"):
            TagKeyContribution.new(ROUND, MANIFEST, "gemeente", {})

    @pytest.mark.parametrize("raw", [bytes(32), (1).to_bytes(32, "little"), b"\xff" * 32, b"x"])
    def test_refuses_unusable_recipient_key(self, raw: bytes) -> None:
        """A recipient key of small order, non-canonical or of the wrong length is refused."""
        with pytest.raises(ValueError, match="agreement key"):
            TagKeyContribution.new(ROUND, MANIFEST, "gemeente", {"corporatie": raw})

    def test_refuses_bad_round_and_ids(self) -> None:
        """Round id, manifest hash and partner ids are checked."""
        pubs = {"corporatie": NET.public("corporatie")}
        with pytest.raises(ValueError, match="round_id"):
            TagKeyContribution.new("20261201", MANIFEST, "gemeente", pubs)
        with pytest.raises(ValueError, match="manifest_sha256"):
            TagKeyContribution.new(ROUND, MANIFEST[:31], "gemeente", pubs)
        with pytest.raises(ValueError, match="recipient is not a valid partner id"):
            TagKeyContribution.new(ROUND, MANIFEST, "gemeente", {"Corporatie": pubs["corporatie"]})
        with pytest.raises(TypeError):
            TagKeyContribution.new(ROUND, MANIFEST, "gemeente", [pubs["corporatie"]])  # type: ignore[arg-type]

    def test_refuses_short_rng(self) -> None:
        """An rng that returns too few bytes is refused, not used."""
        pubs = {"corporatie": NET.public("corporatie")}
        with pytest.raises(ValueError, match="rng must return"):
            TagKeyContribution.new(ROUND, MANIFEST, "gemeente", pubs, rng=lambda n: bytes(n - 1))


class TestDerive:
    def secrets(self) -> dict[str, bytes]:
        return {pid: c.secret for pid, c in NET.contributions.items()}

    def test_missing_partner(self) -> None:
        """A partner of the manifest without a contribution is named."""
        secrets = self.secrets()
        del secrets["schuldhulp"]
        with pytest.raises(ProtocolError, match="no contribution from schuldhulp"):
            tagkey.derive_tag_key(secrets, NET.order, ROUND, MANIFEST)

    def test_partner_outside_the_manifest(self) -> None:
        """A contribution from a partner the manifest does not list is refused."""
        secrets = dict(self.secrets(), ggz=os.urandom(32))
        with pytest.raises(ProtocolError, match="outside the manifest: ggz"):
            tagkey.derive_tag_key(secrets, NET.order, ROUND, MANIFEST)

    @pytest.mark.parametrize("length", [0, 16, 31, 33, 64])
    def test_wrong_length_contribution(self, length: int) -> None:
        """A contribution that is not 32 bytes is refused, naming the partner."""
        secrets = dict(self.secrets(), corporatie=os.urandom(length))
        with pytest.raises(ProtocolError, match="contribution of corporatie is not 32 bytes"):
            tagkey.derive_tag_key(secrets, NET.order, ROUND, MANIFEST)

    def test_bad_order(self) -> None:
        """The manifest order lists at least two distinct, valid partner ids."""
        secrets = self.secrets()
        with pytest.raises(ValueError, match="distinct"):
            tagkey.derive_tag_key(secrets, [*NET.order, NET.order[0]], ROUND, MANIFEST)
        with pytest.raises(ValueError, match="distinct"):
            tagkey.derive_tag_key({"gemeente": secrets["gemeente"]}, ["gemeente"], ROUND, MANIFEST)
        with pytest.raises(TypeError):
            tagkey.derive_tag_key(secrets, "gemeente", ROUND, MANIFEST)


class TestKeyedTag:
    KEY = hashlib.sha256(b"tag key one").digest()
    KEY2 = hashlib.sha256(b"tag key two").digest()

    @pytest.mark.parametrize("output", RFC9497_OUTPUTS)
    def test_documented_construction(self, output: bytes) -> None:
        """The tag is HMAC-SHA256(key, label || 0x00 || output), first 16 bytes."""
        expected = hmac.new(self.KEY, b"kruispunt/tag/v1\x00" + output, hashlib.sha256).digest()
        assert tagkey.keyed_tag(self.KEY, output) == expected[:16]

    @pytest.mark.parametrize("output", RFC9497_OUTPUTS)
    def test_differs_from_the_plain_rfc_tag(self, output: bytes) -> None:
        """The keyed tag is not the unkeyed RFC 9497 output truncation."""
        tag = tagkey.keyed_tag(self.KEY, output)
        assert len(tag) == tagkey.TAG_BYTES
        assert tag != output[: tagkey.TAG_BYTES]
        assert tag not in output

    @pytest.mark.parametrize("output", RFC9497_OUTPUTS)
    def test_differs_per_tag_key(self, output: bytes) -> None:
        """Another round's key gives another tag for the same record."""
        assert tagkey.keyed_tag(self.KEY, output) != tagkey.keyed_tag(self.KEY2, output)

    def test_batch_matches_single(self) -> None:
        """keyed_tags over packed outputs equals keyed_tag on each, in order."""
        outputs = [*RFC9497_OUTPUTS, *(os.urandom(64) for _ in range(50))]
        packed = tagkey.keyed_tags(self.KEY, b"".join(outputs))
        assert packed == b"".join(tagkey.keyed_tag(self.KEY, o) for o in outputs)
        assert tagkey.keyed_tags(self.KEY, b"") == b""

    def test_equal_outputs_equal_tags(self) -> None:
        """Two partners holding one record compute the same tag (that is what is tallied)."""
        assert tagkey.keyed_tag(self.KEY, RFC9497_OUTPUTS[0]) == tagkey.keyed_tag(
            bytes(self.KEY), bytes(RFC9497_OUTPUTS[0])
        )

    def test_argument_checks(self) -> None:
        """Key and outputs must have their exact lengths."""
        with pytest.raises(ValueError, match="tag key"):
            tagkey.keyed_tag(self.KEY[:16], RFC9497_OUTPUTS[0])
        with pytest.raises(ValueError, match="64 bytes"):
            tagkey.keyed_tag(self.KEY, RFC9497_OUTPUTS[0][:32])
        with pytest.raises(ValueError, match="multiple of 64"):
            tagkey.keyed_tags(self.KEY, bytes(65))
        with pytest.raises(TypeError):
            tagkey.keyed_tags(self.KEY, bytearray(64))  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            tagkey.keyed_tag("key", RFC9497_OUTPUTS[0])  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="round_id"):
            tagkey.key_check(self.KEY, "nope")

    def test_batch_is_fast(self) -> None:
        """100 000 outputs take well under a second (measured: about 0.1 s when idle)."""
        packed = os.urandom(64 * 100_000)
        start = time.perf_counter()
        tags = tagkey.keyed_tags(self.KEY, packed)
        elapsed = time.perf_counter() - start
        assert len(tags) == 16 * 100_000
        # Generous for a loaded shared machine; a per-record Python HMAC setup is ~3x slower.
        assert elapsed < 2.0
