"""The Prometheus endpoint of real server processes, scraped over HTTP after a real round."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.netlab import LocalNetwork, NetworkSpec, PurposeSpec, bench_partners, free_port

PURPOSE = "metrics"
RECORDS = 40


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        return response.read().decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, by name and sorted labels."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def enable_metrics(config: Path) -> int:
    port = free_port()
    with config.open("a", encoding="utf-8") as fh:
        fh.write(f'\n[metrics]\nlisten = "127.0.0.1:{port}"\n')
    return port


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalNetwork, dict]]:
    """Three node processes and a coordinator process, the coordinator and one node with
    `[metrics]`; one round run through the CLI."""
    spec = NetworkSpec(
        network="metrics",
        partners=bench_partners(3, RECORDS),
        overlaps={2: 6, 3: 4},
        purposes=(PurposeSpec(id=PURPOSE, max_set_size=1_000),),
    )
    with LocalNetwork(tmp_path_factory.mktemp("metrics"), spec) as net:
        net.build()
        node = spec.partners[0].id
        ports = {
            "coordinator": enable_metrics(net.coordinator_dir / "coordinator.toml"),
            node: enable_metrics(net.node_dir(node) / "node.toml"),
        }
        net.start()
        run = net.run_round(PURPOSE)
        assert run.summary["state"] == "completed", run.summary
        yield net, {"ports": ports, "node": node, "run": run}


class TestMetricsEndpoint:
    def test_coordinator_counts_the_round_its_phases_and_certificates(self, network):
        """After a round: rounds by state, a duration per phase, points, days left per cert."""
        _net, info = network
        found = samples(scrape(info["ports"]["coordinator"]))
        assert found[("kruispunt_rounds_total", (("state", "completed"),))] == 1
        for phase in ("propose", "blind", "evaluate", "finalize", "reveal", "deliver"):
            assert found[("kruispunt_phase_duration_seconds_count", (("phase", phase),))] >= 1
        assert found[("kruispunt_points_processed_total", (("phase", "matched"),))] == 3 * RECORDS
        days = {
            labels: value
            for (name, labels), value in found.items()
            if name == "kruispunt_certificate_days_left"
        }
        partner_labels = [dict(k)["certificate"] for k in days]
        assert sum("of partner" in label for label in partner_labels) == 3
        assert any("network CA" in label for label in partner_labels)
        for labels, value in days.items():
            label = dict(labels)["certificate"]
            # Leaves live 90 days (kruispunt.pki); the CA lives years.
            assert (300 < value < 4000) if "network CA" in label else (85 < value <= 90), label

    def test_node_counts_its_own_work_only(self, network):
        """The node: its round, its phases, points it blinded and evaluated, its certificates."""
        _net, info = network
        found = samples(scrape(info["ports"][info["node"]]))
        assert found[("kruispunt_rounds_total", (("state", "completed"),))] == 1
        assert found[("kruispunt_points_processed_total", (("phase", "blind"),))] == RECORDS
        # It evaluated each of the two other partners' sets once.
        assert found[("kruispunt_points_processed_total", (("phase", "evaluate"),))] == 2 * RECORDS
        assert found[("kruispunt_points_processed_total", (("phase", "finalize"),))] == RECORDS
        for phase in ("blind", "evaluate", "finalize", "reveal"):
            assert found[("kruispunt_phase_duration_seconds_count", (("phase", phase),))] >= 1
        labels = [
            dict(k)["certificate"] for (n, k) in found if n == "kruispunt_certificate_days_left"
        ]
        assert len(labels) == 2
        assert any(f"partner {info['node']}" in label for label in labels)

    def test_no_identifier_in_any_exposition(self, network):
        """No BSN of any export appears in what either endpoint serves."""
        net, info = network
        text = "".join(scrape(port) for port in info["ports"].values())
        for pid, ids in net.kept_ids(PURPOSE).items():
            for canonical in ids:
                assert canonical.decode(errors="replace")[-9:] not in text, pid

    def test_a_node_without_the_table_serves_no_metrics(self, network):
        """Metrics are off unless configured: the node log names no metrics endpoint."""
        net, info = network
        other = net.spec.partners[1].id
        assert "metrics endpoint serving" not in (net.node_dir(other) / "node.log").read_text()
        assert "metrics endpoint serving" in (net.node_dir(info["node"]) / "node.log").read_text()
