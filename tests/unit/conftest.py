"""The unit tier opens no network sockets: a test that needs one belongs in tests/integration."""

from __future__ import annotations

import socket
from typing import Any

import pytest

_NETWORK_FAMILIES = (socket.AF_INET, socket.AF_INET6)


class _NoNetworkSocket(socket.socket):
    """socket.socket that refuses IP sockets (Unix sockets, used by process pools, pass)."""

    def __init__(self, family: Any = -1, *args: Any, **kwargs: Any) -> None:
        # family -1 without a file descriptor is socket's default: AF_INET.
        default = family == -1 and kwargs.get("fileno") is None and len(args) < 3
        if family in _NETWORK_FAMILIES or default:
            raise AssertionError(
                "a unit test opened a network socket: move it to tests/integration"
            )
        super().__init__(family, *args, **kwargs)


@pytest.fixture(autouse=True)
def _no_network_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any unit test that opens a TCP/UDP socket through the socket module."""
    monkeypatch.setattr(socket, "socket", _NoNetworkSocket)
