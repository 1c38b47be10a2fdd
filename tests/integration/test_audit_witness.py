"""Verification without trust: attacks on the audit trail, each caught by `audit verify-network`.

Real files: the coordinator's SQLite log (its triggers dropped, rows deleted or
re-appended with the coordinator's own audit key), a node's JSON Lines log cut short,
an export with forged signatures. Each check runs the officer's command with public
material only: the export, the coordinator's audit public key, the node directory.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from coordinator import cli as coordinator_cli
from coordinator.audit import open_audit
from kruispunt.errors import ConfigError
from psi_node import cli as node_cli

PARTNERS = ["gemeente", "woonbron", "schuldhulp"]
BASES = {pid: f"AVG art. 6(1)(e); covenant article {i} for {pid}" for i, pid in enumerate(PARTNERS)}


@pytest.fixture
def net(network_factory):
    """Three partners, each with a legal basis of its own, after two completed rounds."""
    n = network_factory(PARTNERS, per_partner=20, overlaps={2: 4, 3: 2}, legal_bases=BASES)
    n.add_purpose(legal_basis=BASES)
    for _ in range(2):
        assert n.run().state == "completed"
    return n


def export(net, out: Path) -> Path:
    """`psi-coordinator audit export DIR --out FILE`, with every private key moved away."""
    signing_dir = net.coordinator_dir / "signing"
    hidden = net.coordinator_dir.parent / "hidden-keys"
    hidden.mkdir()
    keys = list(signing_dir.glob("*.ed25519"))
    for key in keys:
        key.rename(hidden / key.name)
    try:
        assert (
            coordinator_cli.main(["audit", "export", str(net.coordinator_dir), "--out", str(out)])
            == 0
        )
    finally:
        for key in keys:
            (hidden / key.name).rename(key)
        hidden.rmdir()
    return out


def verify(
    net, capsys, coordinator_export: Path, pid: str = "woonbron", *others: Path
) -> tuple[int, dict]:
    """The officer's command at `pid`'s machine; (exit status, its --json answer)."""
    capsys.readouterr()
    argv = [
        "audit",
        "verify-network",
        str(net.node_dirs[pid]),
        "--json",
        "--coordinator-export",
        str(coordinator_export),
        "--coordinator-key",
        str(net.config.audit_public_key),
    ]
    for other in others:
        argv += ["--node-export", str(other)]
    status = node_cli.main(argv)
    return status, json.loads(capsys.readouterr().out)


def node_export(net, pid: str, out: Path, capsys) -> Path:
    capsys.readouterr()
    assert node_cli.main(["audit", "export", str(net.node_dirs[pid])]) == 0
    out.write_text(capsys.readouterr().out)
    return out


def last_witnessed_head(net, pid: str) -> dict:
    events = net.nodes[pid].rounds.audit.events()
    seen = [e for e in events if e.event == "manifest.seen"]
    return seen[-1].details["coordinator_head"]


def unprotect(db: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("DROP TRIGGER audit_events_no_delete")
    conn.execute("DROP TRIGGER audit_events_no_update")
    return conn


class TestUntouched:
    def test_an_untouched_network_verifies_end_to_end(self, net, capsys, tmp_path):
        """The export, this node's log and another node's export all verify and agree."""
        other = node_export(net, "gemeente", tmp_path / "gemeente.jsonl", capsys)
        status, result = verify(net, capsys, export(net, tmp_path / "c.jsonl"), "woonbron", other)
        assert result["problems"] == []
        assert status == 0
        assert result["ok"] is True
        assert result["witnessed_heads_checked"] == 4  # two rounds, two node logs
        assert result["node_heads_checked"] >= 8  # consent and delivery, per round and node
        assert result["rounds_compared"] == 2

    def test_text_output_says_verified(self, net, capsys, tmp_path):
        """Without --json the officer reads one verdict line per log and VERIFIED."""
        coord = export(net, tmp_path / "c.jsonl")
        capsys.readouterr()
        argv = ["audit", "verify-network", str(net.node_dirs["gemeente"]), "--coordinator-export"]
        argv += [str(coord), "--coordinator-key", str(net.config.audit_public_key)]
        assert node_cli.main(argv) == 0
        out = capsys.readouterr().out
        assert "coordinator log OK" in out
        assert "VERIFIED" in out


class TestCoordinatorAttacks:
    def test_truncated_coordinator_tail_is_caught(self, net, capsys, tmp_path):
        """Rows deleted from the last witnessed head on (triggers dropped): the head is missing."""
        head = last_witnessed_head(net, "woonbron")
        conn = unprotect(net.config.database)
        conn.execute("DELETE FROM audit_events WHERE seq >= ?", (head["seq"],))
        conn.close()
        status, result = verify(net, capsys, export(net, tmp_path / "c.jsonl"))
        assert status == 1
        first = result["first_problem"]
        assert first["kind"] == "witnessed_head"
        assert first["node"] == head
        assert f"lacks event {head['seq']}" in first["detail"]

    def test_last_events_dropped_are_caught(self, net, capsys, tmp_path):
        """Only the last three events deleted (after every witnessed head): the round disagrees."""
        conn = unprotect(net.config.database)
        conn.execute("DELETE FROM audit_events WHERE seq > (SELECT MAX(seq) - 3 FROM audit_events)")
        conn.close()
        status, result = verify(net, capsys, export(net, tmp_path / "c.jsonl"))
        assert status == 1
        first = result["first_problem"]
        assert first["kind"] == "round"
        assert first["field"] in ("flagged_count", "delivered")
        assert first["coordinator"] is None

    def test_tail_rewritten_and_resigned_with_the_audit_key_is_caught(self, net, capsys, tmp_path):
        """A rewritten tail signed with the coordinator's own (online) audit key verifies as a
        chain, but lacks the head a node witnessed."""
        head = last_witnessed_head(net, "woonbron")
        conn = unprotect(net.config.database)
        conn.execute("DELETE FROM audit_events WHERE seq >= ?", (head["seq"],))
        conn.close()
        with open_audit(net.config) as audit:
            for _ in range(40):  # longer than what was cut: the head's seq exists again
                audit.append(
                    "operator.action",
                    actor="coordinator",
                    on_behalf_of="net",
                    access_point="cli",
                    action="R",
                )
            assert audit.verify().ok  # the rewritten chain holds on its own
        status, result = verify(net, capsys, export(net, tmp_path / "c.jsonl"))
        assert status == 1
        assert result["chains"]["coordinator log"]["ok"] is True
        first = result["first_problem"]
        assert first["kind"] == "witnessed_head"
        assert f"event {head['seq']} differs" in first["detail"]
        assert first["coordinator"]["hash"] != head["hash"]

    def test_export_with_zeroed_signatures_fails(self, net, capsys, tmp_path):
        """An export whose every signature is zeros fails at its first event; cross-check too."""
        coord = export(net, tmp_path / "c.jsonl")
        forged = []
        for line in coord.read_text().splitlines():
            event = json.loads(line)
            event["signature"] = "00" * 64
            forged.append(json.dumps(event))
        coord.write_text("\n".join(forged) + "\n")
        status, result = verify(net, capsys, coord)
        assert status == 1
        first = result["first_problem"]
        assert first["kind"] == "chain"
        assert first["where"] == "coordinator log"
        assert "BROKEN at event 1" in first["detail"]
        assert "signature" in first["detail"]
        capsys.readouterr()
        argv = ["audit", "cross-check", str(net.node_dirs["woonbron"]), str(coord)]
        argv += ["--coordinator-key", str(net.config.audit_public_key)]
        assert node_cli.main(argv) == 1
        assert "NOT VERIFIED" in capsys.readouterr().out


class TestNodeAttacks:
    def test_truncated_node_log_is_caught(self, net, capsys, tmp_path):
        """A node log with its last lines cut off verifies alone, but lacks the head the
        coordinator recorded."""
        log = net.node_config("woonbron").audit_log
        lines = log.read_bytes().splitlines(keepends=True)
        log.write_bytes(b"".join(lines[:-2]))
        capsys.readouterr()
        assert node_cli.main(["audit", "verify", str(net.node_dirs["woonbron"])]) == 0
        status, result = verify(net, capsys, export(net, tmp_path / "c.jsonl"))
        assert status == 1
        problems = [p for p in result["problems"] if p["kind"] == "node_head"]
        assert problems
        assert problems[0]["where"] == "node woonbron (own log)"
        assert "tail cut off" in problems[0]["detail"]

    def test_truncated_export_of_another_node_is_caught(self, net, capsys, tmp_path):
        """Another node's export, cut short, is caught at this node with the roster's key."""
        other = node_export(net, "gemeente", tmp_path / "gemeente.jsonl", capsys)
        other.write_text("".join(other.read_text().splitlines(keepends=True)[:-1]))
        status, result = verify(net, capsys, export(net, tmp_path / "c.jsonl"), "woonbron", other)
        assert status == 1
        assert any(
            p["kind"] == "node_head" and p["where"] == "node gemeente" for p in result["problems"]
        )


class TestWhatNodesLog:
    def test_each_node_logs_its_own_legal_basis(self, net):
        """With a distinct basis per partner, every node's round events carry its own."""
        for pid in PARTNERS:
            events = [e for e in net.nodes[pid].rounds.audit.events() if e.event == "consent.given"]
            assert events
            for event in events:
                assert event.basis == f"vroegsignalering: {BASES[pid]}"

    def test_consents_are_audited_when_another_partner_fails(self, net):
        """A round that fails in consent (one node down) still records every consent received."""
        net.stop_node("schuldhulp")
        summary = net.run()
        assert summary.state == "failed"
        events = net.coordinator.audit.events(summary.round_id)
        given = {e.details["partner"]: e.details for e in events if e.event == "consent.given"}
        assert set(given) == {"gemeente", "woonbron"}
        for details in given.values():
            assert details["set_size"] > 0
            assert details["node_head"]["seq"] > 0
        assert events[-1].event == "round.failed"

    def test_deliveries_are_audited_when_another_commit_fails(
        self, net, monkeypatch, capsys, tmp_path
    ):
        """A commit that fails at one node still records the others' deliveries, so their
        logs of results written agree with the coordinator's."""

        def refuse(round_id: str) -> None:
            raise ConfigError("cannot publish results here")

        monkeypatch.setattr(net.nodes["schuldhulp"].rounds, "commit", refuse)
        summary = net.run()
        assert summary.state == "failed"
        assert summary.reason.startswith("commit failed: schuldhulp")
        events = net.coordinator.audit.events(summary.round_id)
        delivered = {e.details["partner"] for e in events if e.event == "results.delivered"}
        assert delivered == {"gemeente", "woonbron"}
        status, result = verify(net, capsys, export(net, tmp_path / "c.jsonl"), "woonbron")
        assert result["problems"] == []
        assert status == 0
