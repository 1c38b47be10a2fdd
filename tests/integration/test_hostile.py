"""Hostile and malformed input at every node method: the right gRPC status, an audit event,
never a crash or a hang. Real servers, real mTLS; the client holds the coordinator's
certificate (the only one a node answers)."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kruispunt import pki, signing, transport
from kruispunt.errors import InvalidPoint, ProtocolError, ResourceLimit, UnknownRound
from kruispunt.manifest import new_round_id, sign_manifest
from kruispunt.v1 import common_pb2, node_pb2, node_pb2_grpc
from psi_node.server import NodeServicer

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
    """Propose a fresh round to one node directly (as the coordinator) and return its id."""
    purpose = net.coordinator.store.purpose("vroegsignalering")
    now = datetime.now(UTC)
    signed = sign_manifest(
        signing.load_signing_key(net.config.signing_key),
        round_id=new_round_id(now),
        network=net.config.network,
        purpose=purpose,
        partners=list(purpose.partners),
        now=now,
        ttl_seconds=600,
        initiated_by="operator:test",
    )
    consent = common_pb2.Consent()
    consent.ParseFromString(net.nodes[pid].rounds.propose(signed).consent)
    assert consent.granted, consent.reason
    return consent.round_id


def batch(round_id: str, points: bytes, *, origin: str = "woonbron", offset: int = 0):
    return common_pb2.PointBatch(
        round_id=round_id, origin=origin, step=1, offset=offset, points=points
    )


def rejections(net, pid: str) -> list:
    return [e for e in net.nodes[pid].rounds.audit.events() if e.event == "request.rejected"]


class TestEvaluateInput:
    @pytest.mark.parametrize(
        ("points", "code"),
        [
            (b"\x01" * 33, grpc.StatusCode.INVALID_ARGUMENT),  # truncated: not k*32 bytes
            (b"\xff" * 32, grpc.StatusCode.INVALID_ARGUMENT),  # not a canonical encoding
            (bytes(32), grpc.StatusCode.INVALID_ARGUMENT),  # the identity
            (CANONICAL_POINT * 101, grpc.StatusCode.RESOURCE_EXHAUSTED),  # > max_set_size
        ],
        ids=["truncated", "non-canonical", "identity", "over-max-set-size"],
    )
    def test_bad_points_get_a_status_and_an_audit_event(self, net, points, code):
        """Malformed points end the stream with the right status; the node audits it."""
        round_id = open_round(net, "gemeente")
        channel, stub = node_stub(net, "gemeente")
        with pytest.raises(grpc.RpcError) as err:
            list(stub.Evaluate(iter([batch(round_id, points)]), timeout=20))
        channel.close()
        assert err.value.code() == code
        assert "Traceback" not in (err.value.details() or "")
        events = rejections(net, "gemeente")
        assert events[-1].details["method"] == "Evaluate"
        assert events[-1].round_id == round_id

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
        """Finalize with fewer points than the node's set is a protocol error."""
        round_id = open_round(net, "gemeente")
        channel, stub = node_stub(net, "gemeente")
        list(stub.Blind(common_pb2.RoundRef(round_id=round_id), timeout=20))
        with pytest.raises(grpc.RpcError) as err:
            list(
                stub.Finalize(
                    iter([batch(round_id, CANONICAL_POINT, origin="gemeente")]), timeout=20
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
                node_pb2.RoundResults(round_id=round_id, flagged_indices=[0], flagged_count=1),
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
            lambda: list(stub.Blind(common_pb2.RoundRef(round_id=summary.round_id), timeout=20)),
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
        rounds.blind = lambda round_id: iter([(0, b"\x01" * 33)])
        summary = net.run()
        assert summary.state == "failed"
        assert "woonbron" in summary.reason
        assert "internal error" not in summary.reason
        for pid in PARTNERS:
            assert net.nodes[pid].rounds.rounds_in_flight() == []


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
        results=st.builds(
            node_pb2.RoundResults,
            round_id=st.text(max_size=30),
            flagged_indices=st.lists(st.integers(0, 2**64 - 1), max_size=5),
            holder_masks=st.lists(st.integers(0, 2**64 - 1), max_size=5),
            flagged_count=st.integers(0, 2**64 - 1),
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
            servicer.Deliver(results, FakeContext())
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
