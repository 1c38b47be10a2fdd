"""Faults during a round: a node that dies or hangs, a coordinator that restarts, a full disk."""

from __future__ import annotations

import dataclasses
import threading
import time
from datetime import UTC, datetime

from kruispunt import signing
from kruispunt.manifest import new_round_id, sign_manifest
from kruispunt.v1 import common_pb2
from tests.support.waiting import wait_for

PARTNERS = ["gemeente", "woonbron", "schuldhulp"]


class TestCoordinatorRestart:
    def test_interrupted_round_is_aborted_everywhere_on_restart(self, network_factory):
        """A round left running is marked aborted at start; nodes drop it; the chain verifies."""
        net = network_factory(PARTNERS, per_partner=20, overlaps={2: 3})
        purpose = net.add_purpose()
        now = datetime.now(UTC)
        round_id = new_round_id(now)
        signed = sign_manifest(
            signing.load_signing_key(net.config.signing_key),
            round_id=round_id,
            network=net.config.network,
            purpose=purpose,
            partners=list(purpose.partners),
            now=now,
            ttl_seconds=600,
            initiated_by="operator:test",
            roster_sha256=net.roster_sha256,
        )
        # The state a killed coordinator leaves: a running round, nodes holding its keys.
        net.coordinator.store.create_round(
            round_id, purpose, "operator:test", now.isoformat(), signed.manifest
        )
        for pid in PARTNERS:
            consent = common_pb2.Consent()
            consent.ParseFromString(net.nodes[pid].rounds.propose(signed).consent)
            assert consent.granted
        net.coordinator.stop(grace=0)
        net.coordinator.store.close()
        net.start_coordinator()
        row = net.coordinator.store.round(round_id)
        assert row.state == "aborted"
        assert "restarted" in row.reason
        assert wait_for(lambda: all(not net.nodes[p].rounds.rounds_in_flight() for p in PARTNERS))
        assert net.coordinator.audit.verify().ok
        assert net.run().state == "completed"


class TestResultFolderFailure:
    def test_unwritable_results_fail_the_round_and_leave_no_file(self, network_factory):
        """If one node cannot write its results, the round fails and no node keeps any."""
        net = network_factory(PARTNERS, per_partner=20, overlaps={2: 3, 3: 2})
        net.add_purpose()
        results = net.node_dirs["woonbron"] / "results"
        results.rmdir()
        results.write_text("not a folder")  # works as root too, unlike chmod
        summary = net.run()
        assert summary.state == "failed"
        assert "woonbron" in summary.reason
        assert "cannot write results" in summary.reason
        for pid in ("gemeente", "schuldhulp"):
            assert list((net.node_dirs[pid] / "results").iterdir()) == []
        events = [
            e.event for e in net.nodes["gemeente"].rounds.audit.events(round_id=summary.round_id)
        ]
        assert "results.received" in events
        assert events[-1] == "round.aborted"


class TestSlowNode:
    def test_a_hanging_node_fails_the_round_at_the_phase_deadline(self, network_factory):
        """A node that stops answering is cut off by the phase deadline; the others drop the
        round and the next round, with the node back, completes."""
        net = network_factory(PARTNERS, per_partner=20, overlaps={2: 3})
        net.add_purpose()
        rounds = net.nodes["schuldhulp"].rounds
        release = threading.Event()
        original = rounds.blind

        def hanging_blind(round_id, consents):
            release.wait(20)
            return original(round_id, consents)

        rounds.blind = hanging_blind
        runner = net.coordinator.runner
        runner.config = dataclasses.replace(runner.config, phase_timeout_seconds=2.0)
        started = time.monotonic()
        summary = net.run()
        assert time.monotonic() - started < 15
        assert summary.state == "failed"
        assert "schuldhulp" in summary.reason
        assert "deadline" in summary.reason
        release.set()
        rounds.blind = original
        assert wait_for(lambda: not net.nodes["gemeente"].rounds.rounds_in_flight())
        assert net.run().state == "completed"


class TestMissedAborts:
    def test_an_abort_a_node_missed_is_retried_until_it_lands(self, network_factory):
        """A node that was unreachable when its round failed is told later, by the retry."""
        net = network_factory(PARTNERS, per_partner=20, overlaps={2: 3})
        net.add_purpose()
        net.stop_node("schuldhulp")
        summary = net.run()
        assert summary.state == "failed"
        runner = net.coordinator.runner
        assert runner.retry_aborts() == 0  # still down
        net.start_node("schuldhulp")
        assert runner.retry_aborts() == 1
        assert runner.retry_aborts() == 0  # nothing left to retry

    def test_stale_staged_results_are_removed_at_start(self, network_factory):
        """Staged results of a round that ended while the node was down never get published."""
        net = network_factory(PARTNERS[:2], per_partner=10, overlaps={2: 2}, start=False)
        results = net.node_dirs["gemeente"] / "results"
        stale = results / ".r20261128T120000-0badc0de.csv.staged"
        stale.write_text("bsn\n")
        net.start_node("gemeente")
        assert not stale.exists()
        events = net.nodes["gemeente"].rounds.audit.events(round_id="r20261128T120000-0badc0de")
        assert [e.event for e in events] == ["round.aborted"]
