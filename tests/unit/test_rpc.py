"""kruispunt.rpc: every client-side gRPC failure becomes one PeerError, worded once."""

from __future__ import annotations

import grpc
import pytest

from kruispunt.errors import KruispuntError
from kruispunt.rpc import PeerError, peer_error, translated


class StatusError(grpc.RpcError):
    """A gRPC error as a channel raises it: a status code and the peer's details."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


class TestWording:
    def test_unreachable_peer(self) -> None:
        """A peer that cannot be reached is called unreachable, with the channel's details."""
        err = peer_error(StatusError(grpc.StatusCode.UNAVAILABLE, "connection refused"))
        assert str(err) == "unreachable (UNAVAILABLE: connection refused)"
        assert err.status == grpc.StatusCode.UNAVAILABLE
        assert err.details == "connection refused"

    def test_refused_handshake_is_not_a_network_fault(self) -> None:
        """A TLS handshake the pinned certificate failed is UNAUTHENTICATED, worded as such."""
        raw = (
            "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: "
            "Tls handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL"
        )
        err = peer_error(StatusError(grpc.StatusCode.UNAVAILABLE, raw))
        assert str(err).startswith(
            "refused at the TLS handshake: its certificate is not the one registered (pinned)"
        )
        assert err.status == grpc.StatusCode.UNAUTHENTICATED
        assert err.details == raw

    def test_missed_deadline(self) -> None:
        """A peer that did not answer in time is said to have missed the phase deadline."""
        err = peer_error(StatusError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"))
        assert str(err) == "did not answer within the phase deadline (DEADLINE_EXCEEDED)"
        assert err.status == grpc.StatusCode.DEADLINE_EXCEEDED

    def test_other_status_names_code_and_details(self) -> None:
        """Any other status reads as its code's name and the peer's details."""
        err = peer_error(StatusError(grpc.StatusCode.PERMISSION_DENIED, "not an operator"))
        assert str(err) == "PERMISSION_DENIED: not an operator"
        assert err.details == "not an operator"

    def test_error_without_status(self) -> None:
        """An RpcError that carries no status still translates, as status UNKNOWN."""
        err = peer_error(grpc.RpcError("channel closed"))
        assert str(err) == "ERROR: channel closed"
        assert err.status == grpc.StatusCode.UNKNOWN
        assert err.details == "channel closed"


class TestTranslated:
    def test_rpc_error_leaves_as_peer_error(self) -> None:
        """Inside translated(), a gRPC error surfaces as a PeerError, a KruispuntError."""
        with pytest.raises(PeerError, match="unreachable") as caught, translated():
            raise StatusError(grpc.StatusCode.UNAVAILABLE, "no route")
        assert isinstance(caught.value, KruispuntError)
        assert caught.value.__cause__ is None  # the grpc error's repr is not chained along

    def test_other_errors_pass_unchanged(self) -> None:
        """translated() leaves every error that is not a gRPC error alone."""
        with pytest.raises(ValueError, match="not grpc"), translated():
            raise ValueError("not grpc")
