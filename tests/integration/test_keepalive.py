"""Long quiet streams survive keepalive pings (a round's progress stream can be quiet for
minutes while a large step runs)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc

from kruispunt import transport
from tests.support.certs import make_test_pki

METHOD = "/test.Quiet/Wait"


class TestKeepalive:
    def test_frequent_pings_on_a_quiet_stream_do_not_get_the_client_cut_off(self, tmp_path):
        """A client pinging far more often than the server's floor keeps its stream open."""
        pki = make_test_pki(tmp_path, network="test", partners=("a",))

        def wait(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
            time.sleep(4)  # no data on the stream while the client keeps pinging
            yield b"done"

        interceptor = transport.AuthInterceptor("test", {"/test.Quiet/": ["operator"]})
        server = transport.make_server(interceptor)
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    "test.Quiet", {"Wait": grpc.unary_stream_rpc_method_handler(wait)}
                ),
            )
        )
        port = transport.bind_secure_port(
            server, "127.0.0.1:0", pki.coordinator.server_credentials()
        )
        server.start()
        try:
            channel = pki.operator.channel(
                f"127.0.0.1:{port}",
                pki.coordinator.identity,
                options=[("grpc.keepalive_time_ms", 200), ("grpc.keepalive_timeout_ms", 5000)],
            )
            call = channel.unary_stream(METHOD)
            assert list(call(b"", timeout=20)) == [b"done"]
            channel.close()
        finally:
            server.stop(0)
