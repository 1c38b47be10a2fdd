"""Fixtures the integration tests share beyond tests/conftest.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.mallory import Mallory


@pytest.fixture
def mallory_pair(network_factory: Callable[..., Any]) -> Iterator[tuple[Any, Mallory]]:
    """A two-party network (gemeente the client, woonbron the server) and Mallory at its centre."""
    net = network_factory(
        ["gemeente", "woonbron"],
        per_partner=20,
        overlaps={2: 5},
        bilateral_roles={"gemeente": "client", "woonbron": "server"},
    )
    net.add_purpose(
        mode="bilateral",
        bilateral={"client_partner": "gemeente", "server_partner": "woonbron"},
    )
    attacker = Mallory(net)
    yield net, attacker
    attacker.close()
