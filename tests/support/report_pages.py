"""The report tests' network (three rounds), a parser for the page, and audit-table tampering.

Shared by the report's content tests (tests/integration) and its headless-browser
tests (tests/render).
"""

from __future__ import annotations

import html
import re
import sqlite3
from collections.abc import Callable
from contextlib import closing
from html.parser import HTMLParser
from pathlib import Path

from coordinator.report import WORDS, ReportSummary, write_report
from tests.support.network import TestNetwork
from tests.support.synthetic import make_network, write_csv

PARTNERS = ["gemeente", "woonbron", "zayaz"]
PER_PARTNER = 20
OVERLAPS = {2: 4, 3: 3}
GROWN = 20  # rows added to woonbron's list before the third round (+100%)

Factory = Callable[..., TestNetwork]


# -- helpers ---------------------------------------------------------------------------------


class Page(HTMLParser):
    """The visible text of a page and its tables (caption -> rows of cell texts)."""

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self._text: list[str] = []
        self.tables: dict[str, list[list[str]]] = {}
        self._caption: list[str] | None = None
        self._rows: list[list[str]] | None = None
        self._cell: list[str] | None = None
        self._skip = 0
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.feed(markup)
        self.close()
        self.text = re.sub(r"\s+", " ", " ".join(self._text)).strip()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(attrs)
        if tag in ("style", "title", "desc") and not self._cell:
            self._skip += 1
        elif tag == "table":
            self._rows = []
            self._caption = None
        elif tag == "caption":
            self._caption = []
        elif tag == "tr" and self._rows is not None:
            self._rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "title", "desc") and self._skip and not self._cell:
            self._skip -= 1
        elif tag in ("td", "th") and self._cell is not None and self._rows:
            self._rows[-1].append(re.sub(r"\s+", " ", " ".join(self._cell)).strip())
            self._cell = None
        elif tag == "table" and self._rows is not None:
            caption = re.sub(r"\s+", " ", " ".join(self._caption or [])).strip()
            self.tables[caption] = self._rows
            self._rows = None

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        self._text.append(data)
        if self._cell is not None:
            self._cell.append(data)
        elif self._caption is not None and self._rows is not None and not self._rows:
            self._caption.append(data)

    def table(self, prefix: str) -> dict[str, list[str]]:
        """The body rows of the table whose caption starts with `prefix`, keyed by first cell."""
        for caption, rows in self.tables.items():
            if caption.startswith(prefix):
                return {r[0]: r[1:] for r in rows[1:]}
        raise AssertionError(f"no table captioned {prefix!r}; have {sorted(self.tables)}")


def grow_input(net: TestNetwork, pid: str, extra: int) -> list[dict[str, str]]:
    """Give a partner `extra` new clients of its own (fresh synthetic BSNs); return all rows."""
    assert net.data is not None
    more = make_network([pid], extra, {}, seed=99, kind="bsn").rows[pid]
    rows = list(net.data.rows[pid]) + more
    write_csv(net.node_dirs[pid] / "input.csv", rows, "bsn", objection_column="bezwaar")
    return rows


def three_rounds(network_factory: Factory) -> tuple[TestNetwork, str, str, str]:
    """Completed round, a round woonbron refuses (input missing), a completed round after
    woonbron's set doubled. Returns the network and the three round ids."""
    net = network_factory(PARTNERS, per_partner=PER_PARTNER, overlaps=OVERLAPS)
    net.add_purpose()
    first = net.run()
    assert first.state == "completed", first.reason
    (net.node_dirs["woonbron"] / "input.csv").unlink()
    refused = net.run()
    assert refused.state == "refused", refused.reason
    grow_input(net, "woonbron", GROWN)
    grown = net.run()
    assert grown.state == "completed", grown.reason
    return net, first.round_id, refused.round_id, grown.round_id


CLIENT, SERVER = "gemeente", "woonbron"
TWO_PARTY_SIZE, TWO_PARTY_SHARED = 30, 7


def two_party_round(network_factory: Factory, **settings: object) -> tuple[TestNetwork, str]:
    """A completed two-party round (client gemeente, server woonbron: 30 records each,
    7 shared); `settings` go into the purpose's [bilateral] table (size_only=True …)."""
    net = network_factory(
        [CLIENT, SERVER],
        per_partner=TWO_PARTY_SIZE,
        overlaps={2: TWO_PARTY_SHARED},
        bilateral_roles={CLIENT: "client", SERVER: "server"},
    )
    table = {"client_partner": CLIENT, "server_partner": SERVER, **settings}
    net.add_purpose(mode="bilateral", bilateral=table)
    done = net.run()
    assert done.state == "completed", done.reason
    return net, done.round_id


def english_leaks(markup: str) -> list[str]:
    """English words of the report table found on a (Dutch) page: every fragment of an
    English template of two words or more that no Dutch template contains, anywhere in the
    page's text; and every heading, label, column head, caption and badge that begins like
    an English-only template."""
    english, dutch = WORDS["en"], WORDS["nl"]
    all_dutch = " ".join(dutch.values())
    only_english = [t for k, t in english.items() if t != dutch[k]]
    text = Page(markup).text
    leaks = []
    for template in only_english:
        for part in re.split(r"\{[^}]*\}|<[^>]+>", template):
            part = part.strip(" .,:;()—·…*+%-")
            if " " not in part or part in all_dutch:
                continue
            if re.search(r"(?<!\w)" + re.escape(part) + r"(?!\w)", text):
                leaks.append(part)
    labels = re.findall(
        r"<(?:h1|h2|h3|th|dt|caption)[^>]*>(.*?)</(?:h1|h2|h3|th|dt|caption)>"
        r'|<span class="badge [a-z]+">(.*?)</span>',
        markup,
        flags=re.S,
    )
    for pair in labels:
        label = html.unescape(re.sub(r"<[^>]+>", "", "".join(pair))).strip()
        for template in only_english:
            start = re.split(r"\{", template)[0].strip()
            letters = len(re.findall(r"[A-Za-z]", start))
            if letters >= 4 and start not in all_dutch and label.startswith(start):
                leaks.append(label)
    return leaks


def report(
    net: TestNetwork, round_id: str, out: Path, **kwargs: object
) -> tuple[ReportSummary, str, Page]:
    """Write a round's report (in English unless `lang=` says otherwise) and parse it."""
    kwargs.setdefault("lang", "en")
    summary = write_report(net.config, round_id, out, **kwargs)  # type: ignore[arg-type]
    markup = out.read_text(encoding="utf-8")
    return summary, markup, Page(markup)


def audit_rows(net: TestNetwork) -> int:
    with closing(sqlite3.connect(net.config.database)) as db:
        return int(db.execute("SELECT count(*) FROM audit_events").fetchone()[0])


def event_seq(net: TestNetwork, round_id: str, event: str) -> int:
    with closing(sqlite3.connect(net.config.database)) as db:
        row = db.execute(
            "SELECT seq FROM audit_events WHERE round_id = ? AND event = ?", (round_id, event)
        ).fetchone()
    assert row is not None
    return int(row[0])


def tamper(net: TestNetwork, sql: str, *params: object, trigger: str) -> None:
    """Drop an append-only trigger and change the audit table behind the coordinator's back."""
    db = sqlite3.connect(net.config.database, isolation_level=None)
    try:
        db.execute(f"DROP TRIGGER {trigger}")
        db.execute(sql, params)
    finally:
        db.close()
