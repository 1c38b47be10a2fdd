"""What the metrics count, fed by real audit logs: states, refusal classes, phases, points."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest

from kruispunt import signing
from kruispunt.metrics import RoundMetrics
from psi_node.audit import NodeAudit

ROUND = "r20261201T060000-0000abcd"


@pytest.fixture
def node(tmp_path):
    """A node's metrics observing a node audit log."""
    metrics = RoundMetrics("node")
    audit = NodeAudit(tmp_path / "audit.jsonl", signing.generate_signing_key())
    audit.add_observer(metrics.observe_event)
    return metrics, audit


def append(audit: NodeAudit, event: str, **details: object) -> None:
    audit.append(
        event,
        actor="psi-node",
        on_behalf_of="woonbron",
        access_point="test",
        action="E",
        round_id=ROUND,
        details=details,
    )


def value(metrics: RoundMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


class TestNodeCounts:
    def test_rounds_by_state_and_refusals_by_class(self, node):
        """Written results count as completed, refusals as refused and by the check that refused."""
        metrics, audit = node
        append(audit, "results.written", flagged_count=3)
        append(audit, "consent.refused", reason="threshold 1 is below this node's minimum 2")
        append(
            audit,
            "consent.refused",
            reason="the set dropped by more than max_set_change_percent",
            check="max_set_change_percent",
        )
        append(audit, "attack.refused", method="Evaluate", reason="bad chain")
        append(audit, "round.aborted", reason="operator")
        assert value(metrics, "kruispunt_rounds_total", state="completed") == 1
        assert value(metrics, "kruispunt_rounds_total", state="refused") == 2
        assert value(metrics, "kruispunt_rounds_total", state="aborted") == 1
        assert value(metrics, "kruispunt_refusals_total", reason="policy") == 1
        assert value(metrics, "kruispunt_refusals_total", reason="max_set_change_percent") == 1
        assert value(metrics, "kruispunt_refusals_total", reason="attack") == 1

    def test_no_reason_text_becomes_a_label(self, node):
        """A refusal's free text never reaches the exposition; an unknown check is "policy"."""
        metrics, audit = node
        append(audit, "consent.refused", reason="input unusable: column Toev", check="made-up")
        text = generate_latest(metrics.registry).decode()
        assert "Toev" not in text
        assert "made-up" not in text
        assert value(metrics, "kruispunt_refusals_total", reason="policy") == 1

    def test_an_observer_that_raises_never_stops_auditing(self, node):
        """A failing observer is logged; the event is still sealed and stored."""
        metrics, audit = node

        def broken(_event: object) -> None:
            raise RuntimeError("counting failed")

        audit.add_observer(broken)
        append(audit, "results.written", flagged_count=1)
        assert [e.event for e in audit.events()] == ["results.written"]
        assert value(metrics, "kruispunt_rounds_total", state="completed") == 1


class TestPhases:
    def test_timed_records_duration_and_points_once_the_stream_is_out(self):
        """A phase is timed over its whole stream and its points counted per item."""
        metrics = RoundMetrics("node")
        chunks = [(0, b"\x00" * 64, b""), (2, b"\x00" * 32, b""), (3, b"", b"chain")]
        out = list(metrics.timed("evaluate", iter(chunks), lambda c: len(c[1]) // 32))
        assert out == chunks
        assert value(metrics, "kruispunt_points_processed_total", phase="evaluate") == 3
        assert value(metrics, "kruispunt_phase_duration_seconds_count", phase="evaluate") == 1

    def test_a_stream_cut_off_closes_the_phase_and_is_not_timed(self):
        """A consumer that stops early closes the phase's generator at once; no duration."""
        metrics = RoundMetrics("node")
        closed = []

        def phase():
            try:
                yield 1
                yield 2
            finally:
                closed.append(True)

        stream = metrics.timed("blind", phase())
        assert next(stream) == 1
        stream.close()
        assert closed == [True]
        assert value(metrics, "kruispunt_phase_duration_seconds_count", phase="blind") is None

    def test_phase_labels_are_one_word(self):
        """ "evaluate step 2" is counted as evaluate: label values stay a small fixed set."""
        metrics = RoundMetrics("coordinator")
        metrics.observe_phase("evaluate step 2", 1.5)
        metrics.observe_phase("evaluate step 1", 0.5)
        assert value(metrics, "kruispunt_phase_duration_seconds_count", phase="evaluate") == 2
        assert value(metrics, "kruispunt_phase_duration_seconds_sum", phase="evaluate") == 2.0
