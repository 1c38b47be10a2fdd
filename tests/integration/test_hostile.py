"""Hostile and malformed input at every node method: the right gRPC status, an audit event,
never a crash or a hang. Real servers, real mTLS; the client holds the coordinator's
certificate (the only one a node answers)."""

from __future__ import annotations

import contextlib

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kruispunt import pki, transport
from kruispunt.errors import InvalidPoint, ProtocolError, ResourceLimit, UnknownRound
from kruispunt.v1 import common_pb2, node_pb2, node_pb2_grpc
from psi_node import oprf
from psi_node.server import NodeServicer
from tests.support.mallory import Mallory, OpenRound

PARTNERS = ["gemeente", "woonbron", "schuldhulp"]
CANONICAL_POINT = bytes.fromhex("e2f2ae0a6abc4e71a884a961c500515f58e30b6aa582dd8db6a65945e08d2d76")


@pytest.fixture
def net(network_factory):
    n = network_factory(PARTNERS, per_partner=20, overlaps={2: 3})
    n.add_purpose(max_set_size=100)
    return n


def node_stub(net, pid: str) -> tuple[grpc.Channel, node_pb2_grpc.PsiNodeStub]:
    config = net.config
    channel = transport.secure_channel(
        f"127.0.0.1:{net.nodes[pid].port}",
        pki.Identity.partner(config.network, pid),
        key_pem=pki.private_key_pem(pki.load_tls_key(config.tls_key)),
        cert_pem=config.tls_cert.read_bytes(),
        ca_pem=config.tls_ca.read_bytes(),
    )
    return channel, node_pb2_grpc.PsiNodeStub(channel)


def open_round(net, pid: str) -> str:
    """A fresh round every partner consented to, with `pid` past Blind; returns its id."""
    mallory = Mallory(net)
    rnd = mallory.open_round()
    rnd.blind(pid)
    OPEN[rnd.round_id] = (mallory, rnd)
    return rnd.round_id


#: Rounds opened by `open_round`, for tests that need the attacker's view of them.
OPEN: dict[str, tuple[Mallory, OpenRound]] = {}


@pytest.fixture(autouse=True)
def _close_attackers():
    yield
    for mallory, _ in OPEN.values():
        mallory.close()
    OPEN.clear()


def batch(round_id: str, points: bytes, *, origin: str = "", offset: int = 0, chain=b""):
    """A step-1 batch for gemeente: by default of the partner whose route starts there."""
    return common_pb2.PointBatch(
        round_id=round_id,
        origin=origin or first_hop_origin(round_id),
        step=1,
        offset=offset,
        points=points,
        chain=chain,
    )


def first_hop_origin(round_id: str) -> str:
    """The partner whose set gemeente evaluates at step 1 (the ring order's next partner)."""
    partners = OPEN[round_id][1].partners if round_id in OPEN else PARTNERS
    return partners[(partners.index("gemeente") + 1) % len(partners)]


def signed_by_colluding_origin(round_id: str, bad: bytes) -> tuple[bytes, bytes]:
    """The first-hop origin's whole set with its last point replaced by `bad`, signed by
    that origin itself: what a corrupt origin working with the coordinator could send."""
    mallory, rnd = OPEN[round_id]
    origin = first_hop_origin(round_id)
    consent = common_pb2.Consent()
    consent.ParseFromString(rnd.consents[origin].consent)
    points = CANONICAL_POINT * (consent.set_size - 1) + bad
    return points, rnd.origin_chain(origin, points, mallory.colluding_key(origin))


def rejections(net, pid: str) -> list:
    return [e for e in net.nodes[pid].rounds.audit.events() if e.event == "request.rejected"]


class TestEvaluateInput:
    @pytest.mark.parametrize(
        ("case", "code"),
        [
            ("truncated", grpc.StatusCode.INVALID_ARGUMENT),  # not k*32 bytes
            ("non-canonical", grpc.StatusCode.INVALID_ARGUMENT),  # signed, but not an encoding
            ("identity", grpc.StatusCode.INVALID_ARGUMENT),  # signed, but the identity
            ("over-max-set-size", grpc.StatusCode.RESOURCE_EXHAUSTED),  # > max_set_size
        ],
    )
    def test_bad_points_get_a_status_and_an_audit_event(self, net, case, code):
        """Malformed points end the stream with the right status; the node audits it.

        Truncated and oversized batches are refused before any signature is checked;
        a non-canonical point or the identity can only arrive signed by a corrupt
        origin, and is refused when the evaluator decodes it.
        """
        round_id = open_round(net, "gemeente")
        points, chain = {
            "truncated": (b"\x01" * 33, b""),
            "non-canonical": signed_by_colluding_origin(round_id, b"\xff" * 32),
            "identity": signed_by_colluding_origin(round_id, bytes(32)),
            "over-max-set-size": (CANONICAL_POINT * 101, b""),
        }[case]
        channel, stub = node_stub(net, "gemeente")
        with pytest.raises(grpc.RpcError) as err:
            list(stub.Evaluate(iter([batch(round_id, points, chain=chain)]), timeout=20))
        channel.close()
        assert err.value.code() == code
        assert "Traceback" not in (err.value.details() or "")
        events = rejections(net, "gemeente")
        assert events[-1].details["method"] == "Evaluate"
        assert events[-1].round_id == round_id

    def test_unsigned_points_are_refused_as_an_attack(self, net):
        """Well-formed points without the route's signed statements: PERMISSION_DENIED."""
        round_id = open_round(net, "gemeente")
        channel, stub = node_stub(net, "gemeente")
        with pytest.raises(grpc.RpcError) as err:
            list(stub.Evaluate(iter([batch(round_id, CANONICAL_POINT * 3)]), timeout=20))
        channel.close()
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        attacks = [
            e for e in net.nodes["gemeente"].rounds.audit.events() if e.event == "attack.refused"
        ]
        assert attacks[-1].round_id == round_id
        assert attacks[-1].details["method"] == "Evaluate"

    def test_out_of_order_offsets_are_refused(self, net):
        """A batch whose offset skips ahead is a protocol error."""
        round_id = open_round(net, "gemeente")
        channel, stub = node_stub(net, "gemeente")
        with pytest.raises(grpc.RpcError) as err:
            list(stub.Evaluate(iter([batch(round_id, CANONICAL_POINT, offset=5)]), timeout=20))
        channel.close()
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    def test_unknown_round_is_not_found(self, net):
        """Points for a round the node never consented to get NOT_FOUND."""
        channel, stub = node_stub(net, "gemeente")
        with pytest.raises(grpc.RpcError) as err:
            list(
                stub.Evaluate(
                    iter([batch("r20260101T000000-00000000", CANONICAL_POINT)]), timeout=20
                )
            )
        channel.close()
        assert err.value.code() == grpc.StatusCode.NOT_FOUND

    def test_message_over_the_size_limit_is_refused(self, net):
        """A single message over 16 MiB is refused by the transport before any handler."""
        round_id = open_round(net, "gemeente")
        channel, stub = node_stub(net, "gemeente")
        huge = CANONICAL_POINT * (transport.MAX_MESSAGE_BYTES // 32 + 1)
        with pytest.raises(grpc.RpcError) as err:
            list(stub.Evaluate(iter([batch(round_id, huge)]), timeout=30))
        channel.close()
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


class TestOtherMethods:
    def test_finalize_with_the_wrong_count_is_refused(self, net):
        """Finalize with more points than the node's set is a protocol error."""
        round_id = open_round(net, "gemeente")
        channel, stub = node_stub(net, "gemeente")
        with pytest.raises(grpc.RpcError) as err:
            list(
                stub.Finalize(
                    iter([batch(round_id, CANONICAL_POINT * 1000, origin="gemeente")]), timeout=20
                )
            )
        channel.close()
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    def test_deliver_before_finalize_is_refused(self, net):
        """Results for a round that has not finished matching are refused."""
        round_id = open_round(net, "gemeente")
        channel, stub = node_stub(net, "gemeente")
        with pytest.raises(grpc.RpcError) as err:
            stub.Deliver(
                iter(
                    [node_pb2.RoundResults(round_id=round_id, flagged_indices=[0], flagged_count=1)]
                ),
                timeout=20,
            )
        channel.close()
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert not list((net.node_dirs["gemeente"] / "results").iterdir())

    def test_messages_for_an_ended_round_get_not_found(self, net):
        """After a round completes, its id is unknown to every method."""
        summary = net.run()
        channel, stub = node_stub(net, "gemeente")
        for call in (
            lambda: list(stub.Blind(node_pb2.BlindRequest(round_id=summary.round_id), timeout=20)),
            lambda: stub.Commit(common_pb2.RoundRef(round_id=summary.round_id), timeout=20),
        ):
            with pytest.raises(grpc.RpcError) as err:
                call()
            assert err.value.code() == grpc.StatusCode.NOT_FOUND
        channel.close()

    def test_abort_with_a_path_as_round_id_touches_no_file(self, net, tmp_path):
        """Abort never turns a malformed round id into a file name."""
        victim = net.node_dirs["gemeente"] / "results" / ".x.csv.staged"
        victim.write_text("keep me")
        channel, stub = node_stub(net, "gemeente")
        stub.Abort(node_pb2.AbortRequest(round_id="x", reason="bye"), timeout=20)
        stub.Abort(node_pb2.AbortRequest(round_id="../../etc/passwd", reason="x"), timeout=20)
        channel.close()
        assert victim.read_text() == "keep me"

    def test_garbage_manifest_gets_a_signed_refusal(self, net):
        """Bytes that are no manifest get a signed refusal, never a crash."""
        channel, stub = node_stub(net, "gemeente")
        answer = stub.Propose(
            common_pb2.SignedManifest(manifest=b"\x00garbage", signature=b"x" * 64), timeout=20
        )
        channel.close()
        consent = common_pb2.Consent()
        consent.ParseFromString(answer.consent)
        assert not consent.granted

    def test_a_node_sending_malformed_points_fails_the_round_cleanly(self, net):
        """The coordinator fails a round whose node sends a truncated batch, naming the node."""
        rounds = net.nodes["woonbron"].rounds
        rounds.blind = lambda round_id, consents: iter([(0, b"\x01" * 33, b"")])
        summary = net.run()
        assert summary.state == "failed"
        assert "woonbron" in summary.reason
        assert "internal error" not in summary.reason
        for pid in PARTNERS:
            assert net.nodes[pid].rounds.rounds_in_flight() == []

    def test_an_invalid_point_is_blamed_on_the_node_that_signed_it(self, net):
        """A corrupt origin blinds one record to the identity and signs it: the next node
        refuses the point, and the round fails naming the origin, not the honest refuser."""

        def corrupt_blind(records, key):
            return bytes(32) + oprf.blind_inputs(records, key)[32:]

        rounds = net.nodes["woonbron"].rounds
        rounds.blind_chunk = corrupt_blind
        summary = net.run()
        assert summary.state == "failed"
        assert "woonbron signed a batch of woonbron's set holding a point that is not" in (
            summary.reason
        )
        for pid in PARTNERS:
            assert net.nodes[pid].rounds.rounds_in_flight() == []

    def test_a_node_evaluating_with_a_wrong_key_is_named(self, net):
        """A node applies another key than the one its consent commits to (and proves that
        key honestly): the next node refuses the proof before using a point, and the round
        fails naming the evaluator, in the coordinator's log and the refuser's."""
        wrong = oprf.RoundKey.generate()
        rounds = net.nodes["woonbron"].rounds
        honest = rounds.evaluate_chunk
        rounds.evaluate_chunk = lambda key, packed: honest(wrong, packed)
        summary = net.run()
        assert summary.state == "failed"
        blame = "woonbron evaluated"
        assert blame in summary.reason
        assert "with another key than its consent commits to" in summary.reason
        failed = [
            e for e in net.coordinator.audit.events(summary.round_id) if e.event == "round.failed"
        ]
        assert len(failed) == 1
        assert blame in str(failed[0].details)
        refusals = [
            e.details
            for pid in PARTNERS
            if pid != "woonbron"
            for e in net.nodes[pid].rounds.audit.events(round_id=summary.round_id)
            if e.event == "attack.refused"
        ]
        assert refusals
        assert all("woonbron evaluated chunk" in d["reason"] for d in refusals)
        assert all("its proof fails" in d["reason"] for d in refusals)
        for pid in PARTNERS:
            assert net.nodes[pid].rounds.rounds_in_flight() == []

    def test_a_wrong_key_at_the_last_hop_is_named_by_the_origin(self, network_factory):
        """With two partners the only hop is the last: the origin refuses the proof at
        finalize, before it makes a tag, and the round fails naming the evaluator."""
        pair = network_factory(["gemeente", "woonbron"], per_partner=20, overlaps={2: 3})
        pair.add_purpose(max_set_size=100)
        wrong = oprf.RoundKey.generate()
        rounds = pair.nodes["woonbron"].rounds
        honest = rounds.evaluate_chunk
        rounds.evaluate_chunk = lambda key, packed: honest(wrong, packed)
        summary = pair.run()
        assert summary.state == "failed"
        assert "woonbron evaluated gemeente's set at step 1 with another key" in summary.reason
        refusals = [
            e.details["reason"]
            for e in pair.nodes["gemeente"].rounds.audit.events(round_id=summary.round_id)
            if e.event == "attack.refused"
        ]
        assert len(refusals) == 1
        assert "woonbron evaluated chunk 0 of gemeente's set at step 1" in refusals[0]
        assert not [
            e
            for e in pair.nodes["gemeente"].rounds.audit.events(round_id=summary.round_id)
            if e.event == "results.received"
        ]


class FakeContext:
    """Enough of grpc.ServicerContext for calling a servicer without a socket."""

    def peer(self) -> str:
        return "ipv4:127.0.0.1:1"


points_strategy = st.one_of(
    st.binary(max_size=200),
    st.lists(st.sampled_from([CANONICAL_POINT, bytes(32), b"\xff" * 32]), max_size=5).map(b"".join),
)
batch_strategy = st.builds(
    common_pb2.PointBatch,
    round_id=st.one_of(st.text(max_size=40), st.just("")),
    origin=st.sampled_from(["", "woonbron", "gemeente", "nobody", "../x"]),
    step=st.integers(0, 2**32 - 1),
    offset=st.integers(0, 2**64 - 1),
    points=points_strategy,
)


class TestFuzz:
    @settings(
        max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(
        stream=st.lists(batch_strategy, max_size=4),
        results=st.lists(
            st.builds(
                node_pb2.RoundResults,
                round_id=st.text(max_size=30),
                flagged_indices=st.lists(st.integers(0, 2**64 - 1), max_size=5),
                holder_masks=st.lists(st.integers(0, 2**64 - 1), max_size=5),
                flagged_count=st.integers(0, 2**64 - 1),
            ),
            max_size=3,
        ),
        use_open_round=st.booleans(),
    )
    def test_servicer_answers_random_messages_with_domain_errors_only(
        self, net, stream, results, use_open_round
    ):
        """Random streams and results never raise anything but our mapped errors."""
        servicer = NodeServicer(net.nodes["gemeente"].rounds)
        if use_open_round and stream:
            round_id = open_round(net, "gemeente")
            stream = [
                common_pb2.PointBatch(
                    round_id=round_id,
                    origin=b.origin,
                    step=b.step,
                    offset=b.offset,
                    points=b.points,
                )
                for b in stream
            ]
        allowed = (ProtocolError, InvalidPoint, ResourceLimit, UnknownRound)
        for method in (servicer.Evaluate, servicer.Finalize):
            with contextlib.suppress(allowed):
                list(method(iter(stream), FakeContext()))
        with contextlib.suppress(allowed):
            servicer.Deliver(iter(results), FakeContext())
        for rid in net.nodes["gemeente"].rounds.rounds_in_flight():
            net.nodes["gemeente"].rounds.abort(rid, "fuzz example over")

    @settings(
        max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(purpose_id=st.text(max_size=80), reason=st.text(max_size=200))
    def test_coordinator_admin_answers_random_requests_with_domain_errors_only(
        self, net, purpose_id, reason
    ):
        """RunRound with random purpose ids and reasons raises only our errors, never crashes."""
        from coordinator.server import CoordinatorServicer
        from kruispunt.errors import KruispuntError
        from kruispunt.v1 import coordinator_pb2

        servicer = CoordinatorServicer(net.coordinator.runner)
        request = coordinator_pb2.RunRoundRequest(purpose_id=purpose_id, reason=reason)
        with transport.authenticated_as(pki.Identity.operator(net.config.network, "fuzz")):
            try:
                events = list(servicer.RunRound(request, FakeContext()))
            except KruispuntError:
                return
        assert events[-1].HasField("summary")
