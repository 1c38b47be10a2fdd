"""Certificate pinning over real mTLS: the CA's word is not enough, the fingerprint decides.

The network CA vouches for every certificate it ever issued until each expires: the
one a renewal replaced, one issued in error, one a departed administrator kept. The
coordinator therefore connects to a node only if it presents the certificate in the
registry (`kruispunt.transport.pinned_channel`), and a node admits the coordinator only
with the certificate its accepted roster pins (`psi_node.pins.CoordinatorPin`). Each
attack below uses a certificate the real network CA issued for the right identity, and
passes only when it is refused.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from coordinator.doctor import run_doctor as coordinator_doctor
from coordinator.renew import renew_coordinator, renew_partner
from kruispunt import pki, transport
from kruispunt.doctor import FAIL, OK
from kruispunt.pki import Identity
from kruispunt.v1 import common_pb2, node_pb2_grpc
from psi_node.provision import install_certificate
from tests.support.certs import make_test_pki
from tests.support.network import NETWORK, TestNetwork

PARTNERS = ["gemeente", "woonbron"]
SMALL = {"per_partner": 12, "overlaps": {2: 3}}


@pytest.fixture
def net(network_factory) -> TestNetwork:
    n = network_factory(PARTNERS, **SMALL)
    n.add_purpose()
    return n


def ca(net: TestNetwork) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """The real network CA's key and certificate: every certificate below is CA-valid."""
    return pki.load_tls_key(net.ca_key), pki.load_certificate(net.config.tls_ca)


def reissue_node_certificate(net: TestNetwork, pid: str, *, new_key: bool) -> x509.Certificate:
    """Put a CA-valid certificate the registry does not list at `pid`'s node; restart it."""
    ca_key, ca_cert = ca(net)
    config = net.node_config(pid)
    if new_key:
        key = pki.generate_tls_key()
        config.tls_key.unlink()
        pki.write_private_key(config.tls_key, key)
    else:
        key = pki.load_tls_key(config.tls_key)
    cert = pki.issue_for_key(
        ca_key,
        ca_cert,
        key.public_key(),
        Identity.partner(NETWORK, pid),
    )
    pki.write_pem(config.tls_cert, cert)
    net.stop_node(pid)
    net.start_node(pid)
    return cert


def coordinator_certificate(net: TestNetwork) -> tuple[bytes, bytes]:
    """A fresh CA-valid certificate for the coordinator's identity (key PEM, cert PEM)."""
    ca_key, ca_cert = ca(net)
    key = pki.generate_tls_key()
    cert = pki.issue_for_key(
        ca_key,
        ca_cert,
        key.public_key(),
        Identity.coordinator(NETWORK),
    )
    return pki.private_key_pem(key), pki.certificate_pem(cert)


def health_as(net: TestNetwork, pid: str, key_pem: bytes, cert_pem: bytes) -> str:
    """Call `pid`'s node health check with this client certificate: SERVING, or the refusal."""
    channel = transport.secure_channel(
        f"127.0.0.1:{net.nodes[pid].port}",
        Identity.partner(NETWORK, pid),
        key_pem=key_pem,
        cert_pem=cert_pem,
        ca_pem=net.config.tls_ca.read_bytes(),
    )
    try:
        stub = health_pb2_grpc.HealthStub(channel)
        answer = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
    except grpc.RpcError as exc:
        return f"{exc.code().name}: {exc.details()}"
    finally:
        channel.close()


def propose_as(net: TestNetwork, pid: str, key_pem: bytes, cert_pem: bytes) -> grpc.RpcError:
    """Call Propose with an empty manifest under this certificate; return the refusal."""
    channel = transport.secure_channel(
        f"127.0.0.1:{net.nodes[pid].port}",
        Identity.partner(NETWORK, pid),
        key_pem=key_pem,
        cert_pem=cert_pem,
        ca_pem=net.config.tls_ca.read_bytes(),
    )
    try:
        with pytest.raises(grpc.RpcError) as refused:
            node_pb2_grpc.PsiNodeStub(channel).Propose(common_pb2.SignedManifest(), timeout=10)
        return refused.value
    finally:
        channel.close()


@pytest.fixture
def coordinator_files(net: TestNetwork) -> tuple[bytes, bytes]:
    """The serving coordinator's own TLS key and certificate (PEM)."""
    config = net.config
    return pki.private_key_pem(pki.load_tls_key(config.tls_key)), config.tls_cert.read_bytes()


class TestCoordinatorPinsTheNode:
    @pytest.mark.parametrize("new_key", [False, True], ids=["same-key", "another-key"])
    def test_a_ca_valid_node_certificate_that_is_not_registered_is_refused(self, net, new_key):
        """A node serving a CA-valid certificate other than the registered one gets no round,
        and the refusal names the partner and the handshake, not a network fault."""
        reissue_node_certificate(net, "gemeente", new_key=new_key)
        summary = net.run()
        assert summary.state == "failed"
        assert "gemeente" in summary.reason
        assert "refused at the TLS handshake" in summary.reason
        assert net.nodes["gemeente"].rounds.rounds_in_flight() == []
        check = coordinator_doctor(net.coordinator_dir).by_name("partner gemeente reachable")
        assert check.status == FAIL
        assert "not the registered one" in check.detail
        assert (
            coordinator_doctor(net.coordinator_dir).by_name("partner woonbron reachable").status
            == OK
        )

    def test_a_renewed_certificate_supersedes_the_old_one_at_once(self, net):
        """After `partner renew` the old certificate, still CA-valid and unexpired, is refused;
        the renewed one installed at the node is accepted."""
        assert net.run().state == "completed"
        old = pki.load_certificate(net.node_config("gemeente").tls_cert)
        issued = renew_partner(net.config, "gemeente", ca_key_path=net.ca_key)
        assert pki.certificate_expires_in(old).days > 30  # still valid for the CA
        refused = net.run()
        assert refused.state == "failed"
        assert "gemeente" in refused.reason
        assert "refused at the TLS handshake" in refused.reason
        install_certificate(
            net.node_dirs["gemeente"],
            cert_path=issued,
            ca_path=net.config.tls_ca,
            coordinator_key_path=net.config.signing_public_key,
            partner_id="gemeente",
        )
        net.publish_roster()
        net.stop_node("gemeente")
        net.start_node("gemeente")
        assert net.run().state == "completed"


class TestNodePinsTheCoordinator:
    def test_a_ca_valid_coordinator_certificate_that_is_not_pinned_is_refused(
        self, net, coordinator_files
    ):
        """A CA-valid coordinator certificate other than the roster's is UNAUTHENTICATED, the
        detail naming the coordinator's identity and the roster; the pinned one is served."""
        key_pem, cert_pem = coordinator_certificate(net)
        answer = health_as(net, "gemeente", key_pem, cert_pem)
        assert answer.startswith("UNAUTHENTICATED: kruispunt://testnet/coordinator: certificate")
        assert "is not the coordinator certificate pinned by roster version 1" in answer
        refused = propose_as(net, "gemeente", key_pem, cert_pem)
        assert refused.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "pinned by roster" in refused.details()
        assert health_as(net, "gemeente", *coordinator_files) == "SERVING"

    def test_a_renewed_coordinator_certificate_supersedes_the_old_once_nodes_accept_it(
        self, net, coordinator_files
    ):
        """`renew` gives the coordinator a new certificate: nodes admit it only after they
        accept the roster that pins it, and from then on refuse the old one."""
        old_key, old_cert = coordinator_files
        renew_coordinator(net.config, ca_key_path=net.ca_key)
        new_cert = net.config.tls_cert.read_bytes()
        assert new_cert != old_cert
        assert health_as(net, "gemeente", old_key, new_cert).startswith("UNAUTHENTICATED")
        roster = net.publish_roster()
        assert roster.coordinator_tls_fingerprint == bytes.fromhex(
            pki.fingerprint(x509.load_pem_x509_certificate(new_cert))
        )
        assert health_as(net, "gemeente", old_key, new_cert) == "SERVING"
        answer = health_as(net, "gemeente", old_key, old_cert)
        assert answer.startswith("UNAUTHENTICATED: kruispunt://testnet/coordinator")


class TestPinnedChannel:
    """`transport.pinned_channel` on its own, against a bare health server."""

    @staticmethod
    def serve(key: ec.EllipticCurvePrivateKey, cert: x509.Certificate, ca_pem: bytes) -> Any:
        server = transport.make_server(transport.AuthInterceptor("test", {}))
        health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
        creds = transport.server_credentials(
            pki.private_key_pem(key), pki.certificate_pem(cert), ca_pem
        )
        port = transport.bind_secure_port(server, "127.0.0.1:0", creds)
        server.start()
        return server, port

    @staticmethod
    def check(port: int, peer: Identity, client: Any, pinned: x509.Certificate) -> str:
        channel = transport.pinned_channel(
            f"127.0.0.1:{port}",
            peer,
            key_pem=client.key_pem,
            cert_pem=client.cert_pem,
            pinned_pem=pki.certificate_pem(pinned),
        )
        try:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
            return "SERVING"
        except grpc.RpcError as exc:
            return exc.code().name
        finally:
            channel.close()

    def test_only_the_pinned_leaf_is_accepted(self, tmp_path):
        """Pinned to one CA-valid leaf, the channel refuses a second one for the same name."""
        test_pki = make_test_pki(tmp_path, network="test", partners=["a"])
        a = test_pki.partner("a")
        second = test_pki.issue(a.identity, file_stem="a-second")
        server, port = self.serve(second.key, second.cert, test_pki.ca_pem)
        try:
            assert self.check(port, a.identity, test_pki.coordinator, second.cert) == "SERVING"
            assert self.check(port, a.identity, test_pki.coordinator, a.cert) == "UNAVAILABLE"
        finally:
            server.stop(0)

    def test_an_expired_pinned_leaf_is_refused(self, tmp_path):
        """Pinning does not skip the dates: an expired registered certificate is refused."""
        test_pki = make_test_pki(tmp_path, network="test", partners=["a"])
        past = datetime.now(UTC) - timedelta(days=5)
        ca_key, ca_cert = pki.create_ca("test", now=past - timedelta(days=10))
        key = pki.generate_tls_key()
        identity = Identity.partner("test", "a")
        expired = pki.issue_for_key(ca_key, ca_cert, key.public_key(), identity, days=1, now=past)
        server, port = self.serve(key, expired, test_pki.ca_pem)
        try:
            assert self.check(port, identity, test_pki.coordinator, expired) == "UNAVAILABLE"
        finally:
            server.stop(0)
