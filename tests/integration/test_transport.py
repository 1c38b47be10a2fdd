"""Tests for kruispunt.transport: mTLS on loopback, the identity/role interceptor, error mapping."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from kruispunt import pki, transport
from kruispunt.errors import KruispuntError, ManifestRejected, ResourceLimit, UnknownRound
from kruispunt.pki import Identity, Role
from kruispunt.transport import AuthInterceptor, current_peer
from tests.support.certs import Party, TestPki, make_test_pki

TIMEOUT = 10.0
ECHO = "/kruispunt.test.Echo/"
RULES = {ECHO: [Role.COORDINATOR], "/kruispunt.test.Admin/": [Role.OPERATOR]}
# Never logged, never sent back in an error: the stand-in for an identifier in a payload.
SECRET = b"123456782"


# ---------------------------------------------------------------------------------------
# A generic test service (bytes in, bytes out; no protobuf needed)


@dataclass
class RecordingLogger:
    """Stands in for a structlog logger; keeps every call."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _record(self, level: str, event: str, **kw: Any) -> None:
        with self.lock:
            self.entries.append({"level": level, "event": event, **kw})

    def info(self, event: str, **kw: Any) -> None:
        self._record("info", event, **kw)

    def warning(self, event: str, **kw: Any) -> None:
        self._record("warning", event, **kw)

    def error(self, event: str, **kw: Any) -> None:
        self._record("error", event, **kw)

    def exception(self, event: str, **kw: Any) -> None:
        self._record("exception", event, **kw)

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()

    def rpc_lines(self, method: str) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.entries if e["event"] == "rpc" and e["method"] == method]

    def wait_for(self, method: str, count: int = 1) -> list[dict[str, Any]]:
        """The RPC lines for `method`, once at least `count` are there (grpc logs async)."""
        deadline = time.monotonic() + TIMEOUT
        while len(lines := self.rpc_lines(method)) < count and time.monotonic() < deadline:
            time.sleep(0.005)
        return lines


def _fail(mode: bytes, context: grpc.ServicerContext) -> None:
    if mode == b"limit":
        raise ResourceLimit("set larger than the purpose allows")
    if mode == b"unknown":
        raise UnknownRound("round is not known here")
    if mode == b"manifest":
        raise ManifestRejected("manifest has expired")
    if mode == b"runtime":
        raise RuntimeError("boom near " + SECRET.decode())
    if mode == b"abort":
        context.abort(grpc.StatusCode.NOT_FOUND, "handler chose this status")


@dataclass
class EchoService:
    """Each method answers with the caller's identity URI, a '|', then the payload."""

    calls: list[str] = field(default_factory=list)
    stream_open: threading.Event = field(default_factory=threading.Event)

    def _tag(self, payload: bytes) -> bytes:
        return current_peer().uri.encode() + b"|" + payload

    def unary(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        self.calls.append("unary")
        return self._tag(request)

    def server_stream(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        self.calls.append("server_stream")
        for part in request.split(b","):
            yield self._tag(part)

    def client_stream(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        self.calls.append("client_stream")
        return self._tag(b",".join(requests))

    def bidi_stream(
        self, requests: Iterator[bytes], context: grpc.ServicerContext
    ) -> Iterator[bytes]:
        self.calls.append("bidi_stream")
        for request in requests:
            yield self._tag(request)

    def fail(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        self.calls.append("fail")
        _fail(request, context)
        return b"not failed"

    def fail_stream(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        self.calls.append("fail_stream")
        yield b"first"
        _fail(request, context)

    def endless(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        self.stream_open.set()
        while True:
            yield b"tick"
            time.sleep(0.01)

    def admin(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        self.calls.append("admin")
        return self._tag(request)

    def handlers(self) -> list[grpc.GenericRpcHandler]:
        return [
            grpc.method_handlers_generic_handler(
                "kruispunt.test.Echo",
                {
                    "Unary": grpc.unary_unary_rpc_method_handler(self.unary),
                    "ServerStream": grpc.unary_stream_rpc_method_handler(self.server_stream),
                    "ClientStream": grpc.stream_unary_rpc_method_handler(self.client_stream),
                    "BidiStream": grpc.stream_stream_rpc_method_handler(self.bidi_stream),
                    "Fail": grpc.unary_unary_rpc_method_handler(self.fail),
                    "FailStream": grpc.unary_stream_rpc_method_handler(self.fail_stream),
                    "Endless": grpc.unary_stream_rpc_method_handler(self.endless),
                },
            ),
            grpc.method_handlers_generic_handler(
                "kruispunt.test.Admin", {"Do": grpc.unary_unary_rpc_method_handler(self.admin)}
            ),
            grpc.method_handlers_generic_handler(
                "kruispunt.test.Unruled", {"Do": grpc.unary_unary_rpc_method_handler(self.admin)}
            ),
        ]


@dataclass
class Node:
    """A running server holding partner a's certificate."""

    pki: TestPki
    service: EchoService
    log: RecordingLogger
    address: str
    identity: Identity
    channels: list[grpc.Channel] = field(default_factory=list)

    def channel(self, party: Party, peer: Identity | None = None, **kw: Any) -> grpc.Channel:
        channel = party.channel(self.address, peer or self.identity, **kw)
        self.channels.append(channel)
        return channel


def _start(
    server_party: Party, service: EchoService, interceptor: AuthInterceptor
) -> tuple[grpc.Server, str]:
    server = transport.make_server(interceptor, max_workers=8)
    server.add_generic_rpc_handlers(service.handlers())
    health_servicer = health.HealthServicer()
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = transport.bind_secure_port(server, "127.0.0.1:0", server_party.server_credentials())
    server.start()
    return server, f"127.0.0.1:{port}"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return make_test_pki(tmp_path_factory.mktemp("transport"), network="test", partners=["a", "b"])


@pytest.fixture(scope="module")
def server(net: TestPki) -> Iterator[tuple[EchoService, RecordingLogger, str]]:
    service, log = EchoService(), RecordingLogger()
    grpc_server, address = _start(
        net.partner("a"), service, AuthInterceptor("test", RULES, logger=log)
    )
    yield service, log, address
    grpc_server.stop(None).wait()


@pytest.fixture
def node(net: TestPki, server: tuple[EchoService, RecordingLogger, str]) -> Iterator[Node]:
    service, log, address = server
    service.calls.clear()
    log.clear()
    node = Node(net, service, log, address, net.partner("a").identity)
    yield node
    for channel in node.channels:
        channel.close()


def _unary(channel: grpc.Channel, method: str, payload: bytes = b"x") -> bytes:
    response: bytes = channel.unary_unary(method)(payload, timeout=TIMEOUT)
    return response


SHAPES: dict[str, Callable[[grpc.Channel], list[bytes]]] = {
    "unary-unary": lambda ch: [ch.unary_unary(ECHO + "Unary")(b"p", timeout=TIMEOUT)],
    "unary-stream": lambda ch: list(
        ch.unary_stream(ECHO + "ServerStream")(b"p,q", timeout=TIMEOUT)
    ),
    "stream-unary": lambda ch: [
        ch.stream_unary(ECHO + "ClientStream")(iter([b"p", b"q"]), timeout=TIMEOUT)
    ],
    "stream-stream": lambda ch: list(
        ch.stream_stream(ECHO + "BidiStream")(iter([b"p", b"q"]), timeout=TIMEOUT)
    ),
}
EXPECTED = {
    "unary-unary": [b"p"],
    "unary-stream": [b"p", b"q"],
    "stream-unary": [b"p,q"],
    "stream-stream": [b"p", b"q"],
}


def _code(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


# ---------------------------------------------------------------------------------------
# Tests


class TestHandshake:
    def test_coordinator_reaches_node(self, node: Node) -> None:
        """The coordinator's certificate gets through, and the handler sees who called."""
        response = _unary(node.channel(node.pki.coordinator), ECHO + "Unary", b"hi")
        assert response == b"kruispunt://test/coordinator|hi"

    def test_foreign_ca_refused(self, node: Node) -> None:
        """A client certificate from another CA fails the TLS handshake: UNAVAILABLE."""
        # The impostor's certificate names partner a of network "test", exactly like the
        # real one, but its chain ends at a CA the server does not trust. The server
        # refuses it during the handshake, before any RPC exists, so no interceptor or
        # handler runs and the client only sees a connection it could not establish.
        error = _code(lambda: _unary(node.channel(node.pki.foreign), ECHO + "Unary"))
        assert error.code() is grpc.StatusCode.UNAVAILABLE
        assert node.service.calls == []
        assert node.log.rpc_lines(ECHO + "Unary") == []

    def test_wrong_server_identity_refused(self, node: Node) -> None:
        """A client expecting partner b refuses a server that holds partner a's certificate."""
        # The address is right, but the DNS SAN the server presents names partner a,
        # while the channel's TLS target name is b.partner.test.kruispunt.internal.
        channel = node.channel(node.pki.coordinator, Identity.partner("test", "b"))
        error = _code(lambda: _unary(channel, ECHO + "Unary"))
        assert error.code() is grpc.StatusCode.UNAVAILABLE
        assert node.service.calls == []

    def test_expired_client_certificate_refused(self, tmp_path: Path) -> None:
        """An expired client certificate fails the handshake even though its CA is trusted."""
        past = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
        ca_key, ca_cert = pki.create_ca("test", now=past)
        ca_pem = pki.certificate_pem(ca_cert)

        def party(identity: Identity, days: int) -> tuple[bytes, bytes]:
            key = pki.generate_tls_key()
            cert = pki.issue_for_key(
                ca_key, ca_cert, key.public_key(), identity, days=days, now=past
            )
            return pki.private_key_pem(key), pki.certificate_pem(cert)

        node_key, node_cert = party(Identity.partner("test", "a"), 397)
        client_key, client_cert = party(Identity.coordinator("test"), 1)
        service = EchoService()
        grpc_server = transport.make_server(
            AuthInterceptor("test", RULES, logger=RecordingLogger())
        )
        grpc_server.add_generic_rpc_handlers(service.handlers())
        port = transport.bind_secure_port(
            grpc_server, "127.0.0.1:0", transport.server_credentials(node_key, node_cert, ca_pem)
        )
        grpc_server.start()
        try:
            with transport.secure_channel(
                f"127.0.0.1:{port}",
                Identity.partner("test", "a"),
                key_pem=client_key,
                cert_pem=client_cert,
                ca_pem=ca_pem,
            ) as channel:
                error = _code(lambda: _unary(channel, ECHO + "Unary"))
        finally:
            grpc_server.stop(None).wait()
        assert error.code() is grpc.StatusCode.UNAVAILABLE
        assert service.calls == []


class TestAuthorization:
    @pytest.mark.parametrize("shape", SHAPES)
    def test_every_shape_serves_allowed_role(self, node: Node, shape: str) -> None:
        """All four handler shapes run for the coordinator and see it as the caller."""
        responses = SHAPES[shape](node.channel(node.pki.coordinator))
        assert responses == [b"kruispunt://test/coordinator|" + p for p in EXPECTED[shape]]
        assert len(node.service.calls) == 1

    @pytest.mark.parametrize("shape", SHAPES)
    def test_every_shape_denies_partner(self, node: Node, shape: str) -> None:
        """A partner calling a coordinator-only method gets PERMISSION_DENIED in every shape."""
        channel = node.channel(node.pki.partner("b"))
        error = _code(lambda: SHAPES[shape](channel))
        assert error.code() is grpc.StatusCode.PERMISSION_DENIED
        assert error.details().startswith("role partner may not call")
        assert node.service.calls == []  # the handler never ran

    def test_operator_method(self, node: Node) -> None:
        """An operator may call the admin method; coordinator and partners may not."""
        method = "/kruispunt.test.Admin/Do"
        assert (
            _unary(node.channel(node.pki.operator), method) == b"kruispunt://test/operator/admin|x"
        )
        for party in (node.pki.coordinator, node.pki.partner("b")):
            error = _code(lambda p=party: _unary(node.channel(p), method))  # type: ignore[misc]
            assert error.code() is grpc.StatusCode.PERMISSION_DENIED

    def test_method_without_rule_refused(self, node: Node) -> None:
        """A served method that no rule covers is refused (fail closed) and logged as an error."""
        method = "/kruispunt.test.Unruled/Do"
        error = _code(lambda: _unary(node.channel(node.pki.coordinator), method))
        assert error.code() is grpc.StatusCode.PERMISSION_DENIED
        assert node.service.calls == []
        [line] = node.log.wait_for(method)
        assert line["level"] == "error"

    def test_unknown_method_unimplemented(self, node: Node) -> None:
        """A method the server does not have is UNIMPLEMENTED."""
        error = _code(lambda: _unary(node.channel(node.pki.coordinator), ECHO + "Nope"))
        assert error.code() is grpc.StatusCode.UNIMPLEMENTED

    @pytest.mark.parametrize("who", ["coordinator", "operator", "partner"])
    def test_health_open_to_members(self, node: Node, who: str) -> None:
        """Any authenticated member of the network may use the standard health service."""
        party = {
            "coordinator": node.pki.coordinator,
            "operator": node.pki.operator,
            "partner": node.pki.partner("b"),
        }[who]
        stub = health_pb2_grpc.HealthStub(node.channel(party))
        response = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT)
        assert response.status == health_pb2.HealthCheckResponse.SERVING

    def test_other_network_unauthenticated(self, net: TestPki) -> None:
        """A valid certificate naming another network than the server's is UNAUTHENTICATED."""
        service, log = EchoService(), RecordingLogger()
        grpc_server, address = _start(
            net.partner("a"), service, AuthInterceptor("elsewhere", RULES, logger=log)
        )
        try:
            with net.coordinator.channel(address, net.partner("a").identity) as channel:
                error = _code(lambda: _unary(channel, ECHO + "Unary"))
        finally:
            grpc_server.stop(None).wait()
        assert error.code() is grpc.StatusCode.UNAUTHENTICATED
        assert error.details() == "client certificate is for another network"
        assert service.calls == []


class TestErrorMapping:
    @pytest.mark.parametrize(
        ("mode", "status", "message"),
        [
            (b"limit", grpc.StatusCode.RESOURCE_EXHAUSTED, "set larger than the purpose allows"),
            (b"unknown", grpc.StatusCode.NOT_FOUND, "round is not known here"),
            (b"manifest", grpc.StatusCode.PERMISSION_DENIED, "manifest has expired"),
        ],
    )
    def test_kruispunt_error_status(
        self, node: Node, mode: bytes, status: grpc.StatusCode, message: str
    ) -> None:
        """A KruispuntError ends the RPC with its own status and message, unary or streaming."""
        channel = node.channel(node.pki.coordinator)
        error = _code(lambda: _unary(channel, ECHO + "Fail", mode))
        assert (error.code(), error.details()) == (status, message)
        received: list[bytes] = []
        error = _code(
            lambda: received.extend(
                channel.unary_stream(ECHO + "FailStream")(mode, timeout=TIMEOUT)
            )
        )
        assert (error.code(), error.details()) == (status, message)
        assert received == [b"first"]

    @pytest.mark.parametrize("method", ["Fail", "FailStream"])
    def test_unexpected_exception_is_opaque(self, node: Node, method: str) -> None:
        """Any other exception reaches the caller as INTERNAL 'internal error' and nothing more."""
        channel = node.channel(node.pki.coordinator)
        if method == "Fail":
            error = _code(lambda: _unary(channel, ECHO + method, b"runtime"))
        else:
            error = _code(
                lambda: list(channel.unary_stream(ECHO + method)(b"runtime", timeout=TIMEOUT))
            )
        assert error.code() is grpc.StatusCode.INTERNAL
        assert error.details() == "internal error"
        debug = error.debug_error_string()
        for leak in ("Traceback", "RuntimeError", "boom", SECRET.decode(), "transport.py"):
            assert leak not in error.details()
            assert leak not in debug
        assert error.trailing_metadata() in ((), None)
        # ...while the server log keeps the traceback for the operator.
        [line] = node.log.wait_for(ECHO + method)
        assert line["level"] == "error"
        assert line["code"] == "INTERNAL"
        assert isinstance(line["exc_info"], RuntimeError)

    def test_handler_abort_passes_through(self, node: Node) -> None:
        """A handler that aborts with its own status keeps that status and message."""
        error = _code(lambda: _unary(node.channel(node.pki.coordinator), ECHO + "Fail", b"abort"))
        assert error.code() is grpc.StatusCode.NOT_FOUND
        assert error.details() == "handler chose this status"
        [line] = node.log.wait_for(ECHO + "Fail")
        assert line["code"] == "NOT_FOUND"

    def test_kruispunt_error_with_ok_status_becomes_internal(self) -> None:
        """A KruispuntError subclass that claims status OK still fails the RPC, as INTERNAL."""

        class OddError(KruispuntError):
            status = grpc.StatusCode.OK

        context = FakeContext(auth={"x509_pem_cert": [pki.certificate_pem(_coordinator_cert())]})

        def handler(request: bytes, ctx: grpc.ServicerContext) -> bytes:
            raise OddError("odd")

        with pytest.raises(AbortedError) as info:
            _wrapped_unary(handler)(b"x", context)
        assert info.value.code is grpc.StatusCode.INTERNAL


class TestLogging:
    def test_one_canonical_line_per_rpc(self, node: Node) -> None:
        """Each RPC logs one line: method, peer, status code, duration; never the payload."""
        channel = node.channel(node.pki.coordinator)
        _unary(channel, ECHO + "Unary", SECRET)
        list(channel.unary_stream(ECHO + "ServerStream")(SECRET + b",2", timeout=TIMEOUT))
        for method in ("Unary", "ServerStream"):
            [line] = node.log.wait_for(ECHO + method)
            assert line["peer"] == "kruispunt://test/coordinator"
            assert line["code"] == "OK"
            assert isinstance(line["duration_ms"], float)
            assert line["duration_ms"] >= 0
        assert SECRET.decode() not in repr(node.log.entries)

    def test_denied_call_logged_with_address(self, node: Node) -> None:
        """A refused call is logged once, as a warning with peer, address and reason."""
        _code(lambda: _unary(node.channel(node.pki.partner("b")), ECHO + "Unary", SECRET))
        [line] = node.log.wait_for(ECHO + "Unary")
        assert line["level"] == "warning"
        assert line["peer"] == "kruispunt://test/partner/b"
        assert line["address"].startswith("ipv4:127.0.0.1:")
        assert line["code"] == "PERMISSION_DENIED"
        assert SECRET.decode() not in repr(node.log.entries)

    def test_cancelled_stream_logged_as_cancelled(self, node: Node) -> None:
        """A stream the client cancels is logged as CANCELLED, not as an internal error."""
        call = node.channel(node.pki.coordinator).unary_stream(ECHO + "Endless")(
            b"", timeout=TIMEOUT
        )
        assert next(call) == b"tick"
        call.cancel()
        deadline = time.monotonic() + TIMEOUT
        while not node.log.rpc_lines(ECHO + "Endless") and time.monotonic() < deadline:
            time.sleep(0.01)
        [line] = node.log.rpc_lines(ECHO + "Endless")
        assert line["code"] == "CANCELLED"
        assert "exc_info" not in line

    def test_default_logger_is_structlog(self) -> None:
        """Without an explicit logger the interceptor logs through structlog."""
        context = FakeContext(auth={"x509_pem_cert": [pki.certificate_pem(_coordinator_cert())]})
        interceptor = AuthInterceptor("test", RULES)
        with structlog.testing.capture_logs() as logs:
            _wrapped_unary(lambda r, c: b"ok", interceptor)(b"x", context)
        assert [(e["event"], e["code"], e["peer"]) for e in logs] == [
            ("rpc", "OK", "kruispunt://test/coordinator")
        ]


class TestLimits:
    def test_oversized_message_refused(self, node: Node) -> None:
        """A request above MAX_MESSAGE_BYTES is refused by the server with RESOURCE_EXHAUSTED."""
        # This client lifts its own send limit, so only the server's limit can stop it.
        channel = node.channel(
            node.pki.coordinator,
            options=(("grpc.max_send_message_length", 2 * transport.MAX_MESSAGE_BYTES),),
        )
        payload = bytes(transport.MAX_MESSAGE_BYTES + 1)
        error = _code(lambda: _unary(channel, ECHO + "Unary", payload))
        assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert node.service.calls == []

    def test_channel_limits_and_target_name(self, net: TestPki) -> None:
        """secure_channel pins the TLS target name; options cannot override it."""
        with pytest.raises(ValueError, match="target name"):
            net.coordinator.channel(
                "127.0.0.1:1",
                net.partner("a").identity,
                options=(("grpc.ssl_target_name_override", "a.partner.test.kruispunt.internal"),),
            )


# ---------------------------------------------------------------------------------------
# Interceptor unit tests, without sockets: what TLS never lets through must still be refused.


class AbortedError(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


@dataclass
class FakeContext:
    """The parts of grpc.ServicerContext the interceptor uses."""

    auth: dict[str, list[bytes]]

    def auth_context(self) -> dict[str, list[bytes]]:
        return self.auth

    def peer(self) -> str:
        return "ipv4:192.0.2.1:4444"

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise AbortedError(code, details)

    def code(self) -> None:
        return None

    def is_active(self) -> bool:
        return True

    def time_remaining(self) -> float | None:
        return None


@dataclass
class CallDetails:
    method: str
    invocation_metadata: tuple[tuple[str, str], ...] = ()


_UNIT_CA = pki.create_ca("test")


def _coordinator_cert() -> Any:
    ca_key, ca_cert = _UNIT_CA
    return pki.issue_for_key(
        ca_key, ca_cert, pki.generate_tls_key().public_key(), Identity.coordinator("test")
    )


def _wrapped_unary(
    behavior: Callable[[bytes, Any], bytes], interceptor: AuthInterceptor | None = None
) -> Callable[[bytes, Any], bytes]:
    interceptor = interceptor or AuthInterceptor("test", RULES, logger=RecordingLogger())
    handler = interceptor.intercept_service(
        lambda details: grpc.unary_unary_rpc_method_handler(behavior), CallDetails(ECHO + "Unary")
    )
    assert handler is not None
    wrapped: Callable[[bytes, Any], bytes] = handler.unary_unary
    return wrapped


class TestInterceptorUnit:
    @pytest.mark.parametrize(
        ("auth", "details"),
        [
            ({}, "a client certificate is required"),
            ({"x509_pem_cert": []}, "a client certificate is required"),
            ({"x509_pem_cert": [b"not a certificate"]}, "client certificate does not parse"),
        ],
    )
    def test_missing_or_bad_certificate(self, auth: dict[str, list[bytes]], details: str) -> None:
        """No certificate or an unparsable one is UNAUTHENTICATED; the handler never runs."""
        ran: list[bytes] = []

        def handler(request: bytes, context: Any) -> bytes:
            ran.append(request)
            return b""

        with pytest.raises(AbortedError) as info:
            _wrapped_unary(handler)(b"x", FakeContext(auth))
        assert (info.value.code, info.value.details) == (grpc.StatusCode.UNAUTHENTICATED, details)
        assert ran == []

    def test_certificate_without_identity(self) -> None:
        """A certificate (say, a CA's) that names no Kruispunt identity is UNAUTHENTICATED."""
        context = FakeContext({"x509_pem_cert": [pki.certificate_pem(_UNIT_CA[1])]})
        with pytest.raises(AbortedError) as info:
            _wrapped_unary(lambda r, c: b"")(b"x", context)
        assert info.value.code is grpc.StatusCode.UNAUTHENTICATED
        assert info.value.details == "certificate has no subjectAltName"

    def test_peer_visible_only_inside_the_call(self) -> None:
        """current_peer() works inside the handler and nowhere after it."""
        context = FakeContext({"x509_pem_cert": [pki.certificate_pem(_coordinator_cert())]})
        seen: list[Identity] = []

        def handler(request: bytes, context: Any) -> bytes:
            seen.append(current_peer())
            return b""

        _wrapped_unary(handler)(b"x", context)
        assert seen == [Identity.coordinator("test")]
        with pytest.raises(RuntimeError, match="outside an authenticated RPC"):
            current_peer()

    def test_authenticated_as(self) -> None:
        """authenticated_as() sets the peer for a block (handler unit tests) and restores it."""
        partner = Identity.partner("test", "a")
        with transport.authenticated_as(partner):
            assert current_peer() == partner
        with pytest.raises(RuntimeError):
            current_peer()

    def test_longest_prefix_wins(self) -> None:
        """A rule for one method overrides the rule for its service."""
        interceptor = AuthInterceptor(
            "test", {"/svc.S/": ["coordinator"], "/svc.S/Special": [Role.OPERATOR]}
        )
        assert interceptor.allowed_roles("/svc.S/Run") == frozenset({Role.COORDINATOR})
        assert interceptor.allowed_roles("/svc.S/Special") == frozenset({Role.OPERATOR})
        assert interceptor.allowed_roles("/other.S/Run") is None
        assert interceptor.allowed_roles("/grpc.health.v1.Health/Check") == frozenset(Role)

    @pytest.mark.parametrize(
        ("rules", "error"),
        [
            ({"svc.S/": ["partner"]}, ValueError),
            ({"/svc.S/": "partner"}, TypeError),
            ({"/svc.S/": ["admin"]}, ValueError),
        ],
    )
    def test_bad_rules(self, rules: dict[str, Any], error: type[Exception]) -> None:
        """Malformed rules are refused when the interceptor is built."""
        with pytest.raises(error):
            AuthInterceptor("test", rules)

    def test_bad_network(self) -> None:
        """An invalid network name is refused when the interceptor is built."""
        with pytest.raises(ValueError, match="network name"):
            AuthInterceptor("Not A Label", RULES)


class TestAdmit:
    def test_admit_sees_the_caller_and_its_fingerprint_and_may_refuse(self) -> None:
        """`admit` gets the authenticated identity and certificate fingerprint; a reason it
        returns is UNAUTHENTICATED with that reason, and the handler never runs."""
        cert = _coordinator_cert()
        asked: list[tuple[Identity, str]] = []
        ran: list[bytes] = []

        def admit(peer: Identity, fingerprint: str) -> str | None:
            asked.append((peer, fingerprint))
            return "this certificate was withdrawn"

        def handler(request: bytes, context: Any) -> bytes:
            ran.append(request)
            return b""

        interceptor = AuthInterceptor("test", RULES, logger=RecordingLogger(), admit=admit)
        context = FakeContext({"x509_pem_cert": [pki.certificate_pem(cert)]})
        with pytest.raises(AbortedError) as info:
            _wrapped_unary(handler, interceptor)(b"x", context)
        assert (info.value.code, info.value.details) == (
            grpc.StatusCode.UNAUTHENTICATED,
            "this certificate was withdrawn",
        )
        assert asked == [(Identity.coordinator("test"), pki.fingerprint(cert))]
        assert ran == []

    def test_admitted_caller_reaches_the_handler(self) -> None:
        """`admit` returning None lets the call through."""
        interceptor = AuthInterceptor("test", RULES, admit=lambda peer, fp: None)
        context = FakeContext({"x509_pem_cert": [pki.certificate_pem(_coordinator_cert())]})
        assert _wrapped_unary(lambda r, c: b"ok:" + r, interceptor)(b"x", context) == b"ok:x"

    def test_a_failing_admit_lets_nobody_in(self) -> None:
        """An `admit` that raises fails closed: UNAUTHENTICATED, logged, no handler."""
        log = RecordingLogger()

        def admit(peer: Identity, fingerprint: str) -> str | None:
            raise RuntimeError("database is locked")

        interceptor = AuthInterceptor("test", RULES, logger=log, admit=admit)
        context = FakeContext({"x509_pem_cert": [pki.certificate_pem(_coordinator_cert())]})
        with pytest.raises(AbortedError) as info:
            _wrapped_unary(lambda r, c: b"ran", interceptor)(b"x", context)
        assert info.value.code is grpc.StatusCode.UNAUTHENTICATED
        assert info.value.details == "the server cannot check this certificate now"
        assert [e["event"] for e in log.entries if e["level"] == "exception"] == [
            "rpc admission check failed"
        ]


class TestTestPki:
    def test_files_and_modes(self, net: TestPki) -> None:
        """The test PKI writes loadable 0600 keys and certificates that match the objects."""
        party = net.partner("b")
        assert (party.key_path.stat().st_mode & 0o777) == 0o600
        assert pki.load_certificate(party.cert_path) == party.cert
        assert pki.load_certificate(party.ca_path) == net.ca_cert
        assert pki.verify_issued_by(party.cert, net.ca_cert) == Identity.partner("test", "b")
        assert pki.load_tls_key(party.key_path).public_key() == party.key.public_key()

    def test_foreign_looks_like_partner_a(self, net: TestPki) -> None:
        """The foreign certificate claims partner a's identity but is not from the network CA."""
        assert pki.identity_from_certificate(net.foreign.cert) == net.partner("a").identity
        with pytest.raises(pki.CertificateIdentityError):
            pki.verify_issued_by(net.foreign.cert, net.ca_cert)
