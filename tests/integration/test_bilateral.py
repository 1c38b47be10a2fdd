"""Two-party mode (openmined-psi): end to end over real gRPC + mTLS, and the node in process."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import private_set_intersection.python as psi
import pytest
import structlog

from benchmarks import psi_baseline
from coordinator.modes.bilateral import check_sizes
from kruispunt import pki, psi_limits, signing, transport
from kruispunt.audit.witness import NodeLog, verify_network
from kruispunt.errors import InvalidPoint, KruispuntError, ProtocolError, ResourceLimit, RoundFailed
from kruispunt.identifiers import canonicalize
from kruispunt.manifest import new_round_id, sign_manifest
from kruispunt.payloads import Kind, sign_payload
from kruispunt.purpose import Bilateral, Purpose
from kruispunt.v1 import common_pb2, node_pb2, node_pb2_grpc
from psi_node.audit import cross_check
from psi_node.modes import bilateral
from psi_node.results import result_digest
from psi_node.rounds import RoundManager
from tests.support.network import TestNetwork
from tests.support.synthetic import make_network

CLIENT, SERVER = "gemeente", "woonbron"
PARTNERS = [CLIENT, SERVER]
PURPOSE = "vroegsignalering"


def bilateral_network(factory: Any, *, per_partner: int = 40, overlap: int = 9, **kw: Any) -> Any:
    """A two-node network whose sets share `overlap` identifiers."""
    return factory(
        PARTNERS,
        per_partner=per_partner,
        overlaps={2: overlap},
        bilateral_roles={CLIENT: "client", SERVER: "server"},
        **kw,
    )


def add_bilateral(net: TestNetwork, **settings: Any) -> Purpose:
    """Register the test purpose in bilateral mode, client gemeente, server woonbron."""
    disclosure = settings.pop("disclosure", "partners")
    table = {"client_partner": CLIENT, "server_partner": SERVER, **settings}
    purpose: Purpose = net.add_purpose(
        PURPOSE, mode="bilateral", bilateral=table, disclosure=disclosure
    )
    return purpose


def shared_ids(net: TestNetwork) -> set[bytes]:
    """Ground truth: the client's canonical identifiers the server holds too."""
    assert net.data is not None
    return {cid for cid in net.data.ids[CLIENT] if SERVER in net.data.truth[cid]}


def result_rows(net: TestNetwork, pid: str, round_id: str) -> list[dict[str, str]]:
    path = net.node_dirs[pid] / "results" / f"{round_id}.csv"
    with path.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter=";"))


def row_ids(net: TestNetwork, rows: list[dict[str, str]]) -> set[bytes]:
    assert net.data is not None
    kind = net.data.kind
    fields = ("bsn",) if kind == "bsn" else ("postcode", "huisnummer", "huisletter", "toevoeging")
    return {canonicalize(kind, {f: r.get(f, "") for f in fields}) for r in rows}


def result_files(net: TestNetwork, pid: str) -> list[str]:
    folder = net.node_dirs[pid] / "results"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def metadata(net: TestNetwork, pid: str, round_id: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (net.node_dirs[pid] / "results" / f"{round_id}.json").read_text(encoding="utf-8")
    )
    return data


class TestBilateralRound:
    @pytest.mark.parametrize(
        ("structure", "kind"), [("gcs", "bsn"), ("raw", "bsn"), ("gcs", "address")]
    )
    def test_client_learns_exactly_the_intersection(self, network_factory, structure, kind):
        """The client's results file lists exactly its records the server holds, GCS or raw."""
        net = bilateral_network(network_factory, kind=kind)
        add_bilateral(net, data_structure=structure)
        summary = net.run(PURPOSE)
        assert summary.state == "completed", summary.reason
        rows = result_rows(net, CLIENT, summary.round_id)
        assert row_ids(net, rows) == shared_ids(net)
        assert len(rows) == 9
        assert all(r["partners"] == SERVER for r in rows)
        by_partner = {p.partner_id: p for p in summary.partners}
        assert by_partner[CLIENT].flagged_count == 9
        assert by_partner[SERVER].flagged_count == 0
        assert by_partner[CLIENT].set_size == by_partner[SERVER].set_size == 40
        meta = metadata(net, CLIENT, summary.round_id)
        assert meta["role"] == "client"
        assert meta["flagged_count"] == 9
        assert meta["data_structure"] == structure
        path = net.node_dirs[CLIENT] / "results" / f"{summary.round_id}.csv"
        assert meta["result_sha256"] == result_digest(path, meta["result_digest_salt"]).hex()
        # Salted: the bare hash of the file (guessable from one row) is not what leaves it.
        assert meta["result_sha256"] != hashlib.sha256(path.read_bytes()).hexdigest()

    def test_disclosure_count_leaves_out_the_partners_column(self, network_factory):
        """With disclosure 'count' the client's rows do not name the server."""
        net = bilateral_network(network_factory, per_partner=20, overlap=4)
        add_bilateral(net, disclosure="count")
        summary = net.run(PURPOSE)
        assert summary.state == "completed", summary.reason
        rows = result_rows(net, CLIENT, summary.round_id)
        assert len(rows) == 4
        assert "partners" not in rows[0]

    @pytest.mark.parametrize("structure", ["gcs", "raw"])
    def test_size_only_writes_only_the_count(self, network_factory, structure):
        """A size-only purpose leaves the client a metadata file with the count and no rows."""
        net = bilateral_network(network_factory, per_partner=30, overlap=7)
        add_bilateral(net, size_only=True, data_structure=structure)
        summary = net.run(PURPOSE)
        assert summary.state == "completed", summary.reason
        assert result_files(net, CLIENT) == [f"{summary.round_id}.json"]
        meta = metadata(net, CLIENT, summary.round_id)
        assert meta["flagged_count"] == 7
        assert meta["size_only"] is True
        client = next(p for p in summary.partners if p.partner_id == CLIENT)
        assert client.flagged_count == 7
        assert client.result_path.endswith(f"{summary.round_id}.json")

    def test_server_result_holds_no_rows(self, network_factory):
        """The server gets one metadata file: round, purpose and the client's set size only."""
        net = bilateral_network(network_factory, per_partner=25, overlap=5)
        add_bilateral(net)
        summary = net.run(PURPOSE)
        assert summary.state == "completed", summary.reason
        assert result_files(net, SERVER) == [f"{summary.round_id}.json"]
        meta = metadata(net, SERVER, summary.round_id)
        assert meta["round_id"] == summary.round_id
        assert meta["purpose"] == PURPOSE
        assert meta["role"] == "server"
        assert meta["client_set_size"] == 25
        assert "flagged_count" not in meta
        text = json.dumps(meta).encode()
        assert net.data is not None
        assert not [cid for cid in net.data.ids[SERVER] if cid.split(b":", 1)[1] in text]

    def test_audit_trail_at_both_ends_agrees(self, network_factory):
        """Coordinator and nodes log the round; the cross-check finds no disagreement."""
        net = bilateral_network(network_factory, per_partner=20, overlap=3)
        add_bilateral(net)
        summary = net.run(PURPOSE)
        assert summary.state == "completed", summary.reason
        events = net.coordinator.audit.events(summary.round_id)
        names = [e.event for e in events]
        assert names[0] == "round.created"
        assert events[0].details["mode"] == "bilateral"
        given = {
            e.details["partner"]: e.details["set_size"]
            for e in events
            if e.event == "consent.given"
        }
        assert given == {CLIENT: 20, SERVER: 20}
        delivered = {
            e.details["partner"]: e.details["flagged_count"]
            for e in events
            if e.event == "results.delivered"
        }
        assert delivered == {CLIENT: 3, SERVER: 0}
        assert names[-1] == "round.completed"
        for pid in PARTNERS:
            node_events = net.nodes[pid].rounds.audit.events(summary.round_id)
            node_names = {e.event for e in node_events}
            assert {"consent.given", "records.sent", "results.written"} <= node_names
            assert cross_check(node_events, events, partner=pid, rounds=[summary.round_id]) == []
        # The officer's check trusting neither side: chains, heads kept, per-round fields.
        logs = [
            NodeLog(
                pid, net.nodes[pid].rounds.audit.events(), net.nodes[pid].rounds.audit.public_key
            )
            for pid in PARTNERS
        ]
        audit = net.coordinator.audit
        report = verify_network(audit.events(), audit.public_key, logs)
        assert report.ok, report.describe()
        assert report.witnessed_heads == 2

    def test_refusal_ends_cleanly(self, network_factory):
        """A server that refuses ends the round as refused: nothing sent, nothing written."""
        net = bilateral_network(network_factory, per_partner=15, overlap=3)
        add_bilateral(net)
        (net.node_dirs[SERVER] / "input.csv").unlink()
        summary = net.run(PURPOSE)
        assert summary.state == "refused"
        assert SERVER in summary.reason
        for pid in PARTNERS:
            assert result_files(net, pid) == []
            assert net.nodes[pid].rounds.rounds_in_flight() == []
            sent = [
                e
                for e in net.nodes[pid].rounds.audit.events(summary.round_id)
                if e.event == "records.sent"
            ]
            assert sent == []
        refused = [
            e.details["partner"]
            for e in net.coordinator.audit.events(summary.round_id)
            if e.event == "consent.refused"
        ]
        assert refused == [SERVER]

    def test_gcs_overflow_fails_before_any_record_moves(self, network_factory):
        """A rate too small for GCS at these sizes fails the round after consent, nothing sent."""
        net = bilateral_network(network_factory, per_partner=15, overlap=3)
        add_bilateral(net, false_positive_rate=1e-17)
        summary = net.run(PURPOSE)
        assert summary.state == "failed"
        assert "raise the rate" in summary.reason
        for pid in PARTNERS:
            assert result_files(net, pid) == []
            assert net.nodes[pid].rounds.rounds_in_flight() == []
            names = {e.event for e in net.nodes[pid].rounds.audit.events(summary.round_id)}
            assert "records.sent" not in names

    def test_node_down_fails_the_round_with_its_name(self, network_factory):
        """A server that is down fails the round naming it; the client keeps no results."""
        net = bilateral_network(network_factory, per_partner=15, overlap=3)
        add_bilateral(net)
        net.stop_node(SERVER)
        summary = net.run(PURPOSE)
        assert summary.state == "failed"
        assert SERVER in summary.reason
        assert result_files(net, CLIENT) == []
        assert net.nodes[CLIENT].rounds.rounds_in_flight() == []

    def test_no_identifier_reaches_the_coordinator(self, network_factory):
        """After a round no identifier, canonical form or digest is in coordinator files or logs."""
        from kruispunt.logs import configure_logging

        saved = structlog.get_config()
        stream = io.StringIO()
        configure_logging(json=True, level="debug", stream=stream)
        try:
            net = bilateral_network(network_factory, per_partner=30, overlap=6)
            add_bilateral(net)
            summary = net.run(PURPOSE)
            assert summary.state == "completed", summary.reason
            net.close()
        finally:
            structlog.configure(**saved)
        assert net.data is not None
        needles: set[bytes] = set()
        for pid in PARTNERS:
            for row, cid in zip(net.data.rows[pid], net.data.ids[pid], strict=True):
                needles.add(row["bsn"].strip().encode())
                needles.add(cid)
                needles.add(cid.split(b":")[-1])
                needles.add(hashlib.sha256(cid).hexdigest().encode())
                needles.add(hashlib.sha256(cid).digest())
        haystacks = {str(p): p.read_bytes() for p in net.coordinator_dir.rglob("*") if p.is_file()}
        for pid in PARTNERS:
            path = net.node_dirs[pid] / "audit" / "node-audit.jsonl"
            haystacks[str(path)] = path.read_bytes()
        haystacks["log output"] = stream.getvalue().encode()
        assert b'"mode": "bilateral", "partners"' in haystacks["log output"]
        assert b'"event": "round completed"' in haystacks["log output"]
        for name, hay in haystacks.items():
            leaked = [n for n in needles if len(n) >= 8 and n in hay]
            assert not leaked, f"identifier material found in {name}"


# -- the node's side, in process ----------------------------------------------------------


def consent_round(net: TestNetwork, purpose: Purpose) -> str:
    """Sign a manifest with the coordinator's key and have both nodes consent to it."""
    now = datetime.now(UTC)
    round_id = new_round_id(now)
    signed = sign_manifest(
        signing.load_signing_key(net.config.signing_key),
        round_id=round_id,
        network=net.config.network,
        purpose=purpose,
        partners=list(PARTNERS),
        now=now,
        ttl_seconds=600,
        initiated_by="operator:test",
        roster_sha256=net.roster_sha256,
    )
    for pid in PARTNERS:
        answer = manager(net, pid).propose(signed)
        consent = common_pb2.Consent()
        consent.ParseFromString(answer.consent)
        assert consent.granted, consent.reason
    return round_id


def manager(net: TestNetwork, pid: str) -> RoundManager:
    return net.nodes[pid].rounds


def exchange_to_setup(
    net: TestNetwork, round_id: str
) -> tuple[node_pb2.BilateralPayload, node_pb2.BilateralPayload, node_pb2.BilateralPayload]:
    """Run steps 1-3 in process: (request, response, setup)."""
    req = bilateral.request(manager(net, CLIENT), round_id)
    resp = bilateral.response(manager(net, SERVER), req)
    setup = bilateral.setup(manager(net, SERVER), round_id)
    return req, resp, setup


def signed_by(
    net: TestNetwork, round_id: str, sender: str, kind: Kind, payload: bytes, set_size: int
) -> bytes:
    """`sender`'s own signature over a payload: a malformed payload from a corrupt node,
    which the structural checks must still refuse."""
    return sign_payload(
        signing.load_signing_key(net.node_config(sender).signing_key),
        round_id=round_id,
        manifest_sha256=manager(net, sender).get_round(round_id).verified.sha256,
        sender=sender,
        kind=kind,
        payload=payload,
        set_size=set_size,
    )


def parsed_setup(payload: bytes) -> Any:
    message = psi.ServerSetup()
    message.ParseFromString(payload)
    return message


class TestBilateralNode:
    @pytest.mark.parametrize("fpr", [1e-6, 1e-9])
    def test_gcs_setup_honours_the_false_positive_rate(self, network_factory, fpr):
        """The GCS hash range is max(c, s) * c / fpr: smaller rates cost more bits."""
        net = bilateral_network(network_factory, per_partner=40, overlap=9)
        purpose = add_bilateral(net, false_positive_rate=fpr)
        round_id = consent_round(net, purpose)
        _req, _resp, setup = exchange_to_setup(net, round_id)
        message = parsed_setup(setup.payload)
        assert message.HasField("gcs")
        assert not message.HasField("raw")
        assert message.gcs.hash_range == psi_limits.gcs_hash_range(40, 40, fpr)
        assert abs(message.gcs.hash_range - 40 * 40 / fpr) <= 40 * 40 / fpr * 1e-9
        # Each element costs about log2(hash_range / s) + 2 bits in the Golomb code.
        bits_per_record = len(message.gcs.bits) * 8 / 40
        expected = int(40 / fpr).bit_length() + 2
        assert expected - 4 <= bits_per_record <= expected + 2

    def test_raw_setup_lists_every_server_record(self, network_factory):
        """A raw setup carries exactly one 33-byte element per server record."""
        net = bilateral_network(network_factory, per_partner=30, overlap=5)
        purpose = add_bilateral(net, data_structure="raw")
        round_id = consent_round(net, purpose)
        _req, _resp, setup = exchange_to_setup(net, round_id)
        message = parsed_setup(setup.payload)
        assert not message.HasField("gcs")
        assert len(message.raw.encrypted_elements) == 30
        assert {len(e) for e in message.raw.encrypted_elements} == {33}
        assert setup.set_size == 30

    def test_server_learns_only_the_client_set_size(self, network_factory):
        """The request the server sees has one point per client record and nothing else."""
        net = bilateral_network(network_factory, per_partner=30, overlap=5)
        purpose = add_bilateral(net)
        round_id = consent_round(net, purpose)
        req = bilateral.request(manager(net, CLIENT), round_id)
        message = psi.Request()
        message.ParseFromString(req.payload)
        assert req.set_size == len(message.encrypted_elements) == 30
        assert net.data is not None
        assert not [cid for cid in net.data.ids[CLIENT] if cid in req.payload]

    def test_malformed_requests_are_invalid_argument(self, network_factory):
        """Garbage, wrong counts, bad points and oversized requests get a clear error each."""
        net = bilateral_network(network_factory, per_partner=20, overlap=3)
        purpose = add_bilateral(net)
        round_id = consent_round(net, purpose)
        server = manager(net, SERVER)
        good = bilateral.request(manager(net, CLIENT), round_id)

        def answer(payload: bytes, set_size: int = 20) -> None:
            bilateral.response(
                server,
                node_pb2.BilateralPayload(
                    round_id=round_id,
                    payload=payload,
                    set_size=set_size,
                    signature=signed_by(net, round_id, CLIENT, "request", payload, set_size),
                ),
            )

        with pytest.raises(ProtocolError, match="does not parse"):
            answer(b"\xff\xff\xff")
        with pytest.raises(ProtocolError, match="carries 20 elements, expected 19"):
            answer(good.payload, 19)
        with pytest.raises(ProtocolError, match="larger than its set size"):
            answer(good.payload, 1)
        with pytest.raises(ResourceLimit):
            answer(good.payload, purpose.max_set_size + 1)
        with pytest.raises(ProtocolError, match="at least 1"):
            answer(good.payload, 0)
        bad = psi.Request()
        bad.ParseFromString(good.payload)
        bad.encrypted_elements[3] = b"\x02" + b"\xff" * 32  # not on the curve
        with pytest.raises(InvalidPoint):
            answer(bad.SerializeToString())
        bad.encrypted_elements[3] = b"\x02" * 12  # wrong length
        with pytest.raises(InvalidPoint):
            answer(bad.SerializeToString())
        bad.ParseFromString(good.payload)
        bad.reveal_intersection = False
        with pytest.raises(ProtocolError, match="another disclosure"):
            answer(bad.SerializeToString())
        for exc in (ProtocolError("x"), InvalidPoint()):
            assert exc.status == grpc.StatusCode.INVALID_ARGUMENT
        # None of that consumed the round: the genuine request is still answered.
        answer(good.payload)

    def test_malformed_setups_never_reach_the_library(self, network_factory):
        """A setup that would crash or mislead openmined-psi is refused before it is used."""
        net = bilateral_network(network_factory, per_partner=20, overlap=3)
        purpose = add_bilateral(net)
        round_id = consent_round(net, purpose)
        client = manager(net, CLIENT)
        _req, resp, setup = exchange_to_setup(net, round_id)

        def result(setup_bytes: bytes, response: bytes = resp.payload) -> Any:
            return bilateral.result(
                client,
                node_pb2.BilateralExchange(
                    round_id=round_id,
                    setup=setup_bytes,
                    response=response,
                    response_signature=signed_by(
                        net, round_id, SERVER, "response", response, resp.set_size
                    ),
                    setup_signature=signed_by(
                        net, round_id, SERVER, "setup", setup_bytes, setup.set_size
                    ),
                    server_set_size=setup.set_size,
                ),
            )

        def tampered(**changes: Any) -> bytes:
            message = parsed_setup(setup.payload)
            for name, value in changes.items():
                setattr(message.gcs, name, value)
            return bytes(message.SerializeToString())

        # hash_range 0 aborts the whole process inside the library: it must never get there.
        with pytest.raises(ProtocolError, match="hash range"):
            result(tampered(hash_range=0))
        with pytest.raises(ProtocolError, match="hash range"):
            result(tampered(hash_range=1000))  # a weaker rate than the purpose promises
        with pytest.raises(ProtocolError, match="Golomb"):
            result(tampered(div=200))
        raw = psi.ServerSetup()
        raw.raw.encrypted_elements.append(b"\x02" * 33)
        with pytest.raises(ProtocolError, match="'gcs' structure"):
            result(raw.SerializeToString())
        with pytest.raises(ProtocolError, match="does not parse"):
            result(b"\x0a\xff")
        short = psi.Response()
        short.ParseFromString(resp.payload)
        del short.encrypted_elements[0]
        with pytest.raises(ProtocolError, match="expected 20"):
            result(setup.payload, short.SerializeToString())
        short.ParseFromString(resp.payload)
        short.encrypted_elements[0] = b"\x03" + b"\xff" * 32
        with pytest.raises(InvalidPoint):
            result(setup.payload, short.SerializeToString())
        # Truncated Golomb bits are padded, not over-read: a wrong answer at worst, no crash.
        truncated = parsed_setup(setup.payload)
        truncated.gcs.bits = truncated.gcs.bits[:3]
        receipt = result(truncated.SerializeToString())
        assert receipt.flagged_count <= 20

    def test_roles_and_order_are_enforced(self, network_factory):
        """Each call runs only at its role, once, in protocol order."""
        net = bilateral_network(network_factory, per_partner=10, overlap=2)
        purpose = add_bilateral(net)
        round_id = consent_round(net, purpose)
        client, server = manager(net, CLIENT), manager(net, SERVER)
        with pytest.raises(ProtocolError, match="not the bilateral client"):
            bilateral.request(server, round_id)
        with pytest.raises(ProtocolError, match="phase"):
            bilateral.setup(server, round_id)  # no request answered yet
        req = bilateral.request(client, round_id)
        with pytest.raises(ProtocolError, match="phase"):
            bilateral.request(client, round_id)
        with pytest.raises(ProtocolError, match="not the bilateral server"):
            bilateral.response(client, req)
        bilateral.response(server, req)
        with pytest.raises(ProtocolError, match="phase"):
            bilateral.response(server, req)  # one request per round, never a second query
        with pytest.raises(KruispuntError, match="no such round"):
            bilateral.request(client, "r20990101T000000-00000000")

    def test_abort_removes_staged_results_and_state(self, network_factory):
        """Aborting after the server staged leaves no file and no round at either node."""
        net = bilateral_network(network_factory, per_partner=10, overlap=2)
        purpose = add_bilateral(net)
        round_id = consent_round(net, purpose)
        exchange_to_setup(net, round_id)
        assert result_files(net, SERVER) == [f".{round_id}.json.staged"]
        for pid in PARTNERS:
            assert manager(net, pid).abort(round_id, "test")
            assert manager(net, pid).rounds_in_flight() == []
            assert result_files(net, pid) == []

    def test_commit_publishes_metadata_only_at_the_server(self, network_factory):
        """Commit renames the server's staged metadata into place and reports that path."""
        net = bilateral_network(network_factory, per_partner=10, overlap=2)
        purpose = add_bilateral(net)
        round_id = consent_round(net, purpose)
        exchange_to_setup(net, round_id)
        receipt = manager(net, SERVER).commit(round_id)
        assert receipt.flagged_count == 0
        assert Path(receipt.result_path).name == f"{round_id}.json"
        assert result_files(net, SERVER) == [f"{round_id}.json"]

    def test_malformed_request_over_grpc_is_invalid_argument(self, network_factory):
        """Over mTLS, a garbage request reaches the coordinator as INVALID_ARGUMENT."""
        net = bilateral_network(network_factory, per_partner=10, overlap=2)
        purpose = add_bilateral(net)
        round_id = consent_round(net, purpose)
        config = net.config
        channel = transport.secure_channel(
            f"127.0.0.1:{net.nodes[SERVER].port}",
            pki.Identity.partner(config.network, SERVER),
            key_pem=config.tls_key.read_bytes(),
            cert_pem=config.tls_cert.read_bytes(),
            ca_pem=config.tls_ca.read_bytes(),
        )
        stub = node_pb2_grpc.PsiNodeStub(channel)
        try:
            garbage = b"\xff\x01"  # signed by a corrupt client, so only the parse refuses it
            message = node_pb2.BilateralPayload(
                round_id=round_id,
                payload=garbage,
                set_size=10,
                signature=signed_by(net, round_id, CLIENT, "request", garbage, 10),
            )
            with pytest.raises(grpc.RpcError) as err:
                stub.BilateralResponse(message, timeout=10)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "does not parse" in err.value.details()
        finally:
            channel.close()


class TestSizeLimits:
    def test_gcs_hash_range_overflow_is_refused(self):
        """Sets and rate whose GCS hash range passes 2^62 are refused at both ends."""
        settings = Bilateral(CLIENT, SERVER, false_positive_rate=1e-9)
        check_sizes(settings, 60_000, 60_000)
        with pytest.raises(RoundFailed, match="raise the rate"):
            check_sizes(settings, 100_000, 100_000)
        with pytest.raises(ResourceLimit):
            psi_limits.check_gcs_fits(100_000, 100_000, 1e-9)
        raw = Bilateral(CLIENT, SERVER, false_positive_rate=1e-9, data_structure="raw")
        check_sizes(raw, 100_000, 100_000)

    def test_exchange_larger_than_one_message_is_refused(self):
        """A raw exchange beyond the gRPC message limit fails with a clear reason."""
        raw = Bilateral(CLIENT, SERVER, data_structure="raw")
        with pytest.raises(RoundFailed, match="use a network round"):
            check_sizes(raw, 300_000, 300_000)


class TestBaseline:
    @pytest.mark.parametrize("structure", ["gcs", "raw"])
    def test_openmined_baseline_counts_the_intersection(self, structure):
        """The in-process comparison finds the planted intersection size."""
        data = make_network(["a", "b"], 200, {2: 37}, 11, kind="bsn")
        size = psi_baseline.intersection_size(data.ids["a"], data.ids["b"], 1e-9, structure)
        assert size == 37
