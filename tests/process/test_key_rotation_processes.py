"""Key rotation on real processes: the console scripts, serving node and coordinator processes.

A partner's node rotates its signing key with `psi-node rotate-signing-key` while its
server runs; a round runs before the coordinator knows (the node signs with the key its
roster names), the coordinator registers the key (`partner rotate-key`), every node
accepts the roster, and the next round runs with the new key. Then the coordinator
rotates its manifest key (`rotate-signing-key`) and, once the roster is accepted, the
serving coordinator's next round runs with it. The rotated node's log verifies across its
handover (`audit verify`, `audit verify-network` at another node).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.netlab import BIN, LocalNetwork, NetworkSpec, PurposeSpec, bench_partners

PURPOSE = "signalen"


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True, check=False
    )


def answer(*argv: str) -> dict[str, Any]:
    """A console script's --json answer, after checking it exited 0."""
    done = run(*argv, "--json")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


@pytest.fixture(scope="module")
def rotated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalNetwork, dict]]:
    """Rounds before, between and after a partner's and the coordinator's rotation."""
    spec = NetworkSpec(
        network="rotation",
        partners=bench_partners(3, 40),
        overlaps={2: 6, 3: 3},
        purposes=(PurposeSpec(id=PURPOSE, max_set_size=10_000),),
    )
    with LocalNetwork(tmp_path_factory.mktemp("rotation"), spec) as net:
        net.build()
        net.start()
        pid = spec.partners[1].id
        rounds = [net.run_round(PURPOSE).summary]
        node = answer("psi-node", "rotate-signing-key", str(net.node_dir(pid)))
        rounds.append(net.run_round(PURPOSE).summary)  # the roster still names the old key
        partner = answer(
            "psi-coordinator",
            "partner",
            "rotate-key",
            str(net.coordinator_dir),
            pid,
            "--signing-key",
            node["public_key"],
            "--overlap-days",
            "7",
        )
        net.publish_roster()
        rounds.append(net.run_round(PURPOSE).summary)  # signed with the new key
        manifest = answer(
            "psi-coordinator", "rotate-signing-key", str(net.coordinator_dir), "--overlap-days", "7"
        )
        net.publish_roster()
        rounds.append(net.run_round(PURPOSE).summary)  # a manifest under the new key
        yield (
            net,
            {
                "pid": pid,
                "node": node,
                "partner": partner,
                "manifest": manifest,
                "rounds": rounds,
            },
        )


class TestKeyRotationProcesses:
    def test_every_round_completed_across_both_rotations(self, rotated: Any) -> None:
        """Four rounds: before, between the node's and the coordinator's step, after each."""
        _net, seen = rotated
        assert [r["state"] for r in seen["rounds"]] == ["completed"] * 4

    def test_the_roster_lists_both_keys_of_each_rotation(self, rotated: Any) -> None:
        """The exported roster names the new keys and the old ones with their dates."""
        net, seen = rotated
        shown = answer("psi-coordinator", "roster", "show", str(net.coordinator_dir))
        (entry,) = [p for p in shown["partners"] if p["id"] == seen["pid"]]
        assert "previous_signing_key" in entry
        assert entry["previous_signing_key_valid_until"] == seen["partner"]["valid_until"]
        assert "coordinator_previous_signing_key" in shown
        node_shown = answer("psi-node", "roster", "show", str(net.node_dir(seen["pid"])))
        assert node_shown["digest"] == shown["digest"]

    def test_the_rotated_nodes_log_verifies(self, rotated: Any, tmp_path: Path) -> None:
        """`audit verify` at the node, and `verify-network` at another node with its export."""
        net, seen = rotated
        pid = seen["pid"]
        assert answer("psi-node", "audit", "verify", str(net.node_dir(pid)))["ok"] is True
        coordinator_export = tmp_path / "coordinator.jsonl"
        done = run(
            "psi-coordinator",
            "audit",
            "export",
            str(net.coordinator_dir),
            "--out",
            str(coordinator_export),
        )
        assert done.returncode == 0, done.stderr
        node_export = tmp_path / f"{pid}.jsonl"
        done = run("psi-node", "audit", "export", str(net.node_dir(pid)))
        assert done.returncode == 0, done.stderr
        node_export.write_text(done.stdout, encoding="utf-8")
        officer = net.spec.partners[0].id
        report = answer(
            "psi-node",
            "audit",
            "verify-network",
            str(net.node_dir(officer)),
            "--coordinator-export",
            str(coordinator_export),
            "--coordinator-key",
            str(net.coordinator_dir / "signing" / "audit.pub"),
            "--node-export",
            str(node_export),
        )
        assert report["ok"] is True, report
