"""`round cancel` cancels now: over real mTLS, a hung phase ends at once, everywhere, audited."""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

import pytest

from coordinator import cli as coordinator_cli
from coordinator.admin_client import AdminClient
from coordinator.operators import issue_operator
from kruispunt.rpc import PeerError
from kruispunt.v1 import common_pb2
from psi_node import rounds as psi_node_rounds
from psi_node.rounds import ABORTED_BEFORE
from tests.support.mallory import Mallory, parse_consent
from tests.support.network import TestNetwork, offline_ca_key
from tests.support.waiting import wait_for

PARTNERS = ["gemeente", "woonbron", "schuldhulp"]
#: How fast a cancellation must end a hung round (the node would hang for far longer).
PROMPT = 2.0


class Hang:
    """Replace one RoundManager method of a node with one that blocks until released."""

    def __init__(self, net: TestNetwork, partner: str, method: str) -> None:
        self.rounds = net.nodes[partner].rounds
        self.method = method
        self.original = getattr(self.rounds, method)
        self.entered = threading.Event()
        self.release = threading.Event()
        self.returned = threading.Event()

        def hanging(*args: Any, **kwargs: Any) -> Any:
            self.entered.set()
            self.release.wait(60)
            try:
                return self.original(*args, **kwargs)
            finally:
                self.returned.set()

        setattr(self.rounds, method, hanging)

    def undo(self) -> None:
        self.release.set()
        setattr(self.rounds, self.method, self.original)


class RoundInThread:
    """`round run` through the admin service as one operator, on a thread of its own."""

    def __init__(self, net: TestNetwork, operator: str, reason: str) -> None:
        self.client = client_for(net, operator)
        self.events: list[Any] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(reason,), daemon=True)
        self.thread.start()

    def _run(self, reason: str) -> None:
        try:
            self.events.extend(self.client.run_round("vroegsignalering", reason))
        except BaseException as exc:  # handed to the test
            self.error = exc

    def round_id(self) -> str:
        assert wait_for(lambda: any(e.round_id for e in self.events) or self.error), "no round"
        return next(e.round_id for e in self.events if e.round_id)

    def summary(self, timeout: float) -> Any:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the round did not end"
        self.client.close()
        assert self.error is None, self.error
        return next(e.summary for e in self.events if e.HasField("summary"))


def client_for(net: TestNetwork, operator: str) -> AdminClient:
    """An admin client holding `operator`'s own certificate (issued like `operator add`)."""
    config = net.config
    folder = config.directory / "operators" / operator
    if not (folder / "operator.crt").exists():
        issue_operator(config, operator, actor="operator:test", ca_key_path=offline_ca_key(config))
    served = dataclasses.replace(config, listen=f"127.0.0.1:{net.coordinator.port}")
    return AdminClient(served, key=folder / "operator.key", cert=folder / "operator.crt")


@pytest.fixture
def net(network_factory: Any) -> TestNetwork:
    n = network_factory(PARTNERS, per_partner=20, overlaps={2: 3})
    n.add_purpose()
    return n


def events(net: TestNetwork, round_id: str, name: str) -> list[Any]:
    return [e for e in net.coordinator.audit.events(round_id) if e.event == name]


class TestCancelNow:
    def test_cancel_during_a_hung_blind_ends_the_round_at_once_everywhere(self, net):
        """A node hangs in Blind; alice's cancel returns within 2 s, the round (bob's) ends
        aborted, no node keeps it, and the audit names alice and her reason."""
        hang = Hang(net, "schuldhulp", "blind")
        try:
            running = RoundInThread(net, "bob", "weekly signalling")
            round_id = running.round_id()
            assert hang.entered.wait(15), "the round never reached Blind"
            with client_for(net, "alice") as alice:
                started = time.monotonic()
                answer = alice.cancel_round(round_id, "wrong export file at woonbron")
                took = time.monotonic() - started
            assert took < PROMPT, f"cancel took {took:.2f} s"
            assert answer.state == "aborted"
            summary = running.summary(timeout=PROMPT)
            assert summary.state == "aborted"
            assert summary.reason == "cancelled by operator:alice: wrong export file at woonbron"
            assert time.monotonic() - started < PROMPT + 1
            # Every node dropped it: told by the abort fan-out, not by an idle timeout.
            for pid in PARTNERS:
                assert net.nodes[pid].rounds.rounds_in_flight() == [], pid
                node_events = net.nodes[pid].rounds.audit.events(round_id=round_id)
                assert node_events[-1].event == "round.aborted", pid
                assert "operator:alice" in node_events[-1].details["reason"], pid
        finally:
            hang.undo()
        row = net.coordinator.store.round(round_id)
        assert row.state == "aborted"
        assert row.initiated_by == "operator:bob"
        assert row.reason == "cancelled by operator:alice: wrong export file at woonbron"
        (cancelled,) = events(net, round_id, "round.cancelled")
        assert cancelled.actor == "operator:alice"
        assert cancelled.details["reason"] == "wrong export file at woonbron"
        assert cancelled.details["phase"] == "blind"
        assert cancelled.access_point.startswith("admin-api ")
        (aborted,) = events(net, round_id, "round.aborted")
        assert aborted.actor == "operator:alice"
        assert aborted.details["cancelled_by"] == "operator:alice"
        assert aborted.seq > cancelled.seq
        (created,) = events(net, round_id, "round.created")
        assert created.actor == "operator:bob"
        assert created.details["reason"] == "weekly signalling"
        assert not events(net, round_id, "round.failed")
        assert net.coordinator.audit.verify().ok
        # The network is fine afterwards: the next round completes.
        assert net.run().state == "completed"

    def test_cancel_during_a_hung_unary_call_ends_it_too(self, net):
        """A node hanging on a unary call (Propose) is cut off just as fast."""
        hang = Hang(net, "woonbron", "propose")
        try:
            running = RoundInThread(net, "bob", "")
            round_id = running.round_id()
            assert hang.entered.wait(15)
            started = time.monotonic()
            state = net.coordinator.runner.cancel(
                round_id, actor="operator:alice", access_point="test", reason=""
            )
            assert time.monotonic() - started < PROMPT
            assert state == "aborted"
            summary = running.summary(timeout=PROMPT)
            assert summary.state == "aborted"
            assert summary.reason == "cancelled by operator:alice"
        finally:
            hang.undo()
        # The node that hung finishes its Propose only now, after the abort: it must not
        # start the round then.
        assert hang.returned.wait(15)
        # The node that hung holds nothing.
        assert net.nodes["woonbron"].rounds.rounds_in_flight() == []

        # Every node dropped the round at the cancel's own abort: none is sent again here.
        # (A node still finishing its Propose when the abort came once kept the round: the
        # abort looked for it and claimed its id in two holds of the lock.)
        assert {pid: net.nodes[pid].rounds.rounds_in_flight() for pid in PARTNERS} == {
            pid: [] for pid in PARTNERS
        }
        late = net.nodes["woonbron"].rounds.audit.events(round_id=round_id)[-1]
        assert late.event == "consent.refused"
        assert late.details["reason"] == ABORTED_BEFORE

    def test_an_abort_overtaking_a_propose_is_never_lost(self, net, monkeypatch):
        """The abort and a Propose still under way at the node race: whichever order they
        take, the node ends holding nothing and the Propose is refused.

        The Propose finishes exactly between the abort's look for the round (not there yet)
        and the rest of the abort: the abort must have claimed the round id by then.
        """
        rounds = net.nodes["schuldhulp"].rounds
        signed = Mallory(net).manifest()
        manifest = common_pb2.RoundManifest()
        manifest.ParseFromString(signed.manifest)
        round_id = manifest.round_id
        answers = []
        discard = psi_node_rounds.discard_staged

        def propose_in_between(results_dir, rid):
            if rid == round_id and not answers:
                answers.append(parse_consent(rounds.propose(signed)))
            return discard(results_dir, rid)

        monkeypatch.setattr(psi_node_rounds, "discard_staged", propose_in_between)
        rounds.abort(round_id, "cancelled by operator:alice")
        (answer,) = answers
        assert rounds.rounds_in_flight() == []
        assert not answer.granted
        assert answer.reason == ABORTED_BEFORE

    def test_a_round_publishing_its_results_is_not_cancelled(self, net):
        """Once Commit went out, a cancel is refused (audited) and the round completes: no
        partner is left with results that others lack."""
        hang = Hang(net, "gemeente", "commit")
        try:
            running = RoundInThread(net, "bob", "")
            round_id = running.round_id()
            assert hang.entered.wait(30)
            with client_for(net, "alice") as alice:
                answer = alice.cancel_round(round_id, "too late")
            assert answer.state == "publishing"
        finally:
            hang.undo()
        assert running.summary(timeout=30).state == "completed"
        (refused,) = events(net, round_id, "round.cancel_refused")
        assert refused.actor == "operator:alice"
        assert refused.details["reason"] == "too late"
        assert not events(net, round_id, "round.cancelled")
        for pid in PARTNERS:
            assert len(list((net.node_dirs[pid] / "results").glob("*.csv"))) == 1, pid

    def test_cancelling_a_round_that_is_not_running_is_not_found(self, net):
        """A cancel naming no running round fails with NOT_FOUND and audits nothing."""
        before = len(net.coordinator.audit.events())
        with client_for(net, "alice") as alice, pytest.raises(PeerError) as err:
            alice.cancel_round("r20261128T120000-0badc0de", "")
        assert err.value.details == "no such round running"
        # Issuing alice's certificate is the only event since.
        assert [e.event for e in net.coordinator.audit.events()[before:]] == ["operator.added"]


class TestCancelCommand:
    def test_round_cancel_cli_as_the_sudo_user(self, net, monkeypatch, capsys):
        """`round cancel` run as alice (SUDO_USER) uses her certificate, ends the hung round
        and says it is aborted; the audit names her."""
        issue_operator(net.config, "alice", actor="operator:test", ca_key_path=net.ca_key)
        monkeypatch.setenv("KRUISPUNT_COORDINATOR_LISTEN", f"127.0.0.1:{net.coordinator.port}")
        monkeypatch.setenv("SUDO_USER", "alice")
        hang = Hang(net, "gemeente", "blind")
        try:
            running = RoundInThread(net, "bob", "")
            round_id = running.round_id()
            assert hang.entered.wait(15)
            started = time.monotonic()
            code = coordinator_cli.main(
                ["round", "cancel", str(net.coordinator_dir), round_id, "--reason", "test run"]
            )
            assert time.monotonic() - started < PROMPT + 1  # a CLI start on top
            out = capsys.readouterr().out
            assert code == 0
            assert f"round {round_id}: cancelled, aborted" in out
            assert running.summary(timeout=PROMPT).state == "aborted"
        finally:
            hang.undo()
        (cancelled,) = events(net, round_id, "round.cancelled")
        assert cancelled.actor == "operator:alice"
        assert cancelled.details["reason"] == "test run"
