"""structlog set-up for node and coordinator, with a processor that refuses identifiers.

``configure_logging`` is called once at start: JSON lines on stdout (or the
given stream) unless that stream is a terminal, where a person reads the
console rendering. Bind ``round_id``, ``partner`` and ``phase`` as context
(``structlog.contextvars.bind_contextvars``) and log one line per RPC or phase.

``refuse_identifiers`` runs last before rendering. It is a safety net, not
the way identifiers are kept out: code must never pass them in the first
place. Any string (the event text included, and strings inside lists, tuples
and dicts) that looks like it holds an identifier is replaced by
``"[redacted]"`` as a whole, and ``redacted=True`` is added to the line.
"Looks like":

- a BSN: a run of 8 or 9 digits, or 9 digits grouped as 1234.56.782 /
  123 456 782. The run must not touch other letters or digits, so hex digests
  ("3fa9...") and longer numbers are left alone, while "bsn=123456782" or
  "x 012345678 y" are caught.
- a postcode: ``[1-9][0-9]{3} ?[A-Za-z]{2}`` not followed by a letter, and not
  preceded by a letter or digit. This also catches "took 1500 ms": put
  measurements in numeric fields, not in text.
- a canonical identifier (``bsn:``/``address:`` followed by its value), as
  text, bytes, or hex of those bytes.

Integers in the BSN range that pass the elfproef are redacted too (an
identifier parsed to int is still one); other numbers and UUID-shaped strings
(round ids) pass untouched.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import structlog

from kruispunt.identifiers import ADDRESS_PREFIX, BSN_PREFIX, elfproef

REDACTED = "[redacted]"

_IDENTIFIER_TEXT = re.compile(
    r"(?<![0-9A-Za-z])(?:[0-9]{8,9}|[0-9]{4}[. ][0-9]{2}[. ][0-9]{3}|[0-9]{3} [0-9]{3} [0-9]{3})"
    r"(?![0-9A-Za-z])"
    r"|(?<![0-9A-Za-z])[1-9][0-9]{3} ?[A-Za-z]{2}(?![A-Za-z])"
    r"|(?:bsn|address):[0-9]"
    r"|" + (BSN_PREFIX.hex()) + "|" + (ADDRESS_PREFIX.hex()),
    re.IGNORECASE,
)
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
_SCALARS = (bool, float, type(None))


def looks_like_identifier(value: object) -> bool:
    """Return True when ``value`` (or anything inside it) might hold an identifier."""
    return _scrub(value)[1]


def _text_hit(text: str) -> bool:
    if _UUID.fullmatch(text) is not None:
        return False
    return _IDENTIFIER_TEXT.search(text) is not None


def _scrub(value: Any) -> tuple[Any, bool]:
    """Return (value with identifier-like strings redacted, whether anything was)."""
    if isinstance(value, str):
        return (REDACTED, True) if _text_hit(value) else (value, False)
    if isinstance(value, _SCALARS):
        return value, False
    if isinstance(value, int):
        if 10_000_000 <= abs(value) < 1_000_000_000 and elfproef(f"{abs(value):09d}"):
            return REDACTED, True
        return value, False
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        if BSN_PREFIX in raw or ADDRESS_PREFIX in raw or _text_hit(raw.decode("latin-1")):
            return REDACTED, True
        return value, False
    if isinstance(value, Mapping):
        hit = False
        out: dict[Any, Any] = {}
        for k, v in value.items():
            nv, h = _scrub(v)
            out[k] = nv
            hit = hit or h
        return (out, True) if hit else (value, False)
    if isinstance(value, list | tuple | set | frozenset):
        items = [_scrub(v) for v in value]
        if any(h for _, h in items):
            return [v for v, _ in items], True
        return value, False
    # Anything else is rendered through repr() or str(): judge what would be printed.
    if _text_hit(repr(value)) or _text_hit(str(value)):
        return REDACTED, True
    return value, False


def refuse_identifiers(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: redact every value that looks like an identifier; mark the line."""
    redacted = False
    for key in list(event_dict):
        value, hit = _scrub(event_dict[key])
        if hit:
            event_dict[key] = value
            redacted = True
    if redacted:
        event_dict["redacted"] = True
    return event_dict


def configure_logging(
    *, json: bool | None = None, level: str = "info", stream: TextIO | None = None
) -> None:
    """Configure structlog for the process: JSON lines unless ``stream`` is a terminal.

    ``json=None`` decides by ``stream.isatty()``; ``stream`` defaults to stdout.
    Calling it again replaces the configuration (tests do).
    """
    out = stream if stream is not None else sys.stdout
    if json is None:
        json = not out.isatty()
    numeric = logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        raise ValueError(f"unknown log level {level!r}")
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            refuse_identifiers,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
