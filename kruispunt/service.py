"""Running a server process until the service manager (or an operator) stops it."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

import structlog

log = structlog.get_logger("kruispunt.service")


def run_until_signalled(
    banner: str, stop: Callable[[], None], *, reload: Callable[[], None] | None = None
) -> int:
    """Print `banner`, wait for SIGTERM or SIGINT, then `stop()` gracefully; returns 0.

    With `reload`, SIGHUP calls it (systemd's ExecReload sends SIGHUP), on this thread,
    outside the signal handler: a reload may read files and take locks.
    """
    done = threading.Event()
    wake = threading.Event()
    reloads = 0

    def on_signal(signum: int, _frame: object) -> None:
        log.info("shutting down", signal=signal.Signals(signum).name)
        done.set()
        wake.set()

    def on_hangup(_signum: int, _frame: object) -> None:
        nonlocal reloads
        reloads += 1
        wake.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if reload is not None:
        signal.signal(signal.SIGHUP, on_hangup)
    print(banner, flush=True)
    handled = 0
    while not done.is_set():
        wake.wait()
        wake.clear()
        if reload is not None and reloads != handled and not done.is_set():
            handled = reloads
            log.info("reloading", signal="SIGHUP")
            reload()
    stop()
    return 0
