"""The operator's client of the coordinator's admin service: run and cancel rounds.

The CLI talks to a serving coordinator over mTLS on loopback with the
personal operator certificate of whoever runs it (`coordinator.operators.
my_credentials`), so the coordinator attributes each call to that person.
Every failed call arrives here as a grpc.RpcError and leaves as one
kruispunt.rpc.PeerError.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from coordinator.config import CoordinatorConfig
from kruispunt import pki, transport
from kruispunt.rpc import translated
from kruispunt.v1 import coordinator_pb2, coordinator_pb2_grpc

__all__ = ["AdminClient"]


class AdminClient:
    """One channel to the coordinator's admin service; use it as a context manager.

    `key` and `cert` are the calling operator's (default: the configured [operator]
    files, init's).
    """

    def __init__(
        self, config: CoordinatorConfig, *, key: Path | None = None, cert: Path | None = None
    ) -> None:
        #: Where the client calls (a server bound to every interface is reached on loopback).
        self.address = config.listen.replace("0.0.0.0", "127.0.0.1")  # noqa: S104
        self._channel = transport.secure_channel(
            self.address,
            pki.Identity.coordinator(config.network),
            key_pem=pki.private_key_pem(pki.load_tls_key(key or config.operator_key)),
            cert_pem=(cert or config.operator_cert).read_bytes(),
            ca_pem=config.tls_ca.read_bytes(),
        )
        self._stub = coordinator_pb2_grpc.CoordinatorStub(self._channel)

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()

    def run_round(self, purpose_id: str, reason: str = "") -> Iterator[coordinator_pb2.RoundEvent]:
        """Start a round and yield its events as they come; raises PeerError if the call fails."""
        request = coordinator_pb2.RunRoundRequest(purpose_id=purpose_id, reason=reason)
        with translated():
            yield from self._stub.RunRound(request)

    def cancel_round(self, round_id: str, reason: str = "") -> coordinator_pb2.RoundSummary:
        """Ask the coordinator to stop a running round; raises PeerError if the call fails."""
        request = coordinator_pb2.CancelRoundRequest(round_id=round_id, reason=reason)
        with translated():
            return self._stub.CancelRound(request)  # type: ignore[no-any-return]
