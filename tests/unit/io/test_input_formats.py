"""Input formats: Latin-1 and cp1252 CSVs read like their UTF-8 twin, and Parquet like the CSV it came from, with
the same row accounting (source_row) and checksums of the bytes as stored."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from guardflow.errors import DataError
from guardflow.io.datasets import content_sha256, read_table
from guardflow.io.sources import open_source
from guardflow.settings import DatasetSettings

HEADER = "age,city,note,label\n"
LINES = [
    "34,Zürich,café crème,yes\n",
    "51,Malmö,naïve “quote”,no\n",
    "29,Köln,€ sign,no\n",
    "\n",
    "40,Bern,x,yes\n",
]


def _dataset(**changes: object) -> DatasetSettings:
    raw = {
        "id": "accents",
        "train": {"path": "unused.csv", "sha256": "0" * 64},
        "test": {"path": "unused.csv", "sha256": "0" * 64},
        "label": {"column": "label", "positive": "yes", "negative": "no"},
        "features": {
            "age": {"type": "numeric", "min": 0, "max": 120},
            "city": {"type": "categorical", "categories": ["Zürich", "Malmö", "Köln", "Bern"]},
        },
        "columns": ["age", "city", "note", "label"],
    }
    return DatasetSettings.model_validate_json(json.dumps(raw | changes))


@pytest.mark.parametrize("encoding", ["latin-1", "cp1252"])
def test_a_csv_in_another_encoding_reads_like_its_utf8_twin(tmp_path: Path, encoding: str) -> None:
    # given the same text written as UTF-8 and in a single-byte encoding (cp1252 also has the euro and quotes)
    lines = (
        LINES
        if encoding == "cp1252"
        else [line.replace("“quote”", "quote").replace("€", "EUR") for line in LINES]
    )
    text = HEADER + "".join(lines)
    utf8, other = tmp_path / "utf8.csv", tmp_path / f"{encoding}.csv"
    utf8.write_bytes(text.encode("utf-8"))
    other.write_bytes(text.encode(encoding))
    # when read with the configured encoding
    expected = read_table(utf8, _dataset())
    table = read_table(other, _dataset(encoding=encoding), expected_sha256=content_sha256(other))
    # then the rows, their source_row and the (absent) malformed lines are the same; the checksum is of the bytes
    pd.testing.assert_frame_equal(table.rows, expected.rows)
    assert list(table.rows.index) == [1, 2, 3, 5], f"source_row counts every line: {list(table.rows.index)}"
    assert len(table.malformed) == 0, f"no accented line is malformed: {table.malformed}"
    assert table.sha256 == hashlib.sha256(other.read_bytes()).hexdigest(), "the sha256 of the stored bytes"


def test_a_latin1_file_read_as_utf8_quarantines_its_accented_lines_not_more(tmp_path: Path) -> None:
    # given a Latin-1 file and the default encoding (UTF-8)
    path = tmp_path / "latin.csv"
    path.write_bytes((HEADER + "34,Bern,plain,yes\n40,Köln,x,no\n").encode("latin-1"))
    # when read / then the accented line is malformed (not lost) and the other one parsed
    table = read_table(path, _dataset())
    assert list(table.rows.index) == [1] and list(table.malformed.index) == [2], (
        f"{table.rows} {table.malformed}"
    )


def test_parquet_reads_like_the_csv_it_came_from(tmp_path: Path) -> None:
    # given a CSV and a Parquet file of the same rows (typed columns in the Parquet file)
    csv_path = tmp_path / "rows.csv"
    csv_path.write_text("age,city,note,label\n34,Zürich,,yes\n51,Malmö,b,no\n")
    frame = pd.DataFrame(
        {"age": [34, 51], "city": ["Zürich", "Malmö"], "note": [None, "b"], "label": ["yes", "no"]}
    )
    parquet_path = tmp_path / "rows.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), parquet_path)
    # when both are read (by suffix, and by `format: parquet` under another name)
    from_csv = read_table(csv_path, _dataset())
    from_parquet = read_table(parquet_path, _dataset(), expected_sha256=content_sha256(parquet_path))
    renamed = tmp_path / "rows.bin"
    renamed.write_bytes(parquet_path.read_bytes())
    by_format = read_table(renamed, _dataset(format="parquet"))
    # then the values are the same text; source_row is the row number; the checksum is of the file's bytes
    assert from_parquet.rows.astype(object).equals(from_csv.rows.astype(object).set_axis([0, 1])), (
        f"{from_parquet.rows} vs {from_csv.rows}"
    )
    assert list(from_parquet.rows.index) == [0, 1] and from_parquet.rows.index.name == "source_row", (
        "row numbers"
    )
    assert from_parquet.sha256 == hashlib.sha256(parquet_path.read_bytes()).hexdigest(), "sha256 of the file"
    assert by_format.rows.equals(from_parquet.rows), "format: parquet reads a file whatever its name"


def test_a_parquet_file_with_wrong_columns_or_checksum_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"age": [1], "town": ["Bern"], "note": ["x"], "label": ["yes"]}), path)
    with pytest.raises(DataError, match=r"missing columns \['city'\]; unexpected columns \['town'\]"):
        read_table(path, _dataset())
    with pytest.raises(DataError, match="checksum mismatch"):
        read_table(path, _dataset(), expected_sha256="0" * 64)


def test_a_file_named_parquet_that_is_not_is_one_clear_error(tmp_path: Path) -> None:
    # given a file with a Parquet name and CSV content / when it is opened as a source (its rows are counted)
    path = tmp_path / "rows.parquet"
    path.write_text("age,city,note,label\n1,Bern,x,yes\n")
    # then one DataError names the file
    with pytest.raises(DataError, match=r"cannot read Parquet file .*rows\.parquet"):
        open_source(path, _dataset(), checksums=False)


def test_an_unknown_encoding_is_refused_when_the_config_loads() -> None:
    with pytest.raises(ValueError, match="unknown encoding"):
        _dataset(encoding="klingon-8")
