"""A network whose servers share one movable clock, and rounds past their retention.

Shared by the deletion-receipt tests (tests/integration) and the report's browser
tests (tests/render): one clock is injected into every node and the coordinator, so
moving it past the retention period lets the nodes' purge delete and sign receipts
and the next round still finds every manifest valid.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from tests.support.network import TestNetwork

RETENTION_DAYS = 3


class Clock:
    """A clock every server of the network reads; tests move it forward."""

    def __init__(self) -> None:
        self._offset = timedelta()
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return datetime.now(UTC) + self._offset

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._offset += delta


def clocked_network(
    network_factory: Callable[..., TestNetwork], partners: list[str], clock: Clock
) -> TestNetwork:
    """Partners and a coordinator on `clock`, a purpose keeping results RETENTION_DAYS."""
    net = network_factory(partners, per_partner=20, overlaps={2: 4, 3: 2}, start=False)
    for pid in partners:
        net.start_node(pid, now=clock)
    net.start_coordinator(now=clock)
    net.add_purpose(result_retention_days=RETENTION_DAYS)
    return net


def after_retention(net: TestNetwork, clock: Clock) -> None:
    """Move past the retention period and run every node's housekeeping purge."""
    clock.advance(timedelta(days=RETENTION_DAYS, hours=1))
    for pid in net.partners:
        assert net.nodes[pid].rounds.purge_results(), pid
