"""The privacy officer's report as headless Chromium renders it: a screenshot and the DOM."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from coordinator import cli as coordinator_cli
from coordinator.report import print_pdf, write_report
from kruispunt.errors import ConfigError
from kruispunt.v1 import node_pb2
from tests.support.report_pages import (
    CLIENT,
    PARTNERS,
    SERVER,
    TWO_PARTY_SHARED,
    TWO_PARTY_SIZE,
    Page,
    audit_rows,
    event_seq,
    report,
    tamper,
    three_rounds,
    two_party_round,
)
from tests.support.retention import Clock, after_retention, clocked_network

# The report forbids scripts (its CSP); this page of the test's own loads it in a frame
# (same origin under --allow-file-access-from-files) and writes down, per selector,
# where Chromium laid the element out and whether it is visible.
PROBE = """<!DOCTYPE html><html><head><meta charset="utf-8"><script>
function probe() {
  const d = document.getElementById('f').contentDocument;
  const out = [];
  for (const sel of SELECTORS) {
    d.querySelectorAll(sel).forEach(function (el) {
      const r = el.getBoundingClientRect();
      out.push([sel, Math.round(r.top), Math.round(r.width), Math.round(r.height),
                el.checkVisibility({visibilityProperty: true, opacityProperty: true}),
                el.textContent.replace(/\\s+/g, ' ').trim()].join('\\t'));
    });
  }
  document.getElementById('out').textContent = out.join('\\n');
}
</script></head><body>
<iframe id="f" src="PAGE" onload="probe()" style="width:1200px;height:3000px"></iframe>
<pre id="out"></pre></body></html>
"""


def layout(chromium, page: Path, selectors: list[str], user_data: Path) -> list[tuple]:
    """(selector, top, width, height, visible, text) of every element Chromium laid out."""
    probe = page.with_name("probe.html")
    probe.write_text(
        PROBE.replace("SELECTORS", repr(selectors)).replace("PAGE", page.name), encoding="utf-8"
    )
    dom = chromium(
        "--allow-file-access-from-files",
        "--dump-dom",
        probe.resolve().as_uri(),
        user_data=user_data,
    ).stdout
    start = dom.index('<pre id="out">') + len('<pre id="out">')
    body = dom[start : dom.index("</pre>", start)]
    rows = []
    for line in body.splitlines():
        sel, top, width, height, visible, text = line.split("\t")
        rows.append((sel, int(top), int(width), int(height), visible == "true", text))
    return rows


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


class TestRenderedInChromium:
    def test_page_renders_and_reads_in_headless_chromium(self, network_factory, tmp_path, chromium):
        """Chromium renders the report: a real screenshot, and the DOM holds the key facts."""
        net, _first, _refused, grown = three_rounds(network_factory)
        summary, _markup, _page = report(net, grown, tmp_path / "r.html")
        url = summary.path.resolve().as_uri()
        shot = tmp_path / "r.png"
        chromium(f"--screenshot={shot}", "--window-size=1200,2400", url, user_data=tmp_path / "ud1")
        assert png_size(shot) == (1200, 2400)
        assert shot.stat().st_size > 50_000  # a page of text, tables and a chart, not a blank
        dom = Page(chromium("--dump-dom", url, user_data=tmp_path / "ud2").stdout)
        assert "svg" in dom.tags
        assert "rect" in dom.tags
        assert f"Audit log: OK The whole audit chain verifies: {audit_rows(net)} events" in (
            dom.text
        )
        consents = dom.table("Consent per partner")
        assert [consents[p][-1] for p in PARTNERS] == ["verified"] * 3
        assert dom.table("Records each partner contributed")["woonbron"][:2] == ["40", "20"]
        assert "set grew by 100%" in dom.text
        hist = dom.table("Overlap histogram (table form)")
        row = net.coordinator.store.round(grown)
        assert {k: int(v[0]) for k, v in hist.items()} == row.summary["histogram"]

    def test_broken_chain_is_what_chromium_shows_first(self, network_factory, tmp_path, chromium):
        """In the rendered DOM of a tampered log, BROKEN with the seq precedes every section."""
        net = network_factory(PARTNERS[:2], per_partner=10, overlaps={2: 2})
        net.add_purpose()
        done = net.run()
        seq = event_seq(net, done.round_id, "round.created")
        tamper(
            net,
            "UPDATE audit_events SET time = '2020-01-01T00:00:00.000Z' WHERE seq = ?",
            seq,
            trigger="audit_events_no_update",
        )
        summary, _markup, _page = report(net, done.round_id, tmp_path / "r.html")
        dom = Page(
            chromium(
                "--dump-dom", summary.path.resolve().as_uri(), user_data=tmp_path / "ud"
            ).stdout
        )
        broken = dom.text.index(f"Audit log: BROKEN at event seq {seq}")
        assert broken < dom.text.index("Purpose and legal basis")

    def test_operator_heads_and_deletions_are_visible_on_top(
        self, network_factory, tmp_path, chromium
    ):
        """Chromium lays out, above the purpose: who started the round and why, deleted on a
        date for the partners whose receipt arrived, still due by a date for the one whose
        did not, and every partner's witnessed heads."""
        clock = Clock()
        net = clocked_network(network_factory, PARTNERS, clock)
        first = net.run(reason="weekly signalling")
        assert first.state == "completed"
        after_retention(net, clock)
        rounds = net.nodes["zayaz"].rounds

        def unreachable(after_seq: int) -> node_pb2.DeletionReceipts:
            raise OSError("disk unreadable")

        rounds.deletions = unreachable  # type: ignore[method-assign]
        assert net.run().state == "completed"
        summary, _markup, _page = report(net, first.round_id, tmp_path / "r.html")
        shot = tmp_path / "deletions.png"
        url = summary.path.resolve().as_uri()
        chromium(f"--screenshot={shot}", "--window-size=1200,1800", url, user_data=tmp_path / "u1")
        assert png_size(shot) == (1200, 1800)
        assert shot.stat().st_size > 50_000
        seen = layout(
            chromium,
            summary.path,
            ["header dt", "header dd", "#deletions td .badge", "#heads td", "#legal h2"],
            tmp_path / "u2",
        )
        for sel, _top, width, height, visible, text in seen:
            assert visible, (sel, text)
            assert width > 0, (sel, text)
            assert height > 0, (sel, text)
        legal_top = next(top for sel, top, *_rest in seen if sel == "#legal h2")
        above = [(sel, text) for sel, top, *_rest, text in seen if top < legal_top]
        header = dict(
            zip(
                [t for s_, t in above if s_ == "header dt"],
                [t for s_, t in above if s_ == "header dd"],
                strict=True,
            )
        )
        assert header["Initiated by"] == "operator:test"
        assert header["Reason given"] == "weekly signalling"
        badges = [text for sel, text in above if sel == "#deletions td .badge"]
        deleted = [b for b in badges if b.startswith("deleted on ")]
        due = [b for b in badges if b.startswith("still due by ")]
        assert len(deleted) == 2, badges
        assert len(due) == 1, badges
        store = net.coordinator.store
        assert {d.partner_id for d in store.deletions(first.round_id)} == {"gemeente", "woonbron"}
        heads = [text for sel, text in above if sel == "#heads td"]
        for pid in PARTNERS:
            assert pid in heads
        assert sum(1 for t in heads if t.endswith("on this log")) == len(PARTNERS)


def visible_rows(chromium, page: Path, selectors: list[str], user_data: Path) -> list[tuple]:
    """`layout`, asserting that every element found is visible and has a size."""
    seen = layout(chromium, page, selectors, user_data)
    for sel, _top, width, height, visible, text in seen:
        assert visible, (sel, text)
        assert width > 0, (sel, text)
        assert height > 0, (sel, text)
    return seen


def screenshot(chromium, page: Path, shot: Path, user_data: Path) -> None:
    """A 1200x1800 screenshot of the page: a real PNG of that size, not a blank one."""
    url = page.resolve().as_uri()
    chromium(f"--screenshot={shot}", "--window-size=1200,1800", url, user_data=user_data)
    assert png_size(shot) == (1200, 1800)
    assert shot.stat().st_size > 30_000


class TestTwoPartyAndRefusedInChromium:
    def test_two_party_report_shows_what_each_side_learned(
        self, network_factory, tmp_path, chromium
    ):
        """Chromium lays out the two-party page (Dutch, the default): the client's and the
        server's roles and what each learned, no threshold, no histogram, no "no matching"."""
        net, round_id = two_party_round(network_factory)
        summary = write_report(net.config, round_id, tmp_path / "r.html")
        screenshot(chromium, summary.path, tmp_path / "two-party.png", tmp_path / "u1")
        seen = visible_rows(
            chromium,
            summary.path,
            ["#results h2", "#results td", "#legal dt", "#legal dd", "#phases td", "svg"],
            tmp_path / "u2",
        )
        texts = {sel: [t for s_, *_r, t in seen if s_ == sel] for sel in dict.fromkeys(
            s_ for s_, *_r in seen)}  # fmt: skip
        assert texts["#results h2"] == ["Uitkomst van de tweepartijenronde"]
        cells = texts["#results td"]
        assert cells[:4] == [
            CLIENT,
            "cliënt",
            str(TWO_PARTY_SIZE),
            f"{TWO_PARTY_SHARED} records in de doorsnede (welke van de eigen records)",
        ]
        assert cells[4:] == [
            SERVER,
            "server",
            str(TWO_PARTY_SIZE),
            f"alleen de setgrootte van de cliënt: {TWO_PARTY_SIZE}",
        ]
        legal = dict(zip(texts["#legal dt"], texts["#legal dd"], strict=True))
        assert legal["Cliënt (krijgt de uitkomst)"] == CLIENT
        assert legal["De cliënt krijgt"] == "de records uit de doorsnede"
        assert "Drempel" not in legal
        assert "Mate van openbaarmaking" not in legal
        assert "svg" not in texts  # no overlap histogram in a two-party round
        phases = texts["#phases td"][::3]
        assert phases == [
            "voorstel en toestemming",
            "verzoek",
            "antwoord",
            "opzet",
            "uitkomst",
            "levering",
            "hele ronde",
        ]
        dom = Page(
            chromium(
                "--dump-dom", summary.path.resolve().as_uri(), user_data=tmp_path / "u3"
            ).stdout
        )
        assert "Er is niet gematcht" not in dom.text

    def test_refused_round_says_who_refused_on_top(self, network_factory, tmp_path, chromium):
        """Chromium lays out a refused round: "Ronde geweigerd" above the audit status and
        the purpose, naming woonbron and its reason, and the warnings instead of "none"."""
        net, _first, refused, _grown = three_rounds(network_factory)
        (event,) = [
            e for e in net.coordinator.audit.events(refused) if e.event == "consent.refused"
        ]
        summary = write_report(net.config, refused, tmp_path / "r.html")
        screenshot(chromium, summary.path, tmp_path / "refused.png", tmp_path / "u1")
        seen = visible_rows(
            chromium,
            summary.path,
            ["#outcome h2", "#outcome li", "#audit-status h2", ".attention li", "#legal h2"],
            tmp_path / "u2",
        )
        top = {sel: t for sel, t, *_rest in seen}
        text = {sel: rest[-1] for sel, *rest in seen}
        assert text["#outcome h2"] == "Ronde geweigerd"
        assert text["#outcome li"] == f"woonbron weigerde: {event.details['reason']}"
        assert top["#outcome h2"] < top["#audit-status h2"] < top["#legal h2"]
        assert text[".attention li"] == (
            f"woonbron weigerde toestemming: {event.details['reason']}"
        )
        assert top[".attention li"] < top["#legal h2"]
        dom = Page(
            chromium(
                "--dump-dom", summary.path.resolve().as_uri(), user_data=tmp_path / "u3"
            ).stdout
        )
        assert "Geen waarschuwingen" not in dom.text
        assert "No warnings" not in dom.text


class TestPdf:
    def test_report_prints_to_a_pdf(self, network_factory, tmp_path, chromium_path, capsys):
        """`audit report --pdf` prints the page with headless Chromium: a PDF of some pages
        beside the HTML, whose text (pdftotext, where installed) is the report's."""
        net = network_factory(PARTNERS[:2], per_partner=10, overlaps={2: 2})
        net.add_purpose()
        done = net.run()
        page = tmp_path / "r.html"
        code = coordinator_cli.main(
            ["audit", "report", str(net.coordinator_dir), "--round", done.round_id,
             "--out", str(page), "--pdf", "--json"]
        )  # fmt: skip
        out = json.loads(capsys.readouterr().out)
        assert code == 0
        pdf = tmp_path / "r.pdf"
        assert out["pdf"] == str(pdf)
        data = pdf.read_bytes()
        assert data[:5] == b"%PDF-"
        assert data.rstrip().endswith(b"%%EOF")
        assert len(data) > 20_000
        assert page.is_file()
        if shutil.which("pdftotext"):
            text = subprocess.run(
                ["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True
            ).stdout
            assert "Toestemming per partner" in text
            assert done.round_id in text
        else:
            assert data.count(b"/Type /Page") >= 2  # the page tree and at least one page

    def test_print_pdf_names_the_browser_that_failed(self, tmp_path):
        """A 'browser' that exits non-zero without a PDF is an error naming it, not a file."""
        fake = tmp_path / "chromium"
        fake.write_text("#!/bin/sh\necho 'cannot open display' >&2\nexit 3\n")
        fake.chmod(0o755)
        page = tmp_path / "r.html"
        page.write_text("<!DOCTYPE html><title>x</title>", encoding="utf-8")
        with pytest.raises(ConfigError, match=r"failed \(exit 3\): cannot open display"):
            print_pdf(page, tmp_path / "r.pdf", chromium=fake)
        assert not (tmp_path / "r.pdf").exists()
