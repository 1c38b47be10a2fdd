"""Read a partner's CSV export into canonical identifiers, with a report by line.

The node's operator exports a client list from their own system; this module
turns it into the records a round uses, and says exactly what it left out and
why. What it accepts:

- UTF-8, with or without a byte-order mark. Anything else (Windows-1252 from
  an old Excel, UTF-16 "Unicode text") is refused with the line where it goes
  wrong: a silently mis-decoded postcode is a missed household.
- A header line, then one row per person or address. The delimiter is
  sniffed from the header (the most frequent of ``;``, ``,``, tab and ``|``)
  unless configured.
- Column names matched case-insensitively, ignoring surrounding spaces. A
  field's column is configured in ``InputSpec.columns`` (field -> header
  name); unconfigured fields fall back to the usual names (``DEFAULT_COLUMNS``,
  compared ignoring case, spaces, dashes and underscores).
  "huisletter" and "toevoeging" may be absent when not configured.
- Every column is accounted for: a header that no field reads but that looks
  like an identifier part ("Toev", "Hlt", "Letter", a second BSN column) or
  like an objection flag ("Bezwaar") while no objection column is configured
  stops the read with the fix, unless it is listed in
  ``InputSpec.ignore_columns``. An unread "Toev" merges "1234AB 12-2" with
  "1234AB 12"; an unread "Bezwaar" sends the records of people who objected.
- ``InputSpec.result_columns`` are carried along (the partner's own client or
  dossier number), into the node's local result file only.
- An optional objection column: a truthy value (``OBJECTION_TRUE``) means the
  person used their right to object. Objection is per identifier: if any row
  of an identifier is marked, none of its rows leaves the node, and all of
  them count as objected (except rows counted as excluded). A value that
  is neither truthy nor falsy makes the row invalid, so it stays home too and
  the operator is told.
- An optional exclusion file: a CSV with a header and the same identifier
  columns as the input (so a BSN list is a "bsn" header and one number per
  line), canonicalised the same way. Its rows never leave the node.

Every row lands in exactly one bucket: invalid, objected, excluded, duplicate
(the same canonical identifier as an earlier row; the first is kept) or
valid. Wholly empty rows (a blank line, ";;;") are counted as blank and
otherwise ignored. Problems are reported by line number (1-based, header is
line 1, as an editor shows) and reason, never by value.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import itertools
import json
import re
import shlex
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import IO, Any, cast, overload

from kruispunt.errors import ConfigError, InputFileError, InvalidIdentifier
from kruispunt.identifiers import (
    FIELDS,
    KINDS,
    REQUIRED_FIELDS,
    IdentifierKind,
    address_canonicalizer,
    canonical_bsn,
)
from kruispunt.redact import looks_like_identifier

#: Header names each field is found under when InputSpec.columns does not name one
#: (compared ignoring case, spaces, dashes, dots and underscores: "Huisnummer toevoeging"
#: is "huisnummertoevoeging").
DEFAULT_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "bsn": ("bsn", "burgerservicenummer"),
    "postcode": ("postcode",),
    "huisnummer": ("huisnummer", "huisnr"),
    "huisletter": ("huisletter",),
    "toevoeging": ("toevoeging", "huisnummertoevoeging", "huisnummer_toevoeging", "huisnr_toev"),
}
#: What an unread header looks like when it holds a field (on the header's key: lower
#: case, letters and digits only). Such a column must be mapped or explicitly ignored.
LOOKALIKE_COLUMNS: Mapping[str, re.Pattern[str]] = {
    "toevoeging": re.compile(r"toev|addition|^hnt$|^tv$"),
    "huisletter": re.compile(r"letter|^hlt$|^hl$|^huisl$"),
    "huisnummer": re.compile(r"^huisn|housenumber|^hnr$|^hn$|^nr$|^nummer$"),
    "postcode": re.compile(r"postc|zip|^pc[0-9]?$"),
    "bsn": re.compile(r"bsn|burgerservice|sofi"),
}
#: What an unread header looks like when it marks objections.
LOOKALIKE_OBJECTION = re.compile(r"bezwaar|object|optout|verzet")
#: Objection-column values meaning "this person objected" (compared lower-cased, stripped).
OBJECTION_TRUE = frozenset({"1", "j", "ja", "y", "yes", "true", "waar", "x", "bezwaar"})
#: Objection-column values meaning "no objection".
OBJECTION_FALSE = frozenset({"", "0", "n", "nee", "no", "false", "onwaar", "-"})
#: Longest line accepted, in bytes; an export line is a few hundred at most.
MAX_LINE_BYTES = 64 * 1024
#: Problems kept for the report; all are counted.
MAX_PROBLEMS = 1000
#: Rows between progress callbacks.
PROGRESS_EVERY = 1 << 16
#: Bytes read, checked and decoded at a time.
BLOCK_BYTES = 1 << 20

_SNIFF_DELIMITERS = (";", ",", "\t", "|")
_NOT_KEY = re.compile(r"[^0-9a-z]")


def header_key(name: str) -> str:
    """A header as default names are compared: lower case, letters and digits only."""
    return _NOT_KEY.sub("", name.casefold())


def shown_header(name: str) -> str | None:
    """The header as an error may show it, or None when it looks like a record's value.

    A file without a header line has its first record there: never echo that.
    """
    if len(name) > 40 or looks_like_identifier(name):
        return None
    return name


class UnreadColumns(InputFileError):
    """Headers no field reads that look like an identifier part or an objection flag.

    The message names each column and gives the fix both as flags (`psi-node
    check-input`) and as node.toml keys; `columns`, `objection_column` and `ignore`
    hold the fix for a caller that builds a whole command from it.
    """

    def __init__(
        self,
        path: Path,
        line: int,
        names: list[str],
        found: list[tuple[int, str]],
        objection_column: str | None,
    ) -> None:
        self.columns: dict[str, str] = {}
        self.objection_column: str | None = None
        self.ignore: list[str] = []
        described = []
        for i, hint in found:
            shown = shown_header(names[i])
            label = f"column {i + 1}" + (f" {shown!r}" if shown is not None else "")
            if hint == "objection":
                why = (
                    "looks like an objection flag, but another column is the objection column"
                    if objection_column is not None
                    else "looks like an objection flag, but no objection column is set: "
                    "objections would be ignored"
                )
            else:
                why = (
                    f"looks like the {hint}, but no field reads it: records that differ "
                    "only there would be merged or missed"
                )
            described.append(f"{label} {why}")
            if shown is None:
                continue
            self.ignore.append(shown)
            if hint == "objection":
                if objection_column is None and self.objection_column is None:
                    self.objection_column = shown
            else:
                self.columns.setdefault(hint, shown)
        fixes = []
        them = "it" if len(found) == 1 else "them"
        if self.columns or self.objection_column:
            flags, keys = [], []
            if self.columns:
                pairs = ",".join(f"{f}={h}" for f, h in self.columns.items())
                flags.append(f"--columns {shlex.quote(pairs)}")
                keys.append(
                    "columns = { "
                    + ", ".join(f"{f} = {json.dumps(h)}" for f, h in self.columns.items())
                    + " }"
                )
            if self.objection_column:
                flags.append(f"--objection-column {shlex.quote(self.objection_column)}")
                keys.append(f"objection_column = {json.dumps(self.objection_column)}")
            fixes.append(
                f"read {them} with {' '.join(flags)} "
                f"(node.toml [inputs.PURPOSE]: {'; '.join(keys)})"
            )
        if self.ignore:
            fixes.append(
                f"or, if {'it holds' if them == 'it' else 'they hold'} something else, leave "
                f"{them} out with --ignore-columns "
                f"{shlex.quote(','.join(self.ignore))} (node.toml: ignore_columns = "
                f"{json.dumps(self.ignore, ensure_ascii=False)})"
            )
        else:
            fixes.append("is the header line missing? The first line must name the columns")
        super().__init__(
            f"{path}, line {line}: " + "; ".join(described) + ". Fix: " + " ".join(fixes)
        )


@dataclass(frozen=True)
class InputSpec:
    """Where a partner's export is and how to read it."""

    path: Path
    kind: IdentifierKind
    columns: Mapping[str, str] = field(default_factory=dict)
    delimiter: str | None = None
    objection_column: str | None = None
    exclusion_file: Path | None = None
    #: Headers deliberately not read, though they look like an identifier part or objection.
    ignore_columns: tuple[str, ...] = ()
    #: Headers carried into the local result file next to the identifier (never sent).
    result_columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class ColumnMapping:
    """Which header of the file each field, the objection flag and the result columns come from."""

    #: field -> header, as spelled in the file, for every field found
    fields: Mapping[str, str]
    objection: str | None
    result: tuple[str, ...]
    #: headers in ignore_columns that the file has
    ignored: tuple[str, ...]
    #: every other header: read by nothing, and not like an identifier part
    unread: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """The mapping as JSON-ready data (header names only)."""
        return {
            "fields": dict(self.fields),
            "objection_column": self.objection,
            "result_columns": list(self.result),
            "ignored": list(self.ignored),
            "unread": list(self.unread),
        }

    def describe(self) -> str:
        """One line: "postcode <- 'Postcode', huisnummer <- 'Huisnr'; objection <- ..."."""
        parts = [", ".join(f"{f} <- {h!r}" for f, h in self.fields.items())]
        parts.append(
            f"objection <- {self.objection!r}" if self.objection else "no objection column"
        )
        if self.result:
            parts.append("carried to results: " + ", ".join(map(repr, self.result)))
        if self.ignored:
            parts.append("ignored: " + ", ".join(map(repr, self.ignored)))
        if self.unread:
            parts.append("not read: " + ", ".join(map(repr, self.unread)))
        return "; ".join(parts)


@dataclass
class InputReport:
    """What reading an input found: counts per bucket and the first problems."""

    path: Path
    kind: IdentifierKind
    delimiter: str = ","
    rows: int = 0
    blank: int = 0
    valid: int = 0
    invalid: int = 0
    duplicate: int = 0
    objected: int = 0
    excluded: int = 0
    exclusion_entries: int = 0
    exclusion_invalid: int = 0
    problems: list[tuple[int, str]] = field(default_factory=list)
    exclusion_problems: list[tuple[int, str]] = field(default_factory=list)
    mapping: ColumnMapping | None = None

    @property
    def usable(self) -> bool:
        """True when at least one record may take part in a round."""
        return self.valid > 0

    @property
    def problems_truncated(self) -> bool:
        """True when more invalid rows were counted than problems kept."""
        return self.invalid > len(self.problems)

    def as_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data (counts, line numbers and reasons only)."""
        return {
            "file": str(self.path),
            "kind": self.kind,
            "delimiter": self.delimiter,
            "mapping": None if self.mapping is None else self.mapping.as_dict(),
            "usable": self.usable,
            "counts": {
                "rows": self.rows,
                "valid": self.valid,
                "invalid": self.invalid,
                "duplicate": self.duplicate,
                "objected": self.objected,
                "excluded": self.excluded,
                "blank": self.blank,
            },
            "problems": [{"line": n, "reason": r} for n, r in self.problems],
            "problems_truncated": self.problems_truncated,
            "exclusions": {
                "entries": self.exclusion_entries,
                "invalid": self.exclusion_invalid,
                "problems": [{"line": n, "reason": r} for n, r in self.exclusion_problems],
            },
        }


class PackedRows(Sequence[tuple[str, ...]]):
    """Rows of the same number of text cells, kept as one UTF-8 buffer and the cells' ends.

    A node holds the result columns of every record it sends until the round ends, to
    write the flagged ones. As a list of tuples of str a million rows of five short cells
    took about 350 MB; packed they take about 70 MB. Cells come back as they were read.
    """

    def __init__(self, width: int) -> None:
        self.width = width
        self._data = bytearray()
        self._ends = array("Q")

    def append(self, cells: tuple[str, ...]) -> None:
        data, ends = self._data, self._ends
        for cell in cells:
            data += cell.encode("utf-8", "surrogatepass")
            ends.append(len(data))

    def select(self, keep: Iterable[int]) -> PackedRows:
        """The rows at `keep`, in that order."""
        out = PackedRows(self.width)
        for i in keep:
            out.append(self[i])
        return out

    def __len__(self) -> int:
        return len(self._ends) // self.width if self.width else 0

    @overload
    def __getitem__(self, index: int) -> tuple[str, ...]: ...

    @overload
    def __getitem__(self, index: slice) -> list[tuple[str, ...]]: ...

    def __getitem__(self, index: int | slice) -> tuple[str, ...] | list[tuple[str, ...]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("row index out of range")
        ends, data, width = self._ends, self._data, self.width
        first = index * width
        start = ends[first - 1] if first else 0
        cells = []
        for end in ends[first : first + width]:
            cells.append(data[start:end].decode("utf-8", "surrogatepass"))
            start = end
        return tuple(cells)


@dataclass(frozen=True)
class InputSet:
    """The records a node may use, in input order, with where each came from."""

    records: list[bytes]
    source_lines: Sequence[int]
    values: Sequence[tuple[str, ...]]
    columns: tuple[str, ...]
    report: InputReport


def read_input(
    spec: InputSpec,
    *,
    strict: bool = False,
    progress: Callable[[int], None] | None = None,
) -> InputSet:
    """Read, validate, de-duplicate and filter a partner's export.

    Raises InputFileError (file, line, reason) when the file cannot be used at
    all, or -- with ``strict`` -- at the first invalid row of the input or the
    exclusion file. Raises ConfigError for a columns mapping that names an
    unknown field or a bad delimiter.
    """
    if spec.kind not in KINDS:
        raise ConfigError(f"unknown identifier kind {spec.kind!r}; expected one of {KINDS}")
    report = InputReport(path=spec.path, kind=spec.kind)
    excluded: frozenset[bytes] = frozenset()
    if spec.exclusion_file is not None:
        excluded = _read_exclusions(spec, report, strict=strict)
    with _open(spec.path) as f:
        table = _Table(
            spec.path,
            f,
            spec.kind,
            spec.columns,
            spec.delimiter,
            spec.objection_column,
            ignore_columns=spec.ignore_columns,
            result_columns=spec.result_columns,
        )
        report.delimiter = table.delimiter
        report.mapping = table.mapping
        found = table.scan(report, strict=strict, excluded=excluded, progress=progress)
    records, lines, values = found.records, found.lines, found.values
    if found.objected_ids:
        # Objection is per identifier: a later objected row withdraws the earlier kept one.
        keep = [i for i, cid in enumerate(records) if cid not in found.objected_ids]
        if len(keep) != len(records):
            report.objected += len(records) - len(keep)
            # Their duplicates, counted before the objection was seen, are objected too.
            moved = sum(found.duplicates.get(cid, 0) for cid in found.objected_ids)
            report.duplicate -= moved
            report.objected += moved
            records = [records[i] for i in keep]
            lines = array("Q", (lines[i] for i in keep))
            values = values.select(keep)
    report.valid = len(records)
    if progress is not None:
        progress(report.rows)
    return InputSet(
        records=records,
        source_lines=lines,
        values=values,
        columns=table.value_columns,
        report=report,
    )


def _read_exclusions(spec: InputSpec, report: InputReport, *, strict: bool) -> frozenset[bytes]:
    """Load the exclusion file's canonical identifiers, counting what does not validate."""
    assert spec.exclusion_file is not None
    sub = InputReport(path=spec.exclusion_file, kind=spec.kind)
    with _open(spec.exclusion_file) as f:
        # Same identifier columns, and an unread "Toev" would exclude too little; the
        # exclusion file has no objection flag and carries nothing to the results.
        table = _Table(
            spec.exclusion_file,
            f,
            spec.kind,
            spec.columns,
            None,
            None,
            ignore_columns=spec.ignore_columns,
            check_objection=False,
        )
        found = table.scan(sub, strict=strict, excluded=frozenset(), progress=None)
    report.exclusion_entries = len(found.records)
    report.exclusion_invalid = sub.invalid
    report.exclusion_problems = sub.problems
    return frozenset(found.records)


@dataclass
class _Found:
    """What one pass over a table kept."""

    records: list[bytes]
    lines: array[int]
    values: PackedRows
    objected_ids: set[bytes]
    #: identifier -> rows counted as duplicate of its kept first row
    duplicates: dict[bytes, int]


class _Table:
    """One open CSV file with its header resolved to field indices."""

    def __init__(
        self,
        path: Path,
        f: IO[bytes],
        kind: IdentifierKind,
        columns: Mapping[str, str],
        delimiter: str | None,
        objection_column: str | None,
        *,
        ignore_columns: tuple[str, ...] = (),
        result_columns: tuple[str, ...] = (),
        check_objection: bool = True,
    ) -> None:
        self.path = path
        self.kind = kind
        lines = itertools.chain.from_iterable(_text_blocks(path, f))
        first = next(lines, None)
        # Blank physical lines before the header still count, so lines match an editor's.
        self.offset = 0
        while first is not None and not first.strip():
            self.offset += 1
            first = next(lines, None)
        if first is None:
            raise InputFileError(f"{path}: file is empty (expected a header line)")
        self.header_line = self.offset + 1
        self.delimiter = delimiter if delimiter is not None else _sniff(first)
        if len(self.delimiter) != 1 or self.delimiter in '"\r\n':
            raise ConfigError(f"{path}: delimiter must be one character other than a quote")
        self.reader = csv.reader(itertools.chain([first], lines), delimiter=self.delimiter)
        try:
            names = [h.strip() for h in next(self.reader)]
        except csv.Error as e:
            raise InputFileError(
                f"{path}, line {self.header_line}: header cannot be parsed ({e})"
            ) from None
        header = [h.casefold() for h in names]
        keys = [header_key(h) for h in names]
        self.ncols = len(header)

        unknown = sorted(set(columns) - set(FIELDS[kind]))
        if unknown:
            raise ConfigError(
                f"columns: {', '.join(unknown)} is not a field of kind {kind!r}; "
                f"expected {', '.join(FIELDS[kind])}"
            )
        self.index: dict[str, int | None] = {}
        for name in FIELDS[kind]:
            explicit = name in columns
            wanted: tuple[str, ...]
            if explicit:
                wanted = (columns[name],)
                i = self._find(header, wanted, what=f"the column for {name}")
            else:
                wanted = DEFAULT_COLUMNS[name]
                i = self._find(keys, tuple(map(header_key, wanted)), what=f"the column for {name}")
            if i is None and (explicit or name in REQUIRED_FIELDS[kind]):
                # Never list the header: in a file without one, it is the first record.
                raise InputFileError(
                    f"{path}, line {self.header_line}: missing required column "
                    f"{wanted[0]!r} for {name} (map it with --columns {name}=HEADER, or "
                    f'columns = {{ {name} = "HEADER" }} in node.toml [inputs.PURPOSE])'
                )
            self.index[name] = i
        self.objection: int | None = None
        if objection_column is not None:
            self.objection = self._find(header, (objection_column,), what="the objection column")
            if self.objection is None:
                raise InputFileError(
                    f"{path}, line {self.header_line}: missing objection column "
                    f"{objection_column!r}"
                )
        self.present = [i for i in self.index.values() if i is not None]
        by_index = {i: f for f, i in self.index.items() if i is not None}
        self.results: list[int] = []
        for wanted_result in result_columns:
            i = self._find(header, (wanted_result,), what=f"result column {wanted_result!r}")
            if i is None:
                raise InputFileError(
                    f"{path}, line {self.header_line}: missing result column "
                    f"{wanted_result!r} (result_columns)"
                )
            if i in by_index:
                raise ConfigError(
                    f"result_columns: {wanted_result!r} is the {by_index[i]} column, which the "
                    "results carry already"
                )
            if i not in self.results:
                self.results.append(i)
        ignore = {c.strip().casefold() for c in ignore_columns}
        for i, read_as in by_index.items():
            if header[i] in ignore:
                raise ConfigError(
                    f"ignore_columns: {names[i]!r} is read as the {read_as}; remove it from "
                    "ignore_columns or map the field to another column"
                )
        read = {*self.present, *self.results}
        if self.objection is not None:
            read.add(self.objection)
        unread = [i for i in range(self.ncols) if i not in read and names[i]]
        self._refuse_lookalikes(names, keys, unread, ignore, objection_column, check_objection)
        self.mapping = ColumnMapping(
            fields={f: names[i] for f, i in self.index.items() if i is not None},
            objection=None if self.objection is None else names[self.objection],
            result=tuple(names[i] for i in self.results),
            ignored=tuple(names[i] for i in unread if header[i] in ignore),
            unread=tuple(names[i] for i in unread if header[i] not in ignore),
        )
        self.value_columns: tuple[str, ...] = tuple(
            names[i] for i in [*self.present, *self.results]
        )
        # A row must reach every column we read; shorter rows are invalid.
        self.needed = max([*read, -1]) + 1

    def _refuse_lookalikes(
        self,
        names: list[str],
        keys: list[str],
        unread: list[int],
        ignore: set[str],
        objection_column: str | None,
        check_objection: bool,
    ) -> None:
        """Stop at unread headers that look like an identifier part or an objection flag.

        An unread toevoeging merges two households into one; an unread objection flag
        sends the records of people who objected. Both must be a decision.
        """
        found: list[tuple[int, str]] = []
        for i in unread:
            if names[i].casefold() in ignore:
                continue
            hint = next(
                (f for f in FIELDS[self.kind] if LOOKALIKE_COLUMNS[f].search(keys[i])), None
            )
            if hint is None and check_objection and LOOKALIKE_OBJECTION.search(keys[i]):
                hint = "objection"
            if hint is not None:
                found.append((i, hint))
        if found:
            raise UnreadColumns(self.path, self.header_line, names, found, objection_column)

    def _find(self, header: list[str], wanted: tuple[str, ...], *, what: str) -> int | None:
        keys = {w.strip().casefold() for w in wanted}
        hits = [i for i, h in enumerate(header) if h in keys]
        if len(hits) > 1:
            raise InputFileError(
                f"{self.path}, line {self.header_line}: {what} appears {len(hits)} times "
                f"(columns {', '.join(str(i + 1) for i in hits)})"
            )
        return hits[0] if hits else None

    def _canon(self) -> Callable[[list[str]], bytes]:
        """Return row -> canonical identifier for this table's columns."""
        if self.kind == "bsn":
            bi = self.index["bsn"]
            assert bi is not None

            def bsn(row: list[str]) -> bytes:
                return canonical_bsn(row[bi])

            return bsn
        pi, hi, li, ti = (self.index[k] for k in FIELDS["address"])
        assert pi is not None
        assert hi is not None
        canonical_address = address_canonicalizer()  # one memo per read

        def address(row: list[str]) -> bytes:
            return canonical_address(
                row[pi], row[hi], "" if li is None else row[li], "" if ti is None else row[ti]
            )

        return address

    def scan(
        self,
        report: InputReport,
        *,
        strict: bool,
        excluded: frozenset[bytes],
        progress: Callable[[int], None] | None,
    ) -> _Found:
        """Read every row once, sorting it into its bucket; keep first occurrences."""
        path = self.path
        reader = self.reader
        ncols = self.ncols
        needed = self.needed
        oi = self.objection
        offset = self.offset
        problems = report.problems
        canon = self._canon()
        kept_columns = [*self.present, *self.results]
        if len(kept_columns) == 1:
            only = kept_columns[0]

            def one_value(row: list[str]) -> tuple[str, ...]:
                return (row[only],)

            values_of: Callable[[list[str]], tuple[str, ...]] = one_value
        else:
            values_of = cast(Callable[[list[str]], tuple[str, ...]], itemgetter(*kept_columns))
        found = _Found(
            records=[],
            lines=array("Q"),
            values=PackedRows(len(kept_columns)),
            objected_ids=set(),
            duplicates={},
        )
        records, lines, values = found.records, found.lines, found.values
        objected_ids = found.objected_ids
        seen: set[bytes] = set()
        dups = found.duplicates
        rows = 0
        invalid = 0
        blank = 0
        objected = 0
        excluded_n = 0
        duplicate = 0

        def problem(line: int, reason: str) -> None:
            if strict:
                raise InputFileError(f"{path}, line {line}: {reason}")
            if len(problems) < MAX_PROBLEMS:
                problems.append((line, reason))

        prev = reader.line_num
        try:
            for row in reader:
                line = prev + 1 + offset
                prev = reader.line_num
                if len(row) != ncols:
                    if not any(v.strip() for v in row):
                        blank += 1
                        continue
                    n = len(row)
                    if n < needed or (n > ncols and any(v.strip() for v in row[ncols:])):
                        rows += 1
                        invalid += 1
                        fields = "field" if n == 1 else "fields"
                        problem(line, f"row has {n} {fields}, header has {ncols}")
                        continue
                rows += 1
                if progress is not None and not rows % PROGRESS_EVERY:
                    progress(rows)
                if oi is not None:
                    mark = row[oi].strip().lower()
                    if mark in OBJECTION_TRUE:
                        objected += 1
                        with contextlib.suppress(InvalidIdentifier):
                            objected_ids.add(canon(row))
                        continue
                    if mark not in OBJECTION_FALSE:
                        invalid += 1
                        problem(line, "objection column value not recognised")
                        continue
                try:
                    cid = canon(row)
                except InvalidIdentifier as e:
                    if not any(v.strip() for v in row):
                        rows -= 1
                        blank += 1
                        continue
                    invalid += 1
                    problem(line, str(e))
                    continue
                if cid in objected_ids:
                    objected += 1
                elif cid in seen:
                    duplicate += 1
                    dups[cid] = dups.get(cid, 0) + 1
                elif cid in excluded:
                    excluded_n += 1
                else:
                    seen.add(cid)
                    records.append(cid)
                    lines.append(line)
                    values.append(values_of(row))
        except csv.Error as e:
            raise InputFileError(
                f"{path}, line {reader.line_num + offset}: cannot be parsed as CSV ({e})"
            ) from None
        finally:
            report.rows += rows
            report.invalid += invalid
            report.blank += blank
            report.objected += objected
            report.excluded += excluded_n
            report.duplicate += duplicate
        return found


def _sniff(header: str) -> str:
    """Pick the delimiter that occurs most often in the header line (default ",")."""
    best, count = ",", 0
    for d in _SNIFF_DELIMITERS:
        c = header.count(d)
        if c > count:
            best, count = d, c
    return best


def _open(path: Path) -> IO[bytes]:
    """Open a file for binary reading, turning OS errors into InputFileError."""
    try:
        if path.is_dir():
            raise InputFileError(f"{path}: is a directory, not a file")
        return path.open("rb")
    except FileNotFoundError:
        raise InputFileError(f"{path}: file not found") from None
    except PermissionError:
        raise InputFileError(f"{path}: permission denied") from None
    except OSError as e:
        raise InputFileError(f"{path}: cannot be read ({e.strerror})") from None


def _text_blocks(path: Path, f: IO[bytes]) -> Iterator[io.StringIO]:
    """Yield the file as blocks of whole lines, refusing non-UTF-8, NUL bytes and long lines.

    Checking and decoding a megabyte at a time keeps the per-line cost in C;
    line numbers in errors are still exact (counted from the block's start).
    """
    limit = MAX_LINE_BYTES
    nl = b"\n"
    base = 0  # lines in earlier blocks
    first = True
    try:
        while True:
            block = f.read(BLOCK_BYTES)
            if not block:
                return
            if not block.endswith(nl):
                block += f.readline(limit + 1)  # finish the last line, within the limit
            if first:
                first = False
                if block.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                    raise InputFileError(
                        f"{path}, line 1: file is UTF-16 encoded; export it as CSV UTF-8"
                    )
                if block.startswith(codecs.BOM_UTF8):
                    block = block[len(codecs.BOM_UTF8) :]
            nul = block.find(b"\x00")
            if nul >= 0:
                raise InputFileError(
                    f"{path}, line {base + block.count(nl, 0, nul) + 1}: contains a NUL "
                    "byte (not a text file, or UTF-16?)"
                )
            parts = block.split(nl)
            if max(map(len, parts)) > limit:
                at = next(i for i, p in enumerate(parts) if len(p) > limit)
                raise InputFileError(
                    f"{path}, line {base + at + 1}: line longer than {limit} bytes"
                )
            try:
                text = block.decode("utf-8")
            except UnicodeDecodeError as e:
                raise InputFileError(
                    f"{path}, line {base + block.count(nl, 0, e.start) + 1}: not valid "
                    "UTF-8; export the file as CSV UTF-8"
                ) from None
            base += len(parts) - 1
            yield io.StringIO(text, newline="\n")
    except OSError as e:
        raise InputFileError(f"{path}, line {base + 1}: read error ({e.strerror})") from None
