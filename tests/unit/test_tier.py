"""The unit tier's guard: a unit test that opens a network socket fails, saying where it belongs."""

from __future__ import annotations

import socket

import pytest


class TestNoNetworkSockets:
    @pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6])
    def test_ip_sockets_are_refused(self, family: socket.AddressFamily) -> None:
        """socket.socket for IPv4 or IPv6 fails with a message naming tests/integration."""
        with pytest.raises(AssertionError, match="tests/integration"):
            socket.socket(family, socket.SOCK_STREAM)

    def test_default_family_and_helpers_are_refused(self) -> None:
        """The default family (IPv4) and socket.create_server go through the same guard."""
        with pytest.raises(AssertionError, match="tests/integration"):
            socket.socket()
        with pytest.raises(AssertionError, match="tests/integration"):
            socket.create_server(("127.0.0.1", 0))

    def test_unix_sockets_pass(self) -> None:
        """Unix sockets (process pools talk over them) are allowed."""
        left, right = socket.socketpair(socket.AF_UNIX)
        with left, right:
            left.sendall(b"ok")
            assert right.recv(2) == b"ok"
