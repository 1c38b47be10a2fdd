"""structlog set-up for node and coordinator, with a processor that refuses identifiers.

``configure_logging`` is called once at start: JSON lines on stdout (or the
given stream) unless that stream is a terminal, where a person reads the
console rendering. Bind ``round_id``, ``partner`` and ``phase`` as context
(``structlog.contextvars.bind_contextvars``) and log one line per RPC or phase.

``refuse_identifiers`` runs last before rendering. It is a safety net, not
the way identifiers are kept out: code must never pass them in the first
place. Any value (the event text included, and values inside lists, tuples
and dicts) that looks like it holds an identifier is replaced by
``"[redacted]"`` as a whole, and ``redacted=True`` is added to the line.
What "looks like" means is decided in one place, `kruispunt.redact`, which
the audit guard asks too; integers are redacted only when they might be a
BSN (8 or 9 digits passing the elfproef), since log lines carry sizes.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from kruispunt.redact import scrub


def refuse_identifiers(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: redact every value that looks like an identifier; mark the line."""
    redacted = False
    for key in list(event_dict):
        value, hit = scrub(event_dict[key])
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
