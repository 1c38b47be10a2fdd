"""End to end: real node and coordinator servers over mTLS on loopback, real set-up flow."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import grpc
import pytest
import structlog

from kruispunt import pki, transport
from kruispunt.identifiers import canonicalize
from kruispunt.logs import configure_logging
from kruispunt.v1 import common_pb2, coordinator_pb2, coordinator_pb2_grpc, node_pb2_grpc
from tests.support.network import TestNetwork

PARTNERS = ["gemeente", "woonbron", "zayaz", "schuldhulp"]


def result_ids(net: TestNetwork, pid: str, round_id: str) -> set[bytes]:
    """Canonical identifiers in a node's published result file."""
    path = net.node_dirs[pid] / "results" / f"{round_id}.csv"
    with path.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter=";"))
    assert net.data is not None
    fields = (
        ("bsn",)
        if net.data.kind == "bsn"
        else ("postcode", "huisnummer", "huisletter", "toevoeging")
    )
    return {canonicalize(net.data.kind, {f: r.get(f, "") for f in fields}) for r in rows}


def expected_ids(net: TestNetwork, pid: str, threshold: int) -> set[bytes]:
    assert net.data is not None
    return {net.data.ids[pid][i] for i in net.data.flagged_for(pid, threshold)}


class TestMatchingRound:
    @pytest.mark.parametrize("threshold", [2, 3, 4])
    def test_round_flags_exactly_the_planted_households(self, network_factory, threshold):
        """A 4-node round finds exactly the households held by >= t partners, at every node."""
        net = network_factory(PARTNERS, per_partner=50, overlaps={2: 6, 3: 4, 4: 3})
        net.add_purpose(threshold=threshold)
        summary = net.run()
        assert summary.state == "completed", summary.reason
        for pid in PARTNERS:
            assert result_ids(net, pid, summary.round_id) == expected_ids(net, pid, threshold)
        by_partner = {p.partner_id: p for p in summary.partners}
        for pid in PARTNERS:
            assert by_partner[pid].flagged_count == len(expected_ids(net, pid, threshold))
            assert by_partner[pid].set_size == 50
        assert dict(summary.overlap_histogram) == {k: v for k, v in net.data.histogram().items()}

    def test_result_rows_follow_the_export_order(self, network_factory):
        """Records travel in a random order, but the results file lists them as the export
        does, each row with its own co-holders."""
        net = network_factory(PARTNERS, per_partner=50, overlaps={2: 6, 3: 4, 4: 3})
        net.add_purpose()
        summary = net.run()
        assert summary.state == "completed", summary.reason
        assert net.data is not None
        for pid in PARTNERS:
            path = net.node_dirs[pid] / "results" / f"{summary.round_id}.csv"
            with path.open(encoding="utf-8") as fh:
                rows = list(csv.DictReader(fh, delimiter=";"))
            got = [canonicalize("bsn", {"bsn": r["bsn"]}) for r in rows]
            position = {cid: i for i, cid in enumerate(net.data.ids[pid])}
            assert [position[c] for c in got] == sorted(position[c] for c in got)
            for row, cid in zip(rows, got, strict=True):
                holders = net.data.truth[cid] - {pid}
                assert set(row["partners"].split()) == holders

    def test_address_round_matches_messy_spellings(self, network_factory):
        """Households given as addresses in different spellings at each partner still match."""
        net = network_factory(PARTNERS[:3], per_partner=40, overlaps={2: 5, 3: 4}, kind="address")
        net.add_purpose(identifier_kind="address")
        summary = net.run()
        assert summary.state == "completed", summary.reason
        for pid in PARTNERS[:3]:
            assert result_ids(net, pid, summary.round_id) == expected_ids(net, pid, 2)

    def test_results_name_coholders_only_when_disclosure_allows(self, network_factory):
        """Disclosure 'count' leaves out the partners column; 'partners' names co-holders."""
        net = network_factory(PARTNERS[:3], per_partner=30, overlaps={3: 4})
        net.add_purpose(disclosure="count")
        counted = net.run()
        net.add_purpose(disclosure="partners")
        named = net.run()
        for summary, has_column in ((counted, False), (named, True)):
            path = net.node_dirs["gemeente"] / "results" / f"{summary.round_id}.csv"
            header = path.read_text().splitlines()[0].split(";")
            assert ("partners" in header) is has_column
        rows = list(
            csv.DictReader(
                (net.node_dirs["gemeente"] / "results" / f"{named.round_id}.csv").open(),
                delimiter=";",
            )
        )
        assert rows
        assert all(set(r["partners"].split()) == {"woonbron", "zayaz"} for r in rows)

    def test_objected_rows_never_reach_the_network(self, network_factory):
        """Rows marked as objected are not sent: the coordinator sees smaller sets, no flags."""
        net = network_factory(
            PARTNERS[:2],
            per_partner=30,
            overlaps={2: 10},
            objected={"gemeente": range(30)},
            start=False,
        )
        # every gemeente row objected: the node refuses (nothing to share), nothing is sent
        for pid in net.partners:
            net.start_node(pid)
        net.start_coordinator()
        net.add_purpose()
        summary = net.run()
        assert summary.state == "refused"
        assert "no valid records" in summary.reason

    def test_fresh_keys_make_tags_unlinkable_across_rounds(self, network_factory):
        """Two rounds on the same sets flag the same records; the round ids differ."""
        net = network_factory(PARTNERS[:3], per_partner=20, overlaps={2: 3})
        net.add_purpose()
        a, b = net.run(), net.run()
        assert a.round_id != b.round_id
        assert [p.flagged_count for p in a.partners] == [p.flagged_count for p in b.partners]


class TestNoIdentifierLeaves:
    def test_no_identifier_in_coordinator_database_logs_or_audit(self, network_factory):
        """After a round no input identifier, canonical form or SHA-256 is stored or logged."""
        logs = io.StringIO()
        configure_logging(json=True, level="debug", stream=logs)
        try:
            net = network_factory(PARTNERS[:3], per_partner=40, overlaps={2: 5, 3: 3})
            net.add_purpose()
            summary = net.run()
            assert summary.state == "completed"
            net.close()
        finally:
            structlog.reset_defaults()
        needles: set[bytes] = set()
        for pid in net.partners:
            for row, cid in zip(net.data.rows[pid], net.data.ids[pid], strict=True):
                needles.add(row["bsn"].strip().encode())
                needles.add(cid)
                needles.add(cid.split(b":")[-1])
                needles.add(hashlib.sha256(cid).hexdigest().encode())
                needles.add(hashlib.sha256(cid).digest())
        coordinator_files = [p for p in net.coordinator_dir.rglob("*") if p.is_file()]
        node_audits = [d / "audit" / "node-audit.jsonl" for d in net.node_dirs.values()]
        haystacks = {str(p): p.read_bytes() for p in coordinator_files + node_audits}
        lines = [json.loads(line) for line in logs.getvalue().splitlines()]
        assert any(line.get("event") == "round completed" for line in lines)
        # The redacting processor is a safety net: it must never have had to act.
        assert not [line for line in lines if line.get("redacted")]
        haystacks["log output"] = logs.getvalue().encode()
        for name, hay in haystacks.items():
            leaked = [n for n in needles if len(n) >= 8 and n in hay]
            assert not leaked, f"identifier material found in {name}"


class TestAccessControl:
    def _operator_channel(self, net: TestNetwork, key: Path, cert: Path) -> grpc.Channel:
        config = net.config
        return transport.secure_channel(
            f"127.0.0.1:{net.coordinator.port}",
            pki.Identity.coordinator(config.network),
            key_pem=key.read_bytes(),
            cert_pem=cert.read_bytes(),
            ca_pem=config.tls_ca.read_bytes(),
        )

    def test_partner_certificate_cannot_run_rounds(self, network_factory):
        """A partner's certificate on the coordinator's admin service gets PERMISSION_DENIED."""
        net = network_factory(PARTNERS[:2], per_partner=10, overlaps={2: 2})
        node_dir = net.node_dirs["gemeente"]
        channel = self._operator_channel(net, node_dir / "tls/node.key", node_dir / "tls/node.crt")
        stub = coordinator_pb2_grpc.CoordinatorStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            list(stub.RunRound(coordinator_pb2.RunRoundRequest(purpose_id="x"), timeout=10))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        channel.close()

    def test_partner_cannot_call_another_node(self, network_factory):
        """A partner calling another node gets PERMISSION_DENIED: only the coordinator may."""
        net = network_factory(PARTNERS[:2], per_partner=10, overlaps={2: 2})
        me = net.node_dirs["gemeente"]
        channel = transport.secure_channel(
            f"127.0.0.1:{net.nodes['woonbron'].port}",
            pki.Identity.partner(net.config.network, "woonbron"),
            key_pem=(me / "tls/node.key").read_bytes(),
            cert_pem=(me / "tls/node.crt").read_bytes(),
            ca_pem=(me / "tls/ca.crt").read_bytes(),
        )
        stub = node_pb2_grpc.PsiNodeStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.Propose(common_pb2.SignedManifest(), timeout=10)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        channel.close()

    def test_certificate_from_another_ca_is_refused(self, network_factory, tmp_path):
        """A client whose certificate comes from another CA never gets past the TLS handshake."""
        net = network_factory(PARTNERS[:2], per_partner=10, overlaps={2: 2})
        ca_key, ca_cert = pki.create_ca(net.config.network)
        key = pki.generate_tls_key()
        cert = pki.issue_for_key(
            ca_key, ca_cert, key.public_key(), pki.Identity.operator(net.config.network, "mallory")
        )
        pki.write_private_key(tmp_path / "m.key", key)
        pki.write_pem(tmp_path / "m.crt", cert)
        channel = self._operator_channel(net, tmp_path / "m.key", tmp_path / "m.crt")
        stub = coordinator_pb2_grpc.CoordinatorStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            list(stub.RunRound(coordinator_pb2.RunRoundRequest(purpose_id="x"), timeout=10))
        # The server's TLS layer rejects the unknown chain before any RPC exists.
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        channel.close()


class TestRoundFailures:
    def test_node_down_fails_the_round_with_its_name(self, network_factory):
        """A node that is down fails the round with a reason naming it; nothing is delivered."""
        net = network_factory(PARTNERS[:3], per_partner=20, overlaps={2: 3})
        net.add_purpose()
        net.stop_node("zayaz")
        summary = net.run()
        assert summary.state == "failed"
        assert "zayaz" in summary.reason
        assert "unreachable" in summary.reason
        for pid in PARTNERS[:2]:
            assert not list((net.node_dirs[pid] / "results").iterdir())
        row = net.coordinator.store.round(summary.round_id)
        assert row.state == "failed"
        assert "zayaz" in row.reason

    def test_unknown_purpose_is_refused_before_a_round_exists(self, network_factory):
        """An unknown purpose raises a clear error and records no round."""
        from kruispunt.errors import ConfigError

        net = network_factory(PARTNERS[:2], per_partner=10, overlaps={2: 2})
        with pytest.raises(ConfigError, match="unknown purpose 'nope'"):
            net.run("nope")
        assert net.coordinator.store.rounds() == []

    def test_missing_input_file_refuses_consent_and_shares_nothing(self, network_factory):
        """A node whose input file is missing refuses; no node is left with results."""
        net = network_factory(PARTNERS[:3], per_partner=20, overlaps={2: 3})
        net.add_purpose()
        (net.node_dirs["woonbron"] / "input.csv").unlink()
        summary = net.run()
        assert summary.state == "refused"
        assert "woonbron" in summary.reason
        assert "input" in summary.reason
        for pid in PARTNERS[:3]:
            assert not list((net.node_dirs[pid] / "results").iterdir())
            assert net.nodes[pid].rounds.rounds_in_flight() == []

    def test_purpose_not_agreed_by_a_node_is_refused(self, network_factory):
        """A node refuses a purpose its policy does not list, with that reason."""
        net = network_factory(PARTNERS[:2], per_partner=10, overlaps={2: 2})
        net.add_purpose("ander-doel")
        summary = net.run("ander-doel")
        assert summary.state == "refused"
        assert "not agreed" in summary.reason

    def test_replayed_manifest_is_refused(self, network_factory):
        """A node that sees a manifest's round id a second time refuses it."""
        net = network_factory(PARTNERS[:2], per_partner=10, overlaps={2: 2})
        net.add_purpose()
        summary = net.run()
        manifest = net.coordinator.store.round(summary.round_id).manifest
        rounds = net.nodes["gemeente"].rounds
        from kruispunt.manifest import sign_manifest  # noqa: F401 - the stored bytes are signed

        signed = common_pb2.SignedManifest(manifest=manifest)
        consents = net.coordinator.store.consents(summary.round_id)
        assert all(granted for _p, granted, *_ in consents)
        # re-sign is impossible without the key: replay the exact signed manifest
        from kruispunt import signing as sg

        key = sg.load_signing_key(net.config.signing_key)
        signed.signature = sg.sign(key, sg.CONTEXT_MANIFEST, manifest)
        answer = rounds.propose(signed)
        consent = common_pb2.Consent()
        consent.ParseFromString(answer.consent)
        assert not consent.granted
        assert "seen before" in consent.reason

    def test_round_summary_is_stored_as_aggregates(self, network_factory):
        """The database keeps set sizes, flagged counts and the histogram of a finished round."""
        net = network_factory(PARTNERS[:3], per_partner=20, overlaps={2: 3, 3: 2})
        net.add_purpose()
        summary = net.run()
        row = net.coordinator.store.round(summary.round_id)
        assert row.state == "completed"
        assert row.summary["partners"]["gemeente"]["set_size"] == 20
        assert json.dumps(row.summary)
        assert row.summary["histogram"] == {"1": 20 * 3 - 2 * 3 - 3 * 2, "2": 3, "3": 2}
