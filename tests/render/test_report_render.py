"""The privacy officer's report as headless Chromium renders it: a screenshot and the DOM."""

from __future__ import annotations

import struct
from pathlib import Path

from tests.support.report_pages import (
    PARTNERS,
    Page,
    audit_rows,
    event_seq,
    report,
    tamper,
    three_rounds,
)


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
