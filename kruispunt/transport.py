"""gRPC over mutual TLS: credentials, channels, servers and the identity/role interceptor.

Every connection is mutually authenticated against the one network CA. A client
names the peer it expects with an `Identity`; the channel sets the TLS target name
to that identity's DNS SAN, so the handshake fails unless the server holds a
certificate for exactly that partner (or coordinator), whatever address it is
reached on. On the server side `AuthInterceptor` reads the caller's identity from
its certificate before any handler runs, checks its role against the method, makes
it available through `current_peer()`, turns exceptions into gRPC statuses (the
one place where that happens) and writes one log line per RPC.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent import futures
from pathlib import Path
from typing import Any, NoReturn

import grpc
import structlog
from cryptography import x509
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from kruispunt.errors import ConfigError, KruispuntError
from kruispunt.pki import (
    CertificateIdentityError,
    Identity,
    Role,
    fingerprint,
    identity_from_certificate,
    load_tls_key,
    private_key_pem,
)

__all__ = [
    "CHANNEL_OPTIONS",
    "HEALTH_SERVICE_PREFIX",
    "MAX_MESSAGE_BYTES",
    "SERVER_OPTIONS",
    "Admit",
    "AuthInterceptor",
    "Deny",
    "authenticated_as",
    "bind_secure_port",
    "channel_credentials",
    "current_peer",
    "make_server",
    "pinned_channel",
    "secure_channel",
    "server_credentials",
]

# 16 MiB: half a million packed 32-byte points per message, far above any batch we send,
# yet small enough that a hostile peer cannot make us buffer an unbounded message.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
HEALTH_SERVICE_PREFIX = "/grpc.health.v1.Health/"

_OPTION_TARGET_NAME = "grpc.ssl_target_name_override"

# The coordinator keeps one channel per node open between rounds, through firewalls
# that drop idle TCP connections: ping every 30 s, give up on a peer after 10 s silence.
CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
)
# Servers must tolerate the clients' 30 s pings (the default floor is 5 minutes, and a
# client pinging faster is cut off with GOAWAY "too_many_pings").
SERVER_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 20_000),
    # Every peer is authenticated by mTLS: never cut one off for pinging. Without this a
    # round's progress stream, quiet for minutes during a large step, got GOAWAY
    # "too_many_pings" (measured with 2 x 1,000,000 records).
    ("grpc.http2.max_ping_strikes", 0),
)

#: A server's own check of an authenticated caller: given its identity and its certificate's
#: SHA-256 fingerprint, the reason it may not call (UNAUTHENTICATED), or None to let it in.
Admit = Callable[[Identity, str], str | None]
#: A server's deny-list: given an authenticated caller's identity and certificate fingerprint,
#: why that certificate is denied (PERMISSION_DENIED), or None. Checked before any role rule.
Deny = Callable[[Identity, str], str | None]

_log = structlog.get_logger("kruispunt.transport")
_current_peer: contextvars.ContextVar[Identity | None] = contextvars.ContextVar(
    "kruispunt_current_peer", default=None
)


# ---------------------------------------------------------------------------------------
# Credentials and channels


def server_credentials(key_pem: bytes, cert_pem: bytes, ca_pem: bytes) -> grpc.ServerCredentials:
    """Server TLS credentials that require a client certificate from the network CA."""
    return grpc.ssl_server_credentials(
        [(key_pem, cert_pem)], root_certificates=ca_pem, require_client_auth=True
    )


def channel_credentials(key_pem: bytes, cert_pem: bytes, ca_pem: bytes) -> grpc.ChannelCredentials:
    """Client TLS credentials presenting our certificate and trusting only the network CA."""
    return grpc.ssl_channel_credentials(
        root_certificates=ca_pem, private_key=key_pem, certificate_chain=cert_pem
    )


def secure_channel(
    address: str,
    peer: Identity,
    *,
    key_pem: bytes,
    cert_pem: bytes,
    ca_pem: bytes,
    options: Sequence[tuple[str, Any]] = (),
) -> grpc.Channel:
    """A mutual-TLS channel to `address` that only accepts `peer`'s certificate.

    `options` add to or override `CHANNEL_OPTIONS`, except the TLS target name, which
    is always ``peer.server_name``.
    """
    merged: dict[str, Any] = dict(CHANNEL_OPTIONS)
    for name, value in options:
        if name == _OPTION_TARGET_NAME:
            raise ValueError("the TLS target name is set from the peer identity")
        merged[name] = value
    merged[_OPTION_TARGET_NAME] = peer.server_name
    return grpc.secure_channel(
        address, channel_credentials(key_pem, cert_pem, ca_pem), options=list(merged.items())
    )


def pinned_channel(
    address: str,
    peer: Identity,
    *,
    key_pem: bytes,
    cert_pem: bytes,
    pinned_pem: bytes,
    options: Sequence[tuple[str, Any]] = (),
) -> grpc.Channel:
    """A mutual-TLS channel to `address` that accepts only the one certificate `pinned_pem`.

    The pinned leaf is the channel's only trust anchor (gRPC verifies partial chains), so
    another certificate for the same identity fails the handshake even though the
    network CA issued it: a superseded one after a renewal, or one issued in error. The
    caller pins the certificate it registered itself (the coordinator's registry).
    The handshake still checks the leaf's dates and the identity's server name.
    """
    return secure_channel(
        address, peer, key_pem=key_pem, cert_pem=cert_pem, ca_pem=pinned_pem, options=options
    )


def make_server(
    interceptor: AuthInterceptor,
    *,
    max_workers: int = 16,
    options: Sequence[tuple[str, Any]] = (),
) -> grpc.Server:
    """A thread-pool gRPC server with our limits and `interceptor` in front of every method.

    Each streaming RPC holds a worker thread for its whole duration: size `max_workers`
    for the number of concurrent streams you expect.
    """
    merged: dict[str, Any] = dict(SERVER_OPTIONS)
    merged.update(options)
    return grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
        interceptors=[interceptor],
        options=list(merged.items()),
    )


def bind_secure_port(server: grpc.Server, address: str, credentials: grpc.ServerCredentials) -> int:
    """Bind `address` (e.g. ``"127.0.0.1:0"``) with mTLS; return the bound port."""
    port: int = server.add_secure_port(address, credentials)
    if port == 0:  # older grpc versions return 0 instead of raising
        raise RuntimeError(f"cannot bind {address}")
    return port


# ---------------------------------------------------------------------------------------
# The caller's identity inside a handler


def current_peer() -> Identity:
    """The authenticated caller of the RPC this handler is serving."""
    peer = _current_peer.get()
    if peer is None:
        raise RuntimeError(
            "current_peer() called outside an authenticated RPC "
            "(in unit tests, wrap the call in authenticated_as(identity))"
        )
    return peer


@contextlib.contextmanager
def authenticated_as(identity: Identity) -> Iterator[Identity]:
    """Run a block as if serving an RPC from `identity` (unit tests without sockets)."""
    token = _current_peer.set(identity)
    try:
        yield identity
    finally:
        _current_peer.reset(token)


@functools.lru_cache(maxsize=256)
def _identity_from_pem(pem: bytes) -> tuple[Identity, str]:
    """Parse a peer certificate once: its identity and SHA-256 fingerprint (lowercase hex).

    Cached: a coordinator calls the same nodes all round long.
    """
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise CertificateIdentityError("client certificate does not parse") from None
    return identity_from_certificate(cert), fingerprint(cert)


# ---------------------------------------------------------------------------------------
# The interceptor


class _AccessDeniedError(Exception):
    """Internal: the caller may not proceed; carries the status to abort with."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


class AuthInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]  # grpc ships no types
    """Authenticate, authorise, map errors and log, in front of every RPC.

    `rules` maps a full method name or a prefix of one (``"/kruispunt.v1.PsiNode/"``)
    to the roles that may call it; the longest matching prefix wins. Methods without a
    rule are refused (fail closed). The standard health service is open to every
    member of `network`, unless `rules` says otherwise.

    Before the handler runs: no certificate, an unparsable one, no Kruispunt identity
    or another network -> UNAUTHENTICATED; a certificate on the deny-list (`deny`: a removed
    or deactivated partner's, a superseded one) -> PERMISSION_DENIED naming the identity
    and the reason; a role not allowed -> PERMISSION_DENIED;
    then `admit`, if given, sees the caller and its certificate's fingerprint and may
    refuse it (UNAUTHENTICATED with its reason): the coordinator refuses an operator
    certificate it did not register or whose operator was removed.
    The handler then sees the caller through `current_peer()`. If it raises a
    `KruispuntError`, the RPC ends with that error's status and message; any other
    exception is logged here with its traceback and the caller gets only INTERNAL
    "internal error".
    """

    def __init__(
        self,
        network: str,
        rules: Mapping[str, Iterable[Role | str]],
        *,
        logger: Any = None,
        admit: Admit | None = None,
        deny: Deny | None = None,
    ) -> None:
        Identity.coordinator(network)  # validates the network name
        self._network = network
        self._admit = admit
        self._deny = deny
        parsed: dict[str, frozenset[Role]] = {HEALTH_SERVICE_PREFIX: frozenset(Role)}
        for prefix, roles in rules.items():
            if not prefix.startswith("/"):
                raise ValueError(f"method rule {prefix!r} must start with '/'")
            if isinstance(roles, str):
                raise TypeError(f"roles for {prefix!r} must be a collection of roles")
            parsed[prefix] = frozenset(Role(role) for role in roles)
        # Longest prefix first, so the first match is the most specific rule.
        self._rules = sorted(parsed.items(), key=lambda item: len(item[0]), reverse=True)
        self._log = logger if logger is not None else _log

    def allowed_roles(self, method: str) -> frozenset[Role] | None:
        """The roles that may call `method`, or None if no rule covers it."""
        for prefix, roles in self._rules:
            if method.startswith(prefix):
                return roles
        return None

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None  # grpc answers UNIMPLEMENTED
        method: str = handler_call_details.method
        if handler.request_streaming and handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(
                self._streaming(method, handler.stream_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.request_streaming:
            return grpc.stream_unary_rpc_method_handler(
                self._unary(method, handler.stream_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.response_streaming:
            return grpc.unary_stream_rpc_method_handler(
                self._streaming(method, handler.unary_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return grpc.unary_unary_rpc_method_handler(
            self._unary(method, handler.unary_unary),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    # -- wrappers ------------------------------------------------------------------------

    def _unary(
        self, method: str, behavior: Callable[[Any, grpc.ServicerContext], Any]
    ) -> Callable[[Any, grpc.ServicerContext], Any]:
        def wrapped(request: Any, context: grpc.ServicerContext) -> Any:
            started = time.monotonic()
            peer = self._authorize(method, context, started)
            run = self._peer_context(peer).run
            try:
                response = run(behavior, request, context)
            except Exception as exc:
                self._fail(method, peer, context, exc, started)
            self._finish(method, peer, _status_of(context), started)
            return response

        return wrapped

    def _streaming(
        self, method: str, behavior: Callable[[Any, grpc.ServicerContext], Iterable[Any]]
    ) -> Callable[[Any, grpc.ServicerContext], Iterator[Any]]:
        def wrapped(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            # grpc calls this and then iterates it: everything below, the identity
            # check included, runs on the first next(), before any response is sent.
            started = time.monotonic()
            peer = self._authorize(method, context, started)
            run = self._peer_context(peer).run
            responses: Iterator[Any] | None = None
            try:
                responses = iter(run(behavior, request, context))
                while True:
                    try:
                        item = run(next, responses)
                    except StopIteration:
                        break
                    yield item
            except GeneratorExit:  # grpc stopped iterating: the call is gone
                self._finish(method, peer, _status_of(context, gone=True), started)
                raise
            except Exception as exc:
                self._fail(method, peer, context, exc, started)
            finally:
                close = getattr(responses, "close", None)
                if close is not None:
                    run(close)
            self._finish(method, peer, _status_of(context), started)

        return wrapped

    # -- steps ---------------------------------------------------------------------------

    def _peer_context(self, peer: Identity) -> contextvars.Context:
        """A context in which the handler sees `peer`; the worker thread's stays clean."""
        context = contextvars.copy_context()
        context.run(_current_peer.set, peer)
        context.run(structlog.contextvars.bind_contextvars, peer=peer.uri)
        return context

    def _authorize(self, method: str, context: grpc.ServicerContext, started: float) -> Identity:
        peer: Identity | None = None
        try:
            peer, cert_fingerprint = self._identify(context)
            roles = self.allowed_roles(method)
            if self._deny is not None:
                try:
                    denied = self._deny(peer, cert_fingerprint)
                except Exception:  # fail closed, as for admission
                    self._log.exception("rpc deny-list check failed", method=method)
                    denied = "the server cannot check its deny-list now"
                if denied is not None:
                    raise _AccessDeniedError(
                        grpc.StatusCode.PERMISSION_DENIED,
                        f"{peer.uri}: certificate {cert_fingerprint[:16]}... is denied: {denied}",
                    )
            if roles is None:
                raise _AccessDeniedError(
                    grpc.StatusCode.PERMISSION_DENIED, "method is not open to callers"
                )
            if peer.role not in roles:
                raise _AccessDeniedError(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"role {peer.role.value} may not call {method}",
                )
            if self._admit is not None:
                try:
                    refused = self._admit(peer, cert_fingerprint)
                except Exception:  # fail closed: a check that cannot run lets nobody in
                    self._log.exception("rpc admission check failed", method=method)
                    refused = "the server cannot check this certificate now"
                if refused is not None:
                    raise _AccessDeniedError(grpc.StatusCode.UNAUTHENTICATED, refused)
        except _AccessDeniedError as denied:
            # A method without a rule is our own configuration bug: shout.
            log = self._log.warning if peer is None or roles is not None else self._log.error
            log(
                "rpc",
                method=method,
                peer=peer.uri if peer is not None else None,
                address=context.peer(),
                code=denied.code.name,
                reason=denied.details,
                duration_ms=_elapsed_ms(started),
            )
            context.abort(denied.code, denied.details)
            raise AssertionError("context.abort returned") from None  # pragma: no cover
        return peer

    def _identify(self, context: grpc.ServicerContext) -> tuple[Identity, str]:
        auth: Mapping[str, Sequence[bytes]] = context.auth_context() or {}
        certs = auth.get("x509_pem_cert") or []
        if len(certs) != 1:
            raise _AccessDeniedError(
                grpc.StatusCode.UNAUTHENTICATED, "a client certificate is required"
            )
        try:
            peer, cert_fingerprint = _identity_from_pem(bytes(certs[0]))
        except CertificateIdentityError as exc:
            raise _AccessDeniedError(grpc.StatusCode.UNAUTHENTICATED, str(exc)) from None
        if peer.network != self._network:
            raise _AccessDeniedError(
                grpc.StatusCode.UNAUTHENTICATED, "client certificate is for another network"
            )
        return peer, cert_fingerprint

    def _fail(
        self,
        method: str,
        peer: Identity,
        context: grpc.ServicerContext,
        exc: Exception,
        started: float,
    ) -> NoReturn:
        if isinstance(exc, KruispuntError):
            code = exc.status if exc.status is not grpc.StatusCode.OK else grpc.StatusCode.INTERNAL
            details = str(exc) or type(exc).__name__
            self._finish(method, peer, code, started, error=type(exc).__name__, reason=details)
            context.abort(code, details)
        status = _status_of(context)
        if status is not grpc.StatusCode.OK:
            # The handler aborted itself, or the caller cancelled or ran out of time:
            # grpc already knows the status.
            self._finish(method, peer, status, started)
            raise exc
        self._log.error(
            "rpc",
            method=method,
            peer=peer.uri,
            code=grpc.StatusCode.INTERNAL.name,
            duration_ms=_elapsed_ms(started),
            exc_info=exc,
        )
        context.abort(grpc.StatusCode.INTERNAL, "internal error")
        raise AssertionError("context.abort returned") from exc  # pragma: no cover

    def _finish(
        self,
        method: str,
        peer: Identity,
        code: grpc.StatusCode,
        started: float,
        **extra: str,
    ) -> None:
        self._log.info(
            "rpc",
            method=method,
            peer=peer.uri,
            code=code.name,
            duration_ms=_elapsed_ms(started),
            **extra,
        )


def _elapsed_ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 3)


def _status_of(context: grpc.ServicerContext, *, gone: bool = False) -> grpc.StatusCode:
    """The status the RPC ends with so far: set by the handler, or the call's fate."""
    code_of = getattr(context, "code", None)
    code = code_of() if code_of is not None else None
    if isinstance(code, grpc.StatusCode):
        return code
    if gone or not context.is_active():
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            return grpc.StatusCode.DEADLINE_EXCEEDED
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.OK


def start_secure_server(
    *,
    service: str,
    register: Callable[[grpc.Server], None],
    network: str,
    roles: Iterable[Role | str],
    key_path: Path,
    cert_path: Path,
    ca_path: Path,
    listen: str,
    max_workers: int = 16,
    admit: Admit | None = None,
    deny: Deny | None = None,
) -> tuple[grpc.Server, int, health.HealthServicer]:
    """Start a server for one of our services behind the AuthInterceptor, with health checks.

    `register` adds the service's servicer; only `roles` may call `service`, and only
    callers `admit` lets in (every one, without it), and no certificate `deny` lists. The TLS
    key is loaded through `pki.load_tls_key` (owner-only, no symlink). Returns the
    server, the bound port and the health servicer (SERVING for `service` and "").
    """
    interceptor = AuthInterceptor(network, {f"/{service}/": list(roles)}, admit=admit, deny=deny)
    server = make_server(interceptor, max_workers=max_workers)
    register(server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    creds = server_credentials(
        private_key_pem(load_tls_key(key_path)), cert_path.read_bytes(), ca_path.read_bytes()
    )
    try:
        port = bind_secure_port(server, listen, creds)
    except RuntimeError:
        raise ConfigError(f"cannot listen on {listen} (address in use?)") from None
    server.start()
    for name in (service, ""):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, port, health_servicer
