"""Refusals and failures in the metrics of real servers, scraped over HTTP."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from coordinator.config import load_coordinator_config
from coordinator.server import create_server as create_coordinator
from kruispunt.errors import ConfigError
from tests.support.network import TestNetwork

PARTNERS = ["gemeente", "woonbron", "schuldhulp"]
METRICS = '\n[metrics]\nlisten = "127.0.0.1:0"\n'


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def with_metrics(net: TestNetwork, pid: str) -> int:
    """Restart node `pid` with a metrics endpoint on a free loopback port; its port."""
    path = net.node_dirs[pid] / "node.toml"
    path.write_text(path.read_text(encoding="utf-8") + METRICS, encoding="utf-8")
    net.stop_node(pid)
    server = net.start_node(pid)
    assert server.metrics_server is not None
    return server.metrics_server.port


def coordinator_with_metrics(net: TestNetwork) -> int:
    path = net.coordinator_dir / "coordinator.toml"
    path.write_text(path.read_text(encoding="utf-8") + METRICS, encoding="utf-8")
    assert net.coordinator is not None
    net.coordinator.stop(grace=0)
    net.coordinator.store.close()
    net.coordinator = create_coordinator(
        load_coordinator_config(
            net.coordinator_dir, env={"KRUISPUNT_COORDINATOR_LISTEN": "127.0.0.1:0"}
        )
    )
    assert net.coordinator.metrics_server is not None
    return net.coordinator.metrics_server.port


class TestRefusalMetrics:
    def test_a_refused_round_is_counted_on_both_sides(self, network_factory):
        """A policy refusal: the coordinator counts a refused round and one consent refusal
        per partner; the node counts its refused round under `policy`."""
        net = network_factory(PARTNERS, per_partner=20, overlaps={2: 3})
        net.add_purpose(result_retention_days=365)  # every node allows 90 days at most
        node_port = with_metrics(net, "woonbron")
        coordinator_port = coordinator_with_metrics(net)
        assert net.run().state == "refused"
        coordinator = scrape(coordinator_port)
        assert coordinator[("kruispunt_rounds_total", (("state", "refused"),))] == 1
        assert coordinator[("kruispunt_refusals_total", (("reason", "consent"),))] == 3
        node = scrape(node_port)
        assert node[("kruispunt_rounds_total", (("state", "refused"),))] == 1
        assert node[("kruispunt_refusals_total", (("reason", "policy"),))] == 1
        assert ("kruispunt_rounds_total", (("state", "completed"),)) not in node

    def test_a_failed_round_and_an_unknown_purpose_are_counted(self, network_factory):
        """A node down fails the round (state failed); an unknown purpose is a request refusal."""
        net = network_factory(PARTNERS, per_partner=20, overlaps={2: 3})
        net.add_purpose()
        port = coordinator_with_metrics(net)
        net.stop_node("schuldhulp")
        assert net.run().state == "failed"
        with pytest.raises(ConfigError, match="unknown purpose"):
            net.run("onbekend")
        found = scrape(port)
        assert found[("kruispunt_rounds_total", (("state", "failed"),))] == 1
        assert found[("kruispunt_refusals_total", (("reason", "request"),))] == 1
