"""Cutting a block of CSV bytes into records and parsing them: no row lost, every value kept as text.

A record ends at a newline outside quotes. Each non-blank record is either parsed into the configured columns
or, when it cannot be (wrong field count, NUL byte, bytes that are not UTF-8, an unbalanced quote, a repeated
header), kept as a malformed line with its text and the reason. Pure functions over bytes: `FileReader` in
`io/datasets.py` feeds them blocks of a file.

Most blocks are plain: ASCII lines without quotes, NUL bytes, blank lines or a repeated header (and the first
lines hold as many delimiters as they should). Such a block is not cut record by record where it is read
(`plain_chunk`, a few whole-block byte scans): each line is a record, and the CSV parser that reads it, wherever
the chunk is parsed, checks every line's field count; a block it refuses is cut record by record there
(`cut_records`), so a line with the wrong field count ends as a malformed line either way.
"""

from __future__ import annotations

import csv
import functools
import io
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from guardflow.data.table import LINE, REASONS, SOURCE_ROW, empty_malformed
from guardflow.settings import DatasetSettings

_NEWLINE, _QUOTE, _DELIMITER, _NUL = ord("\n"), ord('"'), ord(","), 0
HEAD_BYTES = 2**16  # a block's first lines: where its delimiters are counted (plain_chunk) and a header looked for


def guess_missing_column(lines: list[str], dataset: DatasetSettings) -> str | None:
    """When every line lacks one field, the configured column whose removal lines the values up best with the
    config's public bounds and categories (None when no single column clearly does)."""
    columns = dataset.expected_columns
    try:
        rows = list(csv.reader(lines, skipinitialspace=True))
    except csv.Error:
        return None
    if not rows or any(len(fields) != len(columns) - 1 for fields in rows):
        return None
    scores = []
    for dropped in range(len(columns)):
        kept = columns[:dropped] + columns[dropped + 1 :]
        scores.append(
            sum(
                _fits(dataset, column, value)
                for fields in rows
                for column, value in zip(kept, fields, strict=True)
            )
        )
    best = max(scores)
    if scores.count(best) > 1 or best < 0.9 * len(rows) * (len(columns) - 1):
        return None
    return columns[scores.index(best)]


def _fits(dataset: DatasetSettings, column: str, value: str) -> bool:
    """Whether a text value could belong to a column, by the config alone."""
    value = value.strip()
    if value in ("", *dataset.na_values):
        return True
    label = dataset.label
    if column == label.column:
        return value in {label.positive, label.negative, *label.aliases}
    feature = dataset.features.get(column)
    if feature is None:
        return True
    if feature.type == "categorical":
        return value in feature.categories
    try:
        number = float(value)
    except ValueError:
        return False
    return feature.min <= number <= feature.max


@dataclass(frozen=True)
class Chunk:
    """A run of whole records of a file: the bytes of its well-formed ones, ready for a CSV parser, and the rest.

    A `plain` chunk was not cut record by record (see `plain_chunk`): its lines are taken as its records until
    the parser has checked their field counts."""

    content: bytes
    source_rows: np.ndarray
    malformed: pd.DataFrame
    columns: tuple[str, ...]
    plain: bool = False

    @property
    def row_count(self) -> int:
        return len(self.source_rows) + len(self.malformed)

    def parse(self, na_values: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The well-formed records as text columns and all malformed lines, both indexed by `source_row`."""
        if self.plain:
            rows = _parse_unquoted(self.content, self.columns, na_values)
            if rows is not None and len(rows) == len(self.source_rows):
                rows.index = pd.Index(self.source_rows, dtype="int64", name=SOURCE_ROW)
                return rows, self.malformed
            # A line with another field count (or a carriage return inside one): cut it record by record.
            first_line = int(self.source_rows[0])
            return cut_records(self.content, first_line, True, self.columns).parse(na_values)
        rows, late = parse_records(self.content, self.source_rows, self.columns, na_values)
        if len(late) == 0:
            return rows, self.malformed
        return rows, pd.concat([self.malformed, late]).sort_index()


def plain_chunk(
    block: bytes, first_line: int, columns: tuple[str, ...], lines: int | None = None
) -> Chunk | None:
    """The block (of `lines` lines, counted when None) as a chunk of one record per line, when scans of the whole
    block show nothing that cutting it record by record would find: no quote, NUL or non-ASCII byte, no line that
    is blank or opens with a space or the first column's name, and its first lines hold the delimiters they
    should (the parser checks every line's). None otherwise."""
    if (
        not block.endswith(b"\n")
        or not block.isascii()
        or b"\x00" in block
        or b'"' in block
        or block[:1].isspace()
        or block.startswith(columns[0].encode("utf-8"))
        or _line_opening(columns[0]).search(block) is not None
    ):
        return None
    head = block[: block.rfind(b"\n", 0, HEAD_BYTES) + 1] or block
    if head.count(b",") != head.count(b"\n") * (len(columns) - 1):
        return None
    lines = block.count(b"\n") if lines is None else lines
    source_rows = np.arange(first_line, first_line + lines, dtype=np.int64)
    return Chunk(
        content=block, source_rows=source_rows, malformed=empty_malformed(), columns=columns, plain=True
    )


@functools.cache
def _line_opening(first_column: str) -> re.Pattern[bytes]:
    """A line that opens with white space (or is blank) or with the first column's name (a repeated header)."""
    name = re.escape(first_column.encode("utf-8"))
    return re.compile(rb"\n(?:\s|" + name + rb")")


def cut_records(block: bytes, first_line: int, at_end: bool, columns: tuple[str, ...]) -> Chunk:
    """The block cut record by record: its well-formed records, and each malformed one with its reason."""
    records = split_records(block, first_line, at_end)
    reasons = records.problems(block, len(columns))
    for index in repeated_headers(block, records, columns):
        reasons[index] = "malformed: a repeated header line"
    good = ~records.blank & np.array([reason is None for reason in reasons], dtype=bool)
    bad = np.flatnonzero(~records.blank & ~good)
    return Chunk(
        content=join_records(block, records, good),
        source_rows=records.lines[good],
        malformed=malformed_frame(block, records, bad, reasons),
        columns=columns,
    )


@dataclass(frozen=True)
class Records:
    """Where the records of a block start and end (`ends` at their newline) and what is visibly wrong with them."""

    starts: np.ndarray
    ends: np.ndarray
    lines: np.ndarray
    spans: np.ndarray
    fields: np.ndarray
    blank: np.ndarray
    nul: np.ndarray
    non_ascii: np.ndarray
    unbalanced: np.ndarray

    def problems(self, block: bytes, expected_fields: int) -> list[str | None]:
        """The reason each record cannot be parsed, or None; a Python loop only over suspect records."""
        reasons: list[str | None] = [None] * len(self.starts)
        suspect = (self.fields != expected_fields) | self.nul | self.non_ascii | self.unbalanced
        for index in np.flatnonzero(suspect & ~self.blank):
            reasons[index] = self._problem(block, int(index), expected_fields)
        return reasons

    def _problem(self, block: bytes, index: int, expected_fields: int) -> str | None:
        if self.unbalanced[index]:
            return "malformed: a quote opened on this line never closes"
        if self.nul[index]:
            return "malformed: NUL byte"
        if self.non_ascii[index]:
            try:
                block[self.starts[index] : self.ends[index]].decode("utf-8")
            except UnicodeDecodeError as error:
                byte = block[self.starts[index] + error.start]
                return f"malformed: not UTF-8 (byte 0x{byte:02x})"
        count = int(self.fields[index])
        if count != expected_fields:
            return f"malformed: {count} field{'s' if count != 1 else ''}, expected {expected_fields}"
        return None


def record_boundary(buffer: bytes) -> int:
    """Index just past the last newline that is outside quotes, or -1 when the buffer holds none."""
    if b'"' not in buffer:
        return buffer.rfind(b"\n") + 1 or -1
    data = np.frombuffer(buffer, dtype=np.uint8)
    newlines = np.flatnonzero(data == _NEWLINE)
    if len(newlines) == 0:
        return -1
    quotes = np.flatnonzero(data == _QUOTE)
    if len(quotes) == 0:
        return int(newlines[-1]) + 1
    outside = np.searchsorted(quotes, newlines) % 2 == 0
    if not outside.any():
        return -1
    return int(newlines[outside][-1]) + 1


def split_records(block: bytes, first_line: int, at_end: bool) -> Records:
    """Cut a block of whole lines into records: newline-terminated, a quoted newline does not end a record."""
    data = np.frombuffer(block, dtype=np.uint8)
    newlines = np.flatnonzero(data == _NEWLINE)
    quotes = np.flatnonzero(data == _QUOTE)
    delimiters: np.ndarray | None = None  # positions, only when quotes make some delimiters not count
    if len(quotes):
        ends = newlines[np.searchsorted(quotes, newlines) % 2 == 0]
        delimiters = np.flatnonzero(data == _DELIMITER)
        delimiters = delimiters[np.searchsorted(quotes, delimiters) % 2 == 0]
    else:
        ends = newlines
    unbalanced = np.zeros(len(ends), dtype=bool)
    if at_end and (len(ends) == 0 or ends[-1] != len(data) - 1):
        # An odd number of quotes at the end of the file: the tail is one record whose quote never closes.
        ends = np.append(ends, len(data) - 1)
        unbalanced = np.append(unbalanced, True)
    starts = np.concatenate(([0], ends[:-1] + 1)).astype(np.int64)
    lines = first_line + np.searchsorted(newlines, starts)
    spans = np.searchsorted(newlines, ends, side="right") - np.searchsorted(newlines, starts)
    if delimiters is not None:
        fields = 1 + np.searchsorted(delimiters, ends) - np.searchsorted(delimiters, starts)
    elif len(ends):
        # Delimiters per record summed in place: no array of every delimiter's position (14 a line in Adult).
        fields = 1 + np.add.reduceat(data == _DELIMITER, starts, dtype=np.int64)
        fields[starts == ends] = 1  # reduceat reads one byte for an empty record: an empty line has one field
    else:
        fields = np.zeros(0, dtype=np.int64)
    blank = np.zeros(len(ends), dtype=bool)
    for index in np.flatnonzero(fields == 1):  # a blank line holds no delimiter: only those are looked at
        blank[index] = not block[starts[index] : ends[index]].strip()
    return Records(
        starts=starts,
        ends=ends,
        lines=lines.astype(np.int64),
        spans=spans.astype(np.int64),
        fields=fields.astype(np.int64),
        blank=blank,
        nul=_flag(np.flatnonzero(data == _NUL), ends),
        non_ascii=_flag(np.flatnonzero(data >= 0x80), ends),
        unbalanced=unbalanced,
    )


def repeated_headers(block: bytes, records: Records, columns: tuple[str, ...]) -> list[int]:
    """Records that repeat the column names (files glued together): found by searching for the first name."""
    first = columns[0].encode("utf-8")
    if not first:
        return []
    data = np.frombuffer(block, dtype=np.uint8)
    opening = data[np.minimum(records.starts, len(data) - 1)]
    found: list[int] = []
    # Only records that open with the first name's first byte (or a space or quote before it) are looked at.
    for index in np.flatnonzero(np.isin(opening, [first[0], ord(" "), ord("\t"), _QUOTE])):
        text = block[records.starts[index] : records.ends[index]].decode("utf-8", errors="replace")
        names = next(csv.reader(io.StringIO(text), skipinitialspace=True), [])
        if tuple(name.strip() for name in names) == columns:
            found.append(int(index))
    return found


def _flag(positions: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """True for each record (by its end) that holds at least one of the byte positions."""
    flags = np.zeros(len(ends), dtype=bool)
    if len(positions):
        flags[np.searchsorted(ends, positions)] = True
    return flags


def join_records(block: bytes, records: Records, good: np.ndarray) -> bytes:
    """The bytes of the good records, in order: whole runs of neighbours are sliced at once."""
    if good.all():
        return block
    indices = np.flatnonzero(good)
    if len(indices) == 0:
        return b""
    breaks = np.flatnonzero(np.diff(indices) != 1)
    run_starts = indices[np.concatenate(([0], breaks + 1))]
    run_ends = indices[np.concatenate((breaks, [len(indices) - 1]))]
    view = memoryview(block)
    return b"".join(
        view[records.starts[first] : records.ends[last] + 1]
        for first, last in zip(run_starts, run_ends, strict=True)
    )


def malformed_frame(
    block: bytes, records: Records, bad: np.ndarray, reasons: list[str | None]
) -> pd.DataFrame:
    """One row per physical line of each bad record: its text (undecodable bytes escaped) and the reason."""
    source_rows: list[int] = []
    texts: list[str] = []
    why: list[list[str]] = []
    for index in bad:
        raw = block[records.starts[index] : records.ends[index]]
        first = int(records.lines[index])
        reason = str(reasons[index])
        span = int(records.spans[index])
        if span > 1:
            reason += f" (a record spanning lines {first + 1}-{first + span})"
        for offset, text in enumerate(raw.split(b"\n")):
            source_rows.append(first + offset)
            texts.append(_line_text(text))
            why.append([reason])
    if not source_rows:
        return empty_malformed()
    index = pd.Index(source_rows, dtype="int64", name=SOURCE_ROW)
    return pd.DataFrame({LINE: pd.Series(texts, index=index, dtype="str"), REASONS: why}, index=index)


def _line_text(raw: bytes) -> str:
    return raw.rstrip(b"\r").decode("utf-8", errors="backslashreplace").replace("\x00", "\\x00")


def parse_records(
    content: bytes, source_rows: np.ndarray, columns: tuple[str, ...], na_values: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Parse well-formed records into text columns; a record the CSV parser reads otherwise is set aside."""
    options = {
        "dtype": str,
        "skipinitialspace": True,
        "keep_default_na": False,
        "na_values": [*na_values, ""],
    }
    if not content:
        return pd.DataFrame({name: pd.Series(dtype="str") for name in columns}).rename_axis(SOURCE_ROW), (
            empty_malformed()
        )
    rows = _parse_unquoted(content, columns, na_values) if b'"' not in content else None
    if rows is None:
        try:
            rows = pd.read_csv(
                io.BytesIO(content),
                header=None,
                names=list(columns),
                skip_blank_lines=False,
                encoding="utf-8",
                **options,
            )
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError):
            rows = None
    if rows is not None and len(rows) == len(source_rows):
        rows.index = pd.Index(source_rows, dtype="int64", name=SOURCE_ROW)
        return rows, empty_malformed()
    return _parse_one_by_one(content, source_rows, columns, na_values)


def _parse_unquoted(content: bytes, columns: tuple[str, ...], na_values: list[str]) -> pd.DataFrame | None:
    """Fast path for records without quotes: Arrow's CSV reader, after dropping the spaces that open a field
    (pandas' `skipinitialspace`). None when Arrow reads the bytes otherwise (then pandas' parser decides)."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    # One search per white space byte first (memchr): text with none, most machine-written CSV, skips the four
    # searches for a two-byte opening, which cost 0.2 s per 500,000 Adult rows.
    if b" " in content or b"\t" in content:
        for opening in (b", ", b",\t", b"\n ", b"\n\t"):
            while opening in content:
                content = content.replace(opening, opening[:1])
    try:
        table = pa_csv.read_csv(
            io.BytesIO(content.lstrip(b" \t")),
            read_options=pa_csv.ReadOptions(column_names=list(columns)),
            parse_options=pa_csv.ParseOptions(delimiter=",", quote_char=False, ignore_empty_lines=False),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(columns, pa.string()),
                null_values=[*na_values, ""],
                strings_can_be_null=True,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    text = pd.Series(
        [], dtype="str"
    ).dtype  # what read_csv(dtype=str) gives: pandas 3's string dtype, or object
    if isinstance(text, pd.StringDtype):
        return table.to_pandas(types_mapper={pa.string(): text}.get)
    return table.to_pandas()


def _parse_one_by_one(
    content: bytes, source_rows: np.ndarray, columns: tuple[str, ...], na_values: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Slow path, when the fast parser and the record splitter disagree (a quote inside a field, a carriage return
    inside a line): record by record."""
    records = split_records(content, 0, at_end=True)
    missing = {*na_values, ""}
    parsed: list[list[str | None]] = []
    kept: list[int] = []
    bad_rows: list[int] = []
    bad_texts: list[str] = []
    for index, source_row in enumerate(source_rows):
        text = content[records.starts[index] : records.ends[index]].decode("utf-8")
        try:
            fields = list(csv.reader(io.StringIO(text), skipinitialspace=True))
        except csv.Error:  # a carriage return in an unquoted field
            fields = []
        if len(fields) == 1 and len(fields[0]) == len(columns):
            parsed.append([None if value.strip() in missing else value.strip() for value in fields[0]])
            kept.append(int(source_row))
        else:
            bad_rows.append(int(source_row))
            bad_texts.append(text.rstrip("\r\n"))
    rows = pd.DataFrame(parsed, columns=list(columns), dtype="str")
    rows.index = pd.Index(kept, dtype="int64", name=SOURCE_ROW)
    index = pd.Index(bad_rows, dtype="int64", name=SOURCE_ROW)
    malformed = pd.DataFrame(
        {
            LINE: pd.Series(bad_texts, index=index, dtype="str"),
            REASONS: [
                [
                    "malformed: a carriage return inside a line"
                    if "\r" in text
                    else "malformed: a quote inside a field"
                ]
                for text in bad_texts
            ],
        },
        index=index,
    )
    return rows, malformed
