"""Scheduled rounds on real servers: transient failures retried with backoff, then a notice."""

from __future__ import annotations

import dataclasses
import json
import socket
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from coordinator.config import Schedule, SchedulerConfig, load_coordinator_config
from coordinator.schedule import Outcome, ScheduledRounds
from coordinator.server import create_server as create_coordinator
from tests.support.network import TestNetwork
from tests.support.waiting import wait_for

PARTNERS = ["gemeente", "woonbron", "schuldhulp"]
SCHEDULE = Schedule("vroegsignalering", "0 6 * * 1")

#: A notification command: writes its KRUISPUNT_* environment, as JSON, to argv[1].
NOTIFY_SCRIPT = """\
import json, os, sys
seen = {k: v for k, v in os.environ.items() if k.startswith("KRUISPUNT_")}
with open(sys.argv[1], "w", encoding="utf-8") as fh:
    json.dump({"argv": sys.argv[2:], "env": seen}, fh)
"""


def scheduled(
    net: TestNetwork, waits: list[float], on_wait: Any = None, **settings: Any
) -> ScheduledRounds:
    """The coordinator's scheduled rounds with `settings`; each backoff wait is recorded and
    runs `on_wait` instead of sleeping (the servers stay real)."""
    assert net.coordinator is not None
    base = {"retry_attempts": 3, "retry_base_seconds": 30.0, "retry_max_seconds": 45.0}
    config = dataclasses.replace(
        net.coordinator.runner.config, scheduler=SchedulerConfig(**{**base, **settings})
    )

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        if on_wait is not None:
            on_wait()
        return False

    return ScheduledRounds(
        net.coordinator.runner, net.coordinator.audit, config, threading.Event(), wait=wait
    )


def events(net: TestNetwork, name: str) -> list[Any]:
    assert net.coordinator is not None
    return [e for e in net.coordinator.audit.events() if e.event == name]


def notify_command(tmp_path: Path) -> tuple[tuple[str, ...], Path]:
    script = tmp_path / "notify.py"
    script.write_text(NOTIFY_SCRIPT, encoding="utf-8")
    out = tmp_path / "notified.json"
    return (sys.executable, str(script), str(out), "--team", "ops"), out


def daily_interval(net: TestNetwork) -> None:
    """Give every running node the policy default of one round a day, and restart it."""
    for pid in list(net.nodes):
        path = net.node_dirs[pid] / "node.toml"
        text = path.read_text(encoding="utf-8")
        path.write_text(
            text.replace("min_round_interval_hours = 0\n", "min_round_interval_hours = 24\n"),
            encoding="utf-8",
        )
        net.stop_node(pid)
        net.start_node(pid)


def node_events(net: TestNetwork, pid: str, name: str) -> list[Any]:
    return [e for e in net.nodes[pid].rounds.audit.events() if e.event == name]


class TestRetry:
    def test_node_down_for_the_first_attempt_completes_on_the_retry(self, network_factory):
        """A node down for attempt 1 and up for attempt 2: the pre-flight check holds the
        round back, so no partner spends a consent (a day between rounds), and the retry
        completes; the retry is audited."""
        net = network_factory(PARTNERS, per_partner=20, overlaps={2: 3})
        net.add_purpose()
        daily_interval(net)
        net.stop_node("schuldhulp")
        waits: list[float] = []
        runs = scheduled(net, waits, on_wait=lambda: net.start_node("schuldhulp"))
        outcome = runs.run(SCHEDULE)
        assert outcome.completed, outcome.reason
        assert outcome.attempts == 2
        assert waits == [30.0]
        assert outcome.notified == {}
        (retry,) = events(net, "round.retry")
        assert retry.round_id == ""
        assert retry.actor == "scheduler"
        assert retry.details["attempt"] == 2
        assert retry.details["delay_seconds"] == 30.0
        assert "schuldhulp: unreachable (UNAVAILABLE" in retry.details["reason"]
        assert not events(net, "round.failed")
        (completed,) = events(net, "round.completed")
        assert completed.round_id == outcome.summary.round_id
        (created,) = events(net, "round.created")
        assert "attempt 2 of 3" in created.details["reason"]
        for pid in PARTNERS:
            assert len(node_events(net, pid, "consent.given")) == 1
        assert not events(net, "schedule.failed")
        assert net.coordinator.audit.verify().ok

    def test_a_node_too_slow_during_the_round_is_retried(self, network_factory):
        """A node that passes the pre-flight check but misses the propose deadline: the
        round fails as transient (DEADLINE_EXCEEDED), is retried as a new round, completes."""
        net = network_factory(PARTNERS, per_partner=20, overlaps={2: 3})
        net.add_purpose()
        runner = net.coordinator.runner
        runner.config = dataclasses.replace(runner.config, phase_timeout_seconds=1.0)
        node = net.nodes["woonbron"].rounds
        propose = node.propose
        answered_late = threading.Event()

        def late_once(signed):
            if not answered_late.is_set():
                answered_late.set()
                time.sleep(2.0)  # twice the coordinator's deadline
            return propose(signed)

        node.propose = late_once  # type: ignore[method-assign]
        waits: list[float] = []
        outcome = scheduled(net, waits).run(SCHEDULE)
        assert outcome.completed, outcome.reason
        assert outcome.attempts == 2
        (failed,) = events(net, "round.failed")
        assert failed.details["transient"] is True
        assert "woonbron: did not answer within the phase deadline" in failed.details["reason"]
        (retry,) = events(net, "round.retry")
        assert retry.round_id == failed.round_id
        assert outcome.summary.round_id != failed.round_id

    def test_node_always_down_runs_the_notification_command(self, network_factory, tmp_path):
        """Every attempt finds a node down: backoff doubles (capped), no round is proposed,
        and the notification command runs as a real process with the state and reason."""
        net = network_factory(PARTNERS, per_partner=20, overlaps={2: 3})
        net.add_purpose()
        net.stop_node("schuldhulp")
        command, out = notify_command(tmp_path)
        waits: list[float] = []
        outcome = scheduled(net, waits, notify_command=command).run(SCHEDULE)
        assert not outcome.completed
        assert outcome.attempts == 3
        assert waits == [30.0, 45.0]
        assert outcome.notified == {"command": True}
        seen = json.loads(out.read_text(encoding="utf-8"))
        assert seen["argv"] == ["--team", "ops"]
        env = seen["env"]
        assert env["KRUISPUNT_ROUND_ID"] == ""
        assert env["KRUISPUNT_ROUND_STATE"] == "not_started"
        assert env["KRUISPUNT_PURPOSE"] == "vroegsignalering"
        assert env["KRUISPUNT_ATTEMPTS"] == "3"
        assert env["KRUISPUNT_NETWORK"] == net.config.network
        assert "partners unreachable before the round" in env["KRUISPUNT_ROUND_REASON"]
        assert "schuldhulp: unreachable" in env["KRUISPUNT_ROUND_REASON"]
        text = out.read_text(encoding="utf-8")
        assert net.data is not None
        for pid in PARTNERS:
            for row in net.data.rows[pid]:
                assert row["bsn"] not in text
        assert len(events(net, "round.retry")) == 2
        assert not events(net, "round.created")
        (gave_up,) = events(net, "schedule.failed")
        assert gave_up.details["attempts"] == 3
        assert gave_up.details["state"] == "not_started"
        assert gave_up.details["notify"] == ["command"]
        assert net.coordinator.audit.verify().ok

    def test_transient_failures_every_time_notify_with_the_last_round(
        self, network_factory, tmp_path
    ):
        """A node that is always too slow once the round runs: every attempt is a round that
        failed; the notice names the last one and its state."""
        net = network_factory(PARTNERS, per_partner=20, overlaps={2: 3})
        net.add_purpose()
        runner = net.coordinator.runner
        runner.config = dataclasses.replace(runner.config, phase_timeout_seconds=1.0)
        node = net.nodes["woonbron"].rounds
        propose = node.propose

        def always_late(signed):
            time.sleep(2.0)
            return propose(signed)

        node.propose = always_late  # type: ignore[method-assign]
        command, out = notify_command(tmp_path)
        outcome = scheduled(net, [], retry_attempts=2, notify_command=command).run(SCHEDULE)
        assert outcome.attempts == 2
        assert len(events(net, "round.failed")) == 2
        env = json.loads(out.read_text(encoding="utf-8"))["env"]
        assert env["KRUISPUNT_ROUND_ID"] == outcome.summary.round_id
        assert env["KRUISPUNT_ROUND_STATE"] == "failed"
        assert "DEADLINE_EXCEEDED" in env["KRUISPUNT_ROUND_REASON"]

    def test_a_refusal_is_not_retried(self, network_factory, tmp_path):
        """A partner's policy refusal ends the scheduled round at once: no retry, a notice."""
        net = network_factory(PARTNERS, per_partner=20, overlaps={2: 3})
        net.add_purpose(result_retention_days=365)  # longer than any node allows (90)
        command, out = notify_command(tmp_path)
        waits: list[float] = []
        outcome = scheduled(net, waits, notify_command=command).run(SCHEDULE)
        assert outcome.attempts == 1
        assert waits == []
        assert outcome.summary.state == "refused"
        assert not events(net, "round.retry")
        env = json.loads(out.read_text(encoding="utf-8"))["env"]
        assert env["KRUISPUNT_ROUND_STATE"] == "refused"
        assert "longer than this node allows" in env["KRUISPUNT_ROUND_REASON"]

    def test_a_round_that_cannot_be_made_notifies_without_retry(self, network_factory, tmp_path):
        """A schedule for an unknown purpose: no round, no retry; the notice says why."""
        net = network_factory(PARTNERS, per_partner=20, overlaps={2: 3})
        command, out = notify_command(tmp_path)
        waits: list[float] = []
        outcome = scheduled(net, waits, notify_command=command).run(
            Schedule("onbekend", SCHEDULE.cron)
        )
        assert outcome.summary is None
        assert waits == []
        env = json.loads(out.read_text(encoding="utf-8"))["env"]
        assert env["KRUISPUNT_ROUND_STATE"] == "not_started"
        assert env["KRUISPUNT_ROUND_ID"] == ""
        assert "unknown purpose" in env["KRUISPUNT_ROUND_REASON"]
        (gave_up,) = events(net, "schedule.failed")
        assert gave_up.details["state"] == "not_started"

    def test_a_scheduled_purpose_is_not_started_twice(self, network_factory):
        """While a purpose's scheduled round waits for its retry, its next time is skipped."""
        net = network_factory(PARTNERS, per_partner=20, overlaps={2: 3})
        net.add_purpose()
        net.stop_node("schuldhulp")
        release = threading.Event()
        waits: list[float] = []
        runs = scheduled(net, waits, on_wait=release.wait, retry_attempts=2)
        assert runs.start(SCHEDULE)
        try:
            assert wait_for(lambda: waits == [30.0], timeout=30)
            assert not runs.start(SCHEDULE)
        finally:
            release.set()
            runs.join(timeout=30)
        assert len(events(net, "schedule.failed")) == 1
        assert runs.start(SCHEDULE)  # done: the next time starts it again
        runs.join(timeout=30)


class HookReceiver(BaseHTTPRequestHandler):
    """Keeps every POSTed body on the server (`server.bodies`) and answers `server.status`."""

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.server.bodies.append(  # type: ignore[attr-defined]
            (self.headers["Content-Type"], self.rfile.read(length))
        )
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads the bodies."""


@pytest.fixture
def hook():
    server = ThreadingHTTPServer(("127.0.0.1", 0), HookReceiver)
    server.bodies = []  # type: ignore[attr-defined]
    server.status = 204  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


class TestNotification:
    def test_webhook_gets_the_notice_as_json(self, network_factory, hook):
        """The webhook receives a JSON POST with the round id, state and reason."""
        net = network_factory(PARTNERS, per_partner=20, overlaps={2: 3})
        net.add_purpose(result_retention_days=365)  # every node refuses: longer than 90 days
        url = f"http://127.0.0.1:{hook.server_port}/hooks/kruispunt"
        outcome = scheduled(net, [], retry_attempts=1, notify_webhook=url).run(SCHEDULE)
        assert outcome.notified == {"webhook": True}
        ((content_type, body),) = hook.bodies
        assert content_type == "application/json"
        notice = json.loads(body)
        assert notice["event"] == "kruispunt.scheduled_round_failed"
        assert notice["round_id"] == outcome.summary.round_id
        assert notice["state"] == "refused"
        assert notice["attempts"] == 1
        assert "longer than this node allows" in notice["reason"]

    def test_failing_notifiers_are_logged_and_never_raise(self, network_factory, hook, tmp_path):
        """A command that is missing and a webhook answering 500: both fail, the run returns."""
        net = network_factory(PARTNERS, per_partner=20, overlaps={2: 3})
        net.add_purpose()
        net.stop_node("woonbron")
        hook.status = 500
        outcome: Outcome = scheduled(
            net,
            [],
            retry_attempts=1,
            notify_command=(str(tmp_path / "no-such-alert"),),
            notify_webhook=f"http://127.0.0.1:{hook.server_port}/",
        ).run(SCHEDULE)
        assert outcome.notified == {"command": False, "webhook": False}
        assert len(hook.bodies) == 1

    def test_a_webhook_nobody_answers_times_out(self, network_factory):
        """A webhook whose port accepts but never answers: the POST gives up at its timeout."""
        net = network_factory(PARTNERS, per_partner=20, overlaps={2: 3})
        net.add_purpose()
        net.stop_node("woonbron")
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        try:
            url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
            outcome = scheduled(
                net, [], retry_attempts=1, notify_webhook=url, notify_timeout_seconds=0.5
            ).run(SCHEDULE)
        finally:
            silent.close()
        assert outcome.notified == {"webhook": False}


def serve_with_schedule(net: TestNetwork, extra: str, clock: Any) -> None:
    """Restart the coordinator with a [[schedule]] every minute, `extra` settings and `clock`."""
    path = net.coordinator_dir / "coordinator.toml"
    path.write_text(
        path.read_text(encoding="utf-8")
        + '\n[[schedule]]\npurpose = "vroegsignalering"\ncron = "* * * * *"\n'
        + extra,
        encoding="utf-8",
    )
    assert net.coordinator is not None
    net.coordinator.stop(grace=0)
    net.coordinator.store.close()
    config = load_coordinator_config(
        net.coordinator_dir, env={"KRUISPUNT_COORDINATOR_LISTEN": "127.0.0.1:0"}
    )
    net.coordinator = create_coordinator(config, now=clock, scheduler_tick=0.05)


class TestSchedulerLoop:
    def test_the_serving_scheduler_runs_the_round_when_its_time_comes(self, network_factory):
        """The serving coordinator's loop starts the scheduled round (actor: scheduler)."""
        net = network_factory(PARTNERS, per_partner=20, overlaps={2: 3})
        net.add_purpose()
        offset = [timedelta(0)]
        serve_with_schedule(net, "", lambda: datetime.now(UTC) + offset[0])
        offset[0] = timedelta(minutes=2)  # the next minute has come
        assert wait_for(lambda: bool(events(net, "round.completed")), timeout=30)
        offset[0] = timedelta(0)  # no further minute comes
        net.coordinator.scheduled.join(timeout=30)
        (created, *_) = events(net, "round.created")
        assert created.actor == "scheduler"
        assert created.details["reason"] == "schedule * * * * *"

    def test_the_serving_scheduler_retries_and_notifies(self, network_factory, tmp_path):
        """Through the loop, with real waits: a node down, two attempts, then the command."""
        net = network_factory(PARTNERS, per_partner=20, overlaps={2: 3})
        net.add_purpose()
        net.stop_node("schuldhulp")
        command, out = notify_command(tmp_path)
        offset = [timedelta(0)]
        serve_with_schedule(
            net,
            "\n[scheduler]\nretry_attempts = 2\nretry_base_seconds = 0.2\n"
            f"notify_command = {json.dumps(list(command))}\n",
            lambda: datetime.now(UTC) + offset[0],
        )
        offset[0] = timedelta(minutes=2)
        assert wait_for(lambda: bool(events(net, "schedule.failed")), timeout=30)
        offset[0] = timedelta(0)
        net.coordinator.scheduled.join(timeout=30)  # the notification has run
        env = json.loads(out.read_text(encoding="utf-8"))["env"]
        assert env["KRUISPUNT_ROUND_STATE"] == "not_started"
        assert env["KRUISPUNT_ATTEMPTS"] == "2"
        (retry, *_) = events(net, "round.retry")
        assert retry.details["delay_seconds"] == 0.2
