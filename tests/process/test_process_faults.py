"""Faults on real processes: a node or the coordinator killed, a partition, a slow node, a
results folder that is not one.

One network (`tests/support/netlab.py`) for the module: a coordinator and three nodes, each its own
process, mutual TLS on loopback, built with the real CLIs. Every fault is made from outside,
as it happens in production -- SIGKILL, SIGSTOP/SIGCONT of a process (tree), a file where a
folder should be -- and every test checks the round's stored state, the audit logs and the
files on disk, then (where the fault is repaired) that the next round completes. A fixture
repairs the network before each test, so one failing test does not take the others down.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from coordinator.store import RoundRow
from tests.support.netlab import (
    LocalNetwork,
    NetworkSpec,
    PurposeSpec,
    RoundOutcome,
    bench_partners,
)
from tests.support.synthetic import OverlapKey

PURPOSE = "signalen"
RECORDS = 2000
"""Per node: enough that blind and evaluate take about a second, to be caught mid-phase."""
OVERLAPS: dict[OverlapKey, int] = {2: 200, 3: 40}
SLOW_DEADLINE = 60.0
"""The module's phase_timeout_seconds: no call of a healthy round comes near it."""
SHORT_DEADLINE = 5.0
"""phase_timeout_seconds for the partition and slow-node tests."""
ABORT_TIMEOUT = 10.0
"""The coordinator's deadline for each Abort call (orchestrator._fail); aborts go one by one."""


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNetwork]:
    """Three nodes of RECORDS rows and a coordinator, built with the CLIs and started."""
    spec = NetworkSpec(
        network="faults",
        partners=bench_partners(3, RECORDS),
        overlaps=OVERLAPS,
        purposes=(PurposeSpec(id=PURPOSE, max_set_size=10_000),),
        phase_timeout_seconds=SLOW_DEADLINE,
    )
    with LocalNetwork(tmp_path_factory.mktemp("faults"), spec) as net:
        net.build()
        net.start()
        yield net


@pytest.fixture
def net(network: LocalNetwork) -> Iterator[LocalNetwork]:
    """The module's network, repaired before and after the test."""
    _repair(network)
    yield network
    _repair(network)


def _repair(net: LocalNetwork) -> None:
    """Every server running and continued, every results folder a folder."""
    for name in [p.id for p in net.spec.partners] + ["coordinator"]:
        if name in net.pids:
            net.signal(name, signal.SIGCONT, tree=True)
        else:
            net.restart(name)
    for p in net.spec.partners:
        results = net.node_dir(p.id) / "results"
        if not results.is_dir():
            results.unlink()
            results.mkdir(mode=0o700)


# -- helpers ----------------------------------------------------------------------------------


def wait_for_phase(net: LocalNetwork, phase: str, timeout: float = 30.0) -> RoundRow:
    """The running round, as soon as the coordinator's database says it is in `phase`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = net.latest_round(PURPOSE)
        if row is not None and row.state == "running" and row.phase == phase:
            return row
        time.sleep(0.01)
    raise AssertionError(f"no round reached phase {phase!r} within {timeout} s")


def node_events(net: LocalNetwork, pid: str, round_id: str) -> list[dict[str, Any]]:
    """The events of one round in a node's audit log (JSON Lines), in file order."""
    path = net.node_dir(pid) / "audit" / "node-audit.jsonl"
    events = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return [e for e in events if e.get("round_id") == round_id]


def wait_for_abort(net: LocalNetwork, pid: str, round_id: str, timeout: float = 15.0) -> None:
    """Wait until a node's audit log ends the round with round.aborted."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = node_events(net, pid, round_id)
        if events and events[-1]["event"] == "round.aborted":
            return
        time.sleep(0.05)
    raise AssertionError(f"{pid} did not abort round {round_id} within {timeout} s")


def round_files(net: LocalNetwork, round_id: str) -> dict[str, list[str]]:
    """Per node, every file of the round in its results folder (published or staged)."""
    return {
        p.id: sorted(
            f.name for f in (net.node_dir(p.id) / "results").iterdir() if round_id in f.name
        )
        for p in net.spec.partners
    }


def coordinator_events(net: LocalNetwork, round_id: str) -> list[str]:
    """Event names of one round in the coordinator's audit log (`audit export --round`)."""
    out = net.cli(
        "psi-coordinator", "audit", "export", str(net.coordinator_dir), "--round", round_id
    )
    return [json.loads(line)["event"] for line in out.splitlines() if line]


def assert_audits_verify(net: LocalNetwork) -> None:
    """`psi-coordinator audit verify` and every node's `psi-node audit verify` pass."""
    out = json.loads(
        net.cli("psi-coordinator", "audit", "verify", str(net.coordinator_dir), "--json")
    )
    assert out["ok"], out
    for p in net.spec.partners:
        node = json.loads(net.cli("psi-node", "audit", "verify", str(net.node_dir(p.id)), "--json"))
        assert node["ok"], (p.id, node)


def assert_next_round_completes(net: LocalNetwork) -> None:
    """A round now completes and flags exactly the planted households at every node."""
    run = net.run_round(PURPOSE, reason="after the fault")
    flagged = {p: v["flagged_count"] for p, v in run.summary["partners"].items()}
    assert flagged == net.expected_flagged(2)
    for p, v in run.summary["partners"].items():
        assert Path(v["result_path"]).is_file(), p


def event_time(event: dict[str, Any]) -> float:
    """An audit event's time as a POSIX timestamp."""
    return datetime.fromisoformat(event["time"].replace("Z", "+00:00")).timestamp()


class Throttle:
    """Slow a node down by stopping and continuing its whole process tree, over and over."""

    def __init__(self, net: LocalNetwork, name: str, *, run: float, pause: float) -> None:
        self.net, self.name, self.run, self.pause = net, name, run, pause
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"throttle-{name}", daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.net.signal(self.name, signal.SIGSTOP, tree=True)
            self._stop.wait(self.pause)
            self.net.signal(self.name, signal.SIGCONT, tree=True)
            self._stop.wait(self.run)

    def __enter__(self) -> Throttle:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.net.signal(self.name, signal.SIGCONT, tree=True)


def no_round_files(net: LocalNetwork, round_id: str) -> None:
    """No node has any file of the round: no result, no metadata, nothing staged."""
    files = round_files(net, round_id)
    assert files == {p.id: [] for p in net.spec.partners}, files


# -- tests -------------------------------------------------------------------------------------


class TestNodeKilled:
    def test_node_killed_mid_evaluate_fails_round_others_drop_it_restart_recovers(
        self, net: LocalNetwork
    ) -> None:
        """A node SIGKILLed during evaluate fails the round at once, naming it; the other nodes
        abort the round and keep no file; the audit chains verify; restarted, it serves again."""
        pending = net.start_round(PURPOSE, reason="kill a node")
        row = wait_for_phase(net, "evaluate")
        killed = time.monotonic()
        net.kill("p01")
        outcome = pending.wait(timeout=SLOW_DEADLINE + 30)
        assert time.monotonic() - killed < SLOW_DEADLINE, "waited for the deadline"
        assert outcome.returncode == 1
        assert outcome.state == "failed"
        assert outcome.reason.startswith("evaluate step")
        assert "p01: unreachable" in outcome.reason
        shown = net.show_round(row.id)
        assert (shown["state"], shown["reason"]) == ("failed", outcome.reason)
        for pid in ("p02", "p03"):
            events = [e["event"] for e in node_events(net, pid, row.id)]
            assert events[-1] == "round.aborted", (pid, events)
            assert "results.received" not in events
        no_round_files(net, row.id)
        events = coordinator_events(net, row.id)
        assert events[-1] == "round.failed"
        assert "results.delivered" not in events
        net.restart("p01")
        assert_audits_verify(net)
        assert_next_round_completes(net)


class TestCoordinatorKilled:
    def test_coordinator_killed_mid_round_restart_aborts_it_everywhere(
        self, net: LocalNetwork
    ) -> None:
        """The coordinator SIGKILLed mid-round: on restart the round is aborted (round show),
        every node drops it, nothing was delivered, the chains verify, the next round completes."""
        pending = net.start_round(PURPOSE, reason="kill the coordinator")
        row = wait_for_phase(net, "evaluate")
        net.kill("coordinator")
        outcome = pending.wait(timeout=30)
        assert outcome.returncode == 1
        assert outcome.summary is None  # the CLI lost its coordinator mid-stream
        # Until the coordinator is back, the nodes hold the round (keys in memory only).
        for p in net.spec.partners:
            assert node_events(net, p.id, row.id)[-1]["event"] != "round.aborted"
        net.restart("coordinator")
        shown = net.show_round(row.id)
        assert shown["state"] == "aborted"
        assert shown["reason"] == "coordinator restarted while the round was running"
        for p in net.spec.partners:
            wait_for_abort(net, p.id, row.id)
            events = node_events(net, p.id, row.id)
            assert "restarted" in events[-1]["details"]["reason"]
            assert not {"results.received", "results.written"} & {e["event"] for e in events}
        no_round_files(net, row.id)
        logged = coordinator_events(net, row.id)
        assert logged[0] == "round.created"
        assert logged[-1] == "round.aborted"
        assert "results.delivered" not in logged
        assert_audits_verify(net)
        assert_next_round_completes(net)


@pytest.fixture(scope="class")
def short_deadline(network: LocalNetwork) -> Iterator[LocalNetwork]:
    """The coordinator restarted with phase_timeout_seconds = SHORT_DEADLINE (and back after)."""
    _repair(network)
    network.configure_rounds(phase_timeout_seconds=SHORT_DEADLINE)
    network.stop_server("coordinator")
    network.restart("coordinator")
    yield network
    _repair(network)
    network.configure_rounds(phase_timeout_seconds=SLOW_DEADLINE)
    network.stop_server("coordinator")
    network.restart("coordinator")


@pytest.mark.usefixtures("short_deadline")
class TestDeadlines:
    def test_partitioned_node_fails_the_round_at_the_phase_deadline(
        self, net: LocalNetwork
    ) -> None:
        """A node that stops answering mid-round (SIGSTOP: its socket stays open) is cut off at
        the phase deadline, named in the reason; the others abort; continued, it serves again."""
        pending = net.start_round(PURPOSE, reason="partition a node")
        row = wait_for_phase(net, "evaluate")
        stopped_at = time.time()
        net.signal("p02", signal.SIGSTOP)
        outcome = pending.wait(timeout=SHORT_DEADLINE + 3 * ABORT_TIMEOUT)
        elapsed = time.time() - stopped_at
        try:
            assert outcome.state == "failed"
            # Stopped as evaluation began: cut off in that step (or, stopped late, the next).
            assert re.fullmatch(
                r"(evaluate step [12]|finalize) failed: p02: did not answer within the phase "
                r"deadline \(DEADLINE_EXCEEDED\)",
                outcome.reason,
            ), outcome.reason
            # The deadline, then the Abort calls one by one (the stopped node's times out).
            assert elapsed < SHORT_DEADLINE + ABORT_TIMEOUT + 5
            # p01 is aborted first: when the coordinator gave up, not before, not much after.
            aborted = node_events(net, "p01", row.id)[-1]
            assert aborted["event"] == "round.aborted"
            assert SHORT_DEADLINE - 1.5 < event_time(aborted) - stopped_at < SHORT_DEADLINE + 3
            assert node_events(net, "p03", row.id)[-1]["event"] == "round.aborted"
            no_round_files(net, row.id)
        finally:
            net.signal("p02", signal.SIGCONT)
        assert net.show_round(row.id)["state"] == "failed"
        assert_next_round_completes(net)

    def test_slow_node_round_shows_progress_and_completes_within_deadlines(
        self, net: LocalNetwork
    ) -> None:
        """A node at a ninth of its speed: `round show` reports phase and progress while the round
        runs, and the round completes, since every call of it ends within the phase deadline.

        A ninth, not a third as with the libsodium process pool: the native core blinds and
        evaluates 2,000 records in a tenth of a second, and the nodes start no pool workers."""
        seen: list[tuple[str, str]] = []
        with Throttle(net, "p03", run=0.05, pause=0.4):
            pending = net.start_round(PURPOSE, reason="slow node")
            row = wait_for_phase(net, "blind")
            seen.append((row.phase, row.progress))  # the first row seen, before the CLI starts
            shown = net.show_round(row.id)  # what an operator sees, through the CLI
            assert shown["state"] == "running"
            assert shown["phase"] in ("blind", "evaluate")
            while pending.running():
                current = net.latest_round(PURPOSE)  # the row `round show` reads, polled fast
                if current is None or current.state != "running":
                    break
                step = (current.phase, current.progress)
                if not seen or seen[-1] != step:
                    seen.append(step)
                time.sleep(0.005)
            outcome = pending.wait(timeout=60)
        assert outcome.state == "completed", outcome.reason
        phases = [phase for phase, _ in seen]
        order = ["blind", "evaluate", "finalize", "reveal", "deliver"]
        assert phases[0] == "blind", seen
        assert sorted(phases, key=order.index) == phases, seen  # phases only move forward
        counts = [(phase, *map(int, p.rsplit(" ", 1)[-1].split("/"))) for phase, p in seen if p]
        assert all(total == 3 * RECORDS for _, _, total in counts), seen
        # While the slow node works, the others' share of the phase is already shown.
        assert any(0 < done < 3 * RECORDS for _, done, _ in counts), seen
        steps = {p.split(":")[0] for phase, p in seen if phase == "evaluate"}
        assert steps <= {"step 1/2", "step 2/2"}, seen
        assert outcome.summary is not None
        flagged = {p: v["flagged_count"] for p, v in outcome.summary["partners"].items()}
        assert flagged == net.expected_flagged(2)

    def test_node_slower_than_the_deadline_is_cut_off_in_that_phase(
        self, net: LocalNetwork
    ) -> None:
        """A node that drops to a fraction of a percent of its speed as blinding begins still
        answers, but too late: the round fails in the blind phase at its deadline, naming the
        node, and every node drops the round.

        Slowed from the blind phase on: the native core blinds 2,000 records in about a tenth of
        a second of CPU, so slowed from the start the node still blinded within the deadline
        (the process pool's start-up used to make the difference)."""
        pending = net.start_round(PURPOSE, reason="very slow node")
        row = wait_for_phase(net, "blind")
        with Throttle(net, "p03", run=0.002, pause=1.0):
            started = time.monotonic()
            outcome = pending.wait(timeout=SHORT_DEADLINE + 3 * ABORT_TIMEOUT)
            cut_after = time.monotonic() - started
        assert outcome.state == "failed"
        assert outcome.reason == (
            "blind failed: p03: did not answer within the phase deadline (DEADLINE_EXCEEDED)"
        )
        assert SHORT_DEADLINE - 1 < cut_after < SHORT_DEADLINE + ABORT_TIMEOUT + 5
        for pid in ("p01", "p02"):
            assert node_events(net, pid, row.id)[-1]["event"] == "round.aborted"
        no_round_files(net, row.id)


class TestResultsFolder:
    def test_results_folder_replaced_by_a_file_fails_the_round_without_any_result_file(
        self, net: LocalNetwork
    ) -> None:
        """A node whose results folder is a file fails the round at delivery with its reason;
        the other nodes discard their staged results: no result file, partial or not, anywhere."""
        results = net.node_dir("p02") / "results"
        shutil.rmtree(results)
        results.write_text("not a folder\n", encoding="utf-8")  # chmod would not stop root
        outcome: RoundOutcome = net.start_round(PURPOSE, reason="results folder").wait(60)
        assert outcome.state == "failed"
        assert outcome.reason.startswith("deliver failed: p02: ")
        assert "cannot write results" in outcome.reason
        round_id = outcome.summary["round_id"] if outcome.summary else ""
        results.unlink()
        results.mkdir(mode=0o700)
        no_round_files(net, round_id)
        for pid in ("p01", "p03"):
            events = [e["event"] for e in node_events(net, pid, round_id)]
            assert "results.received" in events  # staged, then discarded
            assert events[-1] == "round.aborted"
            assert "results.written" not in events
        assert "results.delivered" not in coordinator_events(net, round_id)


class TestPartialCommit:
    def test_commit_failing_at_one_node_fails_the_round_and_keeps_what_was_published(
        self, net: LocalNetwork
    ) -> None:
        """When publishing fails at one node the round fails naming it; nodes that published
        keep their results (verified, and no abort may remove a committed result, or a
        coordinator could suppress results at will) and are not sent an abort."""
        pending = net.start_round(PURPOSE, reason="commit fails at one node")
        deadline = time.monotonic() + 30
        row = net.latest_round(PURPOSE)
        while (row is None or row.state != "running") and time.monotonic() < deadline:
            time.sleep(0.01)
            row = net.latest_round(PURPOSE)
        assert row is not None
        # Something in the way of the published metadata's name: this node's rename fails.
        blocker = net.node_dir("p03") / "results" / f"{row.id}.json"
        blocker.mkdir()
        try:
            outcome = pending.wait(60)
        finally:
            blocker.rmdir()
        assert outcome.state == "failed"
        assert outcome.reason.startswith("commit failed: p03")
        assert "cannot publish results" in outcome.reason
        assert "(results published at p01, p02)" in outcome.reason
        files = round_files(net, row.id)
        assert files["p03"] == []
        for pid in ("p01", "p02"):
            assert files[pid] == [f"{row.id}.csv", f"{row.id}.json"]
            events = [e["event"] for e in node_events(net, pid, row.id)]
            assert events[-1] == "results.written"
            assert "attack.refused" not in events


class TestGracefulShutdown:
    def test_sigterm_mid_round_exits_cleanly_and_drops_the_round(self, net: LocalNetwork) -> None:
        """SIGTERM during a round: the node exits 0 within its grace period, its audit log
        ends the round ('node shutting down'), the round fails naming it; a restart serves."""
        pending = net.start_round(PURPOSE, reason="node stopped by its service manager")
        row = wait_for_phase(net, "evaluate")
        proc = net._server("p02").proc
        started = time.monotonic()
        net.signal("p02", signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert time.monotonic() - started < 15
        outcome = pending.wait(timeout=60)
        assert outcome.state == "failed"
        assert "p02" in outcome.reason
        events = node_events(net, "p02", row.id)
        assert events[-1]["event"] == "round.aborted"
        assert events[-1]["details"]["reason"] == "node shutting down"
        assert round_files(net, row.id) == {p.id: [] for p in net.spec.partners}
        net.restart("p02")
        net.run_round(PURPOSE)  # raises unless the round completes
