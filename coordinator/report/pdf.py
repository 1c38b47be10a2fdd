"""Printing the privacy officer's page to PDF with headless Chromium, where it is installed.

The page is made for print already (report.css: A4, the audit table on landscape pages);
Chromium's `--print-to-pdf` lays it out exactly as the browser shows it. Without Chromium
the HTML page is still the report: the error names what to install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from kruispunt.errors import ConfigError

__all__ = ["BROWSERS", "find_chromium", "print_pdf"]

#: Executable names of headless Chromium looked up on PATH, in this order.
BROWSERS: Final = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

#: Seconds Chromium may take to print one page (a cold start is a few seconds).
PRINT_TIMEOUT: Final = 120


def find_chromium(env: Mapping[str, str] | None = None) -> Path:
    """The Chromium executable on PATH; ConfigError naming the names looked for and the fix."""
    path = (env if env is not None else os.environ).get("PATH", "")
    for name in BROWSERS:
        found = shutil.which(name, path=path)
        if found:
            return Path(found)
    raise ConfigError(
        "--pdf needs headless Chromium, and none of "
        + ", ".join(BROWSERS)
        + " is on PATH: install it (Debian: apt-get install chromium; Ubuntu: chromium-browser)"
        " or leave out --pdf; the HTML report was written"
    )


def print_pdf(page: Path, out: Path, *, chromium: Path | None = None) -> Path:
    """Print the HTML file `page` to the PDF `out` (replaced atomically) and return `out`."""
    browser = chromium if chromium is not None else find_chromium()
    if not out.parent.is_dir():
        raise ConfigError(f"{out.parent}: output directory does not exist")
    with tempfile.TemporaryDirectory(prefix="kruispunt-pdf-") as scratch:
        tmp = Path(scratch) / "report.pdf"
        cmd = [
            str(browser),
            "--headless",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-pdf-header-footer",
            f"--user-data-dir={Path(scratch) / 'profile'}",
            f"--print-to-pdf={tmp}",
        ]
        if os.geteuid() == 0:
            # Chromium refuses to run as root inside its sandbox; the page runs no script
            # (its Content-Security-Policy forbids them) and loads nothing from outside.
            cmd.append("--no-sandbox")
        cmd.append(page.resolve().as_uri())
        try:
            done = subprocess.run(
                cmd, capture_output=True, text=True, timeout=PRINT_TIMEOUT, check=False
            )
        except subprocess.TimeoutExpired:
            raise ConfigError(
                f"{browser}: printing {page} to PDF took longer than {PRINT_TIMEOUT} s"
            ) from None
        except OSError as exc:
            raise ConfigError(f"{browser}: cannot be run ({exc.strerror})") from None
        if done.returncode != 0 or not tmp.is_file() or tmp.read_bytes()[:5] != b"%PDF-":
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise ConfigError(
                f"{browser}: printing {page} to PDF failed (exit {done.returncode}): {last}"
            )
        fd, staged = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(tmp.read_bytes())
            os.chmod(staged, 0o644)
            os.replace(staged, out)
        except BaseException:
            Path(staged).unlink(missing_ok=True)
            raise
    return out
