"""Verification without trust on real processes: the console scripts, real files, real servers.

A network built with the CLIs runs two rounds as processes; then the officer's
command (`psi-node audit verify-network`, a subprocess) verifies the export that
`psi-coordinator audit export` wrote with no private key at hand, and catches the
coordinator's log cut off behind its triggers and a node's log cut short.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.netlab import BIN, LocalNetwork, NetworkSpec, PurposeSpec, bench_partners

PURPOSE = "signalen"


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNetwork]:
    """Three nodes and a coordinator, built with the CLIs, after two completed rounds."""
    spec = NetworkSpec(
        network="witness",
        partners=bench_partners(3, 60),
        overlaps={2: 10, 3: 4},
        purposes=(PurposeSpec(id=PURPOSE, max_set_size=10_000),),
    )
    with LocalNetwork(tmp_path_factory.mktemp("witness"), spec) as net:
        net.build()
        net.start()
        net.run_round(PURPOSE)
        net.run_round(PURPOSE)
        net.stop_server("coordinator")  # what follows edits its database behind its back
        yield net


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True, check=False
    )


def export(net: LocalNetwork, out: Path) -> Path:
    """`psi-coordinator audit export` with the coordinator's private keys moved away."""
    signing_dir = net.coordinator_dir / "signing"
    keys = list(signing_dir.glob("*.ed25519"))
    for key in keys:
        key.rename(key.with_suffix(".away"))
    try:
        done = run(
            "psi-coordinator", "audit", "export", str(net.coordinator_dir), "--out", str(out)
        )
    finally:
        for key in keys:
            key.with_suffix(".away").rename(key)
    assert done.returncode == 0, done.stderr
    assert "signing/audit.pub" in done.stderr  # where the officer's key is
    return out


def verify(net: LocalNetwork, pid: str, coord: Path) -> tuple[int, dict[str, Any]]:
    done = run(
        "psi-node",
        "audit",
        "verify-network",
        str(net.node_dir(pid)),
        "--json",
        "--coordinator-export",
        str(coord),
        "--coordinator-key",
        str(net.coordinator_dir / "signing" / "audit.pub"),
    )
    return done.returncode, json.loads(done.stdout)


class TestWitnessedAudit:
    def test_untouched_then_cut_coordinator_then_cut_node(
        self, network: LocalNetwork, tmp_path: Path
    ) -> None:
        """An untouched network verifies; a cut coordinator log and a cut node log each fail."""
        pid = network.spec.partners[0].id
        status, result = verify(network, pid, export(network, tmp_path / "c1.jsonl"))
        assert (status, result["problems"]) == (0, [])
        assert result["witnessed_heads_checked"] == 2

        log = network.node_dir(pid) / "audit" / "node-audit.jsonl"
        seen = [json.loads(line) for line in log.read_text().splitlines()]
        head = [e for e in seen if e["event"] == "manifest.seen"][-1]["details"]["coordinator_head"]
        db = network.coordinator_dir / "coordinator.db"
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("DROP TRIGGER audit_events_no_delete")
        conn.execute("DELETE FROM audit_events WHERE seq >= ?", (head["seq"],))
        conn.close()
        status, result = verify(network, pid, export(network, tmp_path / "c2.jsonl"))
        assert status == 1
        assert result["first_problem"]["kind"] == "witnessed_head"
        assert f"lacks event {head['seq']}" in result["first_problem"]["detail"]

        # The coordinator's log is cut now; an earlier export still holds the node heads.
        lines = log.read_bytes().splitlines(keepends=True)
        log.write_bytes(b"".join(lines[:-2]))
        status, result = verify(network, pid, tmp_path / "c1.jsonl")
        assert status == 1
        assert [p["kind"] for p in result["problems"]][:1] == ["node_head"]
