"""Operators through the installed psi-coordinator script, each call a process of its own:
`operator add` -> `round run` as that person -> the round is theirs; `operator remove` ->
refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

SCRIPT = Path(sys.executable).parent / "psi-coordinator"
PARTNERS = ["gemeente", "woonbron"]


def run(net: Any, person: str, *argv: object) -> subprocess.CompletedProcess[str]:
    """`psi-coordinator ARGV` run by `person` under sudo (SUDO_USER), against the server."""
    env = {
        **os.environ,
        "SUDO_USER": person,
        "KRUISPUNT_COORDINATOR_LISTEN": f"127.0.0.1:{net.coordinator.port}",
    }
    env.pop("KRUISPUNT_OPERATOR_DIR", None)
    return subprocess.run(
        [str(SCRIPT), *(str(a) for a in argv)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


class TestOperatorProcesses:
    def test_operator_add_then_round_run_is_attributed_to_that_person(self, network_factory):
        """bob issues alice a certificate; alice's `round run` is hers in the round row, the
        audit log and `round show`; once bob removes her, her next run is refused."""
        net = network_factory(PARTNERS, per_partner=10, overlaps={2: 2})
        net.add_purpose()
        d = net.coordinator_dir

        added = run(net, "bob", "operator", "add", d, "alice", "--ca-key", net.ca_key, "--json")
        assert added.returncode == 0, added.stderr
        assert Path(json.loads(added.stdout)["certificate"]).is_file()

        ran = run(net, "alice", "round", "run", d, "vroegsignalering", "--reason", "weekly")
        assert ran.returncode == 0, ran.stderr
        assert "COMPLETED" in ran.stdout
        (row,) = net.coordinator.store.rounds()
        assert row.initiated_by == "operator:alice"
        created = net.coordinator.audit.events(row.id)[0]
        assert (created.event, created.actor) == ("round.created", "operator:alice")
        assert created.details["reason"] == "weekly"
        shown = run(net, "alice", "round", "show", d, row.id)
        assert "by operator:alice" in shown.stdout

        removed = run(net, "bob", "operator", "remove", d, "alice", "--reason", "left the team")
        assert removed.returncode == 0, removed.stderr
        operators = json.loads(run(net, "bob", "operator", "list", d, "--json").stdout)
        assert {o["operator"]: o["active"] for o in operators}["alice"] is False
        again = run(net, "alice", "round", "run", d, "vroegsignalering")
        assert again.returncode == 1
        assert "no operator certificate for 'alice'" in again.stderr  # her files are gone
        assert "Traceback" not in again.stdout + again.stderr
        assert len(net.coordinator.store.rounds()) == 1

        exported = run(net, "bob", "audit", "export", d)
        assert exported.returncode == 0, exported.stderr
        actors = {
            (e["event"], e["actor"])
            for e in map(json.loads, exported.stdout.splitlines())
            if e["event"].startswith("operator.")
        }
        assert ("operator.added", "operator:bob") in actors
        assert ("operator.removed", "operator:bob") in actors
