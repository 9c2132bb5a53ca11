"""Plain blocks: lines taken as records without cutting them one by one, checked by the parser, and read again
by the worker from their place in the file; the same rows and malformed lines as cutting record by record."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from guardflow.data.table import REASONS
from guardflow.errors import DataError
from guardflow.io.datasets import FileRange, read_table
from guardflow.io.parse_records import cut_records, plain_chunk
from guardflow.io.partitions import SourceReader, read_partition
from guardflow.io.sources import open_source
from guardflow.settings import Settings
from tests.malformed_corpus import COLUMNS_LINE, KINDS, Kind, join_lines, kind_dataset, write_kind

COLUMNS = tuple(COLUMNS_LINE.decode().split(","))


def test_a_clean_block_is_plain(base_lines: list[bytes]) -> None:
    # given 100 well-formed Adult lines starting at line 7
    block = join_lines(base_lines)
    # when taken as a plain chunk
    chunk = plain_chunk(block, 7, COLUMNS)
    # then every line is a record under its own line number, and nothing is malformed
    assert chunk is not None and chunk.plain, "well-formed ASCII lines need no record-by-record cut"
    assert list(chunk.source_rows) == list(range(7, 107)), "source rows are the lines, in order"
    assert chunk.malformed.empty


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("a quote", lambda lines: [lines[0].replace(b"State-gov", b'"State-gov"'), *lines[1:]]),
        ("a NUL byte", lambda lines: [lines[0] + b"\x00", *lines[1:]]),
        ("a non-ASCII byte", lambda lines: [lines[0].replace(b"State-gov", b"St\xc3\xa4te-gov"), *lines[1:]]),
        ("a blank line", lambda lines: [lines[0], b"", *lines[1:]]),
        ("a line of spaces", lambda lines: [lines[0], b"   ", *lines[1:]]),
        ("a line opening with a space", lambda lines: [lines[0], b" " + lines[1], *lines[2:]]),
        ("a repeated header", lambda lines: [lines[0], COLUMNS_LINE, *lines[1:]]),
        ("a missing field", lambda lines: [lines[0].rsplit(b",", 1)[0], *lines[1:]]),
        ("another delimiter", lambda lines: [line.replace(b",", b";") for line in lines]),
    ],
)
def test_a_block_with_anything_to_cut_is_not_plain(name: str, change, base_lines: list[bytes]) -> None:
    # given a block with one thing that cutting record by record would find / when taken as a plain chunk
    block = join_lines(change(base_lines))
    # then it is not plain: it is cut record by record
    assert plain_chunk(block, 0, COLUMNS) is None, f"a block with {name} must be cut record by record"


@pytest.mark.parametrize(
    ("name", "first", "second"),
    [
        # one field short and one too many: the block's delimiter count is still right
        ("field counts that cancel out", lambda line: line.rsplit(b",", 1)[0], lambda line: line + b", x"),
        # a carriage return inside a line: the parser sees two lines where the block counts one
        ("a carriage return inside a line", lambda line: line.replace(b", ", b",\r", 1), lambda line: line),
    ],
)
def test_the_parser_sends_a_plain_block_it_refuses_to_be_cut(
    name: str, first, second, base_lines: list[bytes]
) -> None:
    # given a block with a flaw that the whole-block scans cannot see
    lines = list(base_lines)
    lines[10], lines[20] = first(lines[10]), second(lines[20])
    block = join_lines(lines)
    chunk = plain_chunk(block, 0, COLUMNS)
    assert chunk is not None, f"{name}: the whole-block scans pass this block"
    # when parsed
    rows, malformed = chunk.parse(["?"])
    # then it ends as cutting record by record ends: the same rows and the same malformed lines
    cut_rows, cut_malformed = cut_records(block, 0, True, COLUMNS).parse(["?"])
    pd.testing.assert_frame_equal(rows, cut_rows)
    pd.testing.assert_frame_equal(malformed, cut_malformed)
    assert len(rows) + len(malformed) == len(lines), f"{name}: every line is a row or a malformed line"
    assert 10 in malformed.index, f"{name}: line 11 is quarantined as malformed"


def test_a_short_line_past_the_first_lines_is_found_by_the_parser(base_lines: list[bytes]) -> None:
    # given a block of 800 lines (about 85 kB) whose 796th line lacks its last field, past the lines whose
    # delimiters are counted where the block is read
    lines = base_lines * 8
    lines[795] = lines[795].rsplit(b",", 1)[0]
    block = join_lines(lines)
    chunk = plain_chunk(block, 0, COLUMNS)
    assert chunk is not None, "only the block's first lines' delimiters are counted where it is read"
    # when parsed / then that line is malformed, with its reason, and every other line is a row
    rows, malformed = chunk.parse(["?"])
    assert list(malformed.index) == [795], f"malformed lines: {list(malformed.index)}"
    assert malformed.loc[795, REASONS] == ["malformed: 14 fields, expected 15"], malformed.loc[795, REASONS]
    assert len(rows) == 799


@pytest.mark.parametrize("kind", [kind for kind in KINDS if kind.error is None], ids=lambda kind: kind.name)
def test_partitions_read_every_kind_as_the_whole_file_is_read(
    kind: Kind, base_lines: list[bytes], adult_settings: Settings, tmp_path: Path
) -> None:
    # given a file of this kind, cut into partitions of about 1 kB (plain ones as places in the file)
    path = write_kind(kind, base_lines, tmp_path)
    dataset = kind_dataset(adult_settings, kind)
    reader = SourceReader(open_source(path, dataset, checksums=False), dataset, partition_bytes=1_000)
    # when each partition is read as a worker reads it
    parts = [read_partition(partition, dataset.na_values) for partition in reader.partitions()]
    # then the rows and malformed lines are those of reading the whole file at once
    whole = read_table(path, dataset)
    rows = pd.concat([part[0] for part in parts])
    malformed = pd.concat([part[1] for part in parts])
    pd.testing.assert_frame_equal(rows, whole.rows, obj=f"{kind.name}: rows")
    pd.testing.assert_frame_equal(malformed, whole.malformed, obj=f"{kind.name}: malformed lines")


def test_plain_partitions_of_a_csv_file_are_places_in_it(
    base_lines: list[bytes], adult_settings: Settings, tmp_path: Path
) -> None:
    # given a clean CSV file and the same file gzipped
    path = tmp_path / "clean.csv"
    path.write_bytes(join_lines(base_lines * 5))
    zipped = tmp_path / "clean.csv.gz"
    zipped.write_bytes(gzip.compress(path.read_bytes()))
    dataset = adult_settings.dataset

    def chunks(source: Path) -> list[object]:
        reader = SourceReader(open_source(source, dataset, checksums=False), dataset, partition_bytes=10_000)
        return [partition.chunk for partition in reader.partitions()]

    # when cut into partitions
    plain, compressed = chunks(path), chunks(zipped)
    # then the plain file's come as places in the file (no bytes sent), the gzip file's carry their bytes
    assert plain and all(isinstance(chunk, FileRange) for chunk in plain), "a plain CSV is sent as ranges"
    assert not any(isinstance(chunk, FileRange) for chunk in compressed), "gzip cannot be read at an offset"
    assert sum(chunk.row_count for chunk in plain) == 500


def test_a_file_changed_after_it_was_cut_is_refused(
    base_lines: list[bytes], adult_settings: Settings, tmp_path: Path
) -> None:
    # given a partition of a CSV file, cut before one of its values was changed in place (same length)
    path = tmp_path / "clean.csv"
    path.write_bytes(join_lines(base_lines))
    dataset = adult_settings.dataset
    reader = SourceReader(open_source(path, dataset, checksums=False), dataset, partition_bytes=10**6)
    (partition,) = list(reader.partitions())
    path.write_bytes(path.read_bytes().replace(b"State-gov", b"State-GOV", 1))
    # when a worker reads it / then it refuses, in one line naming the file and its lines
    with pytest.raises(DataError, match=r"clean\.csv, lines 1-100: the file changed while it was being read"):
        read_partition(partition, dataset.na_values)


def test_a_range_keeps_the_line_numbers_after_a_header_and_skipped_lines(
    base_lines: list[bytes], adult_settings: Settings, tmp_path: Path
) -> None:
    # given a file with a byte-order mark, two lines to skip and a header before 100 rows
    path = tmp_path / "headed.csv"
    path.write_bytes(b"\xef\xbb\xbf" + join_lines([b"# export", b"# v2", COLUMNS_LINE, *base_lines]))
    dataset = adult_settings.dataset.model_copy(update={"header": True})
    reader = SourceReader(open_source(path, dataset, checksums=False), dataset, 10**6, skip_rows=2)
    # when its one partition is read as a worker reads it
    (partition,) = list(reader.partitions())
    rows, malformed = read_partition(partition, dataset.na_values)
    # then it was sent as a place in the file, and its rows are lines 4-103 of the file, as written there
    assert isinstance(partition.chunk, FileRange)
    assert list(rows.index) == list(np.arange(3, 103)) and malformed.empty
    assert rows.iloc[0]["workclass"] == "State-gov", "the first row is the first line after the header"
