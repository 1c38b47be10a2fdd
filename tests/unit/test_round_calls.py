"""RoundCalls: a cancellation ends a round's calls at once, and never a commit or an ending."""

from __future__ import annotations

import threading

import pytest

from coordinator.round_context import COMMIT_METHOD, Cancellation, RoundCalls, RoundCancelled

ALICE = Cancellation("operator:alice", "admin-api test", "wrong export")


class FakeChannel:
    """Stands in for a grpc.Channel: only closing is observed (no call may reach it)."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.closed = False

    def close(self) -> None:
        self.closed = True
        self.log.append("closed")

    def unary_unary(self, *args: object, **kwargs: object) -> object:
        raise AssertionError("a refused call reached the channel")

    unary_stream = stream_unary = stream_stream = unary_unary


def make() -> tuple[RoundCalls, threading.Event, list[str], FakeChannel, object]:
    event = threading.Event()
    calls = RoundCalls(event)
    log: list[str] = []
    raw = FakeChannel(log)
    return calls, event, log, raw, calls.channel(raw)  # type: ignore[arg-type]


class TestCancel:
    def test_cancel_audits_first_then_sets_the_event_and_closes_every_channel(self) -> None:
        """The accepted callback (the audit) runs before any channel closes; then the event is
        set and every channel of the round is closed."""
        calls, event, log, raw, _guarded = make()
        other = FakeChannel(log)
        calls.channel(other)  # type: ignore[arg-type]
        assert calls.cancel(ALICE, lambda: log.append("audited")) is True
        assert log == ["audited", "closed", "closed"]
        assert event.is_set()
        assert raw.closed
        assert other.closed
        assert calls.cancellation == ALICE

    def test_calls_after_a_cancellation_are_refused_in_every_shape(self) -> None:
        """A unary call raises RoundCancelled; a streaming one raises it when read."""
        calls, _event, _log, _raw, guarded = make()
        calls.cancel(ALICE, lambda: None)
        with pytest.raises(RoundCancelled, match="cancelled by operator:alice: wrong export"):
            guarded.unary_unary("/kruispunt.v1.PsiNode/Propose")(b"")  # type: ignore[attr-defined]
        stream = guarded.unary_stream("/kruispunt.v1.PsiNode/Blind")(b"")  # type: ignore[attr-defined]
        with pytest.raises(RoundCancelled):
            next(iter(stream))
        bidi = guarded.stream_stream("/kruispunt.v1.PsiNode/Evaluate")(iter([]))  # type: ignore[attr-defined]
        with pytest.raises(RoundCancelled):
            next(iter(bidi))

    def test_a_channel_opened_after_the_cancellation_is_closed_at_once(self) -> None:
        """A peer connected after the cancel never gets a call through."""
        calls, _event, log, _raw, _guarded = make()
        calls.cancel(ALICE, lambda: None)
        late = FakeChannel(log)
        calls.channel(late)  # type: ignore[arg-type]
        assert late.closed

    def test_once_a_commit_went_out_a_cancel_is_refused(self) -> None:
        """After the first Commit the round is publishing: no cancel, nothing closed."""
        calls, event, log, raw, _guarded = make()
        calls.enter(COMMIT_METHOD)
        assert calls.publishing
        assert calls.cancel(ALICE, lambda: log.append("audited")) is False
        assert log == []
        assert not event.is_set()
        assert not raw.closed
        calls.enter(COMMIT_METHOD)  # the other partners' commits still go out

    def test_a_round_ending_by_itself_is_not_cancelled(self) -> None:
        """Once the round is ending (its abort fan-out may run), a cancel changes nothing."""
        calls, event, log, raw, _guarded = make()
        assert calls.end() is None
        assert calls.cancel(ALICE, lambda: log.append("audited")) is False
        assert log == []
        assert not event.is_set()
        assert not raw.closed
        calls.enter("/kruispunt.v1.PsiNode/Abort")  # the abort fan-out is not refused

    def test_end_reports_a_cancellation_that_came_first(self) -> None:
        """The lifecycle learns from end() whether the operator cancelled; a second cancel
        is refused."""
        calls, _event, _log, _raw, _guarded = make()
        assert calls.cancel(ALICE, lambda: None)
        assert calls.cancel(Cancellation("operator:bob", "x", ""), lambda: None) is False
        assert calls.end() == ALICE

    def test_describe_names_the_operator_and_the_reason(self) -> None:
        """The round's ending reason names who cancelled, and why if they said."""
        assert ALICE.describe() == "cancelled by operator:alice: wrong export"
        assert Cancellation("operator:bob", "x", "").describe() == "cancelled by operator:bob"
