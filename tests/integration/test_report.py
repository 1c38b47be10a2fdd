"""The privacy officer's HTML report: content, tamper evidence and escaping."""

from __future__ import annotations

import hashlib
import re
import sqlite3
from contextlib import closing
from datetime import datetime, timedelta

import pytest

from coordinator.report import Words, write_report
from kruispunt import signing
from kruispunt.errors import UnknownRound
from tests.support.network import with_objections_and_exclusions
from tests.support.report_pages import (
    CLIENT,
    GROWN,
    OVERLAPS,
    PARTNERS,
    PER_PARTNER,
    SERVER,
    TWO_PARTY_SHARED,
    TWO_PARTY_SIZE,
    Page,
    audit_rows,
    english_leaks,
    event_seq,
    grow_input,
    report,
    tamper,
    three_rounds,
    two_party_round,
)
from tests.support.synthetic import write_csv

# -- content ---------------------------------------------------------------------------------


class TestReportContent:
    def test_completed_round_shows_consents_sizes_histogram_and_audit_ok(
        self, network_factory, tmp_path
    ):
        """A completed round's page: verified consents, sizes vs the previous completed round
        (skipping the refused one), a growth warning, histogram numbers, audit OK."""
        net, first, _refused, grown = three_rounds(network_factory)
        summary, markup, page = report(net, grown, tmp_path / "r.html")

        assert summary.verified
        assert summary.audit_ok
        assert summary.consents_ok
        assert summary.round_state == "completed"
        assert summary.audit_events == audit_rows(net)
        assert summary.path == tmp_path / "r.html"
        assert f"Audit log: OK The whole audit chain verifies: {audit_rows(net)} events" in (
            page.text
        )

        consents = page.table("Consent per partner")
        assert set(consents) == set(PARTNERS)
        for pid in PARTNERS:
            decision, _reason, basis, _decided, signature = consents[pid]
            assert (decision, signature) == ("granted", "verified")
            assert basis == "AVG art. 6(1)(e); Wgs art. 3a"

        # the previous *completed* round is the first one, not the refused one in between
        assert f"previous completed round of this purpose, {first}" in page.text
        sizes = page.table("Records each partner contributed")
        assert sizes["gemeente"][:3] == ["20", "20", "+0 (+0.0%)"]
        assert sizes["zayaz"][:3] == ["20", "20", "+0 (+0.0%)"]
        assert sizes["woonbron"][0:2] == ["40", "20"]
        assert sizes["woonbron"][2].startswith("+20 (+100.0%) ⚠ set grew by 100%")
        assert sizes["woonbron"][3:] == ["0", "0", "0"]  # exclusion list, objected, invalid
        assert summary.warnings == (
            "woonbron: set grew by 100% since the previous completed round "
            "(20 to 40; warning above +50%)",
        )
        assert "class=warn-row><td><code>woonbron</code>" in markup

        row = net.coordinator.store.round(grown)
        expected_hist = {int(k): v for k, v in row.summary["histogram"].items()}
        planted = net.data.histogram()
        planted[1] += GROWN
        assert expected_hist == planted
        hist = page.table("Overlap histogram (table form)")
        assert {int(k): int(v[0]) for k, v in hist.items()} == expected_hist
        assert [hist[k][1] for k in ("1", "2", "3")] == ["no", "flagged", "flagged"]
        svg_values = re.findall(r'<text [^>]*class="value">(\d+)</text>', markup)
        assert [int(v) for v in svg_values] == [expected_hist[k] for k in (1, 2, 3)]
        assert markup.count('<rect class="bar flagged"') == 1 + 2  # legend + buckets 2 and 3

        flagged = page.table("Flagged records per partner")
        for pid in PARTNERS:
            assert int(flagged[pid][0]) == row.summary["partners"][pid]["flagged_count"]
        assert int(flagged["gemeente"][0]) == len(net.data.flagged_for("gemeente", 2))

        phases = list(page.table("Seconds per protocol phase"))
        assert phases == [
            "propose",
            "blind",
            "evaluate",
            "finalize",
            "reveal",
            "tally",
            "deliver",
            "whole round",
        ]
        events = page.table(f"{len(list(net.coordinator.audit.events(grown)))} events")
        kinds = [cells[1] for cells in events.values()]
        assert kinds[0] == "round.created"
        assert kinds[-1] == "round.completed"
        assert kinds.count("consent.given") == 3
        assert kinds.count("results.delivered") == 3
        created = events[str(event_seq(net, grown, "round.created"))]
        assert created[2] == "operator:test via test"
        assert all(cells[-1] == "✓" for cells in events.values())

        manifest = row.manifest
        assert hashlib.sha256(manifest).hexdigest() in page.text
        assert "Protocol version kruispunt/1" in page.text
        assert "Initiated by operator:test" in page.text
        assert "Covenant (convenant) CONV-2026-01" in page.text
        assert "DPIA reference DPIA-2026-07" in page.text
        assert "Disclosure level partners" in page.text

    def test_result_deletion_date_is_finish_plus_retention(self, network_factory, tmp_path):
        """The page states the retention and the date the partners must delete results by."""
        net = network_factory(PARTNERS[:2], per_partner=10, overlaps={2: 2})
        net.add_purpose(result_retention_days=14)
        done = net.run()
        _summary, _markup, page = report(net, done.round_id, tmp_path / "r.html")
        finished = datetime.fromisoformat(net.coordinator.store.round(done.round_id).finished_at)
        due = (finished + timedelta(days=14)).strftime("%Y-%m-%d")
        assert f"14 days — partners must delete the results by {due}" in page.text

    def test_first_round_has_nothing_to_compare_with(self, network_factory, tmp_path):
        """The first round of a purpose says so instead of showing a change."""
        net = network_factory(PARTNERS[:2], per_partner=10, overlaps={2: 2})
        net.add_purpose()
        done = net.run()
        summary, _markup, page = report(net, done.round_id, tmp_path / "r.html")
        assert "no earlier completed round of this purpose" in page.text
        assert page.table("Records each partner contributed")["gemeente"][:3] == ["10", "—", "—"]
        assert summary.warnings == ()

    def test_set_near_the_purpose_maximum_is_flagged(self, network_factory, tmp_path):
        """A set above 90% of the purpose's maximum set size gets a probing warning."""
        net = network_factory(PARTNERS[:2], per_partner=10, overlaps={2: 2})
        net.add_purpose(max_set_size=11)
        done = net.run()
        assert done.state == "completed", done.reason
        summary, _markup, page = report(net, done.round_id, tmp_path / "r.html")
        assert "gemeente: set size 10 is above 90% of the purpose's maximum (11)" in (
            summary.warnings
        )
        assert "set size 10 is above 90%" in page.text
        assert summary.verified  # a warning is not a verification failure

    def test_page_is_self_contained_without_scripts(self, network_factory, tmp_path):
        """No script, no event handler, no external resource; a CSP forbids scripts."""
        net = network_factory(PARTNERS[:2], per_partner=10, overlaps={2: 2})
        net.add_purpose()
        done = net.run()
        _summary, markup, page = report(net, done.round_id, tmp_path / "r.html")
        assert "script" not in page.tags
        assert not [name for name, _v in page.attrs if name.startswith("on")]
        assert not re.search(r"(?:src|href)\s*=", markup)
        assert "default-src 'none'" in markup
        assert "<svg" in markup
        assert "@media print" in markup

    def test_every_value_is_escaped(self, network_factory, tmp_path):
        """Markup in a purpose's description shows as text, never as markup."""
        net = network_factory(PARTNERS[:2], per_partner=10, overlaps={2: 2})
        evil = '<script>alert("x")</script> & <img src=x onerror=alert(1)> "quoted"'
        net.add_purpose(description=evil)
        done = net.run()
        assert done.state == "completed", done.reason
        _summary, markup, page = report(net, done.round_id, tmp_path / "r.html")
        assert evil in page.text
        assert "<script>" not in markup
        assert "<img" not in markup
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;img" in markup

    def test_no_identifier_reaches_the_page(self, network_factory, tmp_path):
        """No input BSN, canonical identifier or hash of one appears in the report."""
        net = network_factory(PARTNERS, per_partner=PER_PARTNER, overlaps=OVERLAPS)
        net.add_purpose()
        net.run()
        grown_rows = grow_input(net, "woonbron", GROWN)
        done = net.run()
        _summary, markup, _page = report(net, done.round_id, tmp_path / "r.html")
        hay = markup.encode()
        needles: set[bytes] = {r["bsn"].strip().encode() for r in grown_rows}
        for pid in PARTNERS:
            for row, cid in zip(net.data.rows[pid], net.data.ids[pid], strict=True):
                digits = re.sub(r"\D", "", row["bsn"]).zfill(9)
                needles |= {digits.encode(), cid, hashlib.sha256(cid).hexdigest().encode()}
        assert len(needles) > 60
        assert not [n for n in needles if n in hay]

    def test_unknown_round_raises(self, network_factory, tmp_path):
        """An unknown round id raises UnknownRound and writes nothing."""
        net = network_factory(PARTNERS[:2], per_partner=10, overlaps={2: 2})
        with pytest.raises(UnknownRound, match="r-nope"):
            write_report(net.config, "r-nope", tmp_path / "r.html")
        assert not (tmp_path / "r.html").exists()


# -- rounds that did not complete ------------------------------------------------------------


class TestUnfinishedRounds:
    def test_refused_round_reports_cleanly(self, network_factory, tmp_path):
        """A refused round shows who refused and why, no results, and still verifies."""
        net, _first, refused, _grown = three_rounds(network_factory)
        summary, _markup, page = report(net, refused, tmp_path / "r.html")
        assert summary.round_state == "refused"
        assert summary.verified
        assert "State refused consent refused: woonbron:" in page.text
        consents = page.table("Consent per partner")
        assert consents["woonbron"][0] == "refused"
        assert "input" in consents["woonbron"][1]
        assert [consents[p][0] for p in ("gemeente", "zayaz")] == ["granted", "granted"]
        assert all(consents[p][-1] == "verified" for p in PARTNERS)
        assert page.table("Records each partner contributed")["woonbron"][0] == "not contributed"
        assert "no results were delivered (round refused)" in page.text
        assert "No matching took place (round refused)" in page.text
        assert "No protocol phase finished in this round" in page.text

    def test_failed_round_without_answers(self, network_factory, tmp_path):
        """A round that failed in consent shows 'no answer' for the partner that gave none,
        and the consents the others did give (recorded as they arrived)."""
        net = network_factory(PARTNERS, per_partner=10, overlaps={2: 2})
        net.add_purpose()
        net.stop_node("zayaz")
        failed = net.run()
        assert failed.state == "failed"
        summary, _markup, page = report(net, failed.round_id, tmp_path / "r.html")
        assert summary.round_state == "failed"
        assert summary.audit_ok
        consents = page.table("Consent per partner")
        assert consents["zayaz"][0] == "no answer"
        assert {consents[p][0] for p in PARTNERS if p != "zayaz"} == {"granted"}
        assert all(consents[p][-1] == "verified" for p in PARTNERS if p != "zayaz")
        assert "zayaz" in page.text
        assert "unreachable" in page.text


# -- tampering -------------------------------------------------------------------------------


class TestTamperEvidence:
    @pytest.mark.parametrize("how", ["edit", "delete"])
    def test_tampered_audit_table_shows_broken_at_its_seq(self, network_factory, tmp_path, how):
        """An edited or deleted audit row makes the page say BROKEN at that seq, prominently."""
        net, _first, _refused, grown = three_rounds(network_factory)
        seq = event_seq(net, grown, "set_sizes")
        if how == "edit":
            tamper(
                net,
                "UPDATE audit_events SET details = replace(details, '40', '30') WHERE seq = ?",
                seq,
                trigger="audit_events_no_update",
            )
        else:
            tamper(
                net, "DELETE FROM audit_events WHERE seq = ?", seq, trigger="audit_events_no_delete"
            )
        summary, markup, page = report(net, grown, tmp_path / "r.html")
        assert not summary.verified
        assert not summary.audit_ok
        assert summary.audit_first_bad_seq == seq
        assert summary.warnings[0].startswith(f"audit log BROKEN at event seq {seq}: ")
        assert f"Audit log: BROKEN at event seq {seq}" in page.text
        assert 'class="status bad" id="audit-status"' in markup
        # the status block comes before everything else the officer reads
        assert markup.index("audit-status") < markup.index('id="legal"')
        events = next(
            {r[0]: r[1:] for r in rows[1:]}
            for caption, rows in page.tables.items()
            if caption.endswith(" events")
        )
        if how == "edit":
            assert events[str(seq)][-1] == "✗ BROKEN"
            assert "30" in events[str(seq)][-2]
        else:
            assert str(seq) not in events
            assert f"event {seq} missing" in page.text
        assert all(cells[-1] == "✓" for s, cells in events.items() if int(s) < seq)
        assert all(cells[-1] == "unverified" for s, cells in events.items() if int(s) > seq)

    def test_break_in_a_later_round_still_shows_on_an_earlier_report(
        self, network_factory, tmp_path
    ):
        """The whole chain is verified: a break after this round's events still says BROKEN."""
        net, first, _refused, grown = three_rounds(network_factory)
        seq = event_seq(net, grown, "tally.summary")
        tamper(
            net,
            "UPDATE audit_events SET actor = 'mallory' WHERE seq = ?",
            seq,
            trigger="audit_events_no_update",
        )
        summary, _markup, page = report(net, first, tmp_path / "r.html")
        assert summary.audit_first_bad_seq == seq
        assert not summary.verified
        assert f"breaks at seq {seq}, outside this round's events" in page.text
        events = next(rows for caption, rows in page.tables.items() if caption.endswith("events"))
        assert {r[-1] for r in events[1:]} == {"✓"}

    def test_another_public_key_does_not_verify(self, network_factory, tmp_path):
        """Verified under a key that did not sign the log, the chain is BROKEN at seq 1."""
        net = network_factory(PARTNERS[:2], per_partner=10, overlaps={2: 2})
        net.add_purpose()
        done = net.run()
        other = signing.generate_signing_key().public_key()
        summary, _markup, page = report(net, done.round_id, tmp_path / "r.html", public_key=other)
        assert summary.audit_first_bad_seq == 1
        assert "Audit log: BROKEN at event seq 1 signed by another key" in page.text
        assert signing.key_id(other) in page.text

    def test_forged_or_moved_consent_is_invalid(self, network_factory, tmp_path):
        """A consent with a broken signature, or copied from another round, shows INVALID."""
        net = network_factory(PARTNERS, per_partner=10, overlaps={2: 2})
        net.add_purpose()
        first, second = net.run(), net.run()
        with closing(sqlite3.connect(net.config.database, isolation_level=None)) as db:
            db.execute(
                "UPDATE consents SET signature = zeroblob(64) "
                "WHERE round_id = ? AND partner_id = ?",
                (second.round_id, "gemeente"),
            )
            db.execute(
                "UPDATE consents SET (consent, signature) = (SELECT consent, signature FROM "
                "consents WHERE round_id = ? AND partner_id = 'zayaz') "
                "WHERE round_id = ? AND partner_id = 'zayaz'",
                (first.round_id, second.round_id),
            )
        summary, markup, page = report(net, second.round_id, tmp_path / "r.html")
        assert summary.audit_ok
        assert not summary.consents_ok
        assert not summary.verified
        consents = page.table("Consent per partner")
        assert consents["gemeente"][-1] == "INVALID signature does not verify"
        assert consents["zayaz"][-1] == "INVALID consent does not answer this round's manifest"
        assert consents["woonbron"][-1] == "verified"
        assert "consent of gemeente is INVALID: signature does not verify" in summary.warnings
        assert markup.count("class=bad-row") == 2


# -- what the first week found (issue 12, item 6) -------------------------------------


class TestTwoPartyReport:
    def test_two_party_round_shows_what_each_side_learned(self, network_factory, tmp_path):
        """A completed two-party round: the client learned the intersection's records, the
        server only the client's set size; no threshold, disclosure or histogram, and never
        "No matching took place"."""
        net, round_id = two_party_round(network_factory)
        summary, markup, page = report(net, round_id, tmp_path / "r.html")
        assert summary.verified
        assert summary.warnings == ()
        learned = page.table("What each partner learned")
        assert learned[CLIENT] == [
            "client",
            str(TWO_PARTY_SIZE),
            f"{TWO_PARTY_SHARED} records in the intersection (which of its own records)",
        ]
        assert learned[SERVER] == [
            "server",
            str(TWO_PARTY_SIZE),
            f"only the client's set size: {TWO_PARTY_SIZE}",
        ]
        row = net.coordinator.store.round(round_id)
        assert row.summary["partners"][CLIENT]["flagged_count"] == TWO_PARTY_SHARED
        assert "No matching took place" not in page.text
        assert "Threshold" not in page.text
        assert "Disclosure level" not in page.text
        assert "flagged when held by at least" not in page.text
        assert "Flagged records per partner" not in page.text
        assert "Overlap histogram" not in page.text
        assert "<svg" not in markup
        assert f"Client (learns the answer) {CLIENT}" in page.text
        assert f"Server {SERVER}" in page.text
        assert "The client learns the records in the intersection" in page.text
        assert f"Partners (client, server) {CLIENT}, {SERVER}" in page.text
        phases = list(page.table("Seconds per protocol phase"))
        assert phases == [
            "propose",
            "request",
            "response",
            "setup",
            "result",
            "deliver",
            "whole round",
        ]

    def test_size_only_round_says_the_client_learned_a_count(self, network_factory, tmp_path):
        """With size_only the client learned how many, not which: the page says so."""
        net, round_id = two_party_round(network_factory, size_only=True)
        _summary, _markup, page = report(net, round_id, tmp_path / "r.html")
        learned = page.table("What each partner learned")
        assert learned[CLIENT][-1] == (
            f"the size of the intersection: {TWO_PARTY_SHARED} (not which records)"
        )
        assert "The client learns only the size of the intersection" in page.text

    def test_two_party_report_in_dutch(self, network_factory, tmp_path):
        """The same page in Dutch: the client's records, the server's size, no English."""
        net, round_id = two_party_round(network_factory)
        summary, markup, page = report(net, round_id, tmp_path / "r.html", lang="nl")
        learned = page.table("Wat elke partner te weten kwam")
        assert learned[CLIENT][-1] == (
            f"{TWO_PARTY_SHARED} records in de doorsnede (welke van de eigen records)"
        )
        assert learned[SERVER][-1] == f"alleen de setgrootte van de cliënt: {TWO_PARTY_SIZE}"
        assert summary.lang == "nl"
        assert '<html lang="nl">' in markup
        assert english_leaks(markup) == []


class TestEndings:
    def test_refused_round_says_who_refused_and_why_not_no_warnings(
        self, network_factory, tmp_path
    ):
        """A refused round is stated on top as refused, with the partner and its reason from
        the audit events; the warnings say it too, never "No warnings"."""
        net, _first, refused, _grown = three_rounds(network_factory)
        summary, markup, page = report(net, refused, tmp_path / "r.html")
        (event,) = [
            e for e in net.coordinator.audit.events(refused) if e.event == "consent.refused"
        ]
        reason = event.details["reason"]
        assert event.details["partner"] == "woonbron"
        assert summary.warnings == (f"woonbron refused consent: {reason}",)
        assert "No warnings" not in page.text
        assert (
            "Round refused No data was exchanged: not every partner consented. "
            f"woonbron refused: {reason}"
        ) in page.text
        assert markup.index('id="outcome"') < markup.index('id="audit-status"')
        assert "1 warning:" in page.text

    def test_failed_round_is_stated_as_failed(self, network_factory, tmp_path):
        """A round that failed says so on top with its reason, and warns."""
        net = network_factory(PARTNERS, per_partner=10, overlaps={2: 2})
        net.add_purpose()
        net.stop_node("zayaz")
        failed = net.run()
        assert failed.state == "failed"
        row = net.coordinator.store.round(failed.round_id)
        summary, _markup, page = report(net, failed.round_id, tmp_path / "r.html")
        assert summary.warnings[0] == f"the round failed: {row.reason}"
        assert "Round failed The round ended in an error" in page.text
        assert f"Reason: {row.reason}" in page.text
        assert "No warnings" not in page.text

    def test_a_completed_round_has_no_outcome_block(self, network_factory, tmp_path):
        """Only a round that did not complete gets the outcome block."""
        net = network_factory(PARTNERS[:2], per_partner=10, overlaps={2: 2})
        net.add_purpose()
        done = net.run()
        _summary, markup, _page = report(net, done.round_id, tmp_path / "r.html")
        assert 'id="outcome"' not in markup


class TestPurposeChange:
    def test_changed_purpose_is_warned_with_versions_and_fields(self, network_factory, tmp_path):
        """A round whose purpose changed since the previous round of it warns, naming the
        previous round, both versions and the changed fields (as `purpose diff` does)."""
        net = network_factory(PARTNERS, per_partner=10, overlaps={2: 2, 3: 1})
        net.add_purpose()
        first = net.run()
        assert first.state == "completed", first.reason
        net.add_purpose(threshold=3, result_retention_days=14)
        second = net.run()
        assert second.state == "completed", second.reason
        summary, _markup, page = report(net, second.round_id, tmp_path / "r.html")
        expected = (
            f"purpose vroegsignalering changed since its previous round, {first.round_id} "
            "(version 1 to 2): result_retention_days, threshold"
        )
        assert summary.warnings == (expected,)
        assert expected in page.text
        _summary, _markup, page = report(net, second.round_id, tmp_path / "nl.html", lang="nl")
        assert (
            f"doel vroegsignalering is gewijzigd sinds de vorige ronde ervan, {first.round_id} "
            "(versie 1 naar 2): result_retention_days, threshold"
        ) in page.text

    def test_an_unchanged_purpose_is_not_warned(self, network_factory, tmp_path):
        """Two rounds under the same version: no purpose warning."""
        net = network_factory(PARTNERS[:2], per_partner=10, overlaps={2: 2})
        net.add_purpose()
        net.run()
        second = net.run()
        summary, _markup, _page = report(net, second.round_id, tmp_path / "r.html")
        assert not [w for w in summary.warnings if "changed since" in w]

    def test_previous_round_of_any_outcome_counts(self, network_factory, tmp_path):
        """The change is measured against the previous round of the purpose, a refused one
        too: the refused round after the change warns, the round after it does not."""
        net = network_factory(PARTNERS[:2], per_partner=10, overlaps={2: 2})
        net.add_purpose()
        first = net.run()
        assert first.state == "completed", first.reason
        net.add_purpose(max_set_size=5000)
        export = net.node_dirs["woonbron"] / "input.csv"
        export.unlink()
        refused = net.run()
        assert refused.state == "refused", refused.reason
        summary, _markup, _page = report(net, refused.round_id, tmp_path / "refused.html")
        assert (
            f"purpose vroegsignalering changed since its previous round, {first.round_id} "
            "(version 1 to 2): max_set_size"
        ) in summary.warnings
        write_csv(export, net.data.rows["woonbron"], "bsn", objection_column="bezwaar")
        after = net.run()
        assert after.state == "completed", after.reason
        summary, _markup, _page = report(net, after.round_id, tmp_path / "after.html")
        assert not [w for w in summary.warnings if "changed since" in w]


class TestObjectionsApart:
    def test_objected_and_exclusion_list_rows_are_two_columns(self, network_factory, tmp_path):
        """The sizes table counts objections and exclusion-list rows apart, from the signed
        consents; a summary stored before the split shows objections as not reported."""
        net = with_objections_and_exclusions(
            network_factory(PARTNERS[:2], per_partner=30, overlaps={2: 6}, start=False),
            "woonbron",
            objected=range(3),
            excluded=slice(5, 7),
        )
        done = net.run()
        assert done.state == "completed", done.reason
        _summary, _markup, page = report(net, done.round_id, tmp_path / "r.html")
        head = page.tables["Records each partner contributed"][0]
        assert head[4:] == ["Exclusion list", "Objected", "Invalid rows"]
        sizes = page.table("Records each partner contributed")
        assert sizes["woonbron"][0] == "25"
        assert sizes["woonbron"][3:] == ["2", "3", "0"]
        assert sizes["gemeente"][3:] == ["0", "0", "0"]
        assert "Not reported apart" not in page.text

        with closing(sqlite3.connect(net.config.database)) as db:
            db.execute(
                "UPDATE rounds SET summary = json_remove(summary, "
                "'$.partners.woonbron.objected_count') WHERE id = ?",
                (done.round_id,),
            )
            db.commit()
        _summary, _markup, page = report(net, done.round_id, tmp_path / "old.html")
        sizes = page.table("Records each partner contributed")
        assert sizes["woonbron"][3:] == ["2 *", "not reported apart *", "0"]
        assert "* Not reported apart: that partner's node still counts objections" in page.text


class TestLanguages:
    def test_dutch_is_the_default_and_has_no_english(self, network_factory, tmp_path):
        """Without lang the page is Dutch: its headings, a Dutch date, and none of the English
        table's words, on a completed, a refused and a grown round alike."""
        net, first, refused, grown = three_rounds(network_factory)
        for rid in (first, refused, grown):
            summary = write_report(net.config, rid, tmp_path / f"{rid}.html")
            markup = (tmp_path / f"{rid}.html").read_text(encoding="utf-8")
            assert summary.lang == "nl"
            assert '<html lang="nl">' in markup
            assert "Toestemming per partner" in markup
            assert english_leaks(markup) == [], rid
        refused_page = (tmp_path / f"{refused}.html").read_text(encoding="utf-8")
        assert "Ronde geweigerd" in refused_page
        assert "woonbron weigerde:" in refused_page
        grown_page = (tmp_path / f"{grown}.html").read_text(encoding="utf-8")
        finished = datetime.fromisoformat(net.coordinator.store.round(grown).finished_at)
        due = finished + timedelta(
            days=net.coordinator.store.purpose("vroegsignalering").result_retention_days
        )
        months = ("januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus",
                  "september", "oktober", "november", "december")  # fmt: skip
        dutch_due = f"{due.day} {months[due.month - 1]} {due.year}"
        assert f"uiterlijk <strong>{dutch_due}</strong> verwijderen" in grown_page
        # Above the audit events (shown as stored), every moment is written the Dutch way.
        text = Page(grown_page).text
        above_events = text[: text.index("Auditgebeurtenissen van deze ronde")]
        assert not re.search(r"\d{4}-\d{2}-\d{2}", above_events)
        started = datetime.fromisoformat(net.coordinator.store.round(grown).created_at)
        assert f"Gestart {Words('nl').moment(started)}" in above_events

    def test_the_english_page_is_the_english_table(self, network_factory, tmp_path):
        """lang='en' gives the English page (and its warnings in English)."""
        net, _first, _refused, grown = three_rounds(network_factory)
        summary, markup, _page = report(net, grown, tmp_path / "r.html", lang="en")
        assert summary.lang == "en"
        assert '<html lang="en">' in markup
        assert "Consent per partner" in markup
        # the leak check finds English: run on the English page it names its words
        assert len(english_leaks(markup)) > 30
        dutch = write_report(net.config, grown, tmp_path / "nl.html")
        assert dutch.warnings == (
            "woonbron: set groeide 100% sinds de vorige afgeronde ronde (20 naar 40; "
            "waarschuwing boven +50%)",
        )
