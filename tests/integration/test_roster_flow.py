"""The partner roster end to end: the coordinator exports it, every node accepts it by digest.

Networks here are built by `tests.support.network.build_network`, which exports the
roster and accepts it at every node; the tests then change the registry, the file
or a node and check what export, accept and the two doctors say.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest

from coordinator.audit import CoordinatorAudit
from coordinator.doctor import run_doctor as coordinator_doctor
from coordinator.provision import add_partner, export_roster, registry_roster, roster_path
from coordinator.renew import renew_partner
from kruispunt import pki, signing
from kruispunt.doctor import FAIL, OK, WARN
from kruispunt.errors import ConfigError
from kruispunt.roster import (
    agreement_public_bytes,
    generate_agreement_key,
    load_accepted_roster,
    load_roster,
    render_roster,
)
from psi_node.audit import NodeAudit
from psi_node.doctor import run_doctor as node_doctor
from psi_node.provision import accept_network_roster, init_node, install_certificate
from tests.support.network import TestNetwork, enroll_node

PARTNERS = ["gemeente", "woonbron", "schuldhulp"]
SMALL = {"per_partner": 12, "overlaps": {2: 3}}


@pytest.fixture
def net(network_factory) -> TestNetwork:
    """Three partners with an accepted roster; nothing started."""
    return network_factory(PARTNERS, start=False, **SMALL)


def coordinator_events(net: TestNetwork, name: str) -> list:
    config = net.config
    with CoordinatorAudit(config.database, signing.load_signing_key(config.signing_key)) as audit:
        return [e for e in audit.events() if e.event == name]


def node_events(net: TestNetwork, pid: str, name: str) -> list:
    config = net.node_config(pid)
    with NodeAudit(config.audit_log, signing.load_signing_key(config.signing_key)) as audit:
        return [e for e in audit.events() if e.event == name]


def join(net: TestNetwork, pid: str) -> Path:
    """A new partner's node: init, partner add with its three files, install-cert."""
    node_dir = net.root / "nodes" / pid
    enroll_node(net.config, node_dir, pid)
    net.node_dirs[pid] = node_dir
    return node_dir


def forged(net: TestNetwork, tmp_path: Path, name: str = "forged.toml", **changes: object):
    """The exported roster with `changes` to gemeente's entry (or, for `roster`, whole)."""
    exported = load_roster(roster_path(net.config))
    entry = dataclasses.replace(exported.partner("gemeente"), **changes)
    others = tuple(p for p in exported.partners if p.id != "gemeente")
    roster = dataclasses.replace(exported, version=exported.version + 1, partners=(entry, *others))
    path = tmp_path / name
    path.write_text(render_roster(roster), encoding="utf-8")
    return roster, path


class TestExportAndAccept:
    def test_every_node_holds_the_exported_roster(self, net):
        """After set-up every node's accepted roster is the coordinator's roster.toml."""
        exported = load_roster(roster_path(net.config))
        assert exported.version == 1
        assert exported.network == "testnet"
        assert exported.ids == tuple(sorted(PARTNERS))
        for pid in PARTNERS:
            accepted = load_accepted_roster(net.node_config(pid).state_dir)
            assert accepted == exported
            assert accepted.digest_hex == exported.digest_hex

    def test_roster_lists_the_registry_keys_and_certificates(self, net):
        """Each entry carries the node's own signing key, agreement key and TLS fingerprint."""
        roster = load_roster(roster_path(net.config))
        for pid in PARTNERS:
            config = net.node_config(pid)
            entry = roster.partner(pid)
            assert entry.organisation == f"Organisatie {pid}"
            assert entry.signing_key == signing.public_key_bytes(
                signing.load_signing_key(config.signing_key).public_key()
            )
            assert entry.agreement_key == bytes.fromhex(
                (config.directory / "signing/node.x25519.pub").read_text().strip()
            )
            assert entry.tls_fingerprint_hex == pki.fingerprint(
                pki.load_certificate(config.tls_cert)
            )
        coordinator_key = signing.load_public_key(net.config.signing_public_key.read_bytes())
        assert roster.coordinator_signing_key == signing.public_key_bytes(coordinator_key)

    def test_export_and_accept_are_audited(self, net):
        """roster.exported at the coordinator, roster.accepted at every node: version, digest."""
        roster = load_roster(roster_path(net.config))
        (exported,) = coordinator_events(net, "roster.exported")
        assert exported.details["version"] == 1
        assert exported.details["digest"] == roster.digest_hex
        assert exported.details["partners"] == sorted(PARTNERS)
        for pid in PARTNERS:
            (accepted,) = node_events(net, pid, "roster.accepted")
            assert accepted.details["version"] == 1
            assert accepted.details["digest"] == roster.digest_hex
            assert accepted.details["changes"] == 1 + len(PARTNERS)  # first roster, 3 added
            assert accepted.on_behalf_of == pid

    def test_partner_added_audit_names_the_agreement_key(self, net):
        """partner.added carries agreement_key_id: 16 hex digits of SHA-256 over the key."""
        import hashlib

        roster = load_roster(roster_path(net.config))
        events = {e.details["partner"]: e for e in coordinator_events(net, "partner.added")}
        for pid in PARTNERS:
            raw = roster.partner(pid).agreement_key
            assert events[pid].details["agreement_key_id"] == hashlib.sha256(raw).hexdigest()[:16]

    def test_export_without_a_change_is_a_no_op(self, net):
        """A second export with nothing changed writes nothing, audits nothing, changes nothing."""
        path = roster_path(net.config)
        before = path.read_bytes(), path.stat().st_mtime_ns
        roster, changes = export_roster(net.config)
        assert changes == []
        assert roster.version == 1
        assert (path.read_bytes(), path.stat().st_mtime_ns) == before
        assert len(coordinator_events(net, "roster.exported")) == 1

    def test_accepting_the_same_roster_again_changes_nothing(self, net):
        """Re-accepting the accepted roster reports no changes and keeps it."""
        path = roster_path(net.config)
        roster = load_roster(path)
        again, changes = accept_network_roster(net.node_dirs["gemeente"], path, roster.digest_hex)
        assert again == roster
        assert changes == []
        assert node_events(net, "gemeente", "roster.accepted")[-1].details["changes"] == 0

    def test_new_partner_bumps_the_version_and_every_node_sees_the_change(self, net):
        """A partner joining gives version 2; accepting it lists the partner added."""
        join(net, "zayaz")
        roster, changes = export_roster(net.config)
        assert roster.version == 2
        assert "version: 1 -> 2" in changes
        assert any(c.startswith("partner added: zayaz (Organisatie zayaz)") for c in changes)
        path = roster_path(net.config)
        for pid in [*PARTNERS, "zayaz"]:
            accepted, seen = accept_network_roster(net.node_dirs[pid], path, roster.digest_hex)
            assert accepted.version == 2
            if pid == "zayaz":
                assert seen[0].startswith("first roster")
            else:
                assert seen == changes
        assert coordinator_events(net, "roster.exported")[-1].details["previous_digest"]

    def test_renewed_certificate_bumps_the_version(self, net):
        """A renewal changes the TLS fingerprint, so the next export is a new version."""
        before = load_roster(roster_path(net.config))
        renew_partner(net.config, "woonbron", ca_key_path=net.ca_key, days=90)
        roster, changes = export_roster(net.config)
        assert roster.version == 2
        assert any(c.startswith("partner woonbron: TLS fingerprint changed") for c in changes)
        assert (
            roster.partner("woonbron").tls_fingerprint != before.partner("woonbron").tls_fingerprint
        )
        assert roster.partner("gemeente") == before.partner("gemeente")


class TestAcceptRefuses:
    def test_tampered_roster_is_refused_by_its_digest(self, net, tmp_path):
        """An edited roster does not have the covenant's digest: refused, nothing stored."""
        path = roster_path(net.config)
        digest = load_roster(path).digest_hex
        text = path.read_text(encoding="utf-8")
        evil = tmp_path / "roster.toml"
        evil.write_text(text.replace("version = 1", "version = 2"), encoding="utf-8")
        state = net.node_config("gemeente").state_dir
        before = (state / "roster.toml").read_bytes()
        with pytest.raises(ConfigError, match=f"not the {digest} you typed"):
            accept_network_roster(net.node_dirs["gemeente"], evil, digest)
        assert (state / "roster.toml").read_bytes() == before
        assert len(node_events(net, "gemeente", "roster.accepted")) == 1

    @pytest.mark.parametrize(
        ("field", "label"),
        [
            ("signing_key", "signing key"),
            ("agreement_key", "agreement key"),
            ("tls_fingerprint", "TLS certificate fingerprint"),
        ],
    )
    def test_own_entry_with_another_key_is_refused(self, net, tmp_path, field, label):
        """A roster (with a matching digest) listing this node with another key is refused."""
        other = {
            "signing_key": signing.public_key_bytes(signing.generate_signing_key().public_key()),
            "agreement_key": agreement_public_bytes(generate_agreement_key()),
            "tls_fingerprint": bytes(range(32)),
        }[field]
        roster, path = forged(net, tmp_path, **{field: other})
        with pytest.raises(ConfigError, match="does not match this node") as info:
            accept_network_roster(net.node_dirs["gemeente"], path, roster.digest_hex)
        assert f"with {label} {other.hex()[:16]}…" in str(info.value)
        state = net.node_config("gemeente").state_dir
        assert load_accepted_roster(state).version == 1
        # The other nodes have no objection to gemeente's entry: only the node itself knows.
        accepted, _ = accept_network_roster(net.node_dirs["woonbron"], path, roster.digest_hex)
        assert accepted.version == 2

    def test_roster_without_this_node_is_refused(self, net, tmp_path):
        """A roster that leaves this node out is refused, naming who it does list."""
        exported = load_roster(roster_path(net.config))
        roster = dataclasses.replace(
            exported,
            version=2,
            partners=tuple(p for p in exported.partners if p.id != "gemeente"),
        )
        path = tmp_path / "without.toml"
        path.write_text(render_roster(roster), encoding="utf-8")
        with pytest.raises(ConfigError, match=r"does not list this node \(partner 'gemeente'\)"):
            accept_network_roster(net.node_dirs["gemeente"], path, roster.digest_hex)

    def test_another_coordinator_key_is_refused(self, net, tmp_path):
        """A roster naming a coordinator key other than the one installed is refused."""
        exported = load_roster(roster_path(net.config))
        stranger = signing.public_key_bytes(signing.generate_signing_key().public_key())
        roster = dataclasses.replace(exported, version=2, coordinator_signing_key=stranger)
        path = tmp_path / "other-coordinator.toml"
        path.write_text(render_roster(roster), encoding="utf-8")
        with pytest.raises(ConfigError, match="coordinator signing key is") as info:
            accept_network_roster(net.node_dirs["woonbron"], path, roster.digest_hex)
        assert stranger.hex()[:16] in str(info.value)
        assert "signing/coordinator.pub" in str(info.value)

    def test_roster_of_another_network_is_refused(self, net, tmp_path):
        """A roster for another network is refused even with a matching digest."""
        exported = load_roster(roster_path(net.config))
        roster = dataclasses.replace(exported, network="elders", version=2)
        path = tmp_path / "elders.toml"
        path.write_text(render_roster(roster), encoding="utf-8")
        with pytest.raises(ConfigError, match="for network 'elders', this node is in 'testnet'"):
            accept_network_roster(net.node_dirs["woonbron"], path, roster.digest_hex)

    def test_older_version_is_refused(self, net, tmp_path):
        """Once version 2 is accepted, version 1 (say, before a key was replaced) is refused."""
        path = roster_path(net.config)
        first = tmp_path / "v1.toml"
        first.write_bytes(path.read_bytes())
        v1 = load_roster(first)
        join(net, "zayaz")
        v2, _ = export_roster(net.config)
        accept_network_roster(net.node_dirs["gemeente"], path, v2.digest_hex)
        with pytest.raises(ConfigError, match="version 1 is not newer than the accepted version 2"):
            accept_network_roster(net.node_dirs["gemeente"], first, v1.digest_hex)
        assert load_accepted_roster(net.node_config("gemeente").state_dir).version == 2


class TestExportRefuses:
    def test_partner_without_agreement_key_is_named_with_the_fix(self, net):
        """A partner registered before agreement keys makes the export fail, saying what to do."""
        db = sqlite3.connect(net.config.database)
        db.execute("UPDATE partners SET agreement_key=X'' WHERE id='woonbron'")
        db.commit()
        db.close()
        with pytest.raises(ConfigError, match="partner 'woonbron' was registered without") as info:
            export_roster(net.config)
        assert "--agreement-key" in str(info.value)
        assert "node.x25519.pub" in str(info.value)
        report = coordinator_doctor(net.coordinator_dir, check_partners=False)
        assert report.by_name("partner roster").status == FAIL

    def test_agreement_key_of_another_partner_is_refused_at_add(self, net, tmp_path):
        """Registering a partner with a registered partner's agreement key is refused."""
        res = init_node(tmp_path / "copycat", "copycat", "Copycat")
        with pytest.raises(
            ConfigError, match="partner 'gemeente' is registered with this agreement"
        ):
            add_partner(
                net.config,
                "copycat",
                name="Copycat",
                address="127.0.0.1:1",
                csr_path=res.csr,
                signing_key_path=res.signing_public_key,
                agreement_key_path=net.node_dirs["gemeente"] / "signing/node.x25519.pub",
                ca_key_path=net.ca_key,
            )

    def test_unreadable_agreement_key_file_names_it(self, net, tmp_path):
        """partner add with a bad agreement key file names the file; nothing is registered."""
        res = init_node(tmp_path / "zayaz", "zayaz", "Zayaz")
        bad = tmp_path / "bad.pub"
        bad.write_text("not a key\n")
        with pytest.raises(ConfigError, match=r"bad\.pub: not an agreement public key"):
            add_partner(
                net.config,
                "zayaz",
                name="Zayaz",
                address="127.0.0.1:1",
                csr_path=res.csr,
                signing_key_path=res.signing_public_key,
                agreement_key_path=bad,
                ca_key_path=net.ca_key,
            )
        assert "zayaz" not in registry_roster(net.config, version=1).ids

    def test_organisation_name_the_roster_would_refuse_is_refused_at_add(self, net, tmp_path):
        """A name with an invisible character is refused before a certificate is issued."""
        res = init_node(tmp_path / "zayaz", "zayaz", "Zayaz")
        with pytest.raises(ConfigError, match="invisible character"):
            add_partner(
                net.config,
                "zayaz",
                name="Zay\u200baz",
                address="127.0.0.1:1",
                csr_path=res.csr,
                signing_key_path=res.signing_public_key,
                agreement_key_path=res.agreement_public_key,
                ca_key_path=net.ca_key,
            )
        assert not (net.coordinator_dir / "partners/zayaz.crt").exists()


class TestDoctors:
    def test_node_doctor_reports_the_accepted_roster(self, net):
        """OK with the version and the digest's first 16 digits."""
        roster = load_roster(roster_path(net.config))
        check = node_doctor(net.node_dirs["gemeente"], check_coordinator=False).by_name(
            "partner roster"
        )
        assert check.status == OK
        assert f"version 1 of network 'testnet', digest {roster.digest_hex[:16]}…" in check.detail

    def test_node_doctor_fails_without_a_roster(self, net):
        """No accepted roster is a failure that says how to accept one."""
        (net.node_config("gemeente").state_dir / "roster.toml").unlink()
        check = node_doctor(net.node_dirs["gemeente"], check_coordinator=False).by_name(
            "partner roster"
        )
        assert check.status == FAIL
        assert check.detail.startswith("no roster accepted: psi-node roster accept")

    def test_node_doctor_fails_when_its_certificate_is_not_the_listed_one(self, net):
        """A renewed certificate installed without a new roster fails, naming the fingerprint."""
        node_dir = net.node_dirs["gemeente"]
        issued = renew_partner(net.config, "gemeente", ca_key_path=net.ca_key, days=90)
        install_certificate(
            node_dir,
            cert_path=issued,
            ca_path=net.config.tls_ca,
            coordinator_key_path=net.config.signing_public_key,
            partner_id="gemeente",
        )
        check = node_doctor(node_dir, check_coordinator=False).by_name("partner roster")
        assert check.status == FAIL
        assert "TLS certificate fingerprint" in check.detail
        net.publish_roster()
        assert node_doctor(node_dir, check_coordinator=False).by_name("partner roster").status == OK

    def test_coordinator_doctor_warns_when_the_roster_is_stale(self, net):
        """A registry change after the export is a warning naming the change and the fix."""
        report = coordinator_doctor(net.coordinator_dir, check_partners=False)
        assert report.by_name("partner roster").status == OK
        assert "matches the registry" in report.by_name("partner roster").detail
        join(net, "zayaz")
        check = coordinator_doctor(net.coordinator_dir, check_partners=False).by_name(
            "partner roster"
        )
        assert check.status == WARN
        assert "partner added: zayaz" in check.detail
        assert "psi-coordinator roster export" in check.detail
        export_roster(net.config)
        check = coordinator_doctor(net.coordinator_dir, check_partners=False).by_name(
            "partner roster"
        )
        assert check.status == OK
        assert "version 2" in check.detail

    def test_coordinator_doctor_warns_before_the_first_export(self, net):
        """No roster.toml yet is a warning with the command that writes it."""
        roster_path(net.config).unlink()
        check = coordinator_doctor(net.coordinator_dir, check_partners=False).by_name(
            "partner roster"
        )
        assert check.status == WARN
        assert "not exported yet" in check.detail
        assert "psi-coordinator roster export" in check.detail
