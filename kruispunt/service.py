"""Running a server process until the service manager (or an operator) stops it."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

import structlog

log = structlog.get_logger("kruispunt.service")


def run_until_signalled(banner: str, stop: Callable[[], None]) -> int:
    """Print `banner`, wait for SIGTERM or SIGINT, then `stop()` gracefully; returns 0."""
    done = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("shutting down", signal=signal.Signals(signum).name)
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(banner, flush=True)
    done.wait()
    stop()
    return 0
