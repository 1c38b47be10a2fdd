"""The render tier's browser: found by scripts/ensure_chromium.sh, or the tier fails saying why."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.paths import REPO

Chromium = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    """The headless Chromium executable; a failure (never a skip) naming what to install."""
    found = subprocess.run(
        ["bash", str(REPO / "scripts" / "ensure_chromium.sh"), "--check"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if found.returncode != 0:
        pytest.fail(found.stderr.strip() or "scripts/ensure_chromium.sh --check failed")
    return Path(found.stdout.strip())


@pytest.fixture
def chromium(chromium_path: Path) -> Chromium:
    """Run headless Chromium with `args` on a profile of its own; assert that it exits 0."""

    def run(*args: str, user_data: Path) -> subprocess.CompletedProcess[str]:
        cmd = [
            str(chromium_path),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={user_data}",
            *args,
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        return done

    return run
