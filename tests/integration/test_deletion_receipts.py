"""Deletion receipts on real networks: signed at the node, collected at the next contact.

Real node and coordinator servers over real mTLS, real result files, the real SQLite
database and audit logs. One clock (injected into every server) moves past the
retention period; the node's housekeeping purge deletes and signs; the next round's
first contact hands the receipt over.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from contextlib import closing
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from coordinator import cli as coordinator_cli
from coordinator.deletions import FORGED, NOT_DELIVERED, OTHER_RESULTS, OUT_OF_ORDER
from coordinator.provision import roster_path
from kruispunt import signing
from kruispunt.deletion import Deletion, sign_deletion, verify_deletion
from kruispunt.errors import SignatureInvalid
from kruispunt.roster import load_roster
from kruispunt.v1 import node_pb2
from psi_node import cli as node_cli
from psi_node.deletions import RECEIPTS_FILE, purge_expired_results
from tests.support.network import TestNetwork
from tests.support.report_pages import report, tamper
from tests.support.retention import RETENTION_DAYS, Clock, after_retention, clocked_network

PARTNERS = ["gemeente", "woonbron", "schuldhulp"]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def net(network_factory, clock) -> TestNetwork:
    """Three partners on one injected clock, a purpose keeping results three days."""
    return clocked_network(network_factory, PARTNERS, clock)


def receipts_events(net: TestNetwork, event: str, round_id: str | None = None) -> list:
    assert net.coordinator is not None
    return [e for e in net.coordinator.audit.events(round_id) if e.event == event]


def roster_key(net: TestNetwork, pid: str):
    """A partner's signing key from the roster every node accepted."""
    return load_roster(roster_path(net.config)).partner(pid).signing_public_key


def book_lines(net: TestNetwork, pid: str) -> list[dict]:
    path = net.node_config(pid).state_dir / RECEIPTS_FILE
    return [json.loads(line) for line in path.read_text().splitlines()]


def write_book(net: TestNetwork, pid: str, lines: list[dict]) -> None:
    path = net.node_config(pid).state_dir / RECEIPTS_FILE
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def keep_genuine_receipt(net, round_id: str, result_sha256: bytes) -> None:
    """gemeente signs, with its own key, a receipt for `round_id` over `result_sha256`,
    and keeps it for the coordinator's next contact."""
    key = signing.load_signing_key(net.node_config("gemeente").signing_key)
    head = net.nodes["gemeente"].rounds.audit.head()
    assert head is not None
    moment = datetime.now(UTC).replace(microsecond=0)
    receipt = Deletion(
        network=net.config.network,
        round_id=round_id,
        partner_id="gemeente",
        deleted_at=moment,
        delete_after=moment,
        result_sha256=result_sha256,
        flagged_count=0,
        files=2,
        node_head=head,
    )
    net.nodes["gemeente"].rounds.receipts.keep(head.seq, sign_deletion(key, receipt))


class TestCollection:
    def test_a_node_that_has_not_deleted_reports_nothing(self, net):
        """Before retention ends no node hands over a receipt, and the coordinator has none."""
        first = net.run()
        assert first.state == "completed", first.reason
        assert net.run().state == "completed"
        for pid in PARTNERS:
            assert net.nodes[pid].rounds.deletions(0).receipts == []
        assert net.coordinator.store.deletions(first.round_id) == []
        assert receipts_events(net, "deletion.received") == []
        assert receipts_events(net, "deletion.refused") == []

    def test_receipt_arrives_at_the_next_contact_after_retention(self, net, clock):
        """Deleted at retention's end, signed and logged at the node; taken at the next round."""
        first = net.run()
        assert first.state == "completed", first.reason
        after_retention(net, clock)
        # Deleted and logged at every node, with the receipt kept there...
        for pid in PARTNERS:
            results = net.node_dirs[pid] / "results"
            assert not (results / f"{first.round_id}.csv").exists()
            (deleted,) = [
                e
                for e in net.nodes[pid].rounds.audit.events(round_id=first.round_id)
                if e.event == "results.deleted"
            ]
            (line,) = book_lines(net, pid)
            assert line["seq"] == deleted.seq
        # ...but the coordinator has heard nothing yet.
        assert net.coordinator.store.deletions(first.round_id) == []
        second = net.run()
        assert second.state == "completed", second.reason
        stored = net.coordinator.store.deletions(first.round_id)
        assert [d.partner_id for d in stored] == sorted(PARTNERS)
        received = receipts_events(net, "deletion.received", first.round_id)
        assert sorted(e.details["partner"] for e in received) == sorted(PARTNERS)
        delivered = {
            e.details["partner"]: e.details["result_sha256"]
            for e in receipts_events(net, "results.delivered", first.round_id)
        }
        for event in received:
            pid = event.details["partner"]
            (node_event,) = [
                e
                for e in net.nodes[pid].rounds.audit.events(round_id=first.round_id)
                if e.event == "results.deleted"
            ]
            # The digest of exactly what was delivered; the node's head is its own event.
            assert event.details["result_sha256"] == delivered[pid]
            assert event.details["node_head"] == node_event.head.as_details()
            assert event.details["deleted_at"] == node_event.details["deleted_at"]
            row = net.coordinator.store.deletion(first.round_id, pid)
            key = roster_key(net, pid)
            checked = verify_deletion(
                node_pb2.SignedDeletionReceipt(receipt=row.receipt, signature=row.signature),
                key,
                network=net.config.network,
                partner_id=pid,
            )
            assert checked.seq == node_event.seq
        assert net.coordinator.audit.verify().ok
        # Asked again at the round after: nothing new, nothing twice.
        assert net.run().state == "completed"
        assert len(receipts_events(net, "deletion.received")) == len(PARTNERS)
        assert receipts_events(net, "deletion.refused") == []

    def test_a_node_that_cannot_answer_hands_its_receipt_over_later(self, net, clock):
        """A node that cannot answer at one contact hands its receipt over at the next; the
        round goes on either way."""
        first = net.run()
        assert first.state == "completed", first.reason
        after_retention(net, clock)
        original = net.nodes["woonbron"].rounds.deletions

        def broken(after_seq: int) -> node_pb2.DeletionReceipts:
            raise OSError("disk unreadable")

        net.nodes["woonbron"].rounds.deletions = broken  # type: ignore[method-assign]
        assert net.run().state == "completed"  # collecting never fails a round
        assert [d.partner_id for d in net.coordinator.store.deletions(first.round_id)] == [
            "gemeente",
            "schuldhulp",
        ]
        net.nodes["woonbron"].rounds.deletions = original  # type: ignore[method-assign]
        assert net.run().state == "completed"
        assert len(net.coordinator.store.deletions(first.round_id)) == 3


class TestPurge:
    def test_two_purges_at_once_sign_one_receipt(self, net, clock):
        """The serving node's purge and the CLI's at the same moment: one deletion event and
        one receipt per node, the files gone."""
        first = net.run()
        assert first.state == "completed", first.reason
        clock.advance(timedelta(days=RETENTION_DAYS, hours=1))
        pid = "gemeente"
        rounds = net.nodes[pid].rounds
        config = net.node_config(pid)
        start = threading.Barrier(2)
        deleted: list[list[Path]] = []

        def purge(actor: str) -> None:
            start.wait()
            deleted.append(purge_expired_results(config, rounds.audit, clock(), actor=actor))

        threads = [threading.Thread(target=purge, args=(a,)) for a in ("psi-node", "cli")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert sorted(len(d) for d in deleted) == [0, 2]
        events = [e for e in rounds.audit.events(round_id=first.round_id)]
        assert [e.event for e in events].count("results.deleted") == 1
        assert len(book_lines(net, pid)) == 1

    def test_a_receipt_lost_in_a_crash_is_signed_again_at_start(self, net, clock):
        """Deleted and logged, but the receipt never kept (a crash between the two): the
        restarted node signs it from its log, and the next round takes it."""
        first = net.run()
        assert first.state == "completed", first.reason
        after_retention(net, clock)
        (kept,) = book_lines(net, "woonbron")
        (net.node_config("woonbron").state_dir / RECEIPTS_FILE).unlink()
        net.stop_node("woonbron")
        net.start_node("woonbron", now=clock)
        assert book_lines(net, "woonbron") == [kept]  # Ed25519 signs deterministically
        assert net.run().state == "completed"
        assert net.coordinator.store.deletion(first.round_id, "woonbron") is not None
        assert receipts_events(net, "deletion.refused") == []

    def test_two_party_results_are_receipted_at_both_nodes(self, network_factory, clock):
        """A two-party round: the client's records file and the server's metadata-only
        result are each deleted and receipted under the digest their delivery reported."""
        net = network_factory(
            ["gemeente", "woonbron"],
            per_partner=20,
            overlaps={2: 5},
            bilateral_roles={"gemeente": "client", "woonbron": "server"},
            start=False,
        )
        for pid in net.partners:
            net.start_node(pid, now=clock)
        net.start_coordinator(now=clock)
        net.add_purpose(
            mode="bilateral",
            bilateral={"client_partner": "gemeente", "server_partner": "woonbron"},
            result_retention_days=RETENTION_DAYS,
        )
        first = net.run()
        assert first.state == "completed", first.reason
        after_retention(net, clock)
        assert net.run().state == "completed"
        assert receipts_events(net, "deletion.refused") == []
        received = {
            e.details["partner"]: e.details
            for e in receipts_events(net, "deletion.received", first.round_id)
        }
        assert set(received) == {"gemeente", "woonbron"}
        assert received["gemeente"]["files"] == 2  # the records file and its metadata
        assert received["woonbron"]["files"] == 1  # the server learns no records


class TestRefused:
    def test_a_receipt_signed_with_another_key_is_refused(self, net, clock):
        """A receipt not signed by the partner's roster key is refused, audited, never stored."""
        first = net.run()
        assert first.state == "completed", first.reason
        after_retention(net, clock)
        (line,) = book_lines(net, "gemeente")
        signed = node_pb2.SignedDeletionReceipt(
            receipt=bytes.fromhex(line["receipt"]), signature=bytes.fromhex(line["signature"])
        )
        forged = sign_deletion(
            signing.generate_signing_key(),
            verify_deletion(
                signed,
                roster_key(net, "gemeente"),
                network=net.config.network,
                partner_id="gemeente",
            ),
        )
        line["signature"] = forged.signature.hex()
        write_book(net, "gemeente", [line])
        assert net.run().state == "completed"
        assert net.coordinator.store.deletion(first.round_id, "gemeente") is None
        (refused,) = receipts_events(net, "deletion.refused")
        assert refused.details == {"partner": "gemeente", "reason": FORGED}
        assert refused.round_id == ""  # an unverified round id is never recorded
        assert {e.details["partner"] for e in receipts_events(net, "deletion.received")} == {
            "woonbron",
            "schuldhulp",
        }

    def test_another_partners_receipt_is_refused(self, net, clock):
        """Woonbron's genuine receipt handed over by gemeente's node is refused as forged."""
        first = net.run()
        assert first.state == "completed", first.reason
        after_retention(net, clock)
        write_book(net, "gemeente", book_lines(net, "woonbron"))
        assert net.run().state == "completed"
        assert net.coordinator.store.deletion(first.round_id, "gemeente") is None
        (refused,) = receipts_events(net, "deletion.refused")
        assert refused.details["reason"] == FORGED

    def test_a_replayed_receipt_is_refused(self, net, clock):
        """A receipt handed over again under a new number is refused; one row stays."""
        first = net.run()
        assert first.state == "completed", first.reason
        after_retention(net, clock)
        assert net.run().state == "completed"
        (line,) = book_lines(net, "gemeente")
        # The number in the book is the node's; the signed receipt keeps its own.
        write_book(net, "gemeente", [line, {**line, "seq": line["seq"] + 1000}])
        assert net.run().state == "completed"
        (refused,) = receipts_events(net, "deletion.refused")
        assert refused.details["reason"] == OUT_OF_ORDER
        assert refused.round_id == first.round_id
        assert len(net.coordinator.store.deletions(first.round_id)) == 3

    def test_a_receipt_for_results_never_delivered_is_refused(self, net, clock):
        """A genuine signature over a round without results for that partner is refused."""
        (net.node_dirs["woonbron"] / "input.csv").rename(net.node_dirs["woonbron"] / "gone.csv")
        refused_round = net.run()
        assert refused_round.state == "refused"
        (net.node_dirs["woonbron"] / "gone.csv").rename(net.node_dirs["woonbron"] / "input.csv")
        keep_genuine_receipt(net, refused_round.round_id, bytes(32))
        assert net.run().state == "completed"
        (refused,) = receipts_events(net, "deletion.refused")
        assert refused.details["reason"] == NOT_DELIVERED
        assert net.coordinator.store.deletions(refused_round.round_id) == []

    def test_a_receipt_for_other_results_is_refused(self, net, clock):
        """A receipt whose digest is not the one delivered is refused."""
        first = net.run()
        assert first.state == "completed", first.reason
        keep_genuine_receipt(net, first.round_id, b"\x01" * 32)
        assert net.run().state == "completed"
        (refused,) = receipts_events(net, "deletion.refused")
        assert refused.details["reason"] == OTHER_RESULTS
        assert net.coordinator.store.deletion(first.round_id, "gemeente") is None


class TestReceiptSignature:
    def test_a_receipt_verifies_only_for_its_network_and_partner(self, net, clock):
        """The same signed receipt fails for another network or another partner id."""
        first = net.run()
        assert first.state == "completed", first.reason
        after_retention(net, clock)
        (line,) = book_lines(net, "gemeente")
        signed = node_pb2.SignedDeletionReceipt(
            receipt=bytes.fromhex(line["receipt"]), signature=bytes.fromhex(line["signature"])
        )
        key = roster_key(net, "gemeente")
        assert verify_deletion(signed, key, network=net.config.network, partner_id="gemeente")
        with pytest.raises(SignatureInvalid):
            verify_deletion(signed, key, network="othernet", partner_id="gemeente")
        with pytest.raises(SignatureInvalid):
            verify_deletion(signed, key, network=net.config.network, partner_id="woonbron")
        tampered = node_pb2.SignedDeletionReceipt(
            receipt=signed.receipt[:-1] + bytes([signed.receipt[-1] ^ 1]),
            signature=signed.signature,
        )
        with pytest.raises(SignatureInvalid):
            verify_deletion(tampered, key, network=net.config.network, partner_id="gemeente")


def verify_at(net: TestNetwork, pid: str, tmp_path: Path, capsys) -> tuple[int, dict]:
    """The officer's `audit verify-network` at `pid`, on a fresh export of the coordinator."""
    out = tmp_path / f"coordinator-{len(list(tmp_path.iterdir()))}.jsonl"
    argv = ["audit", "export", str(net.coordinator_dir), "--out", str(out)]
    assert coordinator_cli.main(argv) == 0
    capsys.readouterr()
    status = node_cli.main(
        [
            "audit",
            "verify-network",
            str(net.node_dirs[pid]),
            "--json",
            "--coordinator-export",
            str(out),
            "--coordinator-key",
            str(net.config.audit_public_key),
        ]
    )
    return status, json.loads(capsys.readouterr().out)


class TestVerifyNetwork:
    def test_receipted_deletions_verify(self, net, clock, tmp_path, capsys):
        """Deletions the coordinator received agree with the node's log: verified, none due."""
        assert net.run().state == "completed"
        after_retention(net, clock)
        assert net.run().state == "completed"
        status, result = verify_at(net, "woonbron", tmp_path, capsys)
        assert result["problems"] == []
        assert status == 0
        assert result["deletions_pending"] == 0

    def test_a_purge_on_local_time_agrees(self, net, clock, tmp_path, capsys):
        """A purge given local time (UTC+1) logs and signs the same UTC moment: verified."""
        first = net.run()
        assert first.state == "completed"
        clock.advance(timedelta(days=RETENTION_DAYS, hours=1))
        local = clock().astimezone(timezone(timedelta(hours=1)))
        config = net.node_config("woonbron")
        audit = net.nodes["woonbron"].rounds.audit
        assert purge_expired_results(config, audit, local, actor="psi-node purge")
        assert net.run().state == "completed"
        status, result = verify_at(net, "woonbron", tmp_path, capsys)
        assert result["problems"] == []
        assert status == 0
        (received,) = [
            e
            for e in receipts_events(net, "deletion.received", first.round_id)
            if e.details["partner"] == "woonbron"
        ]
        assert received.details["deleted_at"].endswith("+00:00")

    def test_a_deletion_not_yet_collected_is_pending_not_a_problem(
        self, net, clock, tmp_path, capsys
    ):
        """Deleted since the coordinator last heard from the node: counted, not a problem."""
        assert net.run().state == "completed"
        after_retention(net, clock)
        status, result = verify_at(net, "woonbron", tmp_path, capsys)
        assert result["problems"] == []
        assert status == 0
        assert result["deletions_pending"] == 1

    def test_a_node_deletion_the_coordinator_never_received_is_caught(
        self, net, clock, tmp_path, capsys
    ):
        """The node logged a deletion, the coordinator heard from it since and has no receipt."""
        first = net.run()
        assert first.state == "completed"
        after_retention(net, clock)
        (net.node_config("woonbron").state_dir / RECEIPTS_FILE).unlink()
        assert net.run().state == "completed"
        status, result = verify_at(net, "woonbron", tmp_path, capsys)
        assert status == 1
        problem = result["first_problem"]
        assert (problem["kind"], problem["where"], problem["field"]) == (
            "round",
            first.round_id,
            "deleted",
        )
        assert problem["coordinator"] is None
        (deleted,) = [
            e
            for e in net.nodes["woonbron"].rounds.audit.events(round_id=first.round_id)
            if e.event == "results.deleted"
        ]
        assert problem["node"] == {
            "result_sha256": deleted.details["result_sha256"],
            "deleted_at": deleted.details["deleted_at"],
        }

    def test_a_coordinator_deletion_the_node_never_logged_is_caught(self, net, tmp_path, capsys):
        """A deletion.received the coordinator wrote itself (its own key) for results the node
        still holds is named as a disagreement on deletions."""
        first = net.run()
        assert first.state == "completed"
        (delivered,) = [
            e
            for e in receipts_events(net, "results.delivered", first.round_id)
            if e.details["partner"] == "woonbron"
        ]
        claim = {
            "result_sha256": delivered.details["result_sha256"],
            "deleted_at": "2026-12-01T00:00:00+00:00",
        }
        net.coordinator.audit.append(
            "deletion.received",
            actor="coordinator",
            on_behalf_of="woonbron",
            access_point="coordinator",
            action="C",
            round_id=first.round_id,
            details={"partner": "woonbron", **claim},
        )
        status, result = verify_at(net, "woonbron", tmp_path, capsys)
        assert status == 1
        problem = result["first_problem"]
        assert (problem["where"], problem["field"], problem["node"], problem["coordinator"]) == (
            first.round_id,
            "deleted",
            None,
            claim,
        )


class TestReport:
    def test_report_shows_deleted_on_a_date_and_still_due(self, net, clock, tmp_path):
        """The first round's page: deleted on the receipt's date for every partner; the
        second's: still due by delivery plus retention. Operator, reason, heads on top."""
        first = net.run(reason="weekly signalling")
        assert first.state == "completed"
        after_retention(net, clock)
        second = net.run(reason="next week")
        assert second.state == "completed"
        _summary, _markup, page = report(net, first.round_id, tmp_path / "first.html")
        deleted = page.table("Deletion per partner")
        for pid in PARTNERS:
            receipt = net.coordinator.store.deletion(first.round_id, pid)
            day = datetime.fromisoformat(receipt.deleted_at).strftime("%Y-%m-%d")
            assert deleted[pid][0] == f"deleted on {day}", pid
            assert deleted[pid][1].startswith("signed receipt verified; node audit head seq ")
        summary, _markup, page = report(net, second.round_id, tmp_path / "second.html")
        assert summary.verified
        due = page.table("Deletion per partner")
        (delivered,) = [
            e
            for e in receipts_events(net, "results.delivered", second.round_id)
            if e.details["partner"] == "woonbron"
        ]
        when = datetime.fromisoformat(delivered.time.replace("Z", "+00:00"))
        expected = (when + timedelta(days=RETENTION_DAYS)).strftime("%Y-%m-%d")
        assert due["woonbron"][0] == f"still due by {expected}"
        # Who started the round and why, before any section.
        header = page.text[: page.text.index("Audit log: OK")]
        assert "Initiated by operator:test" in header
        assert "Reason given next week" in header
        heads = page.table("Audit heads per partner")
        consent = net.coordinator.store.consents(second.round_id)
        assert len(consent) == 3
        for pid in PARTNERS:
            assert heads[pid][0].startswith("seq ")
            assert heads[pid][0].endswith("on this log")
            assert heads[pid][1].startswith("seq ")  # node head in its consent
            assert heads[pid][2].startswith("seq ")  # node head in its delivery receipt
            assert heads[pid][3] == "—"  # nothing deleted yet

    def test_an_overdue_deletion_is_a_warning(self, net, tmp_path):
        """Past the deadline without a receipt: OVERDUE on the page and in the warnings."""
        first = net.run()
        assert first.state == "completed"
        later = datetime.now(UTC) + timedelta(days=RETENTION_DAYS + 1)
        summary, _markup, page = report(net, first.round_id, tmp_path / "r.html", now=later)
        assert page.table("Deletion per partner")["gemeente"][0].startswith("OVERDUE: due by ")
        assert any(
            w.startswith("gemeente: results were due for deletion by") for w in summary.warnings
        )

    def test_a_tampered_stored_receipt_is_invalid_on_the_page(self, net, clock, tmp_path):
        """A stored receipt whose signature no longer verifies shows INVALID, never deleted."""
        first = net.run()
        assert first.state == "completed"
        after_retention(net, clock)
        assert net.run().state == "completed"
        with closing(sqlite3.connect(net.config.database)) as db:
            db.execute(
                "UPDATE deletion_receipts SET signature = zeroblob(64) WHERE partner_id = ?",
                ("woonbron",),
            )
            db.commit()
        summary, _markup, page = report(net, first.round_id, tmp_path / "r.html")
        assert page.table("Deletion per partner")["woonbron"][0] == "receipt INVALID"
        assert "deletion receipt of woonbron is INVALID" in " ".join(summary.warnings)

    def test_a_witnessed_head_missing_from_the_log_is_shown(self, net, tmp_path):
        """The coordinator's log cut off before the head the partners signed back: the page
        marks every head NOT on this log and says so at the top."""
        first = net.run()
        assert first.state == "completed"
        (consent, *_rest) = receipts_events(net, "consent.given", first.round_id)
        seq = consent.details["witnessed_head"]["seq"]
        tamper(
            net,
            "DELETE FROM audit_events WHERE seq >= ?",
            seq,
            trigger="audit_events_no_delete",
        )
        summary, _markup, page = report(net, first.round_id, tmp_path / "r.html")
        heads = page.table("Audit heads per partner")
        for pid in PARTNERS:
            assert heads[pid][0].endswith("NOT on this log: cut off or rewritten"), pid
        assert any(
            f"signed coordinator audit head {seq} in its consent" in w for w in summary.warnings
        )
