"""A source is a CSV or Parquet file or a folder of them: files listed in order with sizes and streamed sha256s;
the partitions of a folder number their rows on after the previous file's."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from guardflow.errors import DataError
from guardflow.io.partitions import SourceReader, read_partition, sample_parts, sample_source
from guardflow.io.sources import open_source
from guardflow.settings import Settings


def _folder(base_lines: list[bytes], adult_settings: Settings, folder: Path) -> Path:
    """A folder of one CSV (the first 60 Adult lines) and one Parquet file (the next 40 rows, as text)."""
    folder.mkdir()
    (folder / "a.csv").write_bytes(b"\n".join(base_lines[:60]) + b"\n")
    columns = adult_settings.dataset.expected_columns
    rows = [[field.strip() for field in line.decode().split(",")] for line in base_lines[60:100]]
    pd.DataFrame(rows, columns=columns).to_parquet(folder / "b.parquet", index=False)
    return folder


def test_a_folder_lists_its_files_in_order_with_their_checksums(
    base_lines: list[bytes], adult_settings: Settings, tmp_path: Path
) -> None:
    # given a folder with a CSV and a Parquet file, and a file of another kind
    folder = _folder(base_lines, adult_settings, tmp_path / "data")
    (folder / "notes.md").write_text("not data")
    # when it is opened as a source
    source = open_source(folder, adult_settings.dataset)
    # then both data files are listed, in name order, with their sizes and sha256s
    assert [file.path.name for file in source.files] == ["a.csv", "b.parquet"], "data files in name order"
    assert [file.parquet for file in source.files] == [False, True], "each file's format is known"
    expected = hashlib.sha256((folder / "b.parquet").read_bytes()).hexdigest()
    assert source.files[1].sha256 == expected, "the sha256 is of the file's content"
    assert source.is_folder and source.bytes == sum(file.bytes for file in source.files), "a folder's size"


def test_a_folder_is_read_in_partitions_without_losing_or_repeating_a_row(
    base_lines: list[bytes], adult_settings: Settings, tmp_path: Path
) -> None:
    # given the folder cut into partitions of about 2 kB
    folder = _folder(base_lines, adult_settings, tmp_path / "data")
    reader = SourceReader(open_source(folder, adult_settings.dataset), adult_settings.dataset, 2000)
    # when every partition is read
    frames = [read_partition(part, adult_settings.dataset.na_values)[0] for part in reader.partitions()]
    rows = pd.concat(frames)
    # then the 100 rows come back once each, the Parquet rows numbered after the CSV's
    assert len(frames) > 2, f"2 kB partitions of ~10 kB of rows make several, got {len(frames)}"
    assert len(rows) == 100 and rows.index.is_unique, "every row once"
    assert rows.index[60] == 60 and rows.index[-1] == 99, "the Parquet file's rows follow the CSV's lines"
    assert reader.rows_parsed == 100, "the reader counts every row"
    assert set(reader.sha256s) == {file.path for file in open_source(folder, adult_settings.dataset).files}


def test_an_empty_folder_is_refused_in_one_line(adult_settings: Settings, tmp_path: Path) -> None:
    # given a folder with no data file
    (tmp_path / "empty").mkdir()
    # then opening it says so
    with pytest.raises(DataError, match="holds no CSV or Parquet file"):
        open_source(tmp_path / "empty", adult_settings.dataset)


def test_a_sample_of_parts_is_uniform_bounded_and_seeded(tmp_path: Path) -> None:
    # given three parts of 100 rows
    parts = []
    for index in range(3):
        frame = pd.DataFrame({"source_row": range(index * 100, index * 100 + 100), "x": float(index)})
        parts.append(tmp_path / f"part-{index:05d}.parquet")
        frame.to_parquet(parts[-1], index=False)
    # when 60 rows are sampled twice with one seed
    first, again = sample_parts(parts, 60, seed=1), sample_parts(parts, 60, seed=1)
    # then the sample is 60 distinct rows from every part, the same each time; a small data set is taken whole
    assert len(first) == 60 and first.index.is_unique, "the sample holds `limit` distinct rows"
    assert set(first["x"]) == {0.0, 1.0, 2.0}, "every part contributes"
    assert first.index.equals(again.index), "the same seed draws the same rows"
    assert len(sample_parts(parts, 1000, seed=1)) == 300, "no more rows than the limit: all of them"


def test_a_large_source_is_sampled_uniformly_partition_by_partition(
    base_lines: list[bytes], adult_settings: Settings, tmp_path: Path
) -> None:
    # given the 100-row folder read in 2 kB partitions
    folder = _folder(base_lines, adult_settings, tmp_path / "data")
    dataset = adult_settings.dataset
    # when 30 rows are sampled twice with one seed, and once with a limit above the row count
    first = sample_source(folder, dataset, 30, seed=3, partition_bytes=2000)
    again = sample_source(folder, dataset, 30, seed=3, partition_bytes=2000)
    whole = sample_source(folder, dataset, 500, seed=3, partition_bytes=2000)
    # then the sample is 30 distinct rows from both files, seeded; a small source comes back whole
    assert len(first.rows) == 30 and first.rows.index.is_unique, "the sample holds `limit` distinct rows"
    assert first.rows.index.min() < 60 <= first.rows.index.max(), "both files contribute rows"
    assert first.rows.index.equals(again.rows.index), "the same seed draws the same rows"
    assert whole.rows.index.tolist() == list(range(100)), "a limit above the rows takes every row, in order"
    assert list(first.rows.columns) == dataset.expected_columns, "the sample keeps the text columns only"
    assert first.sha256 == whole.sha256 and len(first.sha256) == 64, "the sample names its source's identity"


def test_a_parquet_file_is_cut_by_its_rows_not_its_compressed_size(
    base_lines: list[bytes], adult_settings: Settings, tmp_path: Path
) -> None:
    # given 400 Adult rows in Parquet row groups of 50 (a few kB on disk, dictionary-encoded and compressed)
    columns = adult_settings.dataset.expected_columns
    rows = [[field.strip() for field in line.decode().split(",")] for line in base_lines[:100]] * 4
    path = tmp_path / "rows.parquet"
    pd.DataFrame(rows, columns=columns).to_parquet(path, index=False, row_group_size=50)
    # when it is cut into partitions of what 100 rows take as CSV text (15 values of 8 bytes a row)
    reader = SourceReader(open_source(path, adult_settings.dataset), adult_settings.dataset, 100 * 15 * 8)
    partitions = list(reader.partitions())
    # then each partition holds two row groups, 100 rows, whatever the file's stored size
    assert [partition.row_count for partition in partitions] == [100] * 4, "100 rows each, at row-group bounds"
    stored = pq.ParquetFile(path).metadata.row_group(0).total_byte_size
    assert 4 * stored < 100 * 15 * 8, f"by stored size ({stored} bytes a group) four groups would have fit in one"
