"""Export columns over a real round: an unread address part stops the round, mapped it flags
exactly the right households, and result_columns reach the local result file only."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest

from tests.support.network import TestNetwork

PARTNERS = ["gemeente", "woonbron", "schuldhulp"]
HEADER = ["Postcode", "Huisnr", "Huisletter", "Toev", "bezwaar", "Klantnr"]

# Households that differ only in their toevoeging: read without it, 1234AB 12 and
# 1234AB 12-2 are one address and schuldhulp's "12-2" would be flagged with the others.
ROWS: Mapping[str, Sequence[Sequence[str]]] = {
    "gemeente": [
        ("1234AB", "12", "", "", "", "=HYPERLINK(1)"),
        ("5678CD", "3", "", "A1", "", "KLANT-G-0002"),
        ("1111AA", "1", "", "", "", "KLANT-G-0003"),
    ],
    "woonbron": [
        ("1234 ab", "12", "", "", "", "KLANT-W-0001"),
        ("2222BB", "2", "", "", "", "KLANT-W-0002"),
    ],
    "schuldhulp": [
        ("1234AB", "12", "", "2", "", "KLANT-S-0001"),
        ("5678CD", "3", "", "a1", "", "+KLANT-S-0002"),
        ("3333CC", "3", "b", "", "", "KLANT-S-0003"),
    ],
}
#: What each partner's result file must hold (postcode, huisnummer, toevoeging, klantnr).
EXPECTED = {
    "gemeente": {("1234AB", "12", "", "'=HYPERLINK(1)"), ("5678CD", "3", "A1", "KLANT-G-0002")},
    "woonbron": {("1234 ab", "12", "", "KLANT-W-0001")},
    "schuldhulp": {("5678CD", "3", "a1", "'+KLANT-S-0002")},
}


def write_exports(net: TestNetwork) -> None:
    """Each partner's export with the walkthrough's headers, ;-separated as Excel writes it."""
    for pid, rows in ROWS.items():
        with (net.node_dirs[pid] / "input.csv").open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh, delimiter=";", lineterminator="\r\n")
            writer.writerow(HEADER)
            writer.writerows(rows)


def configure_inputs(net: TestNetwork, *lines: str) -> None:
    """Add lines to every node's [inputs.vroegsignalering] (after its objection_column)."""
    for node_dir in net.node_dirs.values():
        path = node_dir / "node.toml"
        text = path.read_text(encoding="utf-8")
        marker = 'objection_column = "bezwaar"\n'
        assert marker in text
        path.write_text(text.replace(marker, marker + "".join(f"{x}\n" for x in lines)))


@pytest.fixture
def net(network_factory: Callable[..., TestNetwork]) -> TestNetwork:
    network = network_factory(PARTNERS, kind="address", per_partner=10)
    write_exports(network)
    network.add_purpose()
    return network


class TestWalkthroughHeaders:
    def test_unread_toev_stops_the_round_with_the_fix(self, net: TestNetwork) -> None:
        """Headers Postcode;Huisnr;Huisletter;Toev unmapped: every node refuses, naming the fix."""
        summary = net.run()
        assert summary.state != "completed"
        assert "--columns toevoeging=Toev" in summary.reason
        assert 'columns = { toevoeging = "Toev" }' in summary.reason
        for node_dir in net.node_dirs.values():
            assert not list((node_dir / "results").glob("*.csv"))

    def test_mapped_toev_flags_exactly_the_right_households(self, net: TestNetwork) -> None:
        """With toevoeging=Toev mapped, 1234AB 12-2 is its own household and is not flagged."""
        configure_inputs(net, 'columns = { toevoeging = "Toev" }', 'result_columns = ["Klantnr"]')
        summary = net.run()
        assert summary.state == "completed", summary.reason
        for pid, expected in EXPECTED.items():
            (path,) = (net.node_dirs[pid] / "results").glob("*.csv")
            with path.open(encoding="utf-8", newline="") as fh:
                rows = list(csv.DictReader(fh, delimiter=";"))
            assert {
                (r["Postcode"], r["Huisnr"], r["Toev"], r["Klantnr"]) for r in rows
            } == expected, pid

    def test_result_columns_never_leave_the_node(self, net: TestNetwork) -> None:
        """Klantnr values are in the local results only: not in any audit log or the database."""
        configure_inputs(net, 'columns = { toevoeging = "Toev" }', 'result_columns = ["Klantnr"]')
        summary = net.run()
        assert summary.state == "completed", summary.reason
        numbers = [row[5].lstrip("=+") for rows in ROWS.values() for row in rows]
        everything = [net.coordinator_dir / "coordinator.db"]
        everything += [d / "audit" / "node-audit.jsonl" for d in net.node_dirs.values()]
        for path in everything:
            data = path.read_bytes()
            assert not [n for n in numbers if n.encode() in data], path
        metadata: list[Any] = [
            json.loads(p.read_text())
            for d in net.node_dirs.values()
            for p in (d / "results").glob("*.json")
        ]
        assert metadata
        assert not [n for n in numbers if n in json.dumps(metadata)]

    def test_ignored_toev_merges_only_by_decision(self, net: TestNetwork) -> None:
        """ignore_columns is the explicit way to read without the column: then it merges."""
        configure_inputs(net, 'ignore_columns = ["Toev"]')
        summary = net.run()
        assert summary.state == "completed", summary.reason
        (path,) = (net.node_dirs["schuldhulp"] / "results").glob("*.csv")
        lines = path.read_text(encoding="utf-8").splitlines()
        assert lines[0] == "Postcode;Huisnr;Huisletter;partners"
        assert len(lines) == 3  # 12-2 read as 12 and 5678CD 3 a1 as 3: both flagged
