"""`psi-node check-input`: counts, line numbers, exit status, JSON, and no values in output."""

from __future__ import annotations

import io
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest

from psi_node import cli, inputs
from psi_node.cli import main
from tests.support.paths import DATA
from tests.support.samples import ADDRESS_ARGS, BSN_ARGS


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = main(["check-input", *argv, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out)


def sample_values(name: str) -> list[str]:
    """Every non-empty field of a sample file's identifier rows (to assert none is printed)."""
    text = (DATA / name).read_text(encoding="utf-8-sig")
    values = []
    for line in text.splitlines()[1:]:
        for field in line.split(";"):
            field = field.strip()
            if any(c.isdigit() for c in field) and len(field) >= 4 and not field.startswith("D-"):
                values.append(field)
    return values


class TestCheckInput:
    def test_bsn_sample_json(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--json gives exact counts and the invalid rows' lines and reasons; exit 0."""
        code, report = run_json(capsys, *BSN_ARGS)
        assert code == 0
        assert report["usable"] is True
        assert report["error"] is None
        assert report["counts"] == {
            "rows": 16, "valid": 5, "invalid": 5, "duplicate": 2,
            "objected": 3, "excluded": 1, "blank": 1,
        }  # fmt: skip
        assert [p["line"] for p in report["problems"]] == [5, 10, 13, 15, 16]
        assert report["problems"][0] == {"line": 5, "reason": "bsn: elfproef fails"}
        assert report["exclusions"] == {
            "entries": 2,
            "invalid": 1,
            "problems": [{"line": 4, "reason": "bsn: not 8 or 9 digits"}],
        }

    def test_address_sample_json(self, capsys: pytest.CaptureFixture[str]) -> None:
        """The address sample gives its exact counts and lines."""
        code, report = run_json(capsys, *ADDRESS_ARGS)
        assert code == 0
        assert report["counts"] == {
            "rows": 17, "valid": 5, "invalid": 5, "duplicate": 3,
            "objected": 3, "excluded": 1, "blank": 1,
        }  # fmt: skip
        assert [p["line"] for p in report["problems"]] == [7, 8, 9, 15, 16]
        assert report["delimiter"] == ";"

    def test_human_report(self, capsys: pytest.CaptureFixture[str]) -> None:
        """The default output lists counts and every invalid line with its reason."""
        assert main(["check-input", *BSN_ARGS]) == 0
        out = capsys.readouterr().out
        assert "  valid               5\n" in out
        assert "  invalid             5\n" in out
        assert "  duplicate           2\n" in out
        assert "  objected            3\n" in out
        assert "  excluded            1\n" in out
        assert "  line 13: bsn: empty\n" in out
        assert "1 invalid" in out
        assert "usable: 5 records can take part in a round" in out

    @pytest.mark.parametrize("fmt", [[], ["--json"]])
    @pytest.mark.parametrize(
        ("args", "name"), [(BSN_ARGS, "partner_bsn.csv"), (ADDRESS_ARGS, "partner_address.csv")]
    )
    def test_no_identifier_is_printed(
        self, capsys: pytest.CaptureFixture[str], args: list[str], name: str, fmt: list[str]
    ) -> None:
        """Neither output format echoes any identifier value from the file."""
        main(["check-input", *args, *fmt])
        captured = capsys.readouterr()
        values = sample_values(name)
        assert len(values) > 10
        for value in values:
            assert value not in captured.out
            assert value not in captured.err

    def test_no_valid_rows_exits_2(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """A file without a single valid row is not usable: exit 2."""
        path = tmp_path / "in.csv"
        path.write_text("bsn\n123456789\n")
        code, report = run_json(capsys, str(path), "--kind", "bsn")
        assert code == 2
        assert report["usable"] is False
        assert report["counts"]["invalid"] == 1
        assert main(["check-input", str(path), "--kind", "bsn"]) == 2
        assert "not usable" in capsys.readouterr().out

    def test_strict_stops_at_first_invalid_row(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--strict turns the first invalid row into an error naming file and line: exit 2."""
        assert main(["check-input", *BSN_ARGS[:5], "--strict"]) == 2
        err = capsys.readouterr().err
        assert "partner_bsn.csv, line 5: bsn: elfproef fails" in err
        assert "887298267" not in err

    def test_strict_json_error(self, capsys: pytest.CaptureFixture[str]) -> None:
        """With --json an error is a JSON object with usable false and the message."""
        code, report = run_json(capsys, *ADDRESS_ARGS, "--strict")
        assert code == 2
        assert report["usable"] is False
        assert report["error"].endswith(
            "exclusions_address.csv, line 3: postcode: not of the form 1234AB"
        )

    def test_missing_file(self, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
        """An unreadable file is reported on stderr: exit 2."""
        assert main(["check-input", str(tmp_path / "x.csv"), "--kind", "bsn"]) == 2
        assert "x.csv: file not found" in capsys.readouterr().err

    def test_columns_and_delimiter_options(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """--columns maps fields to headers and --delimiter tab reads a tab file."""
        path = tmp_path / "in.tsv"
        path.write_text("PC\tNr\tL\n1234 ab\t12\ta\n1234AB\t12A\t\n")
        code, report = run_json(
            capsys, str(path), "--kind", "address", "--delimiter", "tab",
            "--columns", "postcode=PC, huisnummer=Nr,huisletter=L",
        )  # fmt: skip
        assert code == 0
        assert report["counts"]["valid"] == 1
        assert report["counts"]["duplicate"] == 1

    def test_unknown_columns_field(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A --columns field the kind does not have is an error: exit 2."""
        code, report = run_json(capsys, *BSN_ARGS, "--columns", "postcode=PC")
        assert code == 2
        assert "postcode is not a field of kind bsn" in report["error"]

    @pytest.mark.parametrize(
        "bad", [["--columns", "bsn"], ["--columns", "=x"], ["--delimiter", ";;"], ["--kind", "x"]]
    )
    def test_malformed_options_exit_2(
        self, capsys: pytest.CaptureFixture[str], bad: list[str]
    ) -> None:
        """Malformed options are usage errors: status 2, one line pointing to --help."""
        argv = ["check-input", str(DATA / "partner_bsn.csv"), "--kind", "bsn", *bad]
        assert main(argv) == 2
        assert "(see `psi-node check-input --help`)" in capsys.readouterr().err

    def test_no_command_prints_help(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Without a subcommand psi-node prints its help and exits 2."""
        assert main([]) == 2
        assert "check-input" in capsys.readouterr().err


def node_dir(tmp_path: Path, inputs_table: str, export: str) -> Path:
    """A node directory with just enough node.toml for check-input: [node] and one input."""
    (tmp_path / "export.csv").write_text(export, encoding="utf-8")
    (tmp_path / "node.toml").write_text(
        '[node]\npartner_id = "gemeente"\n[tls]\n[signing]\n\n[inputs.vs]\n'
        'path = "export.csv"\nkind = "address"\n' + inputs_table,
        encoding="utf-8",
    )
    return tmp_path


WALKTHROUGH = (
    "Postcode;Huisnr;Huisletter;Toev;Bezwaar;Klantnr\n1234AB;12;;2;;K1\n1234AB;12;;;ja;K2\n"
)


class TestCheckInputFromNodeToml:
    def test_purpose_reads_the_mapping_from_node_toml(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """DIR --purpose reads [inputs.PURPOSE]: columns, objection, result columns, printed."""
        directory = node_dir(
            tmp_path,
            'objection_column = "Bezwaar"\ncolumns = { toevoeging = "Toev" }\n'
            'result_columns = ["Klantnr"]\n',
            WALKTHROUGH,
        )
        assert main(["check-input", str(directory), "--purpose", "vs"]) == 0
        out = capsys.readouterr().out
        assert (
            "columns: postcode <- 'Postcode', huisnummer <- 'Huisnr', huisletter <- "
            "'Huisletter', toevoeging <- 'Toev'; objection <- 'Bezwaar'; carried to results: "
            "'Klantnr'\n"
        ) in out
        assert "  valid               1\n" in out
        assert "  objected            1\n" in out
        code, report = run_json(capsys, str(directory), "--purpose", "vs")
        assert code == 0
        assert report["mapping"]["fields"]["toevoeging"] == "Toev"
        assert report["mapping"]["result_columns"] == ["Klantnr"]

    def test_unread_columns_print_a_command_that_works(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """Unmapped Toev and Bezwaar: exit 2, the real flags named, and a try: line that runs."""
        path = tmp_path / "in.csv"
        path.write_text(WALKTHROUGH, encoding="utf-8")
        assert main(["check-input", str(path), "--kind", "address"]) == 2
        err = capsys.readouterr().err
        assert "column 4 'Toev' looks like the toevoeging" in err
        assert "column 5 'Bezwaar' looks like an objection flag" in err
        assert "columns bsn=" not in err
        (retry,) = [line for line in err.splitlines() if line.startswith("try: ")]
        argv = shlex.split(retry.removeprefix("try: "))
        assert argv[:2] == ["psi-node", "check-input"]
        assert "--columns" in argv
        assert "--objection-column" in argv
        assert main(argv[1:]) == 0
        assert "toevoeging <- 'Toev'; objection <- 'Bezwaar'" in capsys.readouterr().out

    def test_purpose_flags_override_node_toml(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """Flags with --purpose try a mapping before it is written into node.toml."""
        directory = node_dir(tmp_path, 'objection_column = "Bezwaar"\n', WALKTHROUGH)
        assert main(["check-input", str(directory), "--purpose", "vs"]) == 2
        err = capsys.readouterr().err
        assert (
            f"try: psi-node check-input {directory} --purpose vs --columns toevoeging=Toev" in err
        )
        code, report = run_json(
            capsys, str(directory), "--purpose", "vs", "--ignore-columns", "Toev"
        )
        # Ignored by decision, 12-2 and 12 are one address, and 12's objection covers both.
        assert code == 2
        assert report["counts"]["objected"] == 2
        assert report["mapping"]["ignored"] == ["Toev"]
        code, report = run_json(
            capsys, str(directory), "--purpose", "vs", "--columns", "toevoeging=Toev"
        )
        assert code == 0
        assert (report["counts"]["valid"], report["counts"]["objected"]) == (1, 1)

    def test_unknown_purpose_and_missing_kind(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """An unconfigured purpose names those configured; a FILE without --kind says how."""
        directory = node_dir(tmp_path, "", "bsn\n")
        assert main(["check-input", str(directory), "--purpose", "other"]) == 2
        assert "no [inputs.other] (configured: vs)" in capsys.readouterr().err
        assert main(["check-input", str(directory / "export.csv")]) == 2
        assert "give --kind bsn|address with a FILE" in capsys.readouterr().err

    def test_help_lists_default_headers_and_objection_values(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """check-input --help names every default header and every objection value."""
        assert main(["check-input", "--help"]) == 0
        text = " ".join(capsys.readouterr().out.split())
        for names in inputs.DEFAULT_COLUMNS.values():
            for name in names:
                assert name in text
        for value in inputs.OBJECTION_TRUE | (inputs.OBJECTION_FALSE - {""}):
            assert value in text
        assert "--ignore-columns" in text


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


class TestProgress:
    def test_progress_on_a_terminal(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """On a terminal stderr shows a running row count, cleared at the end."""
        monkeypatch.setattr(inputs, "PROGRESS_EVERY", 2)
        monkeypatch.setattr(cli, "PROGRESS_EVERY", 2)
        tty = _Tty()
        monkeypatch.setattr(sys, "stderr", tty)
        path = tmp_path / "in.csv"
        path.write_text("bsn\n" + "123456782\n" * 5)
        assert main(["check-input", str(path), "--kind", "bsn", "--json"]) == 0
        shown = tty.getvalue()
        assert "\r  2 rows read" in shown
        assert "\r  5 rows read" in shown
        assert shown.endswith("\r\x1b[K")
        assert json.loads(capsys.readouterr().out)["counts"]["rows"] == 5

    def test_no_progress_when_not_a_terminal(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Redirected stderr gets no progress output."""
        monkeypatch.setattr(inputs, "PROGRESS_EVERY", 2)
        path = tmp_path / "in.csv"
        path.write_text("bsn\n" + "123456782\n" * 5)
        assert main(["check-input", str(path), "--kind", "bsn"]) == 0
        assert capsys.readouterr().err == ""
