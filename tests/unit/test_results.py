"""Result files at the node: inert in spreadsheets, staged then published, never half-written."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from psi_node.results import (
    ResultWriteError,
    commit_results,
    discard_staged,
    expired_results,
    neutralise,
    stage_results,
)

ROUND = "r20261128T120000-0badc0de"


def stage(results: Path, rows, coholders=None, **meta):
    return stage_results(
        results,
        ROUND,
        columns=("postcode", "huisnummer"),
        rows=rows,
        coholders=coholders,
        metadata={
            "round_id": ROUND,
            "delete_after": meta.get(
                "delete_after", (datetime.now(UTC) + timedelta(days=28)).isoformat()
            ),
        },
    )


class TestFormulaInjection:
    @pytest.mark.parametrize(
        "cell", ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]
    )
    def test_cells_a_spreadsheet_would_run_are_neutralised(self, cell):
        """A cell starting with = + - @ tab or CR gets a leading quote."""
        assert neutralise(cell) == "'" + cell

    def test_ordinary_cells_are_left_alone(self):
        """Postcodes, numbers and partner names are written as they are."""
        for cell in ("5211AB", "12", " 5211 ab ", "woonbron gemeente"):
            assert neutralise(cell) == cell

    def test_written_file_holds_no_live_formula(self, tmp_path):
        """Every cell of a written result file is inert, including the partners column."""
        staged = stage(tmp_path / "results", [("=HYPERLINK(1)", "12")], coholders=[["-x"]])
        path = commit_results(staged)
        rows = list(csv.reader(path.open(encoding="utf-8"), delimiter=";"))
        assert rows[1] == ["'=HYPERLINK(1)", "12", "'-x"]


class TestStaging:
    def test_nothing_is_visible_until_commit(self, tmp_path):
        """Staged results are hidden; commit publishes CSV and metadata atomically."""
        results = tmp_path / "results"
        staged = stage(results, [("5211AB", "12")])
        assert not staged.final_csv.exists()
        assert commit_results(staged) == staged.final_csv
        assert sorted(p.name for p in results.iterdir()) == [f"{ROUND}.csv", f"{ROUND}.json"]
        assert staged.final_csv.stat().st_mode & 0o777 == 0o600

    def test_discard_removes_staged_files(self, tmp_path):
        """An aborted round leaves no file behind."""
        results = tmp_path / "results"
        stage(results, [("5211AB", "12")])
        assert discard_staged(results, ROUND)
        assert list(results.iterdir()) == []

    def test_unwritable_folder_raises_and_leaves_nothing(self, tmp_path):
        """A results path that is a file gives a clear error and no partial file."""
        results = tmp_path / "results"
        results.write_text("a file")
        with pytest.raises(ResultWriteError, match="cannot write results"):
            stage(results, [("5211AB", "12")])
        assert results.read_text() == "a file"

    def test_expired_results_are_found_by_their_metadata(self, tmp_path):
        """Only results whose delete_after has passed are listed for deletion."""
        results = tmp_path / "results"
        commit_results(
            stage(
                results,
                [("5211AB", "12")],
                delete_after=(datetime.now(UTC) - timedelta(days=1)).isoformat(),
            )
        )
        found = expired_results(results, datetime.now(UTC))
        assert [r[0] for r in found] == [ROUND]
        assert expired_results(results, datetime.now(UTC) - timedelta(days=2)) == []
