"""Writing the privacy officer's page for one round: gather, render, replace atomically.

In Dutch by default (`lang="en"` for English), and printed to PDF as well when asked
(`pdf=`, with headless Chromium: `coordinator.report.pdf`).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from coordinator.config import CoordinatorConfig
from coordinator.report.gather import build_report
from coordinator.report.html import render_html
from coordinator.report.pdf import print_pdf
from coordinator.report.words import DEFAULT_LANGUAGE, Words
from kruispunt import signing
from kruispunt.errors import ConfigError

__all__ = ["ReportSummary", "write_report"]


@dataclass(frozen=True)
class ReportSummary:
    """What `write_report` wrote and what it found."""

    path: Path
    round_id: str
    round_state: str
    #: the whole audit chain verifies and every stored consent verifies
    verified: bool
    audit_ok: bool
    audit_events: int
    audit_first_bad_seq: int | None
    consents_ok: bool
    #: The warnings as the page states them, in its language.
    warnings: tuple[str, ...]
    lang: str = DEFAULT_LANGUAGE
    #: The PDF printed beside the page, if one was asked for.
    pdf: Path | None = None


def write_report(
    config: CoordinatorConfig,
    round_id: str,
    out: Path,
    *,
    public_key: Ed25519PublicKey | None = None,
    now: datetime | None = None,
    lang: str = DEFAULT_LANGUAGE,
    pdf: Path | None = None,
) -> ReportSummary:
    """Write the privacy officer's HTML page for one round to `out` (atomically).

    The page is in `lang` ("nl", the default, or "en"); with `pdf`, it is also printed
    there with headless Chromium (ConfigError naming what is missing, after the HTML page
    is written). The audit chain is verified under `public_key`, by default the key at
    `config.audit_public_key`. Raises UnknownRound for a round id the
    database does not know, ConfigError if the database, the key or the
    output directory is missing, ValueError for an unknown language.
    """
    words = Words(lang)
    if public_key is None:
        public_key = signing.read_public_key(
            config.audit_public_key, missing="no coordinator audit public key here"
        )
    report = build_report(config, round_id, public_key, now=now)
    page = render_html(report, lang=lang)
    _write_atomic(Path(out), page)
    printed = print_pdf(Path(out), Path(pdf)) if pdf is not None else None
    return ReportSummary(
        path=Path(out),
        round_id=round_id,
        round_state=report.round.state,
        verified=report.audit.ok and report.consents_ok,
        audit_ok=report.audit.ok,
        audit_events=report.audit.count,
        audit_first_bad_seq=report.audit.first_bad_seq,
        consents_ok=report.consents_ok,
        warnings=tuple(words.notice(n) for n in report.warnings),
        lang=lang,
        pdf=printed,
    )


def _write_atomic(out: Path, text: str) -> None:
    if not out.parent.is_dir():
        raise ConfigError(f"{out.parent}: output directory does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
