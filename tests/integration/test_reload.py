"""Config that takes effect: a serving node reads its policy and inputs for every manifest,
the coordinator follows a reloaded schedule, and doctor says when a server runs other settings
than its file holds."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from coordinator.config import load_coordinator_config
from coordinator.doctor import run_doctor as coordinator_doctor
from coordinator.server import create_server as create_coordinator
from coordinator.store import REFUSED
from kruispunt.doctor import OK, WARN
from psi_node.doctor import run_doctor as node_doctor
from tests.support.network import TestNetwork

PARTNERS = ["gemeente", "woonbron", "schuldhulp"]


@pytest.fixture
def net(network_factory: Callable[..., TestNetwork]) -> TestNetwork:
    network = network_factory(PARTNERS, per_partner=20, overlaps={2: 4, 3: 2})
    network.add_purpose()
    return network


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{path} has no {old!r}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def running_check(node_dir: Path) -> tuple[str, str]:
    check = node_doctor(node_dir, check_coordinator=False).by_name("running config")
    return check.status, check.detail


POLICY = "\n[policy.vroegsignalering]\n"


class TestNodeReadsPolicyPerManifest:
    def test_min_threshold_raised_on_a_running_node_refuses_the_next_round(
        self, net: TestNetwork
    ) -> None:
        """min_threshold = 3 written while the node serves: the next threshold-2 round is
        refused by that node, without a restart; doctor said so before the round."""
        assert net.run().state == "completed"
        node = net.nodes["gemeente"]
        node_dir = net.node_dirs["gemeente"]
        assert running_check(node_dir)[0] == OK
        edit(node_dir / "node.toml", POLICY, POLICY + "min_threshold = 3\n")
        status, detail = running_check(node_dir)
        assert status == WARN
        assert "node.toml changed since the running server" in detail
        assert "at the next round's manifest" in detail
        assert "systemctl reload psi-node" in detail
        summary = net.run()
        assert summary.state == REFUSED
        assert "threshold 2 is below this node's minimum 3" in summary.reason
        assert net.nodes["gemeente"] is node  # the same server, never restarted
        assert running_check(node_dir)[0] == OK  # it has read the file as it is now

    def test_relaxed_again_the_next_round_runs(self, net: TestNetwork) -> None:
        """Taking the stricter minimum out again lets the next round complete, still no restart."""
        node_dir = net.node_dirs["gemeente"]
        edit(node_dir / "node.toml", POLICY, POLICY + "min_threshold = 3\n")
        assert net.run().state == REFUSED
        edit(node_dir / "node.toml", POLICY + "min_threshold = 3\n", POLICY)
        assert net.run().state == "completed"

    def test_a_node_toml_that_does_not_load_refuses_rather_than_keeps_the_old_policy(
        self, net: TestNetwork
    ) -> None:
        """A half-edited node.toml refuses the next round with the reason; fixed, it runs."""
        node_dir = net.node_dirs["gemeente"]
        good = (node_dir / "node.toml").read_text(encoding="utf-8")
        (node_dir / "node.toml").write_text(good + "\n[policy.vroegsignalering\n")
        summary = net.run()
        assert summary.state == REFUSED
        assert "node.toml does not load, so no policy can be checked" in summary.reason
        (node_dir / "node.toml").write_text(good)
        assert net.run().state == "completed"

    def test_input_mapping_edit_takes_effect_at_the_next_round(self, net: TestNetwork) -> None:
        """A mapping that names a missing column, written while serving, stops the next round."""
        node_dir = net.node_dirs["gemeente"]
        marker = 'objection_column = "bezwaar"\n'
        edit(node_dir / "node.toml", marker, marker + 'result_columns = ["Klantnr"]\n')
        summary = net.run()
        assert summary.state == REFUSED
        assert "missing result column 'Klantnr'" in summary.reason

    def test_reload_reads_the_policy_now(self, net: TestNetwork) -> None:
        """reload (what SIGHUP calls) reads the file at once: doctor is satisfied before a round."""
        node_dir = net.node_dirs["gemeente"]
        edit(node_dir / "node.toml", POLICY, POLICY + "min_threshold = 3\n")
        assert running_check(node_dir)[0] == WARN
        net.nodes["gemeente"].reload()
        assert running_check(node_dir)[0] == OK
        assert net.nodes["gemeente"].rounds.config.policies["vroegsignalering"].min_threshold == 3

    def test_a_change_that_needs_a_restart_is_named(self, net: TestNetwork) -> None:
        """A new listen address is not taken over by a running node; doctor says restart."""
        node_dir = net.node_dirs["gemeente"]
        before = net.nodes["gemeente"].rounds.config.listen
        edit(node_dir / "node.toml", 'listen = "', 'listen = "127.0.0.2:1" # was "')
        net.nodes["gemeente"].reload()
        assert net.nodes["gemeente"].rounds.config.listen == before
        status, detail = running_check(node_dir)
        assert status == WARN
        assert "changed in settings other than the policy and inputs" in detail
        assert "systemctl restart psi-node" in detail

    def test_a_stopped_node_is_not_compared(self, net: TestNetwork) -> None:
        """After a clean stop doctor has nothing to compare and says so."""
        node_dir = net.node_dirs["gemeente"]
        net.stop_node("gemeente")
        status, detail = running_check(node_dir)
        assert status == OK
        assert "no server running for this directory" in detail


class TestCoordinatorReloadsSchedule:
    def test_reloaded_schedule_starts_a_round_without_restart(self, net: TestNetwork) -> None:
        """A [[schedule]] added to a serving coordinator runs once it is reloaded."""
        assert net.coordinator is not None
        net.coordinator.stop(grace=0)
        net.coordinator.store.close()
        start = datetime(2026, 3, 2, 5, 58, 30, tzinfo=UTC)
        moment = [start]
        lock = threading.Lock()

        def clock() -> datetime:
            with lock:
                return moment[0]

        config = load_coordinator_config(
            net.coordinator_dir, env={"KRUISPUNT_COORDINATOR_LISTEN": "127.0.0.1:0"}
        )
        server = create_coordinator(config, now=clock, scheduler_tick=0.05)
        net.coordinator = server
        try:
            with (net.coordinator_dir / "coordinator.toml").open("a", encoding="utf-8") as fh:
                fh.write('\n[[schedule]]\npurpose = "vroegsignalering"\ncron = "* * * * *"\n')
            check = coordinator_doctor(net.coordinator_dir, check_partners=False)
            assert check.by_name("running config").status == WARN
            assert "systemctl reload psi-coordinator" in check.by_name("running config").detail
            with lock:
                moment[0] = start + timedelta(minutes=5)
            time.sleep(0.5)
            assert server.store.rounds(purpose_id="vroegsignalering") == []
            server.reload()
            assert (
                coordinator_doctor(net.coordinator_dir, check_partners=False)
                .by_name("running config")
                .status
                == OK
            )
            deadline = time.monotonic() + 30
            while not server.store.rounds(purpose_id="vroegsignalering"):
                assert time.monotonic() < deadline, "the reloaded schedule never started a round"
                # Minutes pass on the clock the scheduler reads, whenever its tick takes them.
                with lock:
                    moment[0] += timedelta(minutes=1)
                time.sleep(0.2)
        finally:
            server.stop(grace=0)
            server.store.close()
            net.coordinator = None
