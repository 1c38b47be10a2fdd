"""Fixtures every tier shares: a network builder that cleans up, quiet logs."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from kruispunt.logs import configure_logging
from tests.support.network import TestNetwork, build_network


@pytest.fixture
def network_factory(tmp_path: Path) -> Iterator[Callable[..., TestNetwork]]:
    """Build test networks (real set-up flow); every server is stopped afterwards."""
    built: list[TestNetwork] = []

    def factory(partners: list[str], *, start: bool = True, **kwargs: Any) -> TestNetwork:
        net = build_network(tmp_path / f"net{len(built)}", partners, **kwargs)
        built.append(net)
        if start:
            for pid in partners:
                net.start_node(pid)
            net.start_coordinator()
        return net

    yield factory
    for net in built:
        net.close()


@pytest.fixture(autouse=True)
def _quiet_logging() -> Iterator[None]:
    """Render every log line (through the identifier processor) into a buffer, not stdout.

    CLIs called in-process reconfigure structlog onto the captured stderr; the
    configuration is put back after every test so no test writes to a closed stream.
    """
    configure_logging(json=True, level="debug", stream=io.StringIO())
    yield
    structlog.reset_defaults()
