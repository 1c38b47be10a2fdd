"""The privacy officer's report: one self-contained HTML page per round.

For the FG/DPO (functionaris gegevensbescherming), who has read access and
the coordinator's public key, nothing else. The page states what the round
was for and under which legal bases, whether every partner's stored consent
still verifies against its registered key and is bound to this round's
manifest, the set sizes with their change since the previous completed round
of the same purpose (the probing signal DESIGN.md asks for), flagged counts,
the overlap histogram (for a two-party round: what client and server learned),
phase timings in protocol order, the round's audit events and whether the whole
audit chain verifies; per partner, deleted on a date (its signed deletion
receipt) or still due by one, and the audit heads each side kept; a refused or
failed round and a changed purpose first.

`gather` reads the database, `html` renders the page (its stylesheet is
`report.css`, package data) in the language `words` gives it (Dutch by default),
`pdf` prints it with headless Chromium, `write` puts them together and writes
the files. Callers import from this package only.
"""

from coordinator.report.gather import (
    GROWTH_WARNING,
    NEAR_MAX_WARNING,
    ConsentCheck,
    DeletionStatus,
    EventRow,
    HeadsRow,
    PartnerSizes,
    PurposeChange,
    Refusal,
    RoundReport,
    build_report,
)
from coordinator.report.html import render_html
from coordinator.report.pdf import find_chromium, print_pdf
from coordinator.report.words import DEFAULT_LANGUAGE, LANGUAGES, WORDS, Notice, Words
from coordinator.report.write import ReportSummary, write_report

__all__ = [
    "DEFAULT_LANGUAGE",
    "GROWTH_WARNING",
    "LANGUAGES",
    "NEAR_MAX_WARNING",
    "WORDS",
    "ConsentCheck",
    "DeletionStatus",
    "EventRow",
    "HeadsRow",
    "Notice",
    "PartnerSizes",
    "PurposeChange",
    "Refusal",
    "ReportSummary",
    "RoundReport",
    "Words",
    "build_report",
    "find_chromium",
    "print_pdf",
    "render_html",
    "write_report",
]
