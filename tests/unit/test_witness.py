"""kruispunt.audit.witness: two logs held against each other, on hand-built chains."""

from __future__ import annotations

from datetime import UTC, datetime

from kruispunt import signing
from kruispunt.audit import (
    GENESIS_HASH,
    AuditEvent,
    ChainHead,
    head_from_proto,
    head_to_proto,
    seal,
)
from kruispunt.audit.witness import NodeLog, verify_network
from kruispunt.v1 import common_pb2

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
ROUND = "r20260105T090000-0000abcd"


class Chain:
    """A log under construction, sealed with a fresh key."""

    def __init__(self, actor: str) -> None:
        self.key = signing.generate_signing_key()
        self.actor = actor
        self.events: list[AuditEvent] = []

    @property
    def head(self) -> ChainHead | None:
        return self.events[-1].head if self.events else None

    def add(self, event: str, round_id: str = ROUND, **details: object) -> AuditEvent:
        head = self.head
        sealed = seal(
            seq=1 if head is None else head.seq + 1,
            prev_hash=GENESIS_HASH if head is None else head.hash,
            time=NOW,
            event=event,
            actor=self.actor,
            on_behalf_of=self.actor,
            access_point="test",
            action="E",
            basis="",
            round_id=round_id,
            details=details,
            signing_key=self.key,
        )
        self.events.append(sealed)
        return sealed


def a_round() -> tuple[Chain, Chain]:
    """A coordinator and node `aa` that logged one round consistently, heads exchanged."""
    coord, node = Chain("coordinator"), Chain("aa")
    coord.add("coordinator.initialised", round_id="")
    witnessed = coord.head
    assert witnessed is not None
    coord.add(
        "round.created",
        manifest_sha256="ab" * 32,
        purpose_version=1,
        partners=["aa", "bb"],
        threshold=2,
    )
    node.add(
        "manifest.seen",
        manifest_sha256="ab" * 32,
        purpose_version=1,
        partners=["aa", "bb"],
        threshold=2,
        coordinator_head=witnessed.as_details(),
    )
    node.add("consent.given", set_size=10)
    assert node.head is not None
    coord.add("consent.given", partner="aa", set_size=10, node_head=node.head.as_details())
    coord.add("set_sizes", set_sizes={"aa": 10, "bb": 12})
    node.add("records.sent", set_size=10)
    node.add("results.written", flagged_count=3, result_sha256="cd" * 32)
    assert node.head is not None
    coord.add(
        "results.delivered",
        partner="aa",
        flagged_count=3,
        result_sha256="cd" * 32,
        node_head=node.head.as_details(),
    )
    return coord, node


def check(coord: Chain, node: Chain, node_events: list[AuditEvent] | None = None):
    log = NodeLog("aa", node.events if node_events is None else node_events, node.key.public_key())
    return verify_network(coord.events, coord.key.public_key(), [log])


class TestVerifyNetwork:
    def test_consistent_logs_verify(self):
        """Intact chains whose heads each lie on the other and whose rounds agree verify."""
        report = check(*a_round())
        assert report.ok, report.describe()
        assert (report.witnessed_heads, report.node_heads, report.rounds) == (1, 2, 1)

    def test_a_cut_coordinator_log_lacks_the_witnessed_head(self):
        """A coordinator log that ends before the head a node kept fails on that head."""
        coord, node = a_round()
        coord.events = coord.events[:0]
        report = check(coord, node)
        assert not report.ok
        witnessed = [p for p in report.problems if p.kind == "witnessed_head"]
        assert witnessed
        assert "lacks event 1" in witnessed[0].detail

    def test_a_cut_node_log_lacks_the_recorded_head(self):
        """A node log cut after the head the coordinator recorded fails on that head."""
        coord, node = a_round()
        report = check(coord, node, node.events[:-1])
        assert [p.kind for p in report.problems][:1] == ["node_head"]
        assert "tail cut off" in report.problems[0].detail

    def test_a_forged_signature_is_a_chain_problem(self):
        """An event re-signed with zeros breaks the chain at that event."""
        coord, node = a_round()
        bad = coord.events[1]
        coord.events[1] = AuditEvent(**{**_fields(bad), "signature": "00" * 64})
        report = check(coord, node)
        assert report.problems[0].kind == "chain"
        assert "BROKEN at event 2" in report.problems[0].detail

    def test_a_disagreeing_count_names_round_field_and_both_values(self):
        """A coordinator that logs another flagged count is named with both values."""
        coord, node = a_round()
        coord.events.pop()
        assert node.head is not None
        coord.add(
            "results.delivered",
            partner="aa",
            flagged_count=4,
            result_sha256="cd" * 32,
            node_head=node.head.as_details(),
        )
        report = check(coord, node)
        (problem,) = report.problems
        assert (problem.where, problem.field, problem.node, problem.coordinator) == (
            ROUND,
            "flagged_count",
            3,
            4,
        )
        assert "flagged_count" in report.describe()

    def test_a_consent_the_node_never_gave_is_a_disagreement(self):
        """A coordinator log claiming a consent for a round the node never saw disagrees."""
        coord, node = a_round()
        coord.add("consent.given", round_id="r20260106T090000-0000abcd", partner="aa", set_size=1)
        report = check(coord, node)
        assert {(p.field, p.node, p.coordinator) for p in report.problems} >= {
            ("consent", None, "given")
        }

    def test_a_deletion_of_results_never_written_disagrees(self):
        """A node log deleting results of a round it never wrote is named as a deletion."""
        coord, node = a_round()
        node.add("results.deleted", round_id="r20260107T090000-0000abcd", reason="retention")
        report = check(coord, node)
        assert [p.field for p in report.problems] == ["deleted"]


def _fields(event: AuditEvent) -> dict[str, object]:
    return {name: getattr(event, name) for name in AuditEvent.__dataclass_fields__}


class TestHeads:
    def test_a_head_round_trips_through_the_wire_and_details(self):
        """A head survives the wire message and the audit details form unchanged."""
        head = ChainHead(7, "ef" * 32)
        assert head_from_proto(head_to_proto(head)) == head
        assert ChainHead.from_details(head.as_details()) == head

    def test_an_empty_or_malformed_head_is_none(self):
        """Seq 0 (an empty chain), a short hash or a non-mapping hold no head."""
        assert head_from_proto(head_to_proto(None)) is None
        assert head_from_proto(common_pb2.AuditHead(seq=3, hash=b"short")) is None
        assert ChainHead.from_details({"seq": 0, "hash": GENESIS_HASH}) is None
        assert ChainHead.from_details({"seq": True, "hash": "ef" * 32}) is None
        assert ChainHead.from_details({"seq": 2, "hash": "EF" * 32}) is None
        assert ChainHead.from_details("7:abc") is None


class TestRefusals:
    def test_a_rejected_manifest_agrees_with_the_coordinators_refusal(self):
        """A node that rejected a manifest (signed refusal) agrees with consent.refused."""
        coord, node = a_round()
        later = "r20260108T090000-0000abcd"
        node.add("manifest.rejected", round_id=later, reason="manifest has expired")
        assert node.head is not None
        coord.add(
            "consent.refused",
            round_id=later,
            partner="aa",
            reason="manifest has expired",
            node_head=node.head.as_details(),
        )
        report = check(coord, node)
        assert report.ok, report.describe()


DELETED = {"result_sha256": "cd" * 32, "deleted_at": "2026-02-02T09:00:00+00:00"}


def deleted_at_node(node: Chain) -> AuditEvent:
    """Node `aa` deletes the round's results and logs what its receipt says."""
    return node.add("results.deleted", reason="retention period ended", files=2, **DELETED)


class TestDeletions:
    def test_a_received_receipt_agrees(self):
        """The coordinator's deletion.received matching the node's deletion verifies."""
        coord, node = a_round()
        event = deleted_at_node(node)
        coord.add("deletion.received", partner="aa", node_head=event.head.as_details(), **DELETED)
        report = check(coord, node)
        assert report.problems == ()
        assert report.pending_deletions == 0

    def test_a_deletion_after_the_last_contact_is_pending(self):
        """Deleted after the newest node head the coordinator holds: pending, no problem."""
        coord, node = a_round()
        deleted_at_node(node)
        report = check(coord, node)
        assert report.ok
        assert report.pending_deletions == 1
        assert "1 deletion(s) logged by a node since its last contact" in report.describe()

    def test_a_deletion_missing_after_a_later_contact_disagrees(self):
        """The coordinator heard from the node after its deletion and has no receipt."""
        coord, node = a_round()
        deleted_at_node(node)
        node.add("consent.given", round_id="r20260203T090000-0000abcd", set_size=10)
        assert node.head is not None
        coord.add(
            "consent.given",
            round_id="r20260203T090000-0000abcd",
            partner="aa",
            set_size=10,
            node_head=node.head.as_details(),
        )
        report = check(coord, node)
        deleted = [p for p in report.problems if p.field == "deleted"]
        assert [(p.where, p.node, p.coordinator) for p in deleted] == [(ROUND, DELETED, None)]
        assert report.pending_deletions == 0

    def test_a_receipt_of_another_time_disagrees(self):
        """A receipt whose deletion time is not the node's is named, both values shown."""
        coord, node = a_round()
        event = deleted_at_node(node)
        other = {**DELETED, "deleted_at": "2026-01-06T09:00:00+00:00"}
        coord.add("deletion.received", partner="aa", node_head=event.head.as_details(), **other)
        (problem,) = check(coord, node).problems
        assert (problem.field, problem.node, problem.coordinator) == ("deleted", DELETED, other)
