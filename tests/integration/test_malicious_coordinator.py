"""An actively malicious coordinator against real node servers over real mTLS.

The attacker holds exactly what a coordinator holds: its TLS key and certificate (the only
client a node answers) and its manifest signing key. Every test mounts one attack and passes
only when the node refuses it, with the refusal audited at the node.
"""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
import pytest

from kruispunt import pki, signing, transport
from kruispunt.manifest import new_round_id, sign_manifest
from kruispunt.purpose import Purpose
from kruispunt.v1 import common_pb2, node_pb2_grpc

PARTNERS = ["gemeente", "woonbron", "schuldhulp"]


class MaliciousCoordinator:
    """Signs any manifest it likes and talks to nodes directly, with the coordinator's keys."""

    def __init__(self, net) -> None:
        self.net = net
        config = net.config
        self.manifest_key = signing.load_signing_key(config.signing_key)
        self._tls = (
            pki.private_key_pem(pki.load_tls_key(config.tls_key)),
            config.tls_cert.read_bytes(),
            config.tls_ca.read_bytes(),
        )
        self._channels: list[grpc.Channel] = []

    def stub(self, pid: str) -> node_pb2_grpc.PsiNodeStub:
        key, cert, ca = self._tls
        channel = transport.secure_channel(
            f"127.0.0.1:{self.net.nodes[pid].port}",
            pki.Identity.partner(self.net.config.network, pid),
            key_pem=key,
            cert_pem=cert,
            ca_pem=ca,
        )
        self._channels.append(channel)
        return node_pb2_grpc.PsiNodeStub(channel)

    def manifest(self, *, partners=None, **purpose_fields) -> common_pb2.SignedManifest:
        purpose = self.net.coordinator.store.purpose("vroegsignalering")
        if partners is not None:  # a purpose of its own making, for just those partners
            bases = {p: b for p, b in purpose.legal_basis.items() if p in partners}
            purpose_fields = {"legal_basis": bases, **purpose_fields}
        if purpose_fields:
            purpose = Purpose.from_dict({**purpose.to_dict(), **purpose_fields})
        now = datetime.now(UTC)
        return sign_manifest(
            self.manifest_key,
            round_id=new_round_id(now),
            network=self.net.config.network,
            purpose=purpose,
            partners=list(partners or purpose.partners),
            now=now,
            ttl_seconds=600,
            initiated_by="operator:mallory",
        )

    def propose(self, pid: str, signed: common_pb2.SignedManifest) -> common_pb2.Consent:
        answer = self.stub(pid).Propose(signed, timeout=10)
        consent = common_pb2.Consent()
        consent.ParseFromString(answer.consent)
        return consent

    def close(self) -> None:
        for channel in self._channels:
            channel.close()


@pytest.fixture
def net(network_factory):
    n = network_factory(PARTNERS, per_partner=30, overlaps={2: 5, 3: 3})
    n.add_purpose()
    return n


@pytest.fixture
def mallory(net):
    attacker = MaliciousCoordinator(net)
    yield attacker
    attacker.close()


def refusals(net, pid: str) -> list[str]:
    """The reasons of every consent this node refused, from its own audit log."""
    return [
        e.details.get("reason", "")
        for e in net.nodes[pid].rounds.audit.events()
        if e.event == "consent.refused"
    ]


class TestBoundedConsent:
    def test_subset_manifest_is_refused(self, net, mallory):
        """A manifest naming only part of the agreed partners is refused and audited."""
        consent = mallory.propose("gemeente", mallory.manifest(partners=["gemeente", "woonbron"]))
        assert not consent.granted
        assert "only part of the agreed partners" in consent.reason
        assert "schuldhulp" in consent.reason
        assert any("only part" in r for r in refusals(net, "gemeente"))
        assert net.nodes["gemeente"].rounds.rounds_in_flight() == []

    def test_listed_subset_is_accepted(self, network_factory):
        """A subset the policy lists in allowed_subsets is consented to."""
        n = network_factory(PARTNERS, per_partner=20, overlaps={2: 3}, start=False)
        toml = n.node_dirs["gemeente"] / "node.toml"
        toml.write_text(toml.read_text() + 'allowed_subsets = [["woonbron"]]\n')
        for pid in PARTNERS:
            n.start_node(pid)
        n.start_coordinator()
        n.add_purpose()
        attacker = MaliciousCoordinator(n)
        try:
            consent = attacker.propose(
                "gemeente", attacker.manifest(partners=["gemeente", "woonbron"])
            )
        finally:
            attacker.close()
        assert consent.granted, consent.reason
        n.nodes["gemeente"].rounds.abort(consent.round_id, "test over")

    def test_century_retention_is_refused(self, net, mallory):
        """A manifest keeping results for 100 years exceeds the node's retention cap."""
        consent = mallory.propose("woonbron", mallory.manifest(result_retention_days=36_500))
        assert not consent.granted
        assert "longer than this node allows (90)" in consent.reason
        assert any("longer than this node allows" in r for r in refusals(net, "woonbron"))

    def test_back_to_back_rounds_are_refused(self, network_factory):
        """With the default interval, a second round of a purpose within a day is refused."""
        n = network_factory(PARTNERS, per_partner=20, overlaps={2: 3}, start=False)
        toml = n.node_dirs["gemeente"] / "node.toml"
        toml.write_text(toml.read_text().replace("min_round_interval_hours = 0\n", ""))
        for pid in PARTNERS:
            n.start_node(pid)
        n.start_coordinator()
        n.add_purpose()
        attacker = MaliciousCoordinator(n)
        try:
            first = attacker.propose("gemeente", attacker.manifest())
            assert first.granted, first.reason
            n.nodes["gemeente"].rounds.abort(first.round_id, "test over")
            answers = [attacker.propose("gemeente", attacker.manifest()) for _ in range(4)]
        finally:
            attacker.close()
        assert not any(a.granted for a in answers)
        assert all("min_round_interval_hours" in a.reason for a in answers)
        assert len([r for r in refusals(n, "gemeente") if "hours ago" in r]) == 4

    def test_unagreed_purpose_version_is_refused(self, network_factory):
        """A node that pinned purpose_version refuses a manifest for any other version."""
        n = network_factory(PARTNERS, per_partner=20, overlaps={2: 3}, start=False)
        toml = n.node_dirs["schuldhulp"] / "node.toml"
        toml.write_text(toml.read_text() + "purpose_version = 1\n")
        for pid in PARTNERS:
            n.start_node(pid)
        n.start_coordinator()
        n.add_purpose()
        attacker = MaliciousCoordinator(n)
        try:
            consent = attacker.propose("schuldhulp", attacker.manifest(version=7))
        finally:
            attacker.close()
        assert not consent.granted
        assert "version 7 is not the version this organisation agreed to (1)" in consent.reason

    def test_policy_without_max_set_size_does_not_load(self, network_factory):
        """max_set_size is required: a policy without it is a config error naming the table."""
        from kruispunt.errors import ConfigError

        n = network_factory(PARTNERS[:2], per_partner=10, overlaps={2: 2}, start=False)
        toml = n.node_dirs["gemeente"] / "node.toml"
        text = toml.read_text()
        toml.write_text("\n".join(x for x in text.splitlines() if "max_set_size" not in x))
        with pytest.raises(ConfigError, match=r"\[policy.vroegsignalering\] needs max_set_size"):
            n.node_config("gemeente")

    def test_damaged_consent_history_refuses_rather_than_forgets(self, net, mallory):
        """An unreadable consent history never lifts the interval limit: the node refuses."""
        state = net.node_config("woonbron").state_dir
        (state / "last-consent.json").write_text("{not json")
        consent = mallory.propose("woonbron", mallory.manifest())
        assert not consent.granted
        assert "last-consent.json" in consent.reason
