"""Canonical identifiers: one byte string per citizen identifier, the same on every node.

Each node hashes the canonical form of its identifiers into the group, so two
nodes that spell the same identifier differently and canonicalise it to
different bytes simply miss each other: a missed household. Everything here is
about making every reasonable spelling land on one form, and every
unreasonable one fail with a reason (never the value).

Two kinds exist.

``bsn`` -- the burgerservicenummer: 9 ASCII digits, where an 8-digit number
gets a leading zero (spreadsheets drop it). It is valid only when the elfproef
holds: weights 9, 8, 7, 6, 5, 4, 3, 2, -1, weighted sum divisible by 11 and
greater than 0. Export noise we accept: surrounding whitespace, and the
grouping separators ``.``, ``-`` and spaces *between* digits
("1234.56.782", "123 456 782"). We reject anything else -- letters,
"1.23456782E+8", a trailing ".0" -- rather than guess: a guess that is wrong
in one direction only (one node guesses, another does not) is a missed match.
Canonical form: ``b"bsn:" + 9 digits``.

``address`` -- the household key. The BRP (Basisregistratie Personen) has no
household entity; people are registered at an address, and Kruispunt uses the
address as the household proxy: everyone registered at one address is one
household. The parts are those of the BAG (Basisregistratie Adressen en
Gebouwen):

- postcode ``[1-9][0-9]{3}[A-Z]{2}``; the letter pairs SA, SD and SS are never
  issued and are rejected. Case, spaces and a dash between digits and letters
  are normalised ("1234 ab", " 1234AB ", "1234-ab").
- huisnummer 1..99999, leading zeros dropped ("012" is 12).
- huisletter, one letter A-Z, upper-cased.
- huisnummertoevoeging, up to 4 letters or digits, upper-cased.

Partners export the last three either as separate columns or crammed into one
"huisnummer" field ("12-A", "12a", "12 A", "12 bis", "12-2", "12 II",
"12A-3"), and they do not agree which of two columns a suffix belongs in.
BAG defines the huisletter as the single letter written directly after the
number, but exports write "12-A" and "12 A" for the same thing. So one rule
decides, whatever the source:

1. Join huisnummer, huisletter and toevoeging with spaces; the number is the
   leading run of digits.
2. The rest is upper-cased and split into tokens at spaces, ``-``, ``/``, ``.``,
   ``,`` and ``_``; each token must be ASCII letters and digits.
3. If the first token is a single letter, it is the huisletter. If it is one
   letter followed only by digits ("A3" in "12A3"), the letter is the
   huisletter and the digits start the toevoeging. Otherwise there is no
   huisletter.
4. The remaining tokens, concatenated without separators, are the toevoeging
   (at most 4 characters).

Consequences, chosen on purpose and the same on every node: "12-A", "12a",
"12 A" and (huisnummer 12, toevoeging "A") are all huisletter A; "12A-3",
"12 a 3" and (huisletter A, toevoeging 3) are the same; "12 bis", "12-II" and
"12 hs" are toevoegingen BIS, II and HS. Distinct BAG addresses "12 A"
(huisletter) and "12-A" (toevoeging A) would fold into one household; that
pair is rare, and the opposite mistake (missing the same household spelled
two ways) is the common one. We do not translate Roman numerals ("12 II" and
"12-2" stay different) and keep leading zeros in the toevoeging ("02" is not
"2"): both can be distinct real addresses.

Canonical form: ``b"address:" + postcode + b":" + huisnummer + b":" +
huisletter + b":" + toevoeging``. No part can contain ``:``, the postcode has
a fixed width and the number has no leading zeros, so the form is injective:
two different addresses never share one byte string, and no separator
ambiguity can make them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Literal, get_args

from kruispunt.errors import InvalidIdentifier

IdentifierKind = Literal["bsn", "address"]
KINDS: tuple[IdentifierKind, ...] = get_args(IdentifierKind)

BSN_PREFIX = b"bsn:"
ADDRESS_PREFIX = b"address:"

#: The fields each kind reads from an input row, in canonical order.
FIELDS: Mapping[IdentifierKind, tuple[str, ...]] = {
    "bsn": ("bsn",),
    "address": ("postcode", "huisnummer", "huisletter", "toevoeging"),
}
#: Fields that must be present (the others default to "").
REQUIRED_FIELDS: Mapping[IdentifierKind, tuple[str, ...]] = {
    "bsn": ("bsn",),
    "address": ("postcode", "huisnummer"),
}

MAX_HUISNUMMER = 99999
MAX_TOEVOEGING = 4

_BSN_NOISE = re.compile(r"[0-9]+(?:[ .\-][0-9]+)*")
_BSN_STRIP = str.maketrans("", "", " .-")
_POSTCODE = re.compile(r"[1-9][0-9]{3}[A-Z]{2}")
_POSTCODE_NOISE = re.compile(r"([1-9][0-9]{3})[\s\-]*([A-Za-z]{2})")
_UNISSUED_POSTCODE_LETTERS = frozenset({"SA", "SD", "SS"})
_NUMBER = re.compile(r"([0-9]+)(.*)", re.DOTALL)
_SEPARATORS = re.compile(r"[\s\-/.,_]+")
_LETTER_DIGITS = re.compile(r"[A-Z][0-9]+")
_ALNUM = re.compile(r"[A-Za-z0-9]+")


#: Nine zeros: what registrations write for "BSN unknown". Not a BSN, and said so, for a
#: partner IT team to leave those rows out rather than hunt for a typing error.
_UNKNOWN_BSN = b"000000000"
#: Why a BSN of nine zeros is refused (no digits in it: the reason is logged).
PLACEHOLDER_REASON = "bsn: all zeros, the placeholder for an unknown BSN (leave the row out)"


def elfproef(digits: str) -> bool:
    """Return True when ``digits`` is 9 ASCII digits that pass the BSN elfproef."""
    if len(digits) != 9 or not (digits.isascii() and digits.isdigit()):
        return False
    return _elfproef_bytes(digits.encode("ascii"))


def _elfproef_bytes(b: bytes) -> bool:
    # Byte arithmetic instead of int() per digit: this runs once per input row.
    # The weights sum to 43, so the ASCII offset of "0" contributes 43 * 48.
    total = (
        9 * b[0]
        + 8 * b[1]
        + 7 * b[2]
        + 6 * b[3]
        + 5 * b[4]
        + 4 * b[5]
        + 3 * b[6]
        + 2 * b[7]
        - b[8]
        - 43 * 48
    )
    return total > 0 and total % 11 == 0


def canonical_bsn(raw: str) -> bytes:
    """Return ``b"bsn:" + 9 digits`` for a valid BSN, or raise InvalidIdentifier."""
    s = raw.strip()
    n = len(s)
    if n == 9 and s.isdigit() and s.isascii():
        pass
    elif n == 8 and s.isdigit() and s.isascii():
        s = "0" + s
    else:
        if not s:
            raise InvalidIdentifier("bsn: empty")
        if _BSN_NOISE.fullmatch(s) is None:
            raise InvalidIdentifier("bsn: not digits")
        s = s.translate(_BSN_STRIP)
        if len(s) == 8:
            s = "0" + s
        elif len(s) != 9:
            raise InvalidIdentifier("bsn: not 8 or 9 digits")
    b = s.encode("ascii")
    if not _elfproef_bytes(b):
        if b == _UNKNOWN_BSN:
            raise InvalidIdentifier(PLACEHOLDER_REASON)
        raise InvalidIdentifier("bsn: elfproef fails")
    return BSN_PREFIX + b


def normalize_postcode(raw: str) -> str:
    """Return a postcode as ``1234AB``, or raise InvalidIdentifier."""
    s = raw.strip()
    if _POSTCODE.fullmatch(s) is None:
        if not s:
            raise InvalidIdentifier("postcode: empty")
        m = _POSTCODE_NOISE.fullmatch(s)
        if m is None:
            raise InvalidIdentifier("postcode: not of the form 1234AB")
        s = m[1] + m[2].upper()
    if s[4:] in _UNISSUED_POSTCODE_LETTERS:
        raise InvalidIdentifier("postcode: letters SA, SD and SS are never issued")
    return s


def normalize_house(
    huisnummer: str, huisletter: str = "", toevoeging: str = ""
) -> tuple[int, str, str]:
    """Return (huisnummer, huisletter, toevoeging) by the module's one rule, or raise."""
    number = huisnummer.strip()
    letter = huisletter.strip()
    extra = toevoeging.strip()
    # Fast path: the common, already clean case.
    if not letter and not extra and len(number) <= 5 and number.isascii() and number.isdigit():
        n = int(number)
        if n == 0:
            raise InvalidIdentifier("huisnummer: not between 1 and 99999")
        return n, "", ""
    if letter and not (len(letter) == 1 and letter.isascii() and letter.isalpha()):
        raise InvalidIdentifier("huisletter: not a single letter")
    if not number:
        raise InvalidIdentifier("huisnummer: empty")
    m = _NUMBER.fullmatch(" ".join((number, letter, extra)))
    if m is None:
        raise InvalidIdentifier("huisnummer: does not start with a number")
    digits = m[1].lstrip("0")
    # Check the length before int(): a 64 KiB digit run must fail as invalid, not slowly.
    if not digits or len(digits) > 5:
        raise InvalidIdentifier("huisnummer: not between 1 and 99999")
    n = int(digits)
    tokens = [t for t in _SEPARATORS.split(m[2]) if t]
    if not tokens:
        return n, "", ""
    for t in tokens:
        # ASCII before upper(): "ß".upper() is "SS", and that must not become a toevoeging.
        if _ALNUM.fullmatch(t) is None:
            raise InvalidIdentifier("huisletter/toevoeging: only letters and digits allowed")
    tokens = [t.upper() for t in tokens]
    first = tokens[0]
    if len(first) == 1 and first.isalpha():
        letter, tokens = first, tokens[1:]
    elif _LETTER_DIGITS.fullmatch(first) is not None:
        letter, tokens = first[0], [first[1:], *tokens[1:]]
    else:
        letter = ""
    extra = "".join(tokens)
    if len(extra) > MAX_TOEVOEGING:
        raise InvalidIdentifier("toevoeging: longer than 4 characters")
    return n, letter, extra


def canonical_address(
    postcode: str, huisnummer: str, huisletter: str = "", toevoeging: str = ""
) -> bytes:
    """Return ``b"address:PC:NR:L:T"`` for a valid address, or raise InvalidIdentifier."""
    pc = normalize_postcode(postcode)
    n, letter, extra = normalize_house(huisnummer, huisletter, toevoeging)
    return f"address:{pc}:{n}:{letter}:{extra}".encode("ascii")


def address_canonicalizer() -> Callable[[str, str, str, str], bytes]:
    """Return a function equal to canonical_address that memoises the parts it has seen.

    For bulk input: postcodes and house-number spellings repeat a lot, whole
    addresses rarely. Only valid parts are memoised (invalid ones raise every
    time), and the memo lives as long as the returned function, so a file's
    postcodes are dropped when the read that used it ends.
    """
    postcodes: dict[str, str] = {}
    houses: dict[tuple[str, str, str], str] = {}

    def canonical(
        postcode: str, huisnummer: str, huisletter: str = "", toevoeging: str = ""
    ) -> bytes:
        pc = postcodes.get(postcode)
        if pc is None:
            pc = postcodes[postcode] = normalize_postcode(postcode)
        key = (huisnummer, huisletter, toevoeging)
        house = houses.get(key)
        if house is None:
            n, letter, extra = normalize_house(huisnummer, huisletter, toevoeging)
            house = houses[key] = f"{n}:{letter}:{extra}"
        return f"address:{pc}:{house}".encode("ascii")

    return canonical


def canonicalize(kind: IdentifierKind, fields: Mapping[str, str]) -> bytes:
    """Return the canonical identifier of ``kind`` from a row's fields, or raise.

    ``fields`` holds "bsn", or "postcode", "huisnummer" and optionally
    "huisletter" and "toevoeging" (missing means empty).
    """
    if kind == "bsn":
        return canonical_bsn(fields.get("bsn", ""))
    if kind == "address":
        return canonical_address(
            fields.get("postcode", ""),
            fields.get("huisnummer", ""),
            fields.get("huisletter", ""),
            fields.get("toevoeging", ""),
        )
    raise ValueError(f"unknown identifier kind {kind!r}; expected one of {KINDS}")


def kind_of(canonical: bytes) -> IdentifierKind:
    """Return the kind named by a canonical identifier's prefix, or raise ValueError."""
    if canonical.startswith(BSN_PREFIX):
        return "bsn"
    if canonical.startswith(ADDRESS_PREFIX):
        return "address"
    raise ValueError("not a canonical identifier")


def render(canonical: bytes) -> str:
    """Return a canonical identifier the way a person writes it ("1234AB 12A-3").

    Only for an operator looking at their own data on their own node: the
    result is an identifier and must never be logged or sent.
    """
    kind = kind_of(canonical)
    text = canonical.decode("ascii")
    if kind == "bsn":
        return text[len("bsn:") :]
    _, pc, number, letter, extra = text.split(":")
    return f"{pc} {number}{letter}" + (f"-{extra}" if extra else "")
