"""Client-side gRPC errors translated once: every caller meets one `PeerError`.

A call to a node or to the coordinator's admin service fails as a
`grpc.RpcError` whose shape depends on where it failed (a status from the
peer, a channel that never connected, a deadline). `translated()` turns each
of them into a `PeerError` carrying the status, the peer's details and one
readable message, so the round code and the CLIs word a peer's failure the
same way everywhere (STYLE.md, "Client-side RPC errors translated once").
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import grpc

from kruispunt.errors import KruispuntError

__all__ = ["PeerError", "peer_error", "translated"]


class PeerError(KruispuntError):
    """A call to a peer failed: `status` and `details` as the peer (or channel) reported them."""

    def __init__(self, message: str, status: grpc.StatusCode, details: str) -> None:
        super().__init__(message)
        self.status = status
        self.details = details


def peer_error(exc: grpc.RpcError) -> PeerError:
    """The PeerError for one gRPC error, its message worded for an operator."""
    code = exc.code() if hasattr(exc, "code") else None
    raw = exc.details() if hasattr(exc, "details") else str(exc)
    if code == grpc.StatusCode.UNAVAILABLE and "handshake failed" in str(raw).lower():
        # The peer answered but its certificate is not one we accept: not a network fault.
        code = grpc.StatusCode.UNAUTHENTICATED
        message = (
            "refused at the TLS handshake: its certificate is not the one registered (pinned) "
            f"for it, or not from the network CA (UNAUTHENTICATED: {raw})"
        )
    elif code == grpc.StatusCode.UNAVAILABLE:
        message = f"unreachable (UNAVAILABLE: {raw})"
    elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
        message = "did not answer within the phase deadline (DEADLINE_EXCEEDED)"
    else:
        message = f"{code.name if code is not None else 'ERROR'}: {raw}"
    status = code if code is not None else grpc.StatusCode.UNKNOWN
    return PeerError(message, status, "" if raw is None else str(raw))


@contextmanager
def translated() -> Iterator[None]:
    """Run the block with every grpc.RpcError raised in it turned into a PeerError."""
    try:
        yield
    except grpc.RpcError as exc:
        raise peer_error(exc) from None
