"""Cron schedules: when the serving coordinator starts a purpose's round by itself."""

from __future__ import annotations

from datetime import datetime

from croniter import CroniterBadCronError, croniter

from kruispunt.errors import ConfigError


def parse_cron(expression: str, *, source: str = "schedule") -> str:
    """Validate a five-field cron expression (e.g. "0 6 * * 1": Mondays 06:00)."""
    if len(expression.split()) != 5:
        raise ConfigError(f"{source}: cron {expression!r} must have five fields (m h dom mon dow)")
    try:
        croniter(expression)
    except (CroniterBadCronError, ValueError, KeyError) as exc:
        raise ConfigError(f"{source}: cron {expression!r} is invalid: {exc}") from None
    return expression


def next_run(expression: str, after: datetime) -> datetime:
    """The first time strictly after `after` that the expression matches (same tz as after)."""
    return croniter(expression, after).get_next(datetime)  # type: ignore[no-any-return]
