"""A count with its noun in the right number: no message says "1 partners"."""

from __future__ import annotations

import pytest

from kruispunt.wording import plural


@pytest.mark.parametrize(
    ("count", "noun", "many", "expected"),
    [
        (0, "partner", None, "0 partners"),
        (1, "partner", None, "1 partner"),
        (2, "partner", None, "2 partners"),
        (12_500, "record", None, "12,500 records"),
        (1, "day", None, "1 day"),
        (3, "entry", "entries", "3 entries"),
        (1, "entry", "entries", "1 entry"),
    ],
)
def test_plural(count: int, noun: str, many: str | None, expected: str) -> None:
    assert plural(count, noun, many) == expected


def test_check_input_says_one_record(tmp_path, capsys) -> None:
    """check-input's last line: "1 record", not "1 records"."""
    from psi_node.cli import main

    export = tmp_path / "one.csv"
    export.write_text("bsn\n111222333\n", encoding="utf-8")
    assert main(["check-input", str(export), "--kind", "bsn"]) == 0
    assert "usable: 1 record can take part in a round" in capsys.readouterr().out
