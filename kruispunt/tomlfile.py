"""Reading TOML configuration files with errors that name the file and the problem."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from kruispunt.errors import ConfigError


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; a missing, unreadable or invalid file raises ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found (run init first?)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def table(data: Mapping[str, Any], name: str, src: str, *, required: bool = True) -> dict[str, Any]:
    """The sub-table `name` of data; absent and optional gives {}."""
    value = data.get(name)
    if value is None:
        if required:
            raise ConfigError(f"{src}: missing [{name}] table")
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{src}: [{name}] must be a table")
    return value


def resolver(directory: Path) -> Callable[[str], Path]:
    """A function turning config paths into absolute ones, relative to directory."""

    def resolve(value: str) -> Path:
        # abspath, not resolve(): a symlinked key file must stay visible as one, so that
        # pki.load_private_key can refuse it.
        candidate = Path(value).expanduser()
        return Path(
            os.path.abspath(candidate if candidate.is_absolute() else directory / candidate)
        )

    return resolve
