"""Canonical identifiers: validation, normalisation, one form per identifier, injectivity."""

from __future__ import annotations

import random
import string
from collections.abc import Callable

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from kruispunt.errors import InvalidIdentifier
from kruispunt.identifiers import (
    PLACEHOLDER_REASON,
    address_canonicalizer,
    canonical_address,
    canonical_bsn,
    canonicalize,
    elfproef,
    kind_of,
    normalize_house,
    render,
)
from tests.support.synthetic import random_bsn

_FULLWIDTH = str.maketrans("0123456789", "".join(chr(0xFF10 + i) for i in range(10)))


def fullwidth(text: str) -> str:
    """Return text with its digits as Unicode fullwidth digits (which str.isdigit accepts)."""
    return text.translate(_FULLWIDTH)


def outcome(canon: Callable[..., bytes], *args: str) -> bytes | str:
    """Return the canonical form, or the InvalidIdentifier reason as a str."""
    try:
        return canon(*args)
    except InvalidIdentifier as e:
        return str(e)


# Every reason canonicalisation may give. They are constants, so they cannot echo a value.
BSN_REASONS = {
    "bsn: empty",
    "bsn: not digits",
    "bsn: not 8 or 9 digits",
    "bsn: elfproef fails",
    PLACEHOLDER_REASON,
}
ADDRESS_REASONS = {
    "postcode: empty",
    "postcode: not of the form 1234AB",
    "postcode: letters SA, SD and SS are never issued",
    "huisnummer: empty",
    "huisnummer: does not start with a number",
    "huisnummer: not between 1 and 99999",
    "huisletter: not a single letter",
    "huisletter/toevoeging: only letters and digits allowed",
    "toevoeging: longer than 4 characters",
}


@st.composite
def bsns(draw: st.DrawFn) -> str:
    """A valid BSN, its check digit found with int arithmetic (independent of the module)."""
    head = f"{draw(st.integers(min_value=0, max_value=99_999_999)):08d}"
    total = sum(w * int(d) for w, d in zip(range(9, 1, -1), head, strict=True))
    check = total % 11
    assume(check < 10 and total - check > 0)
    return head + str(check)


class TestElfproef:
    @pytest.mark.parametrize("digits", ["111222333", "123456782", "470090716", "072436281"])
    def test_valid_numbers_pass(self, digits: str) -> None:
        """Numbers whose weighted sum is a positive multiple of 11 pass."""
        assert elfproef(digits)

    @pytest.mark.parametrize(
        "digits", ["123456789", "111222334", "000000000", "12345678", "1234567820", "12345678a"]
    )
    def test_invalid_numbers_fail(self, digits: str) -> None:
        """A wrong check digit, a zero sum, a wrong length or a non-digit fails."""
        assert not elfproef(digits)

    def test_zero_sum_multiple_of_eleven_fails(self) -> None:
        """A sum of 0 is divisible by 11 but is not a BSN ("greater than 0")."""
        assert not elfproef("000000000")

    def test_non_ascii_digits_fail(self) -> None:
        """Unicode digits that str.isdigit() accepts are not BSN digits."""
        assert not elfproef(fullwidth("111222333"))  # fullwidth

    @settings(deadline=None)  # timing varies on a loaded CI machine
    @given(st.integers(min_value=0, max_value=99_999_999))
    def test_exactly_one_check_digit_fits_or_none(self, head: int) -> None:
        """For any 8 leading digits at most one ninth digit completes a valid BSN."""
        valid = [d for d in range(10) if elfproef(f"{head:08d}{d}")]
        assert len(valid) <= 1


class TestCanonicalBsn:
    @pytest.mark.parametrize(
        ("raw", "canonical"),
        [
            ("123456782", b"bsn:123456782"),
            ("  123456782\t", b"bsn:123456782"),
            ("1234.56.782", b"bsn:123456782"),
            ("123 456 782", b"bsn:123456782"),
            ("1234-56-782", b"bsn:123456782"),
            ("72436281", b"bsn:072436281"),
            ("072436281", b"bsn:072436281"),
            (" 7243.62.81 ", b"bsn:072436281"),
        ],
    )
    def test_spellings_canonicalise(self, raw: str, canonical: bytes) -> None:
        """Whitespace, grouping separators and a dropped leading zero are normalised."""
        assert canonical_bsn(raw) == canonical

    @pytest.mark.parametrize(
        ("raw", "reason"),
        [
            ("", "bsn: empty"),
            ("   ", "bsn: empty"),
            ("12345678a", "bsn: not digits"),
            ("1.23456782E+8", "bsn: not digits"),
            ("123456782.", "bsn: not digits"),
            ("-123456782", "bsn: not digits"),
            ("1234..56782", "bsn: not digits"),
            (fullwidth("123456782"), "bsn: not digits"),
            ("123456782.0", "bsn: not 8 or 9 digits"),
            ("1234567", "bsn: not 8 or 9 digits"),
            ("1234567820", "bsn: not 8 or 9 digits"),
            ("123456789", "bsn: elfproef fails"),
            ("000000000", PLACEHOLDER_REASON),
            ("0000 00 000", PLACEHOLDER_REASON),
            ("00000000", PLACEHOLDER_REASON),
        ],
    )
    def test_invalid_values_are_refused_with_a_reason(self, raw: str, reason: str) -> None:
        """Anything but 8 or 9 digits with the elfproef is refused, naming why."""
        with pytest.raises(InvalidIdentifier) as info:
            canonical_bsn(raw)
        assert str(info.value) == reason

    @settings(deadline=None)  # timing varies on a loaded CI machine
    @given(st.text(max_size=20))
    def test_any_text_gives_a_bsn_or_a_fixed_reason(self, raw: str) -> None:
        """Arbitrary text canonicalises to 13 bytes or fails with a constant reason."""
        out = outcome(canonical_bsn, raw)
        if isinstance(out, str):
            assert out in BSN_REASONS
        else:
            assert len(out) == 13
            assert out.startswith(b"bsn:")
            assert elfproef(out[4:].decode())

    @settings(deadline=None)  # timing varies on a loaded CI machine
    @given(bsns(), st.sampled_from(["{}", " {} ", "{}\t"]))
    def test_every_spelling_of_one_bsn_is_one_form(self, bsn: str, frame: str) -> None:
        """Plain, grouped, padded and zero-dropped spellings of a BSN agree."""
        forms = {bsn, f"{bsn[:4]}.{bsn[4:6]}.{bsn[6:]}", f"{bsn[:3]} {bsn[3:6]} {bsn[6:]}"}
        if bsn[0] == "0":
            forms.add(bsn[1:])
        assert {canonical_bsn(frame.format(f)) for f in forms} == {b"bsn:" + bsn.encode()}

    @settings(deadline=None)  # timing varies on a loaded CI machine
    @given(bsns(), bsns())
    def test_different_bsns_never_collide(self, a: str, b: str) -> None:
        """Distinct numbers keep distinct canonical forms (the digits are kept verbatim)."""
        assume(a != b)
        assert canonical_bsn(a) != canonical_bsn(b)

    def test_synthetic_bsns_validate(self) -> None:
        """tests.support.synthetic's BSNs all pass the elfproef."""
        rng = random.Random(5)
        assert all(elfproef(random_bsn(rng)) for _ in range(2000))


# --- addresses ------------------------------------------------------------------------------

LETTERS = string.ascii_uppercase
POSTCODE_LETTERS = [a + b for a in LETTERS for b in LETTERS if a + b not in {"SA", "SD", "SS"}]


@st.composite
def addresses(draw: st.DrawFn) -> tuple[str, int, str, str]:
    """A canonical (postcode, number, huisletter, toevoeging) that the rule keeps as it is."""
    pc = f"{draw(st.integers(1000, 9999))}{draw(st.sampled_from(POSTCODE_LETTERS))}"
    number = draw(st.integers(1, 99999))
    letter = draw(st.sampled_from(["", *LETTERS]))
    extra = draw(st.text(alphabet=LETTERS + string.digits, max_size=4))
    if not letter:
        # Without a huisletter, "A" or "A3" would be read as huisletter A (+ toevoeging 3).
        assume(not (len(extra) == 1 and extra.isalpha()))
        assume(not (len(extra) > 1 and extra[0].isalpha() and extra[1:].isdigit()))
    return pc, number, letter, extra


def expected(pc: str, number: int, letter: str, extra: str) -> bytes:
    return f"address:{pc}:{number}:{letter}:{extra}".encode()


@st.composite
def spellings(draw: st.DrawFn, address: tuple[str, int, str, str]) -> tuple[str, str, str, str]:
    """One of the ways partners write ``address``: (postcode, huisnummer, huisletter, toev)."""
    pc, number, letter, extra = address
    sp = st.sampled_from(["", " ", "  ", "\t", "\u00a0"])
    case = draw(st.sampled_from([str.upper, str.lower]))
    postcode = draw(sp) + pc[:4] + draw(st.sampled_from(["", " ", "-", " - "])) + case(pc[4:])
    postcode += draw(sp)
    num = "0" * draw(st.integers(0, 2)) + str(number)
    lcase = draw(st.sampled_from([str.upper, str.lower]))
    style = draw(st.sampled_from(["columns", "combined", "letter-in-toevoeging"]))
    if style == "letter-in-toevoeging" and letter and not extra:
        return postcode, draw(sp) + num, "", draw(sp) + lcase(letter)
    if style in ("columns", "letter-in-toevoeging"):
        return postcode, num + draw(sp), draw(sp) + lcase(letter), lcase(extra) + draw(sp)
    combined = num
    if letter:
        combined += draw(st.sampled_from(["", "-", " ", " - "])) + lcase(letter)
    if extra:
        needs_sep = bool(letter) or extra[0].isdigit()
        seps = ["-", " ", "/", " - ", "."] if needs_sep else ["", "-", " ", "/"]
        combined += draw(st.sampled_from(seps)) + lcase(extra)
    return postcode, draw(sp) + combined + draw(sp), "", ""


class TestCanonicalAddress:
    @pytest.mark.parametrize(
        ("parts", "canonical"),
        [
            (("1234AB", "12"), b"address:1234AB:12::"),
            (("1234 ab", "12"), b"address:1234AB:12::"),
            ((" 1234ab ", "012"), b"address:1234AB:12::"),
            (("1234-AB", "12"), b"address:1234AB:12::"),
            (("1234AB", "12-A"), b"address:1234AB:12:A:"),
            (("1234AB", "12a"), b"address:1234AB:12:A:"),
            (("1234AB", "12 A"), b"address:1234AB:12:A:"),
            (("1234AB", "12", "a"), b"address:1234AB:12:A:"),
            (("1234AB", "12", "", "A"), b"address:1234AB:12:A:"),
            (("1234AB", "12 bis"), b"address:1234AB:12::BIS"),
            (("1234AB", "12bis"), b"address:1234AB:12::BIS"),
            (("1234AB", "12", "", "bis"), b"address:1234AB:12::BIS"),
            (("1234AB", "12-2"), b"address:1234AB:12::2"),
            (("1234AB", "12 2"), b"address:1234AB:12::2"),
            (("1234AB", "12 II"), b"address:1234AB:12::II"),
            (("1234AB", "12-ii"), b"address:1234AB:12::II"),
            (("1234AB", "12A-3"), b"address:1234AB:12:A:3"),
            (("1234AB", "12 a 3"), b"address:1234AB:12:A:3"),
            (("1234AB", "12A3"), b"address:1234AB:12:A:3"),
            (("1234AB", "12", "A", "3"), b"address:1234AB:12:A:3"),
            (("1234AB", "12", "", "A3"), b"address:1234AB:12:A:3"),
            (("1234AB", "12", "", "a-3"), b"address:1234AB:12:A:3"),
            (("1234AB", "12-1 hg"), b"address:1234AB:12::1HG"),
            (("1234AB", "12", "", "02"), b"address:1234AB:12::02"),
            (("1234AB", "99999"), b"address:1234AB:99999::"),
        ],
    )
    def test_spellings_canonicalise(self, parts: tuple[str, ...], canonical: bytes) -> None:
        """The messy forms partners export land on the documented canonical form."""
        assert canonical_address(*parts) == canonical

    @pytest.mark.parametrize(
        ("parts", "reason"),
        [
            (("", "12"), "postcode: empty"),
            (("0123AB", "12"), "postcode: not of the form 1234AB"),
            (("123AB", "12"), "postcode: not of the form 1234AB"),
            (("12345AB", "12"), "postcode: not of the form 1234AB"),
            (("1234A", "12"), "postcode: not of the form 1234AB"),
            (("1234ÄB", "12"), "postcode: not of the form 1234AB"),
            ((fullwidth("1234AB"), "12"), "postcode: not of the form 1234AB"),
            (("1234SA", "12"), "postcode: letters SA, SD and SS are never issued"),
            (("1234 sd", "12"), "postcode: letters SA, SD and SS are never issued"),
            (("1234ss", "12"), "postcode: letters SA, SD and SS are never issued"),
            (("1234AB", ""), "huisnummer: empty"),
            (("1234AB", "A12"), "huisnummer: does not start with a number"),
            (("1234AB", "0"), "huisnummer: not between 1 and 99999"),
            (("1234AB", "000"), "huisnummer: not between 1 and 99999"),
            (("1234AB", "100000"), "huisnummer: not between 1 and 99999"),
            (("1234AB", "9" * 5000), "huisnummer: not between 1 and 99999"),
            (("1234AB", fullwidth("12")), "huisnummer: does not start with a number"),
            (("1234AB", "12", "AB"), "huisletter: not a single letter"),
            (("1234AB", "12", "1"), "huisletter: not a single letter"),
            (("1234AB", "12", "é"), "huisletter: not a single letter"),
            (("1234AB", "12 ß"), "huisletter/toevoeging: only letters and digits allowed"),
            (("1234AB", "12+A"), "huisletter/toevoeging: only letters and digits allowed"),
            (("1234AB", "12", "", "12345"), "toevoeging: longer than 4 characters"),
            (("1234AB", "12 A 12345"), "toevoeging: longer than 4 characters"),
            (("1234AB", "12-1 hoog"), "toevoeging: longer than 4 characters"),
        ],
    )
    def test_invalid_values_are_refused_with_a_reason(
        self, parts: tuple[str, ...], reason: str
    ) -> None:
        """Out-of-format postcodes, numbers, letters and toevoegingen are refused, naming why."""
        with pytest.raises(InvalidIdentifier) as info:
            canonical_address(*parts)
        assert str(info.value) == reason

    @settings(deadline=None)  # timing varies on a loaded CI machine
    @given(addresses(), st.data())
    def test_every_spelling_of_one_address_is_one_form(
        self, address: tuple[str, int, str, str], data: st.DataObject
    ) -> None:
        """Case, spaces, dashes, leading zeros, combined or split columns: one canonical form."""
        for _ in range(5):
            spelled = data.draw(spellings(address))
            assert canonical_address(*spelled) == expected(*address)

    @settings(deadline=None)  # timing varies on a loaded CI machine
    @given(addresses())
    def test_canonical_form_parses_back_to_its_parts(
        self, address: tuple[str, int, str, str]
    ) -> None:
        """Splitting on ":" recovers every part, so the encoding is injective."""
        out = canonical_address(address[0], str(address[1]), address[2], address[3])
        kind, pc, number, letter, extra = out.decode().split(":")
        assert (kind, pc, int(number), letter, extra) == ("address", *address)
        assert canonical_address(pc, number, letter, extra) == out  # a fixed point

    @settings(deadline=None)  # timing varies on a loaded CI machine
    @given(addresses(), addresses(), st.data())
    def test_different_addresses_never_collide(
        self,
        a: tuple[str, int, str, str],
        b: tuple[str, int, str, str],
        data: st.DataObject,
    ) -> None:
        """Two distinct addresses, however spelled, never share a canonical form."""
        assume(a != b)
        assert canonical_address(*data.draw(spellings(a))) != canonical_address(
            *data.draw(spellings(b))
        )

    def test_near_miss_addresses_stay_distinct(self) -> None:
        """Separator placement cannot make "1 23" and "12 3" or letter and toevoeging collide."""
        forms = [
            canonical_address("1234AB", "1", "", "23"),
            canonical_address("1234AB", "12", "", "3"),
            canonical_address("1234AB", "123"),
            canonical_address("1234AB", "12", "A", "BC"),
            canonical_address("1234AB", "12", "", "ABC"),
            canonical_address("1234AB", "12", "A", "2"),
            canonical_address("1234AB", "12", "", "2"),
            canonical_address("1234AC", "12"),
        ]
        assert len(set(forms)) == len(forms)

    @settings(deadline=None)  # timing varies on a loaded CI machine
    @given(st.text(max_size=8), st.text(max_size=8), st.text(max_size=3), st.text(max_size=6))
    def test_any_text_gives_an_address_or_a_fixed_reason(
        self, pc: str, nr: str, letter: str, extra: str
    ) -> None:
        """Arbitrary text canonicalises to a fixed point or fails with a constant reason."""
        out = outcome(canonical_address, pc, nr, letter, extra)
        if isinstance(out, str):
            assert out in ADDRESS_REASONS
        else:
            _, p, n, l_, t = out.decode("ascii").split(":")
            assert canonical_address(p, n, l_, t) == out


class TestAddressCanonicalizer:
    @settings(deadline=None)  # timing varies on a loaded CI machine
    @given(
        st.lists(
            st.tuples(
                st.sampled_from(["1234AB", "1234 ab", "1234SA", "x"]) | st.text(max_size=7),
                st.sampled_from(["12", "12a", "12-A", "0", "12 bis"]) | st.text(max_size=6),
                st.sampled_from(["", "a", "AB"]),
                st.sampled_from(["", "2", "A", "12345"]),
            ),
            max_size=12,
        )
    )
    def test_memoised_equals_plain(self, parts: list[tuple[str, str, str, str]]) -> None:
        """The bulk canonicaliser gives canonical_address's result or reason, call after call."""
        canon = address_canonicalizer()
        for p in parts * 2:
            assert outcome(canon, *p) == outcome(canonical_address, *p)


class TestHelpers:
    def test_canonicalize_dispatches_on_kind(self) -> None:
        """canonicalize reads the kind's fields; missing optional fields count as empty."""
        assert canonicalize("bsn", {"bsn": "123456782"}) == b"bsn:123456782"
        assert canonicalize("address", {"postcode": "1234ab", "huisnummer": "12"}) == (
            b"address:1234AB:12::"
        )
        fields = {"postcode": "1234AB", "huisnummer": "12", "huisletter": "a", "toevoeging": "3"}
        assert canonicalize("address", fields) == b"address:1234AB:12:A:3"

    def test_canonicalize_refuses_missing_required_field(self) -> None:
        """A missing required field is an empty one, and so invalid."""
        with pytest.raises(InvalidIdentifier, match="huisnummer: empty"):
            canonicalize("address", {"postcode": "1234AB"})
        with pytest.raises(InvalidIdentifier, match="bsn: empty"):
            canonicalize("bsn", {})

    def test_unknown_kind_is_a_value_error(self) -> None:
        """An unknown kind is a programming or configuration error, not an invalid row."""
        with pytest.raises(ValueError, match="unknown identifier kind"):
            canonicalize("email", {"bsn": "123456782"})  # type: ignore[arg-type]

    def test_prefixes_separate_the_kinds(self) -> None:
        """A BSN and an address can never share a canonical form: the prefix names the kind."""
        assert kind_of(canonical_bsn("123456782")) == "bsn"
        assert kind_of(canonical_address("1234AB", "12")) == "address"
        with pytest.raises(ValueError, match="not a canonical identifier"):
            kind_of(b"123456782")

    @pytest.mark.parametrize(
        ("canonical", "text"),
        [
            (b"bsn:072436281", "072436281"),
            (b"address:1234AB:12::", "1234AB 12"),
            (b"address:1234AB:12:A:", "1234AB 12A"),
            (b"address:1234AB:12:A:3", "1234AB 12A-3"),
            (b"address:1234AB:12::BIS", "1234AB 12-BIS"),
        ],
    )
    def test_render_writes_the_familiar_form(self, canonical: bytes, text: str) -> None:
        """render() gives what a person writes, and it canonicalises back."""
        assert render(canonical) == text
        if canonical.startswith(b"address:"):
            pc, rest = text.split(" ")
            assert canonical_address(pc, rest) == canonical

    def test_normalize_house_returns_parts(self) -> None:
        """normalize_house exposes the parsed (number, letter, toevoeging)."""
        assert normalize_house("012 a-3") == (12, "A", "3")
