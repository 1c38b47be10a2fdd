"""What a serving process runs with: written by `serve`, read by `doctor`, on both sides.

`serving.json` (the node's state folder, the coordinator's directory) holds the process
id, when it started, and two digests of the settings in effect: all of them, and those
that only a restart changes (`settings_digests`). The server rewrites it whenever it
reads its config again (the node for every manifest and on SIGHUP, the coordinator its
schedule on SIGHUP). `doctor` compares them with the file as it is now: an edit the
server has not read yet, or one that needs a restart, is said, instead of the doctor
showing settings the server does not use. The file holds digests and times only,
never a setting's value.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = [
    "RUNNING_FILE",
    "Running",
    "forget_running",
    "read_running",
    "record_running",
    "settings_digests",
]

RUNNING_FILE = "serving.json"


@dataclass(frozen=True)
class Running:
    """The serving process and the node.toml settings it runs with."""

    pid: int
    started_at: str
    loaded_at: str
    sha256: str
    fixed_sha256: str

    @property
    def alive(self) -> bool:
        """Whether the process still exists (it may belong to another user: that counts)."""
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def settings_digests(
    data: Mapping[str, Any], reloaded: Mapping[str, tuple[str, ...] | None]
) -> tuple[str, str]:
    """(all, fixed) digests of a parsed TOML file; comments and layout do not count.

    `reloaded` names what a serving process reads again: a table name with None (the
    whole table) or with the keys of it that are re-read; the rest is "fixed".
    """
    fixed = dict(data)
    for name, keys in reloaded.items():
        if keys is None:
            fixed.pop(name, None)
        elif isinstance(fixed.get(name), dict):
            fixed[name] = {k: v for k, v in fixed[name].items() if k not in keys}
    return _digest(data), _digest(fixed)


def _digest(data: Mapping[str, Any]) -> str:
    text = json.dumps(data, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def record_running(
    folder: Path, *, sha256: str, fixed_sha256: str, started_at: datetime, loaded_at: datetime
) -> Path:
    """Write folder/serving.json for this process (temp file and rename: never half-written)."""
    path = folder / RUNNING_FILE
    data = {
        "pid": os.getpid(),
        "started_at": started_at.isoformat(),
        "loaded_at": loaded_at.isoformat(),
        "sha256": sha256,
        "fixed_sha256": fixed_sha256,
    }
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".serving.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, sort_keys=True)
    os.replace(tmp, path)
    return path


def read_running(folder: Path) -> Running | None:
    """The serving process recorded in folder; None when there is none or it is unreadable."""
    try:
        data = json.loads((folder / RUNNING_FILE).read_text(encoding="utf-8"))
        return Running(
            pid=int(data["pid"]),
            started_at=str(data["started_at"]),
            loaded_at=str(data["loaded_at"]),
            sha256=str(data["sha256"]),
            fixed_sha256=str(data["fixed_sha256"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def forget_running(folder: Path) -> None:
    """Remove folder/serving.json at a clean stop, if it is this process's."""
    running = read_running(folder)
    if running is not None and running.pid == os.getpid():
        (folder / RUNNING_FILE).unlink(missing_ok=True)
