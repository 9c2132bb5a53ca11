"""Reading tabular data files: checksums checked, every value kept as the text it was written as, no row lost.

A file is read in blocks cut at record boundaries (a newline outside quotes), so a file of any size streams
through `FileReader.chunks()` in bounded memory; `read_table` gathers the chunks of a small file into one
`Table`. Each non-blank line is either parsed into the configured columns or, when it cannot be (wrong field
count, NUL byte, bytes that are not UTF-8, an unbalanced quote), kept in `Table.malformed` with its text and the
reason: the contract quarantines it. A file that cannot be read at all (empty, truncated gzip, UTF-16, header
only, duplicate or wrong header names, no line with the right number of fields) raises one `DataError` line
naming the file, the line and the problem.

`source_row` is the 0-based line number in the (decompressed) file where the row starts: every physical line
counts, including a header, `skip_rows` lines and blank lines, so `source_row` N is line N+1 in an editor.
Error messages name lines 1-based, as editors do. Blank lines are not rows.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import hashlib
import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd

from guardflow.data.table import LINE, REASONS, SOURCE_ROW, Table, column_problems, empty_malformed
from guardflow.errors import DataError
from guardflow.io.read_parquet import is_parquet, read_parquet_table
from guardflow.settings import DataFile, DatasetSettings

BLOCK_BYTES = 32 * 2**20
MAX_RECORD_BYTES = 16 * 2**20
_SAMPLE_LINES = 200  # a quoted field still open after this many bytes is an unbalanced quote

_NEWLINE, _QUOTE, _DELIMITER, _NUL = ord("\n"), ord('"'), ord(","), 0
_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


@dataclass(frozen=True)
class Chunk:
    """A run of whole records of a file: the bytes of its well-formed ones, ready for a CSV parser, and the rest."""

    content: bytes
    source_rows: np.ndarray
    malformed: pd.DataFrame
    columns: tuple[str, ...]

    @property
    def row_count(self) -> int:
        return len(self.source_rows) + len(self.malformed)

    def parse(self, na_values: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The well-formed records as text columns and all malformed lines, both indexed by `source_row`."""
        rows, late = parse_records(self.content, self.source_rows, self.columns, na_values)
        if len(late) == 0:
            return rows, self.malformed
        return rows, pd.concat([self.malformed, late]).sort_index()


class FileReader:
    """Streams a data file as `Chunk`s; after the last chunk, `sha256` is the content's digest."""

    def __init__(
        self,
        path: Path,
        dataset: DatasetSettings,
        skip_rows: int = 0,
        block_bytes: int = BLOCK_BYTES,
        optional_columns: frozenset[str] = frozenset(),
    ) -> None:
        self.path = Path(path)
        self.dataset = dataset
        self.optional_columns = (
            optional_columns  # a header may leave these out (columns the PII policy drops)
        )
        if is_parquet(self.path, dataset):
            raise DataError(
                f"{self.path} is Parquet: chunked reading is for CSV files (validate without --chunked)"
            )
        # Another encoding than UTF-8 is decoded as it streams and handled as UTF-8 from there on; bytes the
        # encoding cannot decode stay as they were, so their line is quarantined as malformed, not lost.
        self._decoder = (
            None
            if codecs.lookup(dataset.encoding).name == "utf-8"
            else codecs.getincrementaldecoder(dataset.encoding)(errors="surrogateescape")
        )
        self.skip_rows = skip_rows
        self.block_bytes = block_bytes
        self.sha256 = ""
        self.columns: tuple[str, ...] = () if dataset.header else tuple(dataset.columns or ())
        self.rows_parsed = 0
        self.rows_malformed = 0
        self._first_bad: tuple[int, str] | None = None
        self._seen_text = False
        self._bad_sample: list[str] = []  # the first malformed lines, to guess a missing column from

    def chunks(self) -> Iterator[Chunk]:
        """Every record of the file once, in order; raises `DataError` when the file as a whole is unreadable."""
        digest = hashlib.sha256()
        line = 0  # 0-based number of the next line to read
        to_skip = self.skip_rows
        pending = b""
        first = True
        with _open(self.path) as stream:
            while True:
                data = self._read(stream, line + pending.count(b"\n"))
                digest.update(data)  # the checksum is of the bytes as stored, whatever their encoding
                if self._decoder is not None:
                    data = self._to_utf8(data, final=not data)
                elif first:
                    data = self._strip_bom(data)
                if first:
                    first = False
                buffer = pending + data
                if not data:
                    if not buffer:
                        break
                    cut = len(buffer) if buffer.endswith(b"\n") else -1
                    if cut < 0:
                        buffer += b"\n"
                        cut = len(buffer)
                else:
                    cut = _record_boundary(buffer)
                    if cut < 0:
                        if len(buffer) > MAX_RECORD_BYTES:
                            raise DataError(
                                f"{self.path}, line {line + 1}: no record ends within "
                                f"{MAX_RECORD_BYTES // 2**20} MB (an unbalanced quote, or no newline?)"
                            )
                        pending = buffer
                        continue
                block, pending = buffer[:cut], buffer[cut:]
                while to_skip and block:
                    end = block.find(b"\n")
                    block, line, to_skip = block[end + 1 :], line + 1, to_skip - 1
                if block:
                    chunk = self._chunk(block, line, at_end=not data)
                    line += block.count(b"\n")
                    if chunk is not None and chunk.row_count:
                        yield chunk
                if not data:
                    break
        self.sha256 = digest.hexdigest()
        self._check_whole_file(line)

    def _to_utf8(self, data: bytes, final: bool) -> bytes:
        assert self._decoder is not None
        return self._decoder.decode(data, final=final).encode("utf-8", errors="surrogateescape")

    def _read(self, stream: BinaryIO, line: int) -> bytes:
        try:
            return stream.read(self.block_bytes)
        except (OSError, EOFError, zlib.error) as error:
            raise DataError(f"{self.path}, line {line + 1}: cannot read further: {error}") from None

    def _strip_bom(self, data: bytes) -> bytes:
        if data.startswith(_UTF16_BOMS):
            raise DataError(f"{self.path}, line 1: the file is UTF-16 (byte-order mark); expected UTF-8")
        return data[len(_UTF8_BOM) :] if data.startswith(_UTF8_BOM) else data

    def _chunk(self, block: bytes, first_line: int, at_end: bool) -> Chunk | None:
        records = _split_records(block, first_line, at_end)
        keep = ~records.blank
        self._seen_text = self._seen_text or bool(keep.any())
        if not self.columns:
            header = int(np.flatnonzero(keep)[0]) if keep.any() else -1
            if header < 0:
                return None
            self.columns = self._read_header(block, records, header)
            keep[header] = False
        reasons = records.problems(block, len(self.columns))
        for index in _repeated_headers(block, records, self.columns):
            reasons[index] = "malformed: a repeated header line"
        good = keep & np.array([reason is None for reason in reasons], dtype=bool)
        bad = np.flatnonzero(keep & ~good)
        malformed = _malformed_frame(block, records, bad, reasons)
        if len(malformed) and self._first_bad is None:
            self._first_bad = (int(malformed.index[0]), str(malformed[REASONS].iloc[0][0]))
        if len(self._bad_sample) < _SAMPLE_LINES:
            self._bad_sample.extend(malformed[LINE].head(_SAMPLE_LINES - len(self._bad_sample)).tolist())
        self.rows_parsed += int(good.sum())
        self.rows_malformed += len(malformed)
        return Chunk(
            content=_join_records(block, records, good),
            source_rows=records.lines[good],
            malformed=malformed,
            columns=self.columns,
        )

    def _read_header(self, block: bytes, records: _Records, index: int) -> tuple[str, ...]:
        line = int(records.lines[index]) + 1
        raw = block[records.starts[index] : records.ends[index]]
        if b"\x00" in raw:
            raise DataError(f"{self.path}, line {line}: the header holds a NUL byte")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise DataError(f"{self.path}, line {line}: the header is not UTF-8 ({error.reason})") from None
        names = tuple(name.strip() for name in next(csv.reader(io.StringIO(text), skipinitialspace=True)))
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise DataError(f"{self.path}, line {line}: duplicate header names {duplicates}")
        expected = [
            name
            for name in self.dataset.expected_columns
            if name in names or name not in self.optional_columns
        ]
        problems = column_problems(list(names), expected)
        if problems:
            raise DataError(
                f"{self.path}, line {line}: the header does not match the contract's columns: "
                + "; ".join(problems)
            )
        return names

    def _check_whole_file(self, lines: int) -> None:
        if not self._seen_text:
            raise DataError(f"data file is empty: {self.path}")
        if self.rows_parsed == 0 and self.rows_malformed == 0:
            raise DataError(
                f"data file is header only: {self.path}, line {lines + 1}: no data rows after the header"
            )
        if self.rows_parsed == 0 and self._first_bad is not None:
            source_row, reason = self._first_bad
            missing = guess_missing_column(self._bad_sample, self.dataset)
            hint = f"column '{missing}' looks missing" if missing else "wrong delimiter or wrong file?"
            raise DataError(
                f"{self.path}, line {source_row + 1}: {reason}; no line of the file parses into the "
                f"{len(self.columns)} columns ({hint})"
            )


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
class _Records:
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


def _record_boundary(buffer: bytes) -> int:
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


def _split_records(block: bytes, first_line: int, at_end: bool) -> _Records:
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
    return _Records(
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


def _repeated_headers(block: bytes, records: _Records, columns: tuple[str, ...]) -> list[int]:
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


def _join_records(block: bytes, records: _Records, good: np.ndarray) -> bytes:
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


def _malformed_frame(
    block: bytes, records: _Records, bad: np.ndarray, reasons: list[str | None]
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
    """Slow path, when the fast parser and the record splitter disagree (a quote inside a field): record by record."""
    records = _split_records(content, 0, at_end=True)
    missing = {*na_values, ""}
    parsed: list[list[str | None]] = []
    kept: list[int] = []
    bad_rows: list[int] = []
    bad_texts: list[str] = []
    for index, source_row in enumerate(source_rows):
        text = content[records.starts[index] : records.ends[index]].decode("utf-8")
        fields = list(csv.reader(io.StringIO(text), skipinitialspace=True))
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
            REASONS: [["malformed: a quote inside a field"] for _ in bad_rows],
        },
        index=index,
    )
    return rows, malformed


def _open(path: Path) -> BinaryIO:
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    if path.suffix == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def content_sha256(path: Path) -> str:
    """sha256 of a file's content, decompressed when the file is gzip: the identity of the data itself."""
    digest = hashlib.sha256()
    try:
        with _open(Path(path)) as stream:
            while data := stream.read(BLOCK_BYTES):
                digest.update(data)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"cannot read data file {path}: {error}") from None
    return digest.hexdigest()


def check_sha256(path: Path, expected: str | None, found: str) -> None:
    """Refuse a file whose content is not the one the config names."""
    if expected is not None and found != expected:
        raise DataError(f"checksum mismatch for {path}: expected sha256 {expected}, found {found}")


def read_table(
    path: Path,
    dataset: DatasetSettings,
    skip_rows: int = 0,
    expected_sha256: str | None = None,
    block_bytes: int = BLOCK_BYTES,
    optional_columns: frozenset[str] = frozenset(),
) -> Table:
    """Read a CSV as text, every data row parsed or kept as malformed; refuse a bad checksum or an unreadable file.

    `optional_columns` may be missing from a file with a header (a file without the columns a policy drops).
    """
    if is_parquet(Path(path), dataset):
        return read_parquet_table(Path(path), dataset, expected_sha256, optional_columns)
    reader = FileReader(path, dataset, skip_rows, block_bytes, optional_columns)
    parts: list[pd.DataFrame] = []
    malformed: list[pd.DataFrame] = []
    for chunk in reader.chunks():
        rows, bad = chunk.parse(dataset.na_values)
        parts.append(rows)
        malformed.append(bad)
    check_sha256(path, expected_sha256, reader.sha256)
    rows = pd.concat(parts) if len(parts) > 1 else parts[0]
    bad = pd.concat(malformed) if len(malformed) > 1 else malformed[0]
    return Table(path=Path(path).resolve(), sha256=reader.sha256, rows=rows, malformed=bad)


def read_split(dataset: DatasetSettings, split: str) -> Table:
    """Read the configured train or test file, checking it against the sha256 in the config."""
    data_file: DataFile = getattr(dataset, split)
    return read_table(data_file.path, dataset, data_file.skip_rows, data_file.sha256)


def write_table(rows: pd.DataFrame, path: Path, dataset: DatasetSettings) -> str:
    """Write text rows as CSV in the dataset's encoding (so `read_table` reads them back, a Parquet dataset's
    too: see `is_parquet`) and return the sha256."""
    missing = dataset.na_values[0] if dataset.na_values else ""
    text = rows.to_csv(index=False, header=dataset.header, na_rep=missing, lineterminator="\n")
    content = text.encode(dataset.encoding)
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(content, mtime=0))
    else:
        path.write_bytes(content)
    return hashlib.sha256(content).hexdigest()
