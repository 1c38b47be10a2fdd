"""Deletion receipts on real processes: the console scripts, real files, real servers.

A network built with the CLIs runs a round as processes. Then each node's results reach
the end of their retention: the deadline in each result's metadata file is set into the
past (the stand-in for four weeks passing; the records file, which the digest covers, is
untouched) and `psi-node purge` deletes them while the node serves, signing a receipt.
The next round hands every receipt to the coordinator process; the officer's
`psi-node audit verify-network` agrees, and `psi-coordinator audit report` shows each
partner's deletion date.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.netlab import BIN, LocalNetwork, NetworkSpec, PurposeSpec, bench_partners
from tests.support.report_pages import Page

PURPOSE = "signalen"


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNetwork]:
    """Three nodes and a coordinator, built with the CLIs and serving."""
    spec = NetworkSpec(
        network="deletion",
        partners=bench_partners(3, 40),
        overlaps={2: 8, 3: 3},
        purposes=(PurposeSpec(id=PURPOSE, max_set_size=10_000),),
    )
    with LocalNetwork(tmp_path_factory.mktemp("deletion"), spec) as net:
        net.build()
        net.start()
        yield net


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True, check=False
    )


def events(path: Path, event: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [e for e in lines if e["event"] == event]


class TestDeletionReceiptProcesses:
    def test_purge_receipt_next_round_verify_and_report(
        self, network: LocalNetwork, tmp_path: Path
    ) -> None:
        """Purged by `psi-node purge`, received at the next round, verified, reported."""
        first = network.run_round(PURPOSE).summary["round_id"]
        partners = [p.id for p in network.spec.partners]
        past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        for pid in partners:
            meta = network.node_dir(pid) / "results" / f"{first}.json"
            data = json.loads(meta.read_text())
            meta.write_text(json.dumps({**data, "delete_after": past}, indent=2) + "\n")
            done = run("psi-node", "purge", str(network.node_dir(pid)), "--json")
            assert done.returncode == 0, done.stderr
            assert sorted(Path(p).name for p in json.loads(done.stdout)) == [
                f"{first}.csv",
                f"{first}.json",
            ]
            receipts = network.node_dir(pid) / "state" / "deletion-receipts.jsonl"
            assert len(receipts.read_text().splitlines()) == 1

        network.run_round(PURPOSE)
        coord = tmp_path / "coordinator.jsonl"
        done = run(
            "psi-coordinator", "audit", "export", str(network.coordinator_dir), "--out", str(coord)
        )
        assert done.returncode == 0, done.stderr
        received = [e for e in events(coord, "deletion.received") if e["round_id"] == first]
        assert sorted(e["details"]["partner"] for e in received) == sorted(partners)
        assert events(coord, "deletion.refused") == []

        for pid in partners:
            done = run(
                "psi-node",
                "audit",
                "verify-network",
                str(network.node_dir(pid)),
                "--json",
                "--coordinator-export",
                str(coord),
                "--coordinator-key",
                str(network.coordinator_dir / "signing" / "audit.pub"),
            )
            result = json.loads(done.stdout)
            assert result["problems"] == [], pid
            assert done.returncode == 0
            assert result["deletions_pending"] == 0

        page_path = tmp_path / "first.html"
        done = run(
            "psi-coordinator",
            "audit",
            "report",
            str(network.coordinator_dir),
            "--round",
            first,
            "--out",
            str(page_path),
            "--lang",
            "en",
        )
        assert done.returncode == 0, done.stderr
        page = Page(page_path.read_text(encoding="utf-8"))
        table = page.table("Deletion per partner")
        day = datetime.now(UTC).strftime("%Y-%m-%d")
        for pid in partners:
            assert table[pid][0] in {f"deleted on {day}", "deleted on " + _yesterday()}, pid


def _yesterday() -> str:
    # A test that runs across midnight UTC deletes on one day and checks on the next.
    return (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d")
