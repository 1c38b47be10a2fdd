"""Reading partner exports: buckets, line numbers, formats and the errors that stop a file."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from kruispunt.errors import ConfigError, InputFileError
from kruispunt.identifiers import IdentifierKind, canonical_address, canonical_bsn
from psi_node import inputs
from psi_node.inputs import InputSpec, PackedRows, read_input
from tests.support.paths import DATA
from tests.support.synthetic import make_network, write_csv


def write(tmp_path: Path, text: str, name: str = "in.csv", *, bom: bool = False) -> Path:
    path = tmp_path / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def read(path: Path, kind: IdentifierKind = "bsn", **kw: object) -> inputs.InputSet:
    strict = bool(kw.pop("strict", False))
    return read_input(InputSpec(path=path, kind=kind, **kw), strict=strict)  # type: ignore[arg-type]


def counts(found: inputs.InputSet) -> dict[str, int]:
    d = found.report.as_dict()["counts"]
    assert isinstance(d, dict)
    return d


class TestSampleFiles:
    def test_bsn_sample_buckets_and_lines(self) -> None:
        """The messy BSN sample sorts into the documented buckets with exact line numbers."""
        found = read(
            DATA / "partner_bsn.csv",
            objection_column="Bezwaar",
            exclusion_file=DATA / "exclusions_bsn.csv",
        )
        assert counts(found) == {
            "rows": 16, "valid": 5, "invalid": 5, "duplicate": 2,
            "objected": 3, "excluded": 1, "blank": 1,
        }  # fmt: skip
        assert found.report.problems == [
            (5, "bsn: elfproef fails"),
            (10, "bsn: not digits"),
            (13, "bsn: empty"),
            (15, "objection column value not recognised"),
            (16, "row has 1 field, header has 3"),
        ]
        assert list(found.source_lines) == [2, 3, 7, 12, 17]
        assert found.records == [
            b"bsn:470090716", b"bsn:728264298", b"bsn:072436281",
            b"bsn:245166646", b"bsn:415872108",
        ]  # fmt: skip
        assert found.columns == ("BSN",)
        assert found.values[1] == (" 728264298 ",)  # as in the input, spaces and all
        assert found.values[2] == ("72436281",)
        assert found.report.delimiter == ";"
        assert found.report.exclusion_entries == 2
        assert found.report.exclusion_invalid == 1
        assert found.report.exclusion_problems == [(4, "bsn: not 8 or 9 digits")]

    def test_address_sample_buckets_and_lines(self) -> None:
        """The messy address sample sorts into the documented buckets with exact line numbers."""
        found = read(
            DATA / "partner_address.csv",
            "address",
            objection_column="bezwaar",
            exclusion_file=DATA / "exclusions_address.csv",
        )
        assert counts(found) == {
            "rows": 17, "valid": 5, "invalid": 5, "duplicate": 3,
            "objected": 3, "excluded": 1, "blank": 1,
        }  # fmt: skip
        assert [line for line, _ in found.report.problems] == [7, 8, 9, 15, 16]
        assert list(found.source_lines) == [3, 5, 11, 18, 19]
        assert found.records == [
            b"address:5211AB:12:A:",
            b"address:5212CD:7::BIS",
            b"address:5215GH:100:B:2",
            b"address:5219RS:3::2",
            b"address:1011AB:1::",
        ]
        assert found.columns == ("Postcode", "Huisnr", "Huisletter", "Huisnummertoevoeging")
        assert found.values[0] == ("5211 ab", "12-A", "", "")

    def test_without_objection_column_objections_are_ignored(self) -> None:
        """The objection column counts only when configured; ignored explicitly, it is not read."""
        found = read(DATA / "partner_bsn.csv", ignore_columns=("Bezwaar",))
        c = counts(found)
        assert c["objected"] == 0
        assert c["invalid"] == 3  # lines 5, 10 and 13; line 15's "misschien" is not read
        assert found.report.exclusion_entries == 0

    def test_no_value_appears_in_any_problem(self) -> None:
        """Reasons name the problem, never the value of the row."""
        found = read(
            DATA / "partner_bsn.csv",
            objection_column="Bezwaar",
            exclusion_file=DATA / "exclusions_bsn.csv",
        )
        text = repr(found.report.as_dict())
        raw = (DATA / "partner_bsn.csv").read_text(encoding="utf-8-sig")
        for row in csv.reader(raw.splitlines(), delimiter=";"):
            if row and row[0].strip() and row[0] != "BSN":
                assert row[0].strip() not in text


class TestEveryColumnAccountedFor:
    """A column that looks like an identifier part or objection flag is read or ignored."""

    def test_unread_objection_flag_stops_with_the_fix(self) -> None:
        """A Bezwaar column without objection_column is an error naming the flag to set."""
        with pytest.raises(inputs.UnreadColumns) as info:
            read(DATA / "partner_bsn.csv")
        message = str(info.value)
        assert "line 1: column 2 'Bezwaar' looks like an objection flag" in message
        assert "--objection-column Bezwaar" in message
        assert 'objection_column = "Bezwaar"' in message
        assert "--ignore-columns Bezwaar" in message
        assert info.value.objection_column == "Bezwaar"

    @pytest.mark.parametrize(
        ("header", "field"),
        [
            ("Toev", "toevoeging"),
            ("toev", "toevoeging"),
            ("Toevoeging_2", "toevoeging"),
            ("Hlt", "huisletter"),
            ("Letter", "huisletter"),
            ("HNR", "huisnummer"),
            ("PC6", "postcode"),
        ],
    )
    def test_unread_address_part_stops_with_the_fix(
        self, tmp_path: Path, header: str, field: str
    ) -> None:
        """An address-part header no field reads is an error whose fix maps it."""
        path = write(tmp_path, f"Postcode;Huisnr;Huisletter;Huisnummertoevoeging;{header}\n"
                               "1234AB;12;;;2\n")  # fmt: skip
        if field == "huisletter":
            path = write(tmp_path, f"Postcode;Huisnr;{header}\n1234AB;12;a\n")
        if field == "toevoeging":
            path = write(tmp_path, f"Postcode;Huisnr;Huisletter;{header}\n1234AB;12;;2\n")
        with pytest.raises(inputs.UnreadColumns) as info:
            read(path, "address")
        assert f"{header!r} looks like the {field}" in str(info.value)
        assert f"--ignore-columns {header}" in str(info.value)
        if field in ("toevoeging", "huisletter"):
            assert info.value.columns == {field: header}
            assert f"--columns {field}={header}" in str(info.value)
            mapped = read(path, "address", columns={field: header})
            assert mapped.report.mapping is not None
            assert mapped.report.mapping.fields[field] == header

    def test_dutch_spellings_of_the_toevoeging_are_defaults(self, tmp_path: Path) -> None:
        """'Huisnummer toevoeging' and 'HuisnrToev' are read as the toevoeging by default."""
        for header in ("Huisnummer toevoeging", "HuisnrToev", "huisnummer-toevoeging"):
            path = write(tmp_path, f"Postcode;Huisnr;{header}\n1234AB;12;2\n1234AB;12;\n")
            found = read(path, "address")
            assert found.records == [b"address:1234AB:12::2", b"address:1234AB:12::"]
            assert found.report.mapping is not None
            assert found.report.mapping.fields["toevoeging"] == header

    def test_second_bsn_column_stops(self, tmp_path: Path) -> None:
        """A BSN file with another BSN-like column (a partner's) must say which is read."""
        path = write(tmp_path, "BSN;BSN partner\n123456782;111222333\n")
        with pytest.raises(inputs.UnreadColumns, match="'BSN partner' looks like the bsn"):
            read(path)
        found = read(path, ignore_columns=("bsn partner",))
        assert found.records == [b"bsn:123456782"]
        assert found.report.mapping is not None
        assert found.report.mapping.ignored == ("BSN partner",)

    def test_ignoring_a_read_column_is_refused(self, tmp_path: Path) -> None:
        """A column both read and ignored is a configuration error naming both."""
        path = write(tmp_path, "bsn;x\n123456782;1\n")
        with pytest.raises(ConfigError, match="ignore_columns: 'bsn' is read as the bsn"):
            read(path, ignore_columns=("BSN",))

    def test_header_that_looks_like_a_record_is_never_echoed(self, tmp_path: Path) -> None:
        """A first line that is a record gets a column number, never its value."""
        path = write(tmp_path, "postcode;huisnummer;1234AB toev\n1234AB;1;x\n")
        with pytest.raises(inputs.UnreadColumns) as info:
            read(path, "address")
        assert "1234AB" not in str(info.value)
        assert "column 3 looks like the toevoeging" in str(info.value)

    def test_mapping_lists_every_column(self) -> None:
        """The report names each field's header, the objection column and what is not read."""
        found = read(DATA / "partner_bsn.csv", objection_column="Bezwaar")
        mapping = found.report.mapping
        assert mapping is not None
        assert mapping.as_dict() == {
            "fields": {"bsn": "BSN"},
            "objection_column": "Bezwaar",
            "result_columns": [],
            "ignored": [],
            "unread": ["Dossiernummer"],
        }
        assert mapping.describe() == (
            "bsn <- 'BSN'; objection <- 'Bezwaar'; not read: 'Dossiernummer'"
        )

    def test_exclusion_file_columns_are_checked_too(self, tmp_path: Path) -> None:
        """An exclusion list with an unread toevoeging would exclude too little: refused."""
        exclusions = write(tmp_path, "postcode;huisnummer;Toev\n1234AB;12;2\n", "excl.csv")
        path = write(tmp_path, "postcode;huisnummer\n1234AB;12\n")
        with pytest.raises(inputs.UnreadColumns, match=r"excl\.csv, line 1: column 3 'Toev'"):
            read(path, "address", exclusion_file=exclusions)

    def test_exclusion_file_has_no_objection_flag_to_read(self, tmp_path: Path) -> None:
        """An exclusion list's Bezwaar-like column is not an objection flag: it is not read."""
        exclusions = write(tmp_path, "bsn;reden bezwaar\n123456782;ja\n", "excl.csv")
        path = write(tmp_path, "bsn\n123456782\n111222333\n")
        found = read(path, exclusion_file=exclusions)
        assert found.records == [b"bsn:111222333"]
        assert found.report.excluded == 1


class TestResultColumns:
    def test_result_columns_are_carried_in_export_order(self, tmp_path: Path) -> None:
        """result_columns come after the identifier columns, from the kept row."""
        path = write(tmp_path, "Klantnr;bsn;Dossier\nK-1;123456782;D1\nK-2;123456782;D2\n")
        found = read(path, result_columns=("klantnr", "Dossier"))
        assert found.columns == ("bsn", "Klantnr", "Dossier")
        assert list(found.values) == [("123456782", "K-1", "D1")]
        assert found.report.mapping is not None
        assert found.report.mapping.result == ("Klantnr", "Dossier")

    def test_missing_result_column(self, tmp_path: Path) -> None:
        """A configured result column must exist; the error names it."""
        path = write(tmp_path, "bsn\n123456782\n")
        with pytest.raises(InputFileError, match="missing result column 'klantnr'"):
            read(path, result_columns=("klantnr",))

    def test_result_column_that_is_the_identifier(self, tmp_path: Path) -> None:
        """Carrying the identifier column itself is refused: it is in the results already."""
        path = write(tmp_path, "bsn\n123456782\n")
        with pytest.raises(ConfigError, match="'bsn' is the bsn column"):
            read(path, result_columns=("bsn",))

    def test_short_row_missing_a_result_column_is_invalid(self, tmp_path: Path) -> None:
        """A row that does not reach a result column is invalid, as for identifier columns."""
        path = write(tmp_path, "bsn;x;klantnr\n123456782\n111222333;;K\n")
        found = read(path, result_columns=("klantnr",))
        assert list(found.values) == [("111222333", "K")]
        assert found.report.problems == [(2, "row has 1 field, header has 3")]


class TestFormats:
    def test_bom_and_no_bom_read_the_same(self, tmp_path: Path) -> None:
        """A UTF-8 byte-order mark does not change the header or the rows."""
        body = "bsn\n123456782\n111222333\n"
        a = read(write(tmp_path, body, "a.csv", bom=True))
        b = read(write(tmp_path, body, "b.csv"))
        assert a.records == b.records == [b"bsn:123456782", b"bsn:111222333"]
        assert a.columns == ("bsn",)

    @pytest.mark.parametrize(("delimiter", "name"), [(",", "comma"), (";", "semi"), ("\t", "tab")])
    def test_delimiter_is_sniffed_from_the_header(
        self, tmp_path: Path, delimiter: str, name: str
    ) -> None:
        """Comma, semicolon and tab files are recognised from their header line."""
        rows = [["postcode", "huisnummer", "huisletter"], ["1234AB", "12", "a"]]
        text = "".join(delimiter.join(r) + "\r\n" for r in rows)
        found = read(write(tmp_path, text, f"{name}.csv"), "address")
        assert found.report.delimiter == delimiter
        assert found.records == [b"address:1234AB:12:A:"]

    def test_configured_delimiter_wins(self, tmp_path: Path) -> None:
        """A configured delimiter overrides sniffing (here the header has more commas)."""
        text = "bsn|opmerking\n123456782|a, b, c\n"
        found = read(write(tmp_path, text.replace("|", ";")), delimiter=";")
        assert found.records == [b"bsn:123456782"]

    def test_columns_are_configurable_and_case_insensitive(self, tmp_path: Path) -> None:
        """Fields map to configured headers, matched without regard to case or spaces."""
        text = "Klantnr; PC ;NR;Letter;Toev\n7;1234ab;12;;2\n"
        found = read(
            write(tmp_path, text),
            "address",
            columns={"postcode": "pc", "huisnummer": "nr", "huisletter": "LETTER",
                     "toevoeging": "toev"},
        )  # fmt: skip
        assert found.records == [b"address:1234AB:12::2"]
        assert found.columns == ("PC", "NR", "Letter", "Toev")

    def test_optional_address_columns_may_be_absent(self, tmp_path: Path) -> None:
        """Without huisletter/toevoeging columns the huisnummer field carries them."""
        found = read(write(tmp_path, "postcode;huisnummer\n1234AB;12a-3\n"), "address")
        assert found.records == [b"address:1234AB:12:A:3"]
        assert found.columns == ("postcode", "huisnummer")

    def test_quoted_fields_and_crlf(self, tmp_path: Path) -> None:
        """Quoted fields (with the delimiter inside) and CRLF line ends are read correctly."""
        text = 'bsn;naam\r\n"123456782";"de Vries; J."\r\n"111222333";x\r\n'
        found = read(write(tmp_path, text))
        assert found.records == [b"bsn:123456782", b"bsn:111222333"]
        assert list(found.source_lines) == [2, 3]

    def test_trailing_empty_fields_are_tolerated(self, tmp_path: Path) -> None:
        """Extra empty fields (";;" at the end, as spreadsheets write) are not an error."""
        found = read(write(tmp_path, "bsn;x\n123456782;1;;;\n111222333\n"))
        assert found.records == [b"bsn:123456782", b"bsn:111222333"]

    def test_extra_nonempty_fields_are_invalid(self, tmp_path: Path) -> None:
        """A row with more filled fields than the header is misaligned and refused."""
        found = read(write(tmp_path, "bsn;x\n123456782;1;oops\n"))
        assert found.report.problems == [(2, "row has 3 fields, header has 2")]

    def test_blank_rows_are_counted_apart(self, tmp_path: Path) -> None:
        """Empty lines and all-empty rows are blank, not invalid, and keep line numbers right."""
        found = read(write(tmp_path, "\n\nbsn;x\n\n;\n  ;  \n123456782;1\nbad;\n"))
        assert counts(found)["blank"] == 3
        assert list(found.source_lines) == [7]
        assert found.report.problems == [(8, "bsn: not digits")]


class TestBuckets:
    def test_duplicates_keep_the_first_occurrence(self, tmp_path: Path) -> None:
        """The same identifier spelled three ways is one record, at its first line."""
        found = read(write(tmp_path, "bsn\n1234.56.782\n123456782\n 123 456 782\n"))
        assert found.records == [b"bsn:123456782"]
        assert list(found.source_lines) == [2]
        assert list(found.values) == [("1234.56.782",)]
        assert counts(found)["duplicate"] == 2

    @pytest.mark.parametrize("mark", ["1", "ja", "JA", " yes ", "true", "x", "X", "j", "Bezwaar"])
    def test_truthy_objection_values(self, tmp_path: Path, mark: str) -> None:
        """Every truthy objection spelling keeps the row home."""
        found = read(write(tmp_path, f"bsn;obj\n123456782;{mark}\n111222333;\n"),
                     objection_column="obj")  # fmt: skip
        assert found.records == [b"bsn:111222333"]
        assert counts(found)["objected"] == 1

    @pytest.mark.parametrize("mark", ["", "0", "nee", "No", "false", "n", "-"])
    def test_falsy_objection_values(self, tmp_path: Path, mark: str) -> None:
        """Falsy objection spellings let the row take part."""
        found = read(write(tmp_path, f"bsn;obj\n123456782;{mark}\n"), objection_column="obj")
        assert found.records == [b"bsn:123456782"]

    def test_objection_covers_every_row_of_the_identifier(self, tmp_path: Path) -> None:
        """An objection on a later row withdraws the identifier's earlier row as well."""
        text = "bsn;obj\n123456782;\n111222333;\n1234.56.782;ja\n123456782;\n"
        found = read(write(tmp_path, text), objection_column="obj")
        assert found.records == [b"bsn:111222333"]
        assert list(found.source_lines) == [3]
        assert counts(found)["objected"] == 3
        assert counts(found)["duplicate"] == 0

    def test_duplicates_before_an_objection_count_as_objected(self, tmp_path: Path) -> None:
        """Rows counted as duplicates before the objection turn up move to objected."""
        text = "bsn;obj\n123456782;\n123456782;\n111222333;\n123456782;ja\n"
        found = read(write(tmp_path, text), objection_column="obj")
        assert found.records == [b"bsn:111222333"]
        assert counts(found)["objected"] == 3
        assert counts(found)["duplicate"] == 0
        assert counts(found)["rows"] == 4

    def test_exclusion_matches_any_spelling(self, tmp_path: Path) -> None:
        """The exclusion file is canonicalised too, so a different spelling still matches."""
        excl = write(tmp_path, "postcode;huisnummer\n1234 ab;12 A\n", "excl.csv")
        src = write(tmp_path, "postcode;huisnummer;huisletter\n1234AB;12;a\n1234AB;13;\n")
        found = read(src, "address", exclusion_file=excl)
        assert found.records == [b"address:1234AB:13::"]
        assert counts(found)["excluded"] == 1
        assert found.report.exclusion_entries == 1

    def test_strict_aborts_on_an_invalid_exclusion_entry(self, tmp_path: Path) -> None:
        """With strict, an invalid exclusion entry stops the read (file and line named)."""
        excl = write(tmp_path, "bsn\n123456789\n", "excl.csv")
        with pytest.raises(InputFileError, match=r"excl\.csv, line 2: bsn: elfproef fails"):
            read(write(tmp_path, "bsn\n111222333\n"), exclusion_file=excl, strict=True)

    def test_strict_aborts_at_the_first_invalid_row(self, tmp_path: Path) -> None:
        """Strict mode stops at the first invalid row, naming file, line and reason only."""
        path = write(tmp_path, "bsn\n111222333\n123456789\n12\n")
        with pytest.raises(InputFileError) as info:
            read(path, strict=True)
        assert str(info.value) == f"{path}, line 3: bsn: elfproef fails"
        assert "123456789" not in str(info.value)

    def test_problems_are_capped_but_all_counted(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Only the first MAX_PROBLEMS problems are kept; every invalid row is counted."""
        monkeypatch.setattr(inputs, "MAX_PROBLEMS", 3)
        found = read(write(tmp_path, "bsn\n" + "x\n" * 5 + "123456782\n"))
        assert counts(found)["invalid"] == 5
        assert [line for line, _ in found.report.problems] == [2, 3, 4]
        assert found.report.problems_truncated
        assert found.report.usable

    def test_header_only_file_is_not_usable(self, tmp_path: Path) -> None:
        """A file with a header and no rows reads fine but has nothing to use."""
        found = read(write(tmp_path, "bsn\n"))
        assert found.records == []
        assert not found.report.usable

    def test_progress_is_reported(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The progress callback sees growing row counts and the final total."""
        monkeypatch.setattr(inputs, "PROGRESS_EVERY", 2)
        seen: list[int] = []
        path = write(tmp_path, "bsn\n" + "123456782\n" * 5)
        read_input(InputSpec(path=path, kind="bsn"), progress=seen.append)
        assert seen == [2, 4, 5]


class TestUnusableFiles:
    def test_missing_file(self, tmp_path: Path) -> None:
        """A missing file is named."""
        with pytest.raises(InputFileError, match=r"nope\.csv: file not found"):
            read(tmp_path / "nope.csv")

    def test_directory(self, tmp_path: Path) -> None:
        """A directory instead of a file is refused."""
        with pytest.raises(InputFileError, match="is a directory"):
            read(tmp_path)

    @pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf", b"\n\n  \r\n"])
    def test_empty_file(self, tmp_path: Path, content: bytes) -> None:
        """An empty (or only blank) file has no header and is refused."""
        path = tmp_path / "in.csv"
        path.write_bytes(content)
        with pytest.raises(InputFileError, match="file is empty"):
            read(path)

    def test_not_utf8(self, tmp_path: Path) -> None:
        """A Windows-1252 export is refused at the line of its first non-UTF-8 byte."""
        path = tmp_path / "in.csv"
        path.write_bytes("postcode;huisnummer;plaats\n1234AB;1;Assen\n5211AB;2;Ooij é\n".encode(
            "cp1252"))  # fmt: skip
        with pytest.raises(InputFileError, match=r"in\.csv, line 3: not valid UTF-8"):
            read(path, "address")

    def test_utf16(self, tmp_path: Path) -> None:
        """A UTF-16 ("Unicode text") export is recognised by its BOM."""
        path = tmp_path / "in.csv"
        path.write_bytes("bsn\r\n123456782\r\n".encode("utf-16"))
        with pytest.raises(InputFileError, match="line 1: file is UTF-16 encoded"):
            read(path)

    def test_nul_byte(self, tmp_path: Path) -> None:
        """A NUL byte is refused at its line."""
        path = tmp_path / "in.csv"
        path.write_bytes(b"bsn\n123456782\n111222333\n12\x0034\n")
        with pytest.raises(InputFileError, match=r"line 4: contains a NUL byte"):
            read(path)

    def test_overlong_line(self, tmp_path: Path) -> None:
        """A line past the 64 KiB limit is refused at its line."""
        path = write(tmp_path, "bsn;x\n123456782;1\n111222333;" + "y" * 70_000 + "\n")
        with pytest.raises(InputFileError, match=r"line 3: line longer than 65536 bytes"):
            read(path)

    def test_overlong_unterminated_last_line(self, tmp_path: Path) -> None:
        """A huge file without newlines is refused without reading it all as one line."""
        path = write(tmp_path, "bsn" + "9" * 3_000_000)
        with pytest.raises(InputFileError, match=r"line 1: line longer than"):
            read(path)

    def test_overlong_quoted_field_across_lines(self, tmp_path: Path) -> None:
        """A quoted field that runs over many lines hits the CSV field limit at a line."""
        text = 'bsn;x\n123456782;"' + ("z" * 60_000 + "\n") * 4 + '"\n'
        with pytest.raises(InputFileError, match=r"line \d+: cannot be parsed as CSV"):
            read(write(tmp_path, text))

    def test_missing_required_column(self, tmp_path: Path) -> None:
        """A missing column is named with the header line, and the header is not echoed."""
        path = write(tmp_path, "123456782\n111222333\n")
        with pytest.raises(InputFileError) as info:
            read(path)
        assert "line 1: missing required column 'bsn'" in str(info.value)
        assert "123456782" not in str(info.value)

    def test_missing_configured_optional_column(self, tmp_path: Path) -> None:
        """An optional field that is configured must exist."""
        path = write(tmp_path, "postcode;huisnummer\n1234AB;1\n")
        with pytest.raises(InputFileError, match="missing required column 'Toev'"):
            read(path, "address", columns={"toevoeging": "Toev"})

    def test_missing_objection_column(self, tmp_path: Path) -> None:
        """A configured objection column must exist."""
        with pytest.raises(InputFileError, match="missing objection column 'bezwaar'"):
            read(write(tmp_path, "bsn\n123456782\n"), objection_column="bezwaar")

    def test_ambiguous_column(self, tmp_path: Path) -> None:
        """Two headers that both match a field are refused rather than guessed between."""
        with pytest.raises(InputFileError, match=r"appears 2 times \(columns 1, 3\)"):
            read(write(tmp_path, "BSN;x;bsn\n123456782;1;111222333\n"))

    def test_unknown_field_in_columns(self, tmp_path: Path) -> None:
        """A columns mapping naming a field of another kind is a configuration error."""
        with pytest.raises(ConfigError, match="postcode is not a field of kind 'bsn'"):
            read(write(tmp_path, "bsn\n123456782\n"), columns={"postcode": "pc"})

    def test_bad_delimiter(self, tmp_path: Path) -> None:
        """A quote or multi-character delimiter is a configuration error."""
        with pytest.raises(ConfigError, match="delimiter"):
            read(write(tmp_path, "bsn\n123456782\n"), delimiter='"')


class TestBlocks:
    def test_line_numbers_across_blocks(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Reading in small blocks keeps rows, line numbers and multi-byte text intact."""
        monkeypatch.setattr(inputs, "BLOCK_BYTES", 7)
        rows = ["postcode;huisnummer;plaats"]
        town = "\u2019s-Hertogenbosch \u00e9\u20ac"  # multi-byte UTF-8 across block edges
        rows += [f"5211AB;{i};{town}" for i in range(1, 60)]
        rows[40] = f"5211AB;0;{town}"
        found = read(write(tmp_path, "\n".join(rows) + "\n"), "address")
        assert len(found.records) == 58
        assert found.report.problems == [(41, "huisnummer: not between 1 and 99999")]
        assert found.source_lines[-1] == 60

    def test_decode_error_line_across_blocks(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The line of a bad byte is exact even when it sits in a later block."""
        monkeypatch.setattr(inputs, "BLOCK_BYTES", 16)
        path = tmp_path / "in.csv"
        path.write_bytes(b"bsn\n" + b"123456782\n" * 20 + b"12\xe93\n")
        with pytest.raises(InputFileError, match=r"line 22: not valid UTF-8"):
            read(path)


class TestSyntheticRoundTrip:
    @pytest.mark.parametrize("kind", ["bsn", "address"])
    def test_messy_synthetic_exports_read_back_to_the_truth(
        self, tmp_path: Path, kind: IdentifierKind
    ) -> None:
        """Messy synthetic spellings read back to the network's canonical identifiers."""
        net = make_network(["a", "b"], 400, {2: 50}, seed=11, kind=kind)
        path = tmp_path / "a.csv"
        write_csv(path, net.rows["a"], kind, bom=True, objection_column="bezwaar",
                  objected={0, 1})  # fmt: skip
        found = read(path, kind, objection_column="bezwaar")
        assert found.records == net.ids["a"][2:]
        assert list(found.source_lines) == list(range(4, 402))
        assert counts(found)["objected"] == 2

    def test_written_columns_can_be_renamed(self, tmp_path: Path) -> None:
        """write_csv honours a header mapping, which InputSpec.columns then reads back."""
        net = make_network(["a"], 20, {}, seed=3, kind="bsn")
        path = tmp_path / "a.csv"
        write_csv(path, net.rows["a"], "bsn", delimiter=",", columns={"bsn": "Burger"})
        found = read(path, columns={"bsn": "burger"})
        assert found.records == net.ids["a"]
        assert canonical_bsn(found.values[0][0]) == net.ids["a"][0]

    def test_address_values_round_trip(self, tmp_path: Path) -> None:
        """The kept values are the input's own spellings, which canonicalise to the record."""
        net = make_network(["a"], 50, {}, seed=4, kind="address")
        path = tmp_path / "a.csv"
        write_csv(path, net.rows["a"], "address")
        found = read(path, "address")
        for cid, vals in zip(found.records, found.values, strict=True):
            assert canonical_address(*vals) == cid


class TestPackedRows:
    """The result columns of every record, packed: the cells come back as they were read."""

    def test_cells_come_back_as_read(self):
        rows = PackedRows(3)
        kept = [(" 728264298 ", "", "Ĳsselstraat 3"), ("x;y", "\u00e9\ud800", "")]
        for cells in kept:
            rows.append(cells)
        assert len(rows) == 2
        assert list(rows) == kept
        assert rows[-1] == kept[-1]
        assert rows[0:1] == kept[0:1]
        with pytest.raises(IndexError):
            rows[2]

    def test_select_keeps_the_order_asked(self):
        rows = PackedRows(1)
        for i in range(5):
            rows.append((str(i),))
        assert list(rows.select([4, 0, 2])) == [("4",), ("0",), ("2",)]
