"""Consent, legal basis, exclusions, retention and the audit trail, on real networks."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from kruispunt import signing
from kruispunt.manifest import sign_manifest, verify_consent
from kruispunt.purpose import Purpose
from kruispunt.v1 import common_pb2
from psi_node import cli as node_cli
from psi_node.deletions import purge_expired_results
from tests.support.setup_files import LEGAL_BASIS

PARTNERS = ["gemeente", "woonbron", "schuldhulp"]


def consent_of(answer: common_pb2.SignedConsent) -> common_pb2.Consent:
    consent = common_pb2.Consent()
    consent.ParseFromString(answer.consent)
    return consent


def manifest_for(
    net, *, key=None, now=None, ttl=3600, round_id="r20261128T120000-0000abcd", **purpose_fields
):
    """A manifest for the network's purpose, signed by `key` (default: the coordinator's)."""
    purpose = net.coordinator.store.purpose("vroegsignalering")
    if purpose_fields:
        purpose = Purpose.from_dict({**purpose.to_dict(), **purpose_fields})
    return sign_manifest(
        key or signing.load_signing_key(net.config.signing_key),
        round_id=round_id,
        network=net.config.network,
        purpose=purpose,
        partners=list(purpose.partners),
        now=now or datetime.now(UTC),
        ttl_seconds=ttl,
        initiated_by="operator:test",
        roster_sha256=net.roster_sha256,
    )


@pytest.fixture
def net(network_factory):
    n = network_factory(PARTNERS, per_partner=30, overlaps={2: 5, 3: 3})
    n.add_purpose()
    return n


class TestManifestChecks:
    def test_expired_manifest_is_refused(self, net):
        """A manifest past its expiry gets a signed refusal; no round state is kept."""
        old = datetime.now(UTC) - timedelta(hours=2)
        answer = net.nodes["gemeente"].rounds.propose(manifest_for(net, now=old, ttl=60))
        consent = consent_of(answer)
        assert not consent.granted
        assert "expired" in consent.reason
        assert net.nodes["gemeente"].rounds.rounds_in_flight() == []

    def test_manifest_signed_by_another_key_is_refused(self, net):
        """A manifest not signed by the installed coordinator key is refused."""
        forged = manifest_for(net, key=signing.generate_signing_key())
        consent = consent_of(net.nodes["gemeente"].rounds.propose(forged))
        assert not consent.granted
        assert "signature" in consent.reason

    def test_consent_is_signed_by_the_node(self, net):
        """A consent verifies under the node's registered key and binds the manifest hash."""
        signed = manifest_for(net)
        answer = net.nodes["woonbron"].rounds.propose(signed)
        partner = net.coordinator.store.partner("woonbron")
        consent = verify_consent(
            answer,
            signing.load_public_key(partner.signing_key),
            round_id=consent_of(answer).round_id,
            partner_id="woonbron",
            manifest_sha256=hashlib.sha256(signed.manifest).digest(),
        )
        assert consent.granted
        assert consent.set_size == 30
        net.nodes["woonbron"].rounds.abort(consent.round_id, "test over")

    @pytest.mark.parametrize(
        ("change", "reason"),
        [
            ({"threshold": 1}, None),  # the purpose itself refuses threshold 1 (validated)
            ({"disclosure": "partners"}, "disclosure"),
        ],
    )
    def test_node_policy_limits(self, network_factory, change, reason):
        """A node allowing only 'count' refuses a purpose that names co-holders."""
        net = network_factory(PARTNERS[:2], per_partner=10, overlaps={2: 2}, start=False)
        node_dir = net.node_dirs["gemeente"]
        text = (node_dir / "node.toml").read_text()
        (node_dir / "node.toml").write_text(
            text.replace('max_disclosure = "partners"', 'max_disclosure = "count"')
        )
        for pid in net.partners:
            net.start_node(pid)
        net.start_coordinator()
        if reason is None:
            from kruispunt.errors import ConfigError

            with pytest.raises(ConfigError, match="threshold"):
                net.add_purpose(**change)
            return
        net.add_purpose(**change)
        summary = net.run()
        assert summary.state == "refused"
        assert "gemeente" in summary.reason
        assert reason in summary.reason

    def test_legal_basis_mismatch_is_refused(self, net):
        """A manifest whose legal basis for the node differs from the node's own is refused."""
        other = {p: "AVG art. 6(1)(f)" for p in PARTNERS}
        consent = consent_of(
            net.nodes["gemeente"].rounds.propose(manifest_for(net, legal_basis=other))
        )
        assert not consent.granted
        assert "legal basis" in consent.reason

    def test_refusal_shares_nothing_and_is_audited_on_both_sides(self, network_factory):
        """When one node refuses, no node blinds anything; both audit logs record it."""
        net = network_factory(PARTNERS, per_partner=20, overlaps={2: 3}, start=False)
        node_dir = net.node_dirs["schuldhulp"]
        text = (node_dir / "node.toml").read_text()
        (node_dir / "node.toml").write_text(text.replace(LEGAL_BASIS, "AVG art. 9(2)(h)"))
        for pid in net.partners:
            net.start_node(pid)
        net.start_coordinator()
        net.add_purpose()
        summary = net.run()
        assert summary.state == "refused"
        for pid in PARTNERS:
            events = [e.event for e in net.nodes[pid].rounds.audit.events()]
            assert "records.sent" not in events
        node_events = net.nodes["schuldhulp"].rounds.audit.events(round_id=summary.round_id)
        assert [e.event for e in node_events if e.event.startswith("consent")] == [
            "consent.refused"
        ]
        coord = net.coordinator.audit.events(round_id=summary.round_id)
        assert any(
            e.event == "consent.refused" and e.details["partner"] == "schuldhulp" for e in coord
        )
        assert coord[-1].event == "round.failed"


class TestExclusions:
    def test_objected_and_excluded_rows_never_reach_the_network(self, network_factory):
        """Objected and excluded rows are left out of the set sizes the coordinator sees,
        and households shared only through them are not flagged anywhere."""
        from tests.support.synthetic import write_csv

        net = network_factory(PARTNERS[:2], per_partner=40, overlaps={2: 10}, start=False)
        data = net.data
        shared = [i for i, cid in enumerate(data.ids["woonbron"]) if len(data.truth[cid]) == 2]
        objected, excluded = shared[:3], shared[3:5]
        node_dir = net.node_dirs["woonbron"]
        write_csv(
            node_dir / "input.csv",
            data.rows["woonbron"],
            "bsn",
            objection_column="bezwaar",
            objected=objected,
        )
        exclusion = node_dir / "exclusions.csv"
        exclusion.write_text(
            "bsn\n"
            + "".join(data.ids["woonbron"][i].decode().split(":")[1] + "\n" for i in excluded)
        )
        text = (node_dir / "node.toml").read_text()
        (node_dir / "node.toml").write_text(
            text.replace(
                'objection_column = "bezwaar"',
                f'objection_column = "bezwaar"\nexclusion_file = "{exclusion}"',
            )
        )
        for pid in net.partners:
            net.start_node(pid)
        net.start_coordinator()
        net.add_purpose()
        summary = net.run()
        assert summary.state == "completed", summary.reason
        sizes = {p.partner_id: p.set_size for p in summary.partners}
        assert sizes == {"gemeente": 40, "woonbron": 35}
        consent_events = [
            e
            for e in net.coordinator.audit.events(round_id=summary.round_id)
            if e.event == "consent.given"
        ]
        assert {e.details["partner"]: e.details["set_size"] for e in consent_events} == sizes
        flagged = {p.partner_id: p.flagged_count for p in summary.partners}
        assert flagged == {"gemeente": 5, "woonbron": 5}
        node_consent = next(
            e for e in net.nodes["woonbron"].rounds.audit.events() if e.event == "consent.given"
        )
        assert node_consent.details["objected"] == 3
        assert node_consent.details["excluded"] == 2

    def test_objections_and_exclusions_are_signed_and_kept_apart(self, network_factory):
        """The node's signed consent counts objected rows apart from exclusion-list rows; the
        coordinator audits, stores and prints both (`round show`, its --json)."""
        from coordinator import present
        from kruispunt.v1 import common_pb2
        from tests.support.network import with_objections_and_exclusions

        net = with_objections_and_exclusions(
            network_factory(PARTNERS[:2], per_partner=30, overlaps={2: 6}, start=False),
            "woonbron",
            objected=range(4),
            excluded=slice(10, 12),
        )
        done = net.run()
        assert done.state == "completed", done.reason
        stored = {c[0]: c for c in net.coordinator.store.consents(done.round_id)}
        signed = common_pb2.Consent.FromString(stored["woonbron"][3])
        assert (signed.excluded_count, signed.objected_count) == (2, 4)
        assert signed.HasField("objected_count")
        given = {
            e.details["partner"]: e.details
            for e in net.coordinator.audit.events(round_id=done.round_id)
            if e.event == "consent.given"
        }
        assert (given["woonbron"]["excluded"], given["woonbron"]["objected"]) == (2, 4)
        assert (given["gemeente"]["excluded"], given["gemeente"]["objected"]) == (0, 0)
        row = net.coordinator.store.round(done.round_id)
        counts = row.summary["partners"]["woonbron"]
        assert (counts["excluded_count"], counts["objected_count"]) == (2, 4)
        assert counts["set_size"] == 30 - 4 - 2
        shown = present.round_show(row, net.coordinator.store.consents(done.round_id))
        assert shown.data["partners"]["woonbron"]["objected_count"] == 4
        line = next(t for t in shown.text.splitlines() if t.strip().startswith("woonbron"))
        assert line.split()[1:4] == ["24", "2", "4"]


class TestAuditTrail:
    def test_purpose_change_is_a_new_audited_version(self, net):
        """Changing a purpose bumps its version and audits the changed fields."""
        stored = net.add_purpose(threshold=3)
        assert stored.version == 2
        last = net.coordinator.audit.events()[-1]
        assert last.event == "purpose.changed"
        assert last.details["changed"] == ["threshold"]

    def test_node_log_and_coordinator_export_agree(self, net, capsys, tmp_path):
        """After rounds, `psi-node audit cross-check` finds no mismatch; a doctored export does."""
        net.run()
        net.run()
        export = tmp_path / "coordinator.jsonl"
        with export.open("w") as fh:
            net.coordinator.audit.export(fh, fmt="jsonl")
        node_dir = str(net.node_dirs["woonbron"])
        key = ["--coordinator-key", str(net.config.audit_public_key)]
        capsys.readouterr()
        assert node_cli.main(["audit", "cross-check", node_dir, str(export), *key]) == 0
        assert "agree" in capsys.readouterr().out
        lines = export.read_text().splitlines()
        doctored = []
        for line in lines:
            event = json.loads(line)
            if event["event"] == "results.delivered" and event["details"]["partner"] == "woonbron":
                event["details"]["flagged_count"] += 1
            doctored.append(json.dumps(event))
        export.write_text("\n".join(doctored) + "\n")
        assert node_cli.main(["audit", "cross-check", node_dir, str(export), "--json", *key]) == 1
        result = json.loads(capsys.readouterr().out)
        # The edited event no longer verifies (checked first), and the count disagrees.
        assert result["first_problem"]["kind"] == "chain"
        mismatches = [p for p in result["problems"] if p["kind"] == "round"]
        assert mismatches
        assert mismatches[0]["field"] == "flagged_count"

    def test_node_audit_verify_command(self, net, capsys):
        """`psi-node audit verify` reports OK on a node log after a round."""
        net.run()
        assert node_cli.main(["audit", "verify", str(net.node_dirs["gemeente"])]) == 0
        assert "OK" in capsys.readouterr().out

    def test_no_identifier_in_audit_export(self, net):
        """The coordinator's audit export (JSONL and CSV) carries no input identifier."""
        net.run()
        for fmt in ("jsonl", "csv"):
            out = io.StringIO()
            net.coordinator.audit.export(out, fmt=fmt)
            text = out.getvalue()
            for pid in PARTNERS:
                for cid in net.data.ids[pid]:
                    assert cid.decode().split(":")[1] not in text


class TestRetention:
    def test_results_are_purged_after_retention_and_audited(self, net):
        """Results past their retention date are deleted and the deletion is in the node log."""
        summary = net.run()
        pid = "gemeente"
        results = net.node_dirs[pid] / "results"
        assert (results / f"{summary.round_id}.csv").exists()
        config = net.node_config(pid)
        audit = net.nodes[pid].rounds.audit
        assert (
            purge_expired_results(
                config, audit, datetime.now(UTC) + timedelta(days=27), actor="test"
            )
            == []
        )
        deleted = purge_expired_results(
            config, audit, datetime.now(UTC) + timedelta(days=29), actor="test"
        )
        assert {p.name for p in deleted} == {f"{summary.round_id}.csv", f"{summary.round_id}.json"}
        assert not (results / f"{summary.round_id}.csv").exists()
        last = audit.events()[-1]
        assert last.event == "results.deleted"
        assert last.round_id == summary.round_id
        assert audit.verify().ok

    def test_result_metadata_states_the_deletion_date(self, net):
        """Every result file has a metadata file with the purpose and its delete-after date."""
        summary = net.run()
        meta = json.loads(
            (net.node_dirs["woonbron"] / "results" / f"{summary.round_id}.json").read_text()
        )
        assert meta["purpose"] == "vroegsignalering"
        delete_after = datetime.fromisoformat(meta["delete_after"])
        assert timedelta(days=27) < delete_after - datetime.now(UTC) <= timedelta(days=28)


class TestModePolicy:
    def test_node_agreed_to_network_mode_refuses_a_bilateral_round(self, network_factory):
        """A purpose switched to bilateral mode is refused by nodes that agreed to network mode."""
        net = network_factory(PARTNERS[:2], per_partner=10, overlaps={2: 2})
        net.add_purpose(
            mode="bilateral",
            bilateral={"client_partner": "gemeente", "server_partner": "woonbron"},
        )
        summary = net.run()
        assert summary.state == "refused"
        assert "'bilateral' mode" in summary.reason

    def test_swapped_bilateral_roles_are_refused(self, network_factory):
        """A bilateral purpose that makes the agreed server the client is refused."""
        net = network_factory(
            PARTNERS[:2],
            per_partner=10,
            overlaps={2: 2},
            bilateral_roles={"gemeente": "client", "woonbron": "server"},
        )
        net.add_purpose(
            mode="bilateral",
            bilateral={"client_partner": "woonbron", "server_partner": "gemeente"},
        )
        summary = net.run()
        assert summary.state == "refused"
        assert "agreed to be the server" in summary.reason

    def test_network_calls_are_refused_on_a_bilateral_round(self, network_factory):
        """Blind on a bilateral round is a protocol error: a mode's calls stay in that mode."""
        from kruispunt.errors import ProtocolError

        net = network_factory(
            PARTNERS[:2],
            per_partner=10,
            overlaps={2: 2},
            bilateral_roles={"gemeente": "client", "woonbron": "server"},
        )
        net.add_purpose(
            mode="bilateral",
            bilateral={"client_partner": "gemeente", "server_partner": "woonbron"},
        )
        rounds = net.nodes["gemeente"].rounds
        consent = consent_of(rounds.propose(manifest_for(net)))
        assert consent.granted, consent.reason
        with pytest.raises(ProtocolError, match="network round"):
            list(rounds.blind(consent.round_id, []))
