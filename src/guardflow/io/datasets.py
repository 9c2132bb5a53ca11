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
Error messages name lines 1-based, as editors do. Blank lines are not rows. Cutting and parsing records is
`io/parse_records.py`; this module reads files and hands it blocks.
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

from guardflow.data.table import LINE, REASONS, Table, column_problems, empty_malformed
from guardflow.errors import DataError
from guardflow.io.parse_records import (
    HEAD_BYTES,
    Chunk,
    Records,
    cut_records,
    guess_missing_column,
    plain_chunk,
    record_boundary,
    split_records,
)
from guardflow.io.read_parquet import is_parquet, read_parquet_table
from guardflow.settings import DataFile, DatasetSettings

BLOCK_BYTES = 32 * 2**20
MAX_RECORD_BYTES = 16 * 2**20
_SAMPLE_LINES = 200  # malformed lines kept to guess a missing column from
_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


@dataclass(frozen=True)
class FileRange:
    """A plain block of an uncompressed UTF-8 file (see `plain_chunk`) by its place in the file, not its bytes: a
    Dask worker reads it from the shared file instead of receiving it, and checks it against the digest taken
    when the file was cut."""

    path: Path
    start: int
    length: int
    sha256: str
    first_line: int
    lines: int
    columns: tuple[str, ...]

    @property
    def row_count(self) -> int:
        return self.lines

    def parse(self, na_values: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Read the block again and parse it as its `Chunk` would be."""
        where = f"{self.path}, lines {self.first_line + 1}-{self.first_line + self.lines}"
        try:
            with self.path.open("rb") as stream:
                stream.seek(self.start)
                block = stream.read(self.length)
        except OSError as error:
            raise DataError(f"{where}: cannot read it here: {error.strerror or error}") from None
        if hashlib.sha256(block).hexdigest() != self.sha256:
            raise DataError(f"{where}: the file changed while it was being read (its bytes no longer match)")
        source_rows = np.arange(self.first_line, self.first_line + self.lines, dtype=np.int64)
        chunk = Chunk(block, source_rows, empty_malformed(), self.columns, plain=True)
        return chunk.parse(na_values)


class FileReader:
    """Streams a data file as `Chunk`s; after the last chunk, `sha256` is the content's digest."""

    def __init__(
        self,
        path: Path,
        dataset: DatasetSettings,
        skip_rows: int = 0,
        block_bytes: int = BLOCK_BYTES,
        optional_columns: frozenset[str] = frozenset(),
        ranges: bool = False,
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
        self._ranged = ranges and self._decoder is None and self.path.suffix != ".gz"
        self.sha256 = ""
        self.columns: tuple[str, ...] = () if dataset.header else tuple(dataset.columns or ())
        self.rows_parsed = 0
        self.rows_malformed = 0
        self._first_bad: tuple[int, str] | None = None
        self._seen_text = False
        self._bad_sample: list[str] = []  # the first malformed lines, to guess a missing column from

    def chunks(self) -> Iterator[Chunk | FileRange]:
        """Every record of the file once, in order; raises `DataError` when the file as a whole is unreadable.

        With `ranges`, a plain block of an uncompressed UTF-8 file comes as a `FileRange`: its place in the file,
        to be read again where it is parsed, instead of its bytes."""
        digest = hashlib.sha256()
        line = 0  # 0-based number of the next line to read
        to_skip = self.skip_rows
        pending = b""
        first = True
        offset = 0  # where `pending` starts in the file (when the file's bytes are the block's bytes)
        with _open(self.path) as stream:
            while True:
                data = self._read(stream, line + pending.count(b"\n"))
                digest.update(data)  # the checksum is of the bytes as stored, whatever their encoding
                if self._decoder is not None:
                    data = self._to_utf8(data, final=not data)
                elif first:
                    stripped = self._strip_bom(data)
                    offset, data = len(data) - len(stripped), stripped
                if first:
                    first = False
                buffer = pending + data
                in_file = True  # the block is the file's bytes at `offset`
                if not data:
                    if not buffer:
                        break
                    cut = len(buffer) if buffer.endswith(b"\n") else -1
                    if cut < 0:
                        buffer += b"\n"
                        cut, in_file = len(buffer), False
                else:
                    cut = record_boundary(buffer)
                    if cut < 0:
                        if len(buffer) > MAX_RECORD_BYTES:
                            raise DataError(
                                f"{self.path}, line {line + 1}: no record ends within "
                                f"{MAX_RECORD_BYTES // 2**20} MB (an unbalanced quote, or no newline?)"
                            )
                        pending = buffer
                        continue
                block, pending = buffer[:cut], buffer[cut:]
                start, offset = offset, offset + cut
                while to_skip and block:
                    end = block.find(b"\n") + 1
                    block, line, to_skip, start = block[end:], line + 1, to_skip - 1, start + end
                if block:
                    lines = block.count(b"\n")
                    place = start if in_file and self._ranged else None
                    chunk = self._chunk(block, line, lines, not data, place)
                    line += lines
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

    def _chunk(
        self, block: bytes, first_line: int, lines: int, at_end: bool, start: int | None
    ) -> Chunk | FileRange | None:
        """The records of a block of `lines` lines; `start`: where the block starts in the file, when it may come
        as a `FileRange`."""
        if not self.columns:
            header_end = self._take_header(block, first_line, at_end)
            if header_end is None:
                return None
            header_lines = block.count(b"\n", 0, header_end)
            first_line, lines = first_line + header_lines, lines - header_lines
            block = block[header_end:]
            start = None if start is None else start + header_end
            if not block:
                return None
        plain = plain_chunk(block, first_line, self.columns, lines)
        if plain is not None:
            self._seen_text = True
            self.rows_parsed += len(plain.source_rows)
            if start is None:
                return plain
            digest = hashlib.sha256(block).hexdigest()
            return FileRange(
                self.path, start, len(block), digest, first_line, len(plain.source_rows), self.columns
            )
        chunk = cut_records(block, first_line, at_end, self.columns)
        malformed = chunk.malformed
        self._seen_text = self._seen_text or chunk.row_count > 0
        if len(malformed) and self._first_bad is None:
            self._first_bad = (int(malformed.index[0]), str(malformed[REASONS].iloc[0][0]))
        if len(self._bad_sample) < _SAMPLE_LINES:
            self._bad_sample.extend(malformed[LINE].head(_SAMPLE_LINES - len(self._bad_sample)).tolist())
        self.rows_parsed += len(chunk.source_rows)
        self.rows_malformed += len(malformed)
        return chunk

    def _take_header(self, block: bytes, first_line: int, at_end: bool) -> int | None:
        """Read the header (the block's first non-blank record) into `columns`; the index just past it, or None
        when the block holds only blank lines. Records are cut from the block's head only, unless the header is
        not in it."""
        head_end = record_boundary(block[:HEAD_BYTES]) if len(block) > HEAD_BYTES else -1
        for head in ((block[:head_end],) if head_end > 0 else ()) + (block,):
            records = split_records(head, first_line, at_end and len(head) == len(block))
            texts = np.flatnonzero(~records.blank)
            if len(texts):
                self._seen_text = True
                self.columns = self._read_header(head, records, int(texts[0]))
                return int(records.ends[texts[0]]) + 1
        return None

    def _read_header(self, block: bytes, records: Records, index: int) -> tuple[str, ...]:
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
