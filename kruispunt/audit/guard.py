"""The audit identifier guard: refuse, before anything is written, what looks like an identifier.

`details` holds aggregates only (counts, sizes, histogram buckets, partner and
purpose ids, digests, round ids, reasons) and never an identifier. As defence in
depth, `check_no_identifiers` refuses with a ValueError any detail (keys and
values, however deeply nested) or text field that `kruispunt.redact` says looks
like a BSN, a postcode or a canonical identifier: the same detector that redacts
log lines, so what a log line would hide never lands in a signed row instead.

Numbers are held to the stricter rule (`kruispunt.redact.in_bsn_range`): every
integer of 8 or 9 digits is refused, so a count must stay below 10,000,000 (log
large byte sizes in kB). Floats are judged by their repr ("111222333.0").
Round ids, digests and UUIDs pass, also inside free text such as a file path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from kruispunt.redact import identifier_reason, in_bsn_range

__all__ = ["check_no_identifiers", "safe_reason"]

_MAX_DEPTH = 8


def _check_json(value: object, where: str, depth: int = 0) -> None:
    """Refuse non-JSON values and identifier-like text anywhere in `value`."""
    if depth > _MAX_DEPTH:
        raise ValueError(f"audit {where}: nested too deeply")
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if in_bsn_range(value):
            raise ValueError(f"audit {where}: refused an 8- or 9-digit number (BSN-like)")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"audit {where}: not a finite number")
        reason = identifier_reason(repr(value))
        if reason:
            raise ValueError(f"audit {where}: refused {reason}; log aggregates only")
        return
    if isinstance(value, str):
        reason = identifier_reason(value)
        if reason:
            raise ValueError(f"audit {where}: refused {reason}; log aggregates only")
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_json(item, f"{where}[{index}]", depth + 1)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"audit {where}: keys must be strings")
            reason = identifier_reason(key)
            if reason:
                raise ValueError(f"audit {where}: refused a key with {reason}")
            _check_json(item, f"{where}.{key}", depth + 1)
        return
    raise TypeError(f"audit {where}: {type(value).__name__} is not a JSON value")


def check_no_identifiers(details: Mapping[str, object], **text_fields: str) -> None:
    """Refuse `details` (and the named text fields) if anything in them looks like an identifier.

    Raises TypeError for values that are not JSON, ValueError for identifier-like
    text (BSN-like digit runs, 8/9-digit numbers, postcodes, canonical forms).
    Messages name the field, never its value.
    """
    if not isinstance(details, Mapping):
        raise TypeError("audit details must be a JSON object")
    _check_json(details, "details")
    for name, text in text_fields.items():
        if not isinstance(text, str):
            raise TypeError(f"audit {name} must be a string")
        reason = identifier_reason(text)
        if reason:
            raise ValueError(f"audit {name}: refused {reason}")


def safe_reason(text: str, limit: int = 500) -> str:
    """Free text from a peer or an operator, fit for an audit row: bounded, not identifier-like."""
    text = text[:limit]
    if identifier_reason(text):
        return "[reason withheld: it looked like it held an identifier]"
    return text
