"""Telling someone that a scheduled round did not complete: a command and/or a webhook.

Both are configured in `[scheduler]` of coordinator.toml. The command is an argument
list run without a shell, with the round's id, state and reason in environment variables;
the webhook gets the same as a JSON POST. Neither ever carries an identifier: a round's
reason is built from partner ids, phase names and status codes, and passes the same
guard as an audit row. A notifier that fails (not found, non-zero exit, timeout, HTTP
error) is logged and never stops the scheduler.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from kruispunt.audit import safe_reason

if TYPE_CHECKING:  # coordinator.config imports the scheduler, which imports this module
    from coordinator.config import SchedulerConfig

__all__ = ["Notice", "notify"]

log = structlog.get_logger("coordinator.notify")


@dataclass(frozen=True)
class Notice:
    """What a notification says: the network, purpose, last round, its state and reason."""

    network: str
    purpose: str
    round_id: str
    state: str
    reason: str
    attempts: int

    def environment(self) -> dict[str, str]:
        """The notice as the command's environment variables (KRUISPUNT_*)."""
        return {
            "KRUISPUNT_NETWORK": self.network,
            "KRUISPUNT_PURPOSE": self.purpose,
            "KRUISPUNT_ROUND_ID": self.round_id,
            "KRUISPUNT_ROUND_STATE": self.state,
            "KRUISPUNT_ROUND_REASON": safe_reason(self.reason),
            "KRUISPUNT_ATTEMPTS": str(self.attempts),
        }

    def payload(self) -> bytes:
        """The notice as the webhook's JSON body."""
        body = {
            "event": "kruispunt.scheduled_round_failed",
            "network": self.network,
            "purpose": self.purpose,
            "round_id": self.round_id,
            "state": self.state,
            "reason": safe_reason(self.reason),
            "attempts": self.attempts,
        }
        return json.dumps(body, sort_keys=True).encode()


def notify(
    config: SchedulerConfig, notice: Notice, *, env: Mapping[str, str] | None = None
) -> dict[str, bool]:
    """Run the configured command and/or POST the webhook; which of them succeeded.

    `env` is the environment the command inherits (the process's own by default); the
    notice's variables are added to it. Never raises for a notifier's failure.
    """
    done: dict[str, bool] = {}
    if config.notify_command:
        done["command"] = _run_command(config, notice, os.environ if env is None else env)
    if config.notify_webhook:
        done["webhook"] = _post_webhook(config, notice)
    return done


def _run_command(config: SchedulerConfig, notice: Notice, env: Mapping[str, str]) -> bool:
    argv = list(config.notify_command)
    try:
        finished = subprocess.run(
            argv,
            env={**env, **notice.environment()},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=config.notify_timeout_seconds,
            check=False,
        )
    except subprocess.TimeoutExpired:
        log.error(
            "notification command timed out",
            command=argv[0],
            seconds=config.notify_timeout_seconds,
        )
        return False
    except (OSError, subprocess.SubprocessError) as exc:
        log.error("notification command could not run", command=argv[0], reason=str(exc))
        return False
    if finished.returncode != 0:
        # Its output is not logged: a script may print whatever it likes there.
        log.error("notification command failed", command=argv[0], exit_code=finished.returncode)
        return False
    log.info("notification command ran", command=argv[0], round_id=notice.round_id)
    return True


def _post_webhook(config: SchedulerConfig, notice: Notice) -> bool:
    request = urllib.request.Request(  # noqa: S310 - the loader admits http(s) URLs only
        config.notify_webhook,
        data=notice.payload(),
        headers={"Content-Type": "application/json", "User-Agent": "kruispunt-coordinator"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(  # noqa: S310 - scheme checked when the config loaded
            request, timeout=config.notify_timeout_seconds
        ) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        log.error("notification webhook refused", status=exc.code)
        return False
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
        log.error("notification webhook unreachable", reason=str(exc))
        return False
    log.info("notification webhook posted", status=status, round_id=notice.round_id)
    return True
