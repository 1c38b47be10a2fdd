"""What looks like a citizen identifier: the one detector logs, audit rows and doctors share.

The log redactor (`kruispunt.logs`), the audit guard (`kruispunt.audit`) and a doctor's
check details (`kruispunt.doctor`) all ask this module, so a value one of them would
stop cannot slip through another. It is a safety net, not the way identifiers are kept
out: code must never pass them in the first place.

Text looks like it holds an identifier when it contains:

- a BSN as written: a run of 9 digits not touching other digits ("bsn123456782" and
  "user-123456782" are caught); a run of exactly 8 digits standing alone (a BSN that
  lost its leading zero in a spreadsheet); or 9 digits grouped 4-2-3 with ``.``,
  ``-`` or a space ("1234.56.782") or 3-3-3 with ``-`` or a space ("123 456 782"),
  groupings `kruispunt.identifiers.canonical_bsn` accepts as export noise. Dots
  between groups of three are not caught: "192.168.100.200" is a network address;
- a postcode: ``[1-9][0-9]{3}``, an optional space and two letters of either case
  ("5211AB", "5211 ab"), not preceded by a letter or digit and not followed by a
  letter. This also catches "1500 of 3000": put counts in numeric fields, not in
  text. The one exemption is a number of milliseconds written in lower case
  ("3000 ms"): postcodes are written in capitals, and timing messages must stay
  readable;
- a canonical identifier (``bsn:`` or ``address:`` followed by its value), or the
  hex of a canonical prefix (``62736e3a``, ``616464726573733a``).

Whole tokens that are ids or digests are read past, not scanned: UUIDs, round ids
(``r20250301T093000-12345678``, `kruispunt.manifest.ROUND_ID_RE`) and hex strings of
digest length (16, 32, 40, 64 or 128 hex digits). A random digest holds a 9-digit run
often enough that scanning them would refuse one round in ten; a hex string of the
canonical prefixes is still caught, since that check reads the unmasked text.

Numbers are judged by what a consumer can afford. An audit row refuses every integer
of 8 or 9 digits (`in_bsn_range`): the audit format promises counts below 10,000,000.
A log line carries byte sizes and counts of any size, so the redactor replaces only
such integers that pass the elfproef (`may_be_bsn_number`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Final

from kruispunt.identifiers import ADDRESS_PREFIX, BSN_PREFIX, elfproef
from kruispunt.manifest import ROUND_ID_RE

__all__ = [
    "REDACTED",
    "identifier_reason",
    "in_bsn_range",
    "looks_like_identifier",
    "may_be_bsn_number",
    "scrub",
]

#: What a redacted value is replaced by.
REDACTED: Final = "[redacted]"

_NOT_ALNUM_BEFORE = r"(?<![0-9A-Za-z])"
_NOT_ALNUM_AFTER = r"(?![0-9A-Za-z])"

# Ids and digests, as whole tokens; longest alternatives first so a 64-digit digest is
# not read as a 16-digit one followed by more hex.
_ID_TOKEN = re.compile(
    _NOT_ALNUM_BEFORE + r"(?:"
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|" + ROUND_ID_RE.pattern + r"|[0-9a-fA-F]{128}|[0-9a-fA-F]{64}|[0-9a-fA-F]{40}"
    r"|[0-9a-fA-F]{32}|[0-9a-fA-F]{16}"
    r")" + _NOT_ALNUM_AFTER
)
# What a masked token becomes: not a digit or letter, so no run can join across it.
_MASK = "#"

_BSN_RUN = re.compile(r"(?<![0-9])[0-9]{9}(?![0-9])")
_BSN_SHORT = re.compile(_NOT_ALNUM_BEFORE + r"[0-9]{8}" + _NOT_ALNUM_AFTER)
_BSN_GROUPED = re.compile(
    r"(?<![0-9])(?:[0-9]{4}[. \-][0-9]{2}[. \-][0-9]{3}|[0-9]{3}[ \-][0-9]{3}[ \-][0-9]{3})"
    r"(?![0-9])"
)
_POSTCODE = re.compile(
    _NOT_ALNUM_BEFORE + r"[1-9][0-9]{3} ?(?!ms(?![A-Za-z]))[A-Za-z]{2}(?![A-Za-z])"
)
_CANONICAL = re.compile(
    r"(?:bsn|address):[0-9]|" + BSN_PREFIX.hex() + "|" + ADDRESS_PREFIX.hex(), re.IGNORECASE
)

_BSN_RANGE: Final = range(10_000_000, 1_000_000_000)


def identifier_reason(text: str) -> str | None:
    """Return why `text` looks like it holds an identifier, or None. Never returns the text."""
    if _CANONICAL.search(text):
        return "a canonical identifier"
    masked = _ID_TOKEN.sub(_MASK, text)
    if _BSN_RUN.search(masked):
        return "a run of 9 digits (BSN-like)"
    if _BSN_GROUPED.search(masked):
        return "9 grouped digits (BSN-like)"
    if _BSN_SHORT.search(masked):
        return "a run of 8 digits (BSN-like, leading zero lost)"
    if _POSTCODE.search(masked):
        return "a postcode-like value"
    return None


def in_bsn_range(number: int) -> bool:
    """True for an integer of 8 or 9 digits: a BSN parsed as a number, leading zero or not."""
    return abs(number) in _BSN_RANGE


def may_be_bsn_number(number: int) -> bool:
    """True for an integer of 8 or 9 digits whose 9-digit spelling passes the elfproef."""
    return in_bsn_range(number) and elfproef(f"{abs(number):09d}")


def looks_like_identifier(value: object) -> bool:
    """Return True when `value` (or anything inside it) might hold an identifier."""
    return scrub(value)[1]


def _text_hit(text: str) -> bool:
    return identifier_reason(text) is not None


def scrub(value: Any) -> tuple[Any, bool]:
    """Return `value` with identifier-like parts replaced by REDACTED, and whether any were.

    Strings are replaced whole; lists, tuples, sets and mappings keep their other
    items (a mapping with an identifier-like key is replaced whole); bytes are checked
    for canonical prefixes and as text; integers (and floats with an integral value)
    that may be a BSN (`may_be_bsn_number`) are replaced; anything else is judged by
    its repr() and str(), which is what a renderer would print.
    """
    if isinstance(value, str):
        return (REDACTED, True) if _text_hit(value) else (value, False)
    if value is None or isinstance(value, bool):
        return value, False
    if isinstance(value, int):
        return (REDACTED, True) if may_be_bsn_number(value) else (value, False)
    if isinstance(value, float):
        # A BSN column read as numbers arrives as floats (123456782.0).
        if math.isfinite(value) and value.is_integer() and may_be_bsn_number(int(value)):
            return REDACTED, True
        return value, False
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        if BSN_PREFIX in raw or ADDRESS_PREFIX in raw or _text_hit(raw.decode("latin-1")):
            return REDACTED, True
        return value, False
    if isinstance(value, Mapping):
        if any(looks_like_identifier(key) for key in value):
            return REDACTED, True
        hit = False
        out: dict[Any, Any] = {}
        for key, item in value.items():
            new, found = scrub(item)
            out[key] = new
            hit = hit or found
        return (out, True) if hit else (value, False)
    if isinstance(value, list | tuple | set | frozenset):
        items = [scrub(item) for item in value]
        if any(found for _, found in items):
            return [new for new, _ in items], True
        return value, False
    # Anything else is rendered through repr() or str(): judge what would be printed.
    if _text_hit(repr(value)) or _text_hit(str(value)):
        return REDACTED, True
    return value, False
