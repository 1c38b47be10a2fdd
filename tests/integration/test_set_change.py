"""max_set_change_percent on real servers: a half-size export is refused, a normal change runs."""

from __future__ import annotations

import io
import json

import structlog

from kruispunt.logs import configure_logging
from kruispunt.v1 import common_pb2
from tests.support.network import TestNetwork
from tests.support.synthetic import write_csv

PARTNERS = ["gemeente", "woonbron", "schuldhulp"]
ROWS = 40


def limit_changes(net: TestNetwork, pid: str, percent: float) -> None:
    """Add max_set_change_percent to the node's policy (the last table node.toml holds) and
    restart the node with it."""
    path = net.node_dirs[pid] / "node.toml"
    with path.open("a", encoding="utf-8") as fh:
        fh.write(f"max_set_change_percent = {percent}\n")
    net.stop_node(pid)
    net.start_node(pid)


def export(net: TestNetwork, pid: str, count: int) -> None:
    """Rewrite the node's export with its first `count` rows (a truncated export)."""
    assert net.data is not None
    write_csv(
        net.node_dirs[pid] / "input.csv",
        net.data.rows[pid][:count],
        "bsn",
        objection_column="bezwaar",
    )


def signed_refusals(net: TestNetwork, round_id: str) -> dict[str, common_pb2.Consent]:
    """The refusals the coordinator stored for the round, as the nodes signed them."""
    assert net.coordinator is not None
    out = {}
    for pid, granted, _reason, body, _signature in net.coordinator.store.consents(round_id):
        if not granted:
            consent = common_pb2.Consent()
            consent.ParseFromString(body)
            out[pid] = consent
    return out


class TestSetChange:
    def test_half_size_export_is_refused_and_a_normal_change_accepted(self, network_factory):
        """Round 1 sets the size; half of it is refused with the reason (no size sent);
        a 5 % change against round 1 runs (the refused set was not remembered)."""
        net = network_factory(PARTNERS, per_partner=ROWS, overlaps={2: 6, 3: 3})
        net.add_purpose()
        limit_changes(net, "woonbron", 30)
        assert net.run().state == "completed"

        export(net, "woonbron", ROWS // 2)
        buffer = io.StringIO()
        configure_logging(json=True, level="info", stream=buffer)
        try:
            refused = net.run()
        finally:
            structlog.reset_defaults()
        assert refused.state == "refused"
        assert "woonbron" in refused.reason
        assert "dropped by more than 30 %" in refused.reason
        assert "max_set_change_percent" in refused.reason
        (consent,) = signed_refusals(net, refused.round_id).values()
        assert consent.partner_id == "woonbron"
        assert consent.set_size == 0
        for size in (str(ROWS), str(ROWS // 2), "50"):
            assert size not in consent.reason.replace("30 %", "")
        # The node's operator sees the sizes in the node's own log.
        (line,) = [
            json.loads(x) for x in buffer.getvalue().splitlines() if "set size changed beyond" in x
        ]
        assert (line["set_size"], line["previous_set_size"]) == (ROWS // 2, ROWS)
        assert line["change_percent"] == 50.0
        node_events = net.nodes["woonbron"].rounds.audit.events(round_id=refused.round_id)
        (audited,) = [e for e in node_events if e.event == "consent.refused"]
        assert audited.details["check"] == "max_set_change_percent"
        assert audited.details["reason"] == consent.reason

        export(net, "woonbron", ROWS - 2)  # 5 % fewer than the last consented round
        summary = net.run()
        assert summary.state == "completed", summary.reason
        sizes = {p.partner_id: p.set_size for p in summary.partners}
        assert sizes["woonbron"] == ROWS - 2

    def test_growth_beyond_the_limit_is_refused_too(self, network_factory):
        """A set that more than doubles against the previous round is refused as grown."""
        net = network_factory(PARTNERS, per_partner=ROWS, overlaps={2: 6, 3: 3})
        net.add_purpose()
        export(net, "gemeente", ROWS // 4)
        limit_changes(net, "gemeente", 100)
        assert net.run().state == "completed"
        export(net, "gemeente", ROWS)  # four times the size
        summary = net.run()
        assert summary.state == "refused"
        assert "gemeente" in summary.reason
        assert "grew by more than 100 %" in summary.reason

    def test_without_the_policy_any_change_runs(self, network_factory):
        """No max_set_change_percent: a half-size export is matched as before."""
        net = network_factory(PARTNERS, per_partner=ROWS, overlaps={2: 6, 3: 3})
        net.add_purpose()
        assert net.run().state == "completed"
        export(net, "woonbron", ROWS // 2)
        assert net.run().state == "completed"
