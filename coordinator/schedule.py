"""Scheduled rounds: when the serving coordinator starts a purpose's round by itself (cron),
and what it does when one fails (retry what was transient, then tell someone)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import structlog
from croniter import CroniterBadCronError, croniter

from coordinator.notify import Notice, notify
from coordinator.store import COMPLETED
from kruispunt.audit import safe_reason
from kruispunt.errors import ConfigError, KruispuntError
from kruispunt.v1 import coordinator_pb2

if TYPE_CHECKING:  # the config and the runner import this module's cron parsing
    from coordinator.audit import CoordinatorAudit
    from coordinator.config import CoordinatorConfig, Schedule, SchedulerConfig
    from coordinator.rounds import RoundRunner

__all__ = ["NOT_STARTED", "Outcome", "ScheduledRounds", "next_run", "parse_cron", "retry_delay"]

log = structlog.get_logger("coordinator.schedule")

#: The state a notification names when no round was proposed (a node down, or no round
#: could be made of the purpose).
NOT_STARTED = "not_started"


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


def retry_delay(config: SchedulerConfig, retry: int) -> float:
    """Seconds to wait before retry number `retry` (1, 2, ...): doubling, capped."""
    return float(min(config.retry_max_seconds, config.retry_base_seconds * 2 ** (retry - 1)))


@dataclass(frozen=True)
class Outcome:
    """How a scheduled purpose's round ended after all its attempts."""

    purpose: str
    attempts: int
    summary: coordinator_pb2.RoundSummary | None
    reason: str
    #: Which notifiers ran and whether each succeeded ({} when the round completed).
    notified: dict[str, bool] = field(default_factory=dict)

    @property
    def completed(self) -> bool:
        """Whether the last attempt completed."""
        return self.summary is not None and self.summary.state == COMPLETED


class ScheduledRounds:
    """Runs the scheduler's rounds: retries transient failures, tells someone about the rest.

    Before each attempt every partner's node must answer its health check: a node that is
    down fails the attempt before any manifest goes out, so no partner spends a consent
    on it (a consent counts toward the node's `min_round_interval_hours` even when the
    round fails, and would have the retry refused). A round that failed only because
    partners were unreachable or too slow once it ran (`Attempt.transient`) is run again
    as a new round too. Retries come after a doubling delay, up to `retry_attempts`
    attempts in all; every retry is audited (`round.retry`, on the round that failed, or
    on none when the pre-flight check failed). A refusal, an attack, a malformed answer or
    a round that could not be made is never retried. When the last attempt did not
    complete, `schedule.failed` is audited and the configured notification runs. Each
    purpose runs in a thread of its own, so a round waiting for its retry keeps no other
    purpose nor the housekeeping waiting; a purpose still at it when its next time comes
    is not started twice.
    """

    def __init__(
        self,
        runner: RoundRunner,
        audit: CoordinatorAudit,
        config: CoordinatorConfig,
        stop: threading.Event,
        *,
        wait: Callable[[float], bool] | None = None,
        notify_env: Mapping[str, str] | None = None,
    ) -> None:
        self.runner = runner
        self.audit = audit
        self.config = config
        self.stop = stop
        #: Waits the given seconds; True when the coordinator is stopping meanwhile.
        self.wait = wait or stop.wait
        self.notify_env = notify_env
        self._running: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    def start(self, sched: Schedule) -> bool:
        """Run `sched`'s round (with its retries) in a thread; False if one still runs."""
        with self._lock:
            busy = self._running.get(sched.purpose)
            if busy is not None and busy.is_alive():
                log.warning(
                    "scheduled round still running; not started again", purpose=sched.purpose
                )
                return False
            thread = threading.Thread(
                target=self.run, args=(sched,), name=f"scheduled-{sched.purpose}", daemon=True
            )
            self._running[sched.purpose] = thread
        thread.start()
        return True

    def join(self, timeout: float | None = None) -> None:
        """Wait for the scheduled rounds running now (at shutdown, or in tests)."""
        with self._lock:
            threads = list(self._running.values())
        for thread in threads:
            thread.join(timeout)

    def run(self, sched: Schedule) -> Outcome:
        """Run `sched`'s round now, with its retries; never raises."""
        policy = self.config.scheduler
        summary: coordinator_pb2.RoundSummary | None = None
        reason = ""
        attempt = 0
        while True:
            attempt += 1
            try:
                down = self.runner.unreachable(sched.purpose)
            except Exception:  # a broken check must not stop the round from trying
                log.exception("pre-flight check failed", purpose=sched.purpose)
                down = {}
            if down:
                # No round proposed: no partner's consent is spent on it (their interval).
                summary = None
                reason = "partners unreachable before the round: " + "; ".join(
                    f"{pid}: {why}" for pid, why in down.items()
                )
                if attempt >= policy.retry_attempts:
                    break
                if self._retry(sched, "", reason, attempt):
                    return Outcome(sched.purpose, attempt, None, reason)
                continue
            try:
                result = self.runner.run_attempt(
                    sched.purpose,
                    initiated_by="scheduler",
                    access_point="scheduler",
                    reason=f"schedule {sched.cron}"
                    + (f" (attempt {attempt} of {policy.retry_attempts})" if attempt > 1 else ""),
                )
            except Exception as exc:  # no round could be made: nothing to retry
                log.exception("scheduled round could not start", purpose=sched.purpose)
                reason = str(exc) if isinstance(exc, KruispuntError) else type(exc).__name__
                summary = None
                break
            summary, reason = result.summary, result.summary.reason
            if result.summary.state == COMPLETED:
                return Outcome(sched.purpose, attempt, summary, "")
            if not result.transient or attempt >= policy.retry_attempts:
                break
            if self._retry(sched, summary.round_id, reason, attempt):
                return Outcome(sched.purpose, attempt, summary, reason)
        return self._give_up(sched, attempt, summary, reason)

    def _retry(self, sched: Schedule, round_id: str, reason: str, attempt: int) -> bool:
        """Audit and log the retry after `attempt`, then wait its delay; True: stopping."""
        delay = retry_delay(self.config.scheduler, attempt)
        self._audit(
            "round.retry",
            round_id,
            {
                "purpose": sched.purpose,
                "attempt": attempt + 1,
                "attempts": self.config.scheduler.retry_attempts,
                "delay_seconds": delay,
                "reason": safe_reason(reason),
            },
        )
        log.warning(
            "scheduled round failed; retrying",
            purpose=sched.purpose,
            round_id=round_id,
            attempt=attempt + 1,
            delay_seconds=delay,
            reason=reason,
        )
        if self.wait(delay):
            log.warning(
                "scheduled round not retried: the coordinator is stopping", purpose=sched.purpose
            )
            return True
        return False

    def _audit(self, event: str, round_id: str, details: dict[str, object]) -> None:
        """Append the scheduler's event; a log that cannot take it is logged, and the
        retry or the notification still happens (the person told is the fallback)."""
        try:
            self.audit.append(
                event,
                actor="scheduler",
                on_behalf_of=self.config.network,
                access_point="scheduler",
                action="E",
                round_id=round_id,
                details=details,
            )
        except Exception:
            log.exception("scheduler event not audited", audit_event=event, round_id=round_id)

    def _give_up(
        self,
        sched: Schedule,
        attempts: int,
        summary: coordinator_pb2.RoundSummary | None,
        reason: str,
    ) -> Outcome:
        """Audit `schedule.failed`, log it, and run the configured notification."""
        round_id = summary.round_id if summary is not None else ""
        state = summary.state if summary is not None else NOT_STARTED
        policy = self.config.scheduler
        planned = [
            name
            for name, on in (
                ("command", bool(policy.notify_command)),
                ("webhook", bool(policy.notify_webhook)),
            )
            if on
        ]
        self._audit(
            "schedule.failed",
            round_id,
            {
                "purpose": sched.purpose,
                "attempts": attempts,
                "state": state,
                "reason": safe_reason(reason),
                "notify": planned,
            },
        )
        log.error(
            "scheduled round did not complete",
            purpose=sched.purpose,
            round_id=round_id,
            state=state,
            attempts=attempts,
            reason=reason,
        )
        notice = Notice(self.config.network, sched.purpose, round_id, state, reason, attempts)
        notified = notify(policy, notice, env=self.notify_env) if planned else {}
        return Outcome(sched.purpose, attempts, summary, reason, notified)
