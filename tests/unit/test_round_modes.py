"""The coordinator's round modes: one table, modes that never import the lifecycle, one wording."""

from __future__ import annotations

import subprocess
import sys

from coordinator import present
from coordinator.phases import MODE_PHASES
from coordinator.rounds import MODES
from coordinator.store import RoundRow
from kruispunt import purpose
from kruispunt.v1 import coordinator_pb2


def summary() -> coordinator_pb2.RoundSummary:
    """A completed three-partner round's summary."""
    return coordinator_pb2.RoundSummary(
        round_id="r20261201T060000-0a1b2c3d",
        purpose_id="vroegsignalering",
        state="completed",
        threshold=2,
        partners=[
            coordinator_pb2.PartnerSummary(
                partner_id=pid, set_size=30, flagged_count=n, result_path=f"/r/{pid}.csv"
            )
            for pid, n in (("gemeente", 6), ("woonbron", 5), ("schuldhulp", 3))
        ],
        phases=[coordinator_pb2.PhaseTiming(phase="blind", seconds=0.25)],
        overlap_histogram={1: 70, 2: 4, 3: 2},
        seconds=1.5,
    )


class TestModeTable:
    def test_every_purpose_mode_has_a_round_mode(self) -> None:
        """The lifecycle's table has exactly one mode for each mode a purpose may name."""
        assert set(MODES) == set(purpose.MODES)

    def test_modes_do_not_import_the_lifecycle(self) -> None:
        """Loading both modes loads neither the lifecycle nor the CLI (no import circle)."""
        code = (
            "import sys, coordinator.modes.network, coordinator.modes.bilateral\n"
            "loaded = ('coordinator.rounds', 'coordinator.cli')\n"
            "print(sorted(m for m in loaded if m in sys.modules))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == "[]"


class TestOneWording:
    def test_round_show_words_aggregates_as_round_run(self) -> None:
        """`round show` of a stored round prints the aggregates with `round run`'s lines."""
        live = summary()
        row = RoundRow(
            id=live.round_id,
            purpose_id=live.purpose_id,
            purpose_version=1,
            state="completed",
            reason="",
            phase="",
            progress="",
            initiated_by="operator:test",
            created_at="2026-12-01T06:00:00+00:00",
            finished_at="2026-12-01T06:00:02+00:00",
            manifest=b"",
            summary=present.summary_dict(live),
        )
        run_lines = present.round_run(live).text.splitlines()[1:]
        show_lines = present.round_show(row, []).text.splitlines()
        assert run_lines
        assert show_lines[-len(run_lines) :] == run_lines
        assert (
            "  households by number of partners holding them: "
            "1 partners: 70, 2 partners: 4, 3 partners: 2"
        ) in run_lines

    def test_json_of_a_run_is_its_stored_summary_with_its_ending(self) -> None:
        """`round run --json` is the stored aggregates plus round id, purpose, state, reason."""
        live = summary()
        data = present.round_run(live).data
        assert data == {
            "round_id": live.round_id,
            "purpose": "vroegsignalering",
            "state": "completed",
            "reason": "",
            **present.summary_dict(live),
        }
        assert data["partners"]["woonbron"]["flagged_count"] == 5


def stored_row(summary: dict[str, object]) -> RoundRow:
    """A completed round as the store returns it, with the given stored summary."""
    return RoundRow(
        id="r20261201T060000-0a1b2c3d",
        purpose_id="vroegsignalering",
        purpose_version=1,
        state="completed",
        reason="",
        phase="",
        progress="",
        initiated_by="operator:test",
        created_at="2026-12-01T06:00:00+00:00",
        finished_at="2026-12-01T06:00:02+00:00",
        manifest=b"",
        summary=summary,
    )


class TestCountsAndPhases:
    def test_objections_not_reported_apart_show_as_not_reported(self) -> None:
        """A summary stored before objections were counted apart shows objected as None in
        --json and '-' in the text, with the note that excluded holds them."""
        old = {"partners": {"gemeente": {"set_size": 30, "excluded_count": 5, "flagged_count": 2}}}
        shown = present.round_show(stored_row(old), [])
        assert shown.data["partners"]["gemeente"]["objected_count"] is None
        assert shown.data["partners"]["gemeente"]["excluded_count"] == 5
        line = next(t for t in shown.text.splitlines() if t.strip().startswith("gemeente"))
        assert line.split()[1:5] == ["30", "5", "-", "2"]
        assert "not reported apart by that partner" in shown.text

    def test_a_live_summary_reports_objections_apart(self) -> None:
        """A partner whose consent reported its objections has them in summary_dict; one
        without them has None."""
        live = summary()
        live.partners[0].objected_count = 3
        live.partners[0].excluded_count = 1
        parts = present.summary_dict(live)["partners"]
        assert (parts["gemeente"]["excluded_count"], parts["gemeente"]["objected_count"]) == (1, 3)
        assert parts["woonbron"]["objected_count"] is None

    def test_round_show_lists_phases_in_protocol_order(self) -> None:
        """Stored phase timings (a JSON object with sorted keys) print in protocol order."""
        network = {"phases": dict.fromkeys(sorted(MODE_PHASES["network"]), 0.5)}
        text = present.round_show(stored_row(network), []).text
        line = next(t for t in text.splitlines() if t.strip().startswith("phases:"))
        assert [p.split()[0] for p in line.split(":", 1)[1].split(",")] == list(
            MODE_PHASES["network"]
        )
        bilateral = {"phases": dict.fromkeys(sorted(MODE_PHASES["bilateral"]), 0.5)}
        text = present.round_show(stored_row(bilateral), []).text
        line = next(t for t in text.splitlines() if t.strip().startswith("phases:"))
        assert [p.split()[0] for p in line.split(":", 1)[1].split(",")] == [
            "propose",
            "request",
            "response",
            "setup",
            "result",
            "deliver",
        ]
