"""Tests for kruispunt.roster: a partner roster fixed by a digest the coordinator cannot forge."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import stat
import struct
import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import x25519

from kruispunt import pki, roster, signing
from kruispunt.errors import ConfigError, SignatureInvalid
from kruispunt.roster import Roster, RosterPartner

P = 2**255 - 19
SMALL_ORDER_U = [
    0,
    1,
    325606250916557431795983626356110631294008115727848805560023387167927233504,
    39382357235489614581723060781553021112529911719440698176882885853963445705823,
    P - 1,
]
NON_CANONICAL_U = [P, P + 1, 2**255 - 1, 2**256 - 1]


def ed_pub() -> bytes:
    return signing.public_key_bytes(signing.generate_signing_key().public_key())


def x_pub() -> bytes:
    return roster.agreement_public_bytes(roster.generate_agreement_key())


def make_partner(pid: str, organisation: str | None = None) -> RosterPartner:
    return RosterPartner(
        id=pid,
        organisation=organisation or f"Organisatie {pid}",
        signing_key=ed_pub(),
        agreement_key=x_pub(),
        tls_fingerprint=os.urandom(32),
    )


def make_roster(ids: tuple[str, ...] = ("gemeente", "corporatie", "schuldhulp")) -> Roster:
    return Roster(
        network="wijk-noord",
        version=1,
        coordinator_signing_key=ed_pub(),
        partners=tuple(make_partner(pid) for pid in ids),
    )


BASE = make_roster()


def partner_toml(p: RosterPartner, **override: str) -> str:
    fields = {
        "id": f'"{p.id}"',
        "organisation": f'"{p.organisation}"',
        "signing_key": f'"{p.signing_key.hex()}"',
        "agreement_key": f'"{p.agreement_key.hex()}"',
        "tls_fingerprint": f'"{p.tls_fingerprint.hex()}"',
    }
    fields.update(override)
    body = "".join(f"{k} = {v}\n" for k, v in fields.items() if v != "<drop>")
    return "[[partner]]\n" + body


def roster_toml(r: Roster = BASE, *, top: dict[str, str] | None = None, parts: str = "") -> str:
    fields = {
        "network": f'"{r.network}"',
        "version": str(r.version),
        "coordinator_signing_key": f'"{r.coordinator_signing_key.hex()}"',
    }
    fields.update(top or {})
    head = "".join(f"{k} = {v}\n" for k, v in fields.items() if v != "<drop>")
    return head + "\n" + (parts or "\n".join(partner_toml(p) for p in r.partners))


def write(tmp_path: Path, text: str, name: str = "roster.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def refused(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        roster.load_roster(path)
    message = str(exc.value)
    assert message.startswith(str(path)), message
    return message


class TestLoad:
    def test_valid_roster_loads(self, tmp_path: Path) -> None:
        """A well-formed file gives the roster it describes, partners sorted by id."""
        loaded = roster.load_roster(write(tmp_path, roster_toml()))
        assert loaded == BASE
        assert loaded.ids == ("corporatie", "gemeente", "schuldhulp")
        p = loaded.partner("gemeente")
        assert p == next(q for q in BASE.partners if q.id == "gemeente")
        assert signing.public_key_bytes(p.signing_public_key) == p.signing_key
        assert roster.agreement_public_bytes(p.agreement_public_key) == p.agreement_key
        assert p.tls_fingerprint_hex == p.tls_fingerprint.hex()
        key = loaded.coordinator_public_key
        assert signing.public_key_bytes(key) == BASE.coordinator_signing_key

    def test_unknown_partner_is_refused(self) -> None:
        """Asking for a partner the roster does not list is an error naming the partner."""
        with pytest.raises(ConfigError, match="'onderwijs' is not in roster version 1"):
            BASE.partner("onderwijs")

    def test_missing_file(self, tmp_path: Path) -> None:
        """A missing roster file is named."""
        with pytest.raises(ConfigError, match="no such roster file"):
            roster.load_roster(tmp_path / "absent.toml")

    def test_toml_syntax_error_names_the_line(self, tmp_path: Path) -> None:
        """A TOML syntax error gives the file and tomllib's line."""
        text = roster_toml() + "\nbroken = \n"
        message = refused(tmp_path, text)
        assert "invalid TOML" in message
        assert f"line {text.count(chr(10))}" in message

    def test_not_utf8(self, tmp_path: Path) -> None:
        """Bytes that are not UTF-8 are refused with their position."""
        path = tmp_path / "roster.toml"
        path.write_bytes(b'network = "\xff"\n')
        with pytest.raises(ConfigError, match="not UTF-8"):
            roster.load_roster(path)

    def test_oversized_file(self, tmp_path: Path) -> None:
        """A file far larger than any roster is refused before parsing."""
        path = tmp_path / "roster.toml"
        path.write_bytes(b"#" * (roster.MAX_ROSTER_BYTES + 1))
        with pytest.raises(ConfigError, match="larger than"):
            roster.load_roster(path)

    @pytest.mark.parametrize("field", ["network", "version", "coordinator_signing_key"])
    def test_missing_top_field(self, tmp_path: Path, field: str) -> None:
        """Every top-level field is required."""
        message = refused(tmp_path, roster_toml(top={field: "<drop>"}))
        assert f"missing field(s): {field}" in message

    def test_no_partners(self, tmp_path: Path) -> None:
        """A roster without [[partner]] tables is refused."""
        assert "missing field(s): partner" in refused(tmp_path, roster_toml(parts="\n"))

    def test_unknown_top_field(self, tmp_path: Path) -> None:
        """A field the format does not know is refused, not ignored."""
        message = refused(tmp_path, roster_toml(top={"expires": '"2027-01-01"'}))
        assert "unknown field(s): expires" in message

    @pytest.mark.parametrize(
        "field", ["organisation", "signing_key", "agreement_key", "tls_fingerprint"]
    )
    def test_missing_partner_field(self, tmp_path: Path, field: str) -> None:
        """A partner entry without one of its fields names the partner and the field."""
        parts = partner_toml(BASE.partners[0]) + partner_toml(BASE.partners[1], **{field: "<drop>"})
        message = refused(tmp_path, roster_toml(parts=parts))
        assert f"partner #2 (id {BASE.partners[1].id!r}): missing field(s): {field}" in message

    def test_missing_partner_id(self, tmp_path: Path) -> None:
        """A partner without an id is named by its position."""
        parts = partner_toml(BASE.partners[0]) + partner_toml(BASE.partners[1], id="<drop>")
        message = refused(tmp_path, roster_toml(parts=parts))
        assert "partner #2: missing field(s): id" in message

    def test_unknown_partner_field(self, tmp_path: Path) -> None:
        """An unknown field in a partner entry is refused and named."""
        parts = partner_toml(BASE.partners[0]) + partner_toml(BASE.partners[1], address='"x"')
        message = refused(tmp_path, roster_toml(parts=parts))
        assert f"(id {BASE.partners[1].id!r}): unknown field(s): address" in message

    def test_partner_not_an_array(self, tmp_path: Path) -> None:
        """partner must be an array of tables."""
        text = roster_toml(parts='partner = "gemeente"\n')
        assert "array of tables" in refused(tmp_path, text)

    def test_duplicate_id(self, tmp_path: Path) -> None:
        """Two entries with one id are refused, naming both positions."""
        a, b, _ = BASE.partners
        parts = partner_toml(a) + partner_toml(b) + partner_toml(make_partner(a.id))
        message = refused(tmp_path, roster_toml(parts=parts))
        assert f"partner #3 (id {a.id!r}): duplicate id (also partner #1)" in message

    @pytest.mark.parametrize(
        "pid", ["Gemeente", "9gemeente", "gem_eente", "klant12345678", "a" * 64, "gemeente-", '""']
    )
    def test_bad_partner_id(self, tmp_path: Path, pid: str) -> None:
        """Ids follow purpose.ID_RE and must name a certificate."""
        value = pid if pid == '""' else f'"{pid}"'
        parts = partner_toml(BASE.partners[0]) + partner_toml(BASE.partners[1], id=value)
        message = refused(tmp_path, roster_toml(parts=parts))
        assert "partner #2: id" in message

    @pytest.mark.parametrize("network", ["Wijk", "wijk_noord", "-wijk", "", "x" * 64])
    def test_bad_network(self, tmp_path: Path, network: str) -> None:
        """The network must be a DNS label, as in the certificates."""
        assert "network: invalid network name" in refused(
            tmp_path, roster_toml(top={"network": f'"{network}"'})
        )

    @pytest.mark.parametrize("version", ["0", "-1", "true", '"2"', "1.5"])
    def test_bad_version(self, tmp_path: Path, version: str) -> None:
        """The version is a whole number of at least 1."""
        message = refused(tmp_path, roster_toml(top={"version": version}))
        assert "version must be a whole number" in message

    @pytest.mark.parametrize(
        ("field", "value", "reason"),
        [
            ("signing_key", '"abc"', "found 3 characters"),
            ("agreement_key", '"' + "0" * 62 + '"', "found 62 characters"),
            ("tls_fingerprint", '"' + "a" * 66 + '"', "found 66 characters"),
            ("tls_fingerprint", '"' + "g" * 64 + '"', "not hex digits"),
            ("signing_key", '"' + "AB" * 32 + '"', "found upper-case digits"),
            ("signing_key", '"' + "ab" * 31 + 'a:"', "not hex digits"),
            ("agreement_key", "42", "must be a string"),
        ],
    )
    def test_bad_hex(self, tmp_path: Path, field: str, value: str, reason: str) -> None:
        """Keys and fingerprints are exactly 64 lowercase hex digits."""
        parts = partner_toml(BASE.partners[0]) + partner_toml(BASE.partners[1], **{field: value})
        message = refused(tmp_path, roster_toml(parts=parts))
        assert f"(id {BASE.partners[1].id!r}): {field} must be" in message
        assert reason in message

    @pytest.mark.parametrize("u", SMALL_ORDER_U + NON_CANONICAL_U)
    def test_low_order_or_non_canonical_agreement_key(self, tmp_path: Path, u: int) -> None:
        """All-zero, other small-order points and non-canonical encodings are refused."""
        raw = (u % 2**256).to_bytes(32, "little")
        parts = partner_toml(BASE.partners[0]) + partner_toml(
            BASE.partners[1], agreement_key=f'"{raw.hex()}"'
        )
        message = refused(tmp_path, roster_toml(parts=parts))
        assert "agreement_key: agreement key is" in message

    @pytest.mark.parametrize("u", SMALL_ORDER_U + NON_CANONICAL_U[:2])
    def test_refused_points_are_really_unusable(self, u: int) -> None:
        """Independent check of the list: each refused point makes X25519 give all zeros."""
        raw = u.to_bytes(32, "little")
        with pytest.raises(ValueError, match="shared key"):
            x25519.X25519PrivateKey.generate().exchange(
                x25519.X25519PublicKey.from_public_bytes(raw)
            )

    def test_agreement_key_check_accepts_real_keys(self) -> None:
        """Freshly generated X25519 keys pass the check unchanged."""
        for _ in range(50):
            raw = x_pub()
            assert roster.check_agreement_public_key(raw) == raw

    @pytest.mark.parametrize(
        "raw",
        [
            bytes(32),  # y = 0: not on the curve
            b"\x01" + bytes(31),  # the identity point (small order)
            b"\xff" * 32,  # non-canonical
            bytes.fromhex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
        ],
    )
    def test_invalid_signing_key(self, tmp_path: Path, raw: bytes) -> None:
        """A signing key that is not a prime-order Ed25519 point is refused."""
        parts = partner_toml(BASE.partners[0]) + partner_toml(
            BASE.partners[1], signing_key=f'"{raw.hex()}"'
        )
        message = refused(tmp_path, roster_toml(parts=parts))
        assert "signing_key: signing key is not a valid Ed25519 public key" in message

    def test_invalid_coordinator_key(self, tmp_path: Path) -> None:
        """The coordinator's key gets the same check."""
        message = refused(
            tmp_path, roster_toml(top={"coordinator_signing_key": '"' + "0" * 64 + '"'})
        )
        assert "coordinator_signing_key: signing key is not a valid" in message

    @pytest.mark.parametrize("field", ["signing_key", "agreement_key", "tls_fingerprint"])
    def test_shared_key_between_partners(self, tmp_path: Path, field: str) -> None:
        """Two partners with one key or one certificate are refused."""
        a, b, _ = BASE.partners
        twin = dataclasses.replace(b, **{field: getattr(a, field)})
        message = refused(tmp_path, roster_toml(parts=partner_toml(a) + partner_toml(twin)))
        assert f"(id {b.id!r}): {field} is the same as partner {a.id!r}'s" in message

    def test_partner_key_equal_to_coordinator_key(self, tmp_path: Path) -> None:
        """A partner cannot hold the coordinator's signing key."""
        a, b, _ = BASE.partners
        twin = dataclasses.replace(b, signing_key=BASE.coordinator_signing_key)
        message = refused(tmp_path, roster_toml(parts=partner_toml(a) + partner_toml(twin)))
        assert "signing_key is the coordinator's signing key" in message

    def test_single_partner(self, tmp_path: Path) -> None:
        """A roster lists at least two partners."""
        message = refused(tmp_path, roster_toml(parts=partner_toml(BASE.partners[0])))
        assert "at least two partners" in message

    @pytest.mark.parametrize(
        ("organisation", "reason"),
        [
            ('""', "must not be empty"),
            ('"   "', "must not be empty"),
            ('" Gemeente"', "must not start or end with spaces"),
            ('"Gemeente\\u202eLaffo"', "control or invisible character"),
            ('"Gemeente\\u200b"', "control or invisible character"),
            ('"Gemeente\\tNoord"', "control or invisible character"),
            ('"' + "x" * 201 + '"', "longer than 200"),
            ("7", "must be a string"),
        ],
    )
    def test_bad_organisation(self, tmp_path: Path, organisation: str, reason: str) -> None:
        """Organisation names are plain, visible text, so the diff shows what changes."""
        parts = partner_toml(BASE.partners[0]) + partner_toml(
            BASE.partners[1], organisation=organisation
        )
        message = refused(tmp_path, roster_toml(parts=parts))
        assert f"(id {BASE.partners[1].id!r}): organisation" in message
        assert reason in message

    def test_parse_roster_names_its_source(self) -> None:
        """parse_roster prefixes errors with the given source."""
        with pytest.raises(ConfigError, match=r"^from the coordinator: missing field"):
            roster.parse_roster(b"version = 1\n", source="from the coordinator")

    def test_parse_roster_wrong_type(self) -> None:
        """Roster data is bytes or str."""
        with pytest.raises(TypeError):
            roster.parse_roster(42)  # type: ignore[arg-type]


def _encode_str(text: str) -> bytes:
    data = text.encode("utf-8")
    return struct.pack(">I", len(data)) + data


def expected_digest(r: Roster) -> bytes:
    """The digest as the module docstring specifies it, written out independently."""
    out = b"kruispunt/roster/v1\x00" + _encode_str(r.network) + struct.pack(">Q", r.version)
    out += r.coordinator_signing_key + struct.pack(">I", len(r.partners))
    for p in sorted(r.partners, key=lambda q: q.id):
        out += _encode_str(p.id) + _encode_str(p.organisation)
        out += p.signing_key + p.agreement_key + p.tls_fingerprint
    return hashlib.sha256(out).digest()


class TestDigest:
    def test_documented_construction(self) -> None:
        """The digest is SHA-256 over exactly the encoding the docstring documents."""
        assert BASE.digest == expected_digest(BASE)
        assert BASE.digest_hex == BASE.digest.hex()
        assert len(BASE.digest) == 32

    def test_roster_digest_of_file_bytes(self, tmp_path: Path) -> None:
        """roster_digest(bytes) is the loaded roster's digest, not a hash of the file."""
        text = roster_toml()
        digest = roster.roster_digest(text.encode())
        assert digest == BASE.digest == roster.load_roster(write(tmp_path, text)).digest
        assert digest != hashlib.sha256(text.encode()).digest()

    def test_roster_digest_needs_bytes(self) -> None:
        """roster_digest takes the file's bytes."""
        with pytest.raises(TypeError):
            roster.roster_digest(roster_toml())  # type: ignore[arg-type]

    def test_roster_digest_refuses_invalid_roster(self) -> None:
        """There is no digest of something that is not a valid roster."""
        with pytest.raises(ConfigError):
            roster.roster_digest(b'network = "x"\n')

    def test_layout_edits_keep_the_digest(self) -> None:
        """Comments, whitespace, field order and partner order do not change the digest."""
        a, b, c = BASE.partners
        reordered = "\n".join(
            "# reviewed by legal\n[[partner]]\n"
            + f'tls_fingerprint = "{p.tls_fingerprint.hex()}"   # from the CSR\n'
            + f"agreement_key='{p.agreement_key.hex()}'\n"
            + f'  signing_key =    "{p.signing_key.hex()}"\n'
            + f'organisation = """{p.organisation}"""\n'
            + f'id = "{p.id}"\n\n\n'
            for p in (c, a, b)
        )
        text = (
            f'\n\n# Roster\nversion = {BASE.version}\ncoordinator_signing_key = "'
            f'{BASE.coordinator_signing_key.hex()}"\nnetwork="{BASE.network}"\n' + reordered
        )
        assert roster.roster_digest(text.encode()) == BASE.digest

    def test_unicode_normalisation_keeps_the_digest(self) -> None:
        """An organisation name typed decomposed (NFD) gives the digest of the composed one."""
        name = "Stichting Wonen Fryslân Súdwest"
        composed = dataclasses.replace(BASE.partners[0], organisation=name)
        r = dataclasses.replace(BASE, partners=(composed, *BASE.partners[1:]))
        nfd = unicodedata.normalize("NFD", name)
        assert nfd != name
        parts = partner_toml(composed, organisation=f'"{nfd}"') + "".join(
            partner_toml(p) for p in BASE.partners[1:]
        )
        parsed = roster.parse_roster(roster_toml(r, parts=parts))
        assert parsed == r
        assert parsed.digest == r.digest

    @pytest.mark.parametrize(
        "change",
        [
            "network",
            "version",
            "coordinator",
            "id",
            "organisation",
            "signing_key",
            "agreement_key",
            "tls_fingerprint",
            "added",
            "removed",
        ],
    )
    def test_every_semantic_change_changes_the_digest(self, change: str) -> None:
        """Any change of meaning gives another digest."""
        first, *rest = BASE.partners
        if change == "network":
            other = dataclasses.replace(BASE, network="wijk-zuid")
        elif change == "version":
            other = dataclasses.replace(BASE, version=2)
        elif change == "coordinator":
            other = dataclasses.replace(BASE, coordinator_signing_key=ed_pub())
        elif change == "added":
            other = dataclasses.replace(BASE, partners=(*BASE.partners, make_partner("ggz")))
        elif change == "removed":
            other = dataclasses.replace(BASE, partners=tuple(rest))
        else:
            values: dict[str, Any] = {
                "id": "zorg",
                "organisation": first.organisation + ".",
                "signing_key": ed_pub(),
                "agreement_key": x_pub(),
                "tls_fingerprint": os.urandom(32),
            }
            changed = dataclasses.replace(first, **{change: values[change]})
            other = dataclasses.replace(BASE, partners=(changed, *rest))
        assert other != BASE
        assert other.digest != BASE.digest
        assert other.digest == expected_digest(other)

    def test_moving_bytes_between_fields_changes_the_digest(self) -> None:
        """Length prefixes keep 'ab'+'c' apart from 'a'+'bc' (id and organisation)."""
        first, *rest = BASE.partners
        a = dataclasses.replace(first, id="ab", organisation="cd")
        b = dataclasses.replace(first, id="a", organisation="bcd")
        ra = dataclasses.replace(BASE, partners=(a, *rest))
        rb = dataclasses.replace(BASE, partners=(b, *rest))
        assert ra.digest != rb.digest


class TestRender:
    def test_round_trip(self) -> None:
        """parse(render(r)) == r, with the same digest."""
        text = roster.render_roster(BASE)
        again = roster.parse_roster(text)
        assert again == BASE
        assert again.digest == BASE.digest
        assert roster.render_roster(again) == text

    @pytest.mark.parametrize(
        "organisation",
        [
            'Stichting "Thuis"',
            "Back\\slash B.V.",
            "Gemeente Súdwest-Fryslân",
            "Zorg & Welzijn 't Gooi",
        ],
    )
    def test_round_trip_of_awkward_names(self, organisation: str) -> None:
        """Quotes, backslashes and non-ASCII text survive rendering."""
        first, *rest = BASE.partners
        r = dataclasses.replace(
            BASE, partners=(dataclasses.replace(first, organisation=organisation), *rest)
        )
        again = roster.parse_roster(roster.render_roster(r))
        assert again == r
        assert again.digest == r.digest

    def test_render_is_independent_of_input_order(self) -> None:
        """Rosters listing the same partners in another order render identically."""
        shuffled = dataclasses.replace(BASE, partners=tuple(reversed(BASE.partners)))
        assert shuffled == BASE
        assert roster.render_roster(shuffled) == roster.render_roster(BASE)


class TestDiff:
    def test_first_roster(self) -> None:
        """With nothing accepted before, every partner is listed as added."""
        lines = roster.diff_rosters(None, BASE)
        assert lines[0].startswith("first roster: network 'wijk-noord', version 1")
        assert len(lines) == 1 + len(BASE.partners)
        for p, line in zip(BASE.partners, lines[1:], strict=True):
            assert line.startswith(f"partner added: {p.id} ({p.organisation})")
            assert p.signing_key.hex()[:16] in line

    def test_no_changes(self) -> None:
        """Equal rosters have no differences."""
        assert roster.diff_rosters(BASE, roster.parse_roster(roster.render_roster(BASE))) == []

    def test_every_kind_of_change(self) -> None:
        """Additions, removals, renames and key changes each get their own line."""
        corporatie, gemeente, schuldhulp = BASE.partners
        new_sign, new_agree, new_fp, new_coord = ed_pub(), x_pub(), os.urandom(32), ed_pub()
        ggz = make_partner("ggz")
        new = Roster(
            network=BASE.network,
            version=2,
            coordinator_signing_key=new_coord,
            partners=(
                dataclasses.replace(corporatie, organisation="Woonstichting Noord"),
                dataclasses.replace(
                    gemeente, signing_key=new_sign, agreement_key=new_agree, tls_fingerprint=new_fp
                ),
                ggz,
            ),
        )
        assert roster.diff_rosters(BASE, new) == [
            "version: 1 -> 2",
            "coordinator signing key changed: "
            f"{h(BASE.coordinator_signing_key)}… -> {h(new_coord)}…",
            f"partner removed: schuldhulp ({schuldhulp.organisation})",
            f"partner added: ggz ({ggz.organisation}): signing key {h(ggz.signing_key)}…, "
            f"agreement key {h(ggz.agreement_key)}…, TLS {h(ggz.tls_fingerprint)}…",
            f"partner corporatie: organisation renamed {corporatie.organisation!r} -> "
            "'Woonstichting Noord'",
            f"partner gemeente: signing key changed {h(gemeente.signing_key)}… -> {h(new_sign)}…",
            f"partner gemeente: agreement key changed {h(gemeente.agreement_key)}… -> "
            f"{h(new_agree)}…",
            f"partner gemeente: TLS fingerprint changed {h(gemeente.tls_fingerprint)}… -> "
            f"{h(new_fp)}…",
        ]

    def test_network_change(self) -> None:
        """A different network name is reported."""
        other = dataclasses.replace(BASE, network="wijk-zuid")
        assert roster.diff_rosters(BASE, other) == ["network changed: 'wijk-noord' -> 'wijk-zuid'"]


def h(raw: bytes) -> str:
    return raw.hex()[:16]


def versioned(r: Roster, version: int, **changes: object) -> Roster:
    return dataclasses.replace(r, version=version, **changes)  # type: ignore[arg-type]


class TestAccept:
    def accept(self, tmp_path: Path, r: Roster, digest: str | None = None) -> list[str]:
        path = write(tmp_path, roster.render_roster(r), name=f"incoming-{r.version}.toml")
        accepted, changes = roster.accept_roster(
            tmp_path / "state", path, r.digest_hex if digest is None else digest
        )
        assert accepted == r
        return changes

    def test_first_accept_stores_the_roster(self, tmp_path: Path) -> None:
        """The accepted roster is stored 0644 in the state directory and loads back."""
        assert roster.load_accepted_roster(tmp_path / "state") is None
        changes = self.accept(tmp_path, BASE)
        assert changes == roster.diff_rosters(None, BASE)
        stored = tmp_path / "state" / roster.ACCEPTED_ROSTER_FILE
        assert stat.S_IMODE(stored.stat().st_mode) == 0o644
        assert roster.load_accepted_roster(tmp_path / "state") == BASE
        assert [p.name for p in (tmp_path / "state").iterdir()] == [roster.ACCEPTED_ROSTER_FILE]

    def test_stored_copy_is_canonical(self, tmp_path: Path) -> None:
        """What is stored is the canonical rendering, whatever the incoming layout."""
        path = write(tmp_path, "# comment\n" + roster_toml())
        roster.accept_roster(tmp_path / "state", path, BASE.digest_hex)
        stored = (tmp_path / "state" / roster.ACCEPTED_ROSTER_FILE).read_text()
        assert stored == roster.render_roster(BASE)

    def test_wrong_digest_is_refused(self, tmp_path: Path) -> None:
        """A digest other than the typed one is refused, naming both; nothing is stored."""
        wrong = hashlib.sha256(b"another roster").hexdigest()
        with pytest.raises(ConfigError) as exc:
            self.accept(tmp_path, BASE, digest=wrong)
        assert BASE.digest_hex in str(exc.value)
        assert wrong in str(exc.value)
        assert roster.load_accepted_roster(tmp_path / "state") is None

    def test_typed_digest_may_be_grouped_or_upper_case(self, tmp_path: Path) -> None:
        """Operators may type the covenant's digest in groups, upper case, with colons."""
        h = BASE.digest_hex.upper()
        grouped = " ".join(h[i : i + 4] for i in range(0, 64, 4)) + "\n"
        self.accept(tmp_path, BASE, digest=grouped)
        colons = ":".join(h[i : i + 2] for i in range(0, 64, 2))
        assert self.accept(tmp_path, BASE, digest=colons) == []

    @pytest.mark.parametrize("typed", ["", "abc", "z" * 64, "0" * 63, "0" * 65])
    def test_malformed_typed_digest(self, tmp_path: Path, typed: str) -> None:
        """A typed digest that is not 64 hex digits is refused before anything else."""
        with pytest.raises(ConfigError, match="must be 64 hex digits"):
            self.accept(tmp_path, BASE, digest=typed)

    def test_newer_version_is_accepted_with_its_changes(self, tmp_path: Path) -> None:
        """A higher version replaces the accepted roster; the changes are returned."""
        self.accept(tmp_path, BASE)
        newer = versioned(BASE, 2, partners=(*BASE.partners, make_partner("ggz")))
        changes = self.accept(tmp_path, newer)
        assert changes == roster.diff_rosters(BASE, newer)
        assert "version: 1 -> 2" in changes
        assert roster.load_accepted_roster(tmp_path / "state") == newer

    def test_same_roster_again_is_a_no_op(self, tmp_path: Path) -> None:
        """Accepting the accepted roster again changes nothing."""
        self.accept(tmp_path, BASE)
        assert self.accept(tmp_path, BASE) == []
        assert roster.load_accepted_roster(tmp_path / "state") == BASE

    def test_rollback_is_refused(self, tmp_path: Path) -> None:
        """A lower version is refused even with a matching digest."""
        old = versioned(BASE, 3)
        newer = versioned(BASE, 4, coordinator_signing_key=ed_pub())
        self.accept(tmp_path, newer)
        with pytest.raises(ConfigError, match="version 3 is not newer than the accepted version 4"):
            self.accept(tmp_path, old)
        assert roster.load_accepted_roster(tmp_path / "state") == newer

    def test_same_version_other_content_is_refused(self, tmp_path: Path) -> None:
        """A changed roster under the accepted version number is refused."""
        self.accept(tmp_path, BASE)
        swapped = dataclasses.replace(BASE, coordinator_signing_key=ed_pub())
        with pytest.raises(ConfigError, match="a changed roster needs a higher version"):
            self.accept(tmp_path, swapped)
        assert roster.load_accepted_roster(tmp_path / "state") == BASE

    def test_other_network_is_refused(self, tmp_path: Path) -> None:
        """A roster of another network does not replace this node's roster."""
        self.accept(tmp_path, BASE)
        with pytest.raises(ConfigError, match="network 'wijk-zuid'"):
            self.accept(tmp_path, versioned(BASE, 2, network="wijk-zuid"))

    def test_invalid_incoming_roster(self, tmp_path: Path) -> None:
        """An invalid file is refused with its own error, whatever digest is typed."""
        path = write(tmp_path, "version = 1\n")
        with pytest.raises(ConfigError, match="missing field"):
            roster.accept_roster(tmp_path / "state", path, BASE.digest_hex)

    def test_corrupt_accepted_roster(self, tmp_path: Path) -> None:
        """A stored roster that no longer parses is an error, not a silent first accept."""
        self.accept(tmp_path, BASE)
        (tmp_path / "state" / roster.ACCEPTED_ROSTER_FILE).write_text("garbage = \n")
        with pytest.raises(ConfigError, match="invalid TOML"):
            roster.load_accepted_roster(tmp_path / "state")
        with pytest.raises(ConfigError, match="invalid TOML"):
            self.accept(tmp_path, versioned(BASE, 2))

    def test_writable_accepted_roster_is_refused(self, tmp_path: Path) -> None:
        """An accepted roster others could rewrite is not trusted."""
        self.accept(tmp_path, BASE)
        stored = tmp_path / "state" / roster.ACCEPTED_ROSTER_FILE
        stored.chmod(0o664)
        with pytest.raises(ConfigError, match="chmod 644"):
            roster.load_accepted_roster(tmp_path / "state")

    def test_symlinked_accepted_roster_is_refused(self, tmp_path: Path) -> None:
        """The accepted roster is a regular file in the state directory, not a link."""
        elsewhere = write(tmp_path, roster.render_roster(BASE), name="elsewhere.toml")
        (tmp_path / "state").mkdir()
        (tmp_path / "state" / roster.ACCEPTED_ROSTER_FILE).symlink_to(elsewhere)
        with pytest.raises(ConfigError, match="regular file"):
            roster.load_accepted_roster(tmp_path / "state")


class TestAgreementKeys:
    def test_save_and_load(self, tmp_path: Path) -> None:
        """A saved key loads back, in a 0600 file."""
        key = roster.generate_agreement_key()
        path = tmp_path / "agreement.pem"
        roster.save_agreement_key(path, key)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        loaded = roster.load_agreement_key(path)
        assert roster.agreement_public_bytes(loaded) == roster.agreement_public_bytes(key)
        assert [p.name for p in tmp_path.iterdir()] == ["agreement.pem"]

    def test_refuses_to_overwrite(self, tmp_path: Path) -> None:
        """An existing key file is never replaced."""
        path = tmp_path / "agreement.pem"
        first = roster.generate_agreement_key()
        roster.save_agreement_key(path, first)
        with pytest.raises(FileExistsError):
            roster.save_agreement_key(path, roster.generate_agreement_key())
        loaded = roster.load_agreement_key(path)
        assert roster.agreement_public_bytes(loaded) == roster.agreement_public_bytes(first)

    def test_save_refuses_other_key_types(self, tmp_path: Path) -> None:
        """Only X25519 keys are agreement keys."""
        with pytest.raises(TypeError):
            roster.save_agreement_key(tmp_path / "k.pem", signing.generate_signing_key())  # type: ignore[arg-type]

    def test_group_readable_is_refused(self, tmp_path: Path) -> None:
        """A key file others can read is refused with the chmod fix."""
        path = tmp_path / "agreement.pem"
        roster.save_agreement_key(path, roster.generate_agreement_key())
        path.chmod(0o640)
        with pytest.raises(ConfigError, match="chmod 600"):
            roster.load_agreement_key(path)

    def test_symlink_is_refused(self, tmp_path: Path) -> None:
        """A symlinked key file is refused."""
        path = tmp_path / "agreement.pem"
        roster.save_agreement_key(path, roster.generate_agreement_key())
        link = tmp_path / "link.pem"
        link.symlink_to(path)
        with pytest.raises(ConfigError, match="symlink"):
            roster.load_agreement_key(link)

    def test_missing_and_directory(self, tmp_path: Path) -> None:
        """A missing file or a directory is named."""
        with pytest.raises(ConfigError, match="not found"):
            roster.load_agreement_key(tmp_path / "absent.pem")
        folder = tmp_path / "dir"
        folder.mkdir(mode=0o700)
        with pytest.raises(ConfigError, match="not a regular file"):
            roster.load_agreement_key(folder)

    def test_not_pem(self, tmp_path: Path) -> None:
        """A file that is not a PEM key is refused."""
        path = tmp_path / "agreement.pem"
        path.write_bytes(b"not a key")
        path.chmod(0o600)
        with pytest.raises(ConfigError, match="not an unencrypted PEM private key"):
            roster.load_agreement_key(path)

    def test_signing_key_file_is_refused(self, tmp_path: Path) -> None:
        """An Ed25519 signing key file is not an agreement key."""
        path = tmp_path / "signing.pem"
        pki.write_private_key(path, signing.generate_signing_key())
        with pytest.raises(ConfigError, match="expected an X25519 agreement key"):
            roster.load_agreement_key(path)

    def test_public_bytes(self) -> None:
        """The public bytes of a private key and of its public key agree (32 raw bytes)."""
        key = roster.generate_agreement_key()
        raw = roster.agreement_public_bytes(key)
        assert raw == roster.agreement_public_bytes(key.public_key())
        assert len(raw) == roster.AGREEMENT_KEY_BYTES
        with pytest.raises(TypeError):
            roster.agreement_public_bytes(signing.generate_signing_key())  # type: ignore[arg-type]


class TestCoordinatorFingerprint:
    """The coordinator's TLS fingerprint: optional, in the digest only when present."""

    PINNED = dataclasses.replace(BASE, coordinator_tls_fingerprint=bytes(range(32)))

    def test_absent_keeps_the_old_digest(self) -> None:
        """A roster without it has the digest it always had (the documented construction)."""
        assert BASE.coordinator_tls_fingerprint is None
        assert roster.parse_roster(roster_toml()).digest == expected_digest(BASE)

    def test_present_is_appended_with_its_label(self) -> None:
        """With it, the digest covers the labelled fingerprint after the partners."""
        tail = b"coordinator_tls_fingerprint\x00" + bytes(range(32))
        base = b"kruispunt/roster/v1\x00" + _encode_str(BASE.network)
        base += struct.pack(">Q", BASE.version) + BASE.coordinator_signing_key
        base += struct.pack(">I", len(BASE.partners))
        for p in BASE.partners:
            base += _encode_str(p.id) + _encode_str(p.organisation)
            base += p.signing_key + p.agreement_key + p.tls_fingerprint
        assert self.PINNED.digest == hashlib.sha256(base + tail).digest()
        assert self.PINNED.digest != BASE.digest

    def test_render_and_parse_round_trip(self) -> None:
        """render_roster writes it; parse_roster reads it back, digest and all."""
        text = roster.render_roster(self.PINNED)
        assert f'coordinator_tls_fingerprint = "{bytes(range(32)).hex()}"' in text
        assert roster.parse_roster(text) == self.PINNED

    def test_bad_hex_is_refused_by_field(self, tmp_path: Path) -> None:
        """A malformed fingerprint names the field and the reason."""
        message = refused(tmp_path, roster_toml(top={"coordinator_tls_fingerprint": '"abc"'}))
        assert "coordinator_tls_fingerprint must be 64 lowercase hex digits" in message

    def test_a_partners_fingerprint_is_refused(self, tmp_path: Path) -> None:
        """The coordinator cannot share a certificate with a partner."""
        shared = f'"{BASE.partners[0].tls_fingerprint.hex()}"'
        message = refused(tmp_path, roster_toml(top={"coordinator_tls_fingerprint": shared}))
        assert "coordinator_tls_fingerprint is partner" in message

    def test_diff_names_the_change(self) -> None:
        """Accepting a roster that pins a new coordinator certificate shows the change."""
        newer = dataclasses.replace(self.PINNED, version=2)
        assert any(
            line.startswith("coordinator TLS fingerprint changed: none (not pinned) -> 00010203")
            for line in roster.diff_rosters(BASE, newer)
        )


class TestRotationOverlap:
    """A rotation's previous signing keys: optional, in the digest only when present, and
    verifying only until the end of their overlap."""

    OLD = signing.generate_signing_key()
    UNTIL = datetime(2027, 1, 31, tzinfo=UTC)
    PARTNER = dataclasses.replace(
        BASE.partners[0],
        previous_signing_key=signing.public_key_bytes(OLD.public_key()),
        previous_signing_key_valid_until=UNTIL,
    )
    ROTATED = dataclasses.replace(
        BASE,
        partners=(PARTNER, *BASE.partners[1:]),
        coordinator_previous_signing_key=ed_pub(),
        coordinator_previous_signing_key_valid_until=UNTIL,
    )

    def test_absent_keeps_the_old_digest(self) -> None:
        """A roster without rotations has the digest it always had."""
        assert roster.parse_roster(roster_toml()).digest == expected_digest(BASE)

    def test_present_is_appended_with_labels(self) -> None:
        """Coordinator, then each partner's previous key, labelled, after the partners."""
        base = b"kruispunt/roster/v1\x00" + _encode_str(BASE.network)
        base += struct.pack(">Q", BASE.version) + BASE.coordinator_signing_key
        base += struct.pack(">I", len(BASE.partners))
        for p in self.ROTATED.partners:
            base += _encode_str(p.id) + _encode_str(p.organisation)
            base += p.signing_key + p.agreement_key + p.tls_fingerprint
        seconds = struct.pack(">Q", int(self.UNTIL.timestamp()))
        assert self.ROTATED.coordinator_previous_signing_key is not None
        base += b"coordinator_previous_signing_key\x00"
        base += self.ROTATED.coordinator_previous_signing_key + seconds
        assert self.PARTNER.previous_signing_key is not None
        base += b"partner_previous_signing_key\x00" + _encode_str(self.PARTNER.id)
        base += self.PARTNER.previous_signing_key + seconds
        assert self.ROTATED.digest == hashlib.sha256(base).digest()

    def test_the_end_of_the_overlap_changes_the_digest(self) -> None:
        """Another date is another roster."""
        moved = dataclasses.replace(
            self.ROTATED, coordinator_previous_signing_key_valid_until=self.UNTIL + timedelta(1)
        )
        assert moved.digest != self.ROTATED.digest

    def test_render_and_parse_round_trip(self) -> None:
        """render_roster writes both fields as TOML date-times; parse_roster reads them back."""
        text = roster.render_roster(self.ROTATED)
        assert "previous_signing_key_valid_until = 2027-01-31T00:00:00Z" in text
        assert roster.parse_roster(text) == self.ROTATED

    def test_the_old_key_verifies_only_before_the_end(self) -> None:
        """signing_keys holds the previous key before `valid until`, only the new key after."""
        before = self.PARTNER.signing_keys(self.UNTIL - timedelta(seconds=1))
        after = self.PARTNER.signing_keys(self.UNTIL)
        data = b"consent"
        signature = signing.sign(self.OLD, signing.CONTEXT_CONSENT, data)
        signing.verify(before, signing.CONTEXT_CONSENT, data, signature)
        with pytest.raises(SignatureInvalid):
            signing.verify(after, signing.CONTEXT_CONSENT, data, signature)
        assert len(after.keys) == 1
        assert len(self.PARTNER.every_signing_key) == 2

    def test_a_naive_time_is_refused(self) -> None:
        """Checking at a time without a zone is a programming error, not a guess."""
        with pytest.raises(ValueError, match="time zone"):
            self.PARTNER.signing_keys(datetime(2027, 1, 1))

    def test_a_key_without_its_date_is_refused(self, tmp_path: Path) -> None:
        """The previous key needs the end of its overlap (and the other way round)."""
        key = f'"{ed_pub().hex()}"'
        part = partner_toml(BASE.partners[0], previous_signing_key=key)
        parts = "\n".join([part, *(partner_toml(p) for p in BASE.partners[1:])])
        message = refused(tmp_path, roster_toml(parts=parts))
        assert "previous_signing_key needs previous_signing_key_valid_until" in message

    def test_a_quoted_date_is_refused(self, tmp_path: Path) -> None:
        """The date is a TOML date-time with its offset, not a string."""
        top = {
            "coordinator_previous_signing_key": f'"{ed_pub().hex()}"',
            "coordinator_previous_signing_key_valid_until": '"2027-01-31"',
        }
        message = refused(tmp_path, roster_toml(top=top))
        assert "coordinator_previous_signing_key_valid_until must be a date and time" in message

    def test_the_current_key_as_previous_is_refused(self, tmp_path: Path) -> None:
        """A previous key equal to the current one is no rotation."""
        p = BASE.partners[0]
        part = partner_toml(
            p,
            previous_signing_key=f'"{p.signing_key.hex()}"',
            previous_signing_key_valid_until="2027-01-31T00:00:00Z",
        )
        parts = "\n".join([part, *(partner_toml(q) for q in BASE.partners[1:])])
        message = refused(tmp_path, roster_toml(parts=parts))
        assert "previous_signing_key is the current signing key" in message

    def test_another_partners_key_as_previous_is_refused(self, tmp_path: Path) -> None:
        """A partner's old key that is another partner's key would let one sign as the other."""
        p, other = BASE.partners[0], BASE.partners[1]
        part = partner_toml(
            p,
            previous_signing_key=f'"{other.signing_key.hex()}"',
            previous_signing_key_valid_until="2027-01-31T00:00:00Z",
        )
        parts = "\n".join([partner_toml(other), part, partner_toml(BASE.partners[2])])
        message = refused(tmp_path, roster_toml(parts=parts))
        assert "a signing key is the same as one of partner" in message

    def test_diff_names_the_overlap(self) -> None:
        """Accepting a roster with a rotation shows the previous key and its date."""
        newer = dataclasses.replace(self.ROTATED, version=2)
        changes = roster.diff_rosters(BASE, newer)
        assert any(
            c.startswith(f"partner {self.PARTNER.id}: rotation overlap none -> previous key")
            for c in changes
        )
        assert any(
            c.startswith("coordinator rotation overlap: none -> previous key") for c in changes
        )
