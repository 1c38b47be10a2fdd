"""The privacy officer's report: one self-contained HTML page per round.

For the FG/DPO (functionaris gegevensbescherming), who has read access and
the coordinator's public key, nothing else. The page states what the round
was for and under which legal bases, whether every partner's stored consent
still verifies against its registered key and is bound to this round's
manifest, the set sizes with their change since the previous completed round
of the same purpose (the probing signal DESIGN.md asks for), flagged counts,
the overlap histogram, phase timings, the round's audit events and whether
the whole audit chain verifies; and per partner, deleted on a date (its signed
deletion receipt) or still due by one, and the audit heads each side kept.

`gather` reads the database, `html` renders the page (its stylesheet is
`report.css`, package data), `write` puts the two together and writes the
file. Callers import from this package only.
"""

from coordinator.report.gather import (
    GROWTH_WARNING,
    NEAR_MAX_WARNING,
    ConsentCheck,
    DeletionStatus,
    EventRow,
    HeadsRow,
    PartnerSizes,
    RoundReport,
    build_report,
)
from coordinator.report.html import render_html
from coordinator.report.write import ReportSummary, write_report

__all__ = [
    "GROWTH_WARNING",
    "NEAR_MAX_WARNING",
    "ConsentCheck",
    "DeletionStatus",
    "EventRow",
    "HeadsRow",
    "PartnerSizes",
    "ReportSummary",
    "RoundReport",
    "build_report",
    "render_html",
    "write_report",
]
