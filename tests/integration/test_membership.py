"""Deactivating, reactivating and removing partners, and the deny-list, over real mTLS.

`psi-coordinator partner deactivate/reactivate/remove` run in process as a person
(SUDO_USER); the serving coordinator's interceptor checks its deny-list before any role
rule, so a denied certificate gets PERMISSION_DENIED naming its identity and the reason
(a partner's certificate that is not denied meets the role rule instead: the detail
tells the two apart). Every change is audited with the person.
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from coordinator import cli as coordinator_cli
from coordinator.provision import export_roster
from coordinator.renew import renew_partner
from kruispunt import pki, transport
from kruispunt.errors import ConfigError
from kruispunt.pki import Identity
from kruispunt.v1 import coordinator_pb2, coordinator_pb2_grpc
from tests.support.network import NETWORK, TestNetwork

PARTNERS = ["gemeente", "woonbron", "schuldhulp"]
SMALL = {"per_partner": 12, "overlaps": {2: 3}}


@pytest.fixture
def net(network_factory: Any) -> TestNetwork:
    n = network_factory(PARTNERS, **SMALL)
    n.add_purpose()
    return n


def cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = coordinator_cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def events(net: TestNetwork, name: str) -> list[Any]:
    assert net.coordinator is not None
    return [e for e in net.coordinator.audit.events() if e.event == name]


def call_admin_as(net: TestNetwork, key_pem: bytes, cert_pem: bytes) -> str:
    """Call the coordinator's admin service (CancelRound) with this certificate: the refusal."""
    assert net.coordinator is not None
    channel = transport.secure_channel(
        f"127.0.0.1:{net.coordinator.port}",
        Identity.coordinator(NETWORK),
        key_pem=key_pem,
        cert_pem=cert_pem,
        ca_pem=net.config.tls_ca.read_bytes(),
    )
    try:
        stub = coordinator_pb2_grpc.CoordinatorStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.CancelRound(coordinator_pb2.CancelRoundRequest(round_id="r1"), timeout=10)
        details = refused.value.details() or ""
        health = health_pb2_grpc.HealthStub(channel)
        try:
            health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
            health_answer = "SERVING"
        except grpc.RpcError as exc:
            health_answer = exc.details() or ""
        # The deny-list is checked before any rule: the health service, open to every
        # member, refuses a denied certificate too.
        assert health_answer == (details if "is denied" in details else "SERVING")
        return f"{refused.value.code().name}: {details}"
    finally:
        channel.close()


def node_files(net: TestNetwork, pid: str) -> tuple[bytes, bytes]:
    config = net.node_config(pid)
    return pki.private_key_pem(pki.load_tls_key(config.tls_key)), config.tls_cert.read_bytes()


def manifests_seen(net: TestNetwork, pid: str) -> int:
    audit = net.nodes[pid].rounds.audit
    return sum(1 for e in audit.events() if e.event == "manifest.seen")


class TestDeactivate:
    def test_a_deactivated_partner_is_not_asked_and_cannot_connect(self, net, capsys, monkeypatch):
        """After `partner deactivate` no round asks woonbron (its node sees no manifest), its
        certificate is PERMISSION_DENIED naming it; the change is audited with the person."""
        key_pem, cert_pem = node_files(net, "woonbron")
        before = call_admin_as(net, key_pem, cert_pem)
        assert before.startswith("PERMISSION_DENIED: role partner may not call")
        seen = manifests_seen(net, "woonbron")
        monkeypatch.setenv("SUDO_USER", "alice")
        code, out, err = cli(
            capsys, "partner", "deactivate", net.coordinator_dir, "woonbron", "--reason", "audit"
        )
        assert code == 0, err
        assert "deactivated" in out
        answer = call_admin_as(net, key_pem, cert_pem)
        assert answer.startswith("PERMISSION_DENIED: kruispunt://testnet/partner/woonbron: ")
        assert answer.endswith("is denied: partner 'woonbron' is deactivated")
        with pytest.raises(ConfigError, match="names partner 'woonbron', which is deactivated"):
            net.run()
        assert manifests_seen(net, "woonbron") == seen
        (event,) = events(net, "partner.deactivated")
        assert event.actor == "operator:alice"
        assert event.details["partner"] == "woonbron"
        assert event.details["reason"] == "audit"
        # Still a member: the roster keeps it, so deactivating needs no new roster.
        assert export_roster(net.config)[1] == []
        code, out, _err = cli(capsys, "partner", "list", net.coordinator_dir)
        assert code == 0
        (line,) = [row for row in out.splitlines() if row.startswith("woonbron")]
        assert line.endswith("deactivated")
        assert not any(row.endswith("deactivated") for row in out.splitlines() if row != line)

    def test_reactivate_restores_rounds(self, net, capsys, monkeypatch):
        """`partner reactivate` lifts the denial and the next round completes, audited."""
        monkeypatch.setenv("SUDO_USER", "bob")
        assert cli(capsys, "partner", "deactivate", net.coordinator_dir, "woonbron")[0] == 0
        code, _out, err = cli(capsys, "partner", "reactivate", net.coordinator_dir, "woonbron")
        assert code == 0, err
        answer = call_admin_as(net, *node_files(net, "woonbron"))
        assert answer.startswith("PERMISSION_DENIED: role partner may not call")
        assert net.run().state == "completed"
        (event,) = events(net, "partner.reactivated")
        assert event.actor == "operator:bob"

    def test_unknown_or_repeated_changes_are_clear_errors(self, net, capsys):
        """Deactivating twice, reactivating an active partner or naming no partner fail
        with the reason, never a traceback."""
        assert cli(capsys, "partner", "deactivate", net.coordinator_dir, "woonbron")[0] == 0
        code, _out, err = cli(capsys, "partner", "deactivate", net.coordinator_dir, "woonbron")
        assert code == 1
        assert "already deactivated" in err
        code, _out, err = cli(capsys, "partner", "reactivate", net.coordinator_dir, "gemeente")
        assert code == 1
        assert "is active; nothing to reactivate" in err
        code, _out, err = cli(capsys, "partner", "remove", net.coordinator_dir, "nobody")
        assert code == 1
        assert "partner 'nobody' is not registered" in err
        assert "Traceback" not in err


class TestRemove:
    def test_removal_leaves_the_roster_and_denies_the_certificate_forever(
        self, net, capsys, monkeypatch
    ):
        """`partner remove` takes schuldhulp out of the registry and the next roster (a new
        digest), and its certificate is denied; audited with the person."""
        before = net.publish_roster()
        key_pem, cert_pem = node_files(net, "schuldhulp")
        fingerprint = pki.fingerprint(pki.load_certificate(net.node_config("schuldhulp").tls_cert))
        monkeypatch.setenv("SUDO_USER", "carol")
        code, out, err = cli(
            capsys, "partner", "remove", net.coordinator_dir, "schuldhulp", "--reason", "left"
        )
        assert code == 0, err
        assert fingerprint[:16] in out
        roster, changes = export_roster(net.config)
        assert roster.version == before.version + 1
        assert roster.digest != before.digest
        assert "schuldhulp" not in roster.ids
        assert "partner removed: schuldhulp (Organisatie schuldhulp)" in changes
        answer = call_admin_as(net, key_pem, cert_pem)
        assert answer.startswith("PERMISSION_DENIED: kruispunt://testnet/partner/schuldhulp: ")
        assert "is denied: partner removed on" in answer
        (event,) = events(net, "partner.removed")
        assert event.actor == "operator:carol"
        assert event.details == {
            "partner": "schuldhulp",
            "cert_fingerprint": fingerprint,
            "reason": "left",
        }
        denied = net.coordinator.store.denied_certificates()
        assert [(d[0], d[1]) for d in denied] == [
            (fingerprint, "kruispunt://testnet/partner/schuldhulp")
        ]


class TestSupersededIsDenied:
    def test_a_renewed_partners_old_certificate_is_on_the_deny_list(self, net):
        """`partner renew` denies the old certificate: over mTLS it is PERMISSION_DENIED as
        superseded, while the renewed one only meets the role rule."""
        old = node_files(net, "gemeente")
        issued = renew_partner(
            net.config, "gemeente", ca_key_path=net.ca_key, actor="operator:dave"
        )
        answer = call_admin_as(net, *old)
        assert answer.startswith("PERMISSION_DENIED: kruispunt://testnet/partner/gemeente: ")
        assert "is denied: superseded by a renewal on" in answer
        new_cert = issued.read_bytes()
        assert call_admin_as(net, old[0], new_cert).startswith(
            "PERMISSION_DENIED: role partner may not call"
        )
