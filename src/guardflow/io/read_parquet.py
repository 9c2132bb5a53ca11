"""Parquet input: every column read as text, as a CSV's would be, with the same row accounting and checksum.

`source_row` is the row's 0-based number in the file (Parquet has no header line); the sha256 is of the file's
bytes. A Parquet file cannot hold a malformed line: its columns are checked against the contract's like a
header, and values become the text Arrow writes for them (`39`, `0.5`, `true`, `1990-05-01`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from guardflow.data.table import SOURCE_ROW, Table, column_problems
from guardflow.errors import DataError
from guardflow.settings import DatasetSettings

PARQUET_SUFFIXES = (".parquet", ".pq")
_MAGIC = b"PAR1"


def is_parquet(path: Path, dataset: DatasetSettings) -> bool:
    """A `.parquet` file, or any file of a `format: parquet` dataset that is one (its first bytes say so): a CSV
    that guardflow wrote for such a dataset (a drift retrain's data) is still read as CSV."""
    if path.suffix.lower() in PARQUET_SUFFIXES:
        return True
    if dataset.format != "parquet" or not path.is_file():
        return False
    with path.open("rb") as stream:
        return stream.read(len(_MAGIC)) == _MAGIC


def read_parquet_table(
    path: Path,
    dataset: DatasetSettings,
    expected_sha256: str | None = None,
    optional_columns: frozenset[str] = frozenset(),
) -> Table:
    """Read a Parquet file as text columns indexed by `source_row`; refuse a bad checksum or wrong columns."""
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    sha256 = _file_sha256(path)
    if expected_sha256 is not None and sha256 != expected_sha256:
        raise DataError(f"checksum mismatch for {path}: expected sha256 {expected_sha256}, found {sha256}")
    rows = read_parquet_text(path, dataset.na_values)
    names = [str(name) for name in rows.columns]
    expected = [name for name in dataset.expected_columns if name in names or name not in optional_columns]
    problems = column_problems(names, expected)
    if problems:
        raise DataError(f"{path}: the columns do not match the contract's columns: " + "; ".join(problems))
    if rows.empty:
        raise DataError(f"data file has no rows: {path}")
    return Table(path=path.resolve(), sha256=sha256, rows=rows)


def read_parquet_text(
    path: Path, na_values: list[str], row_groups: tuple[int, ...] | None = None, first_row: int = 0
) -> pd.DataFrame:
    """Every column of a Parquet file (or of some of its row groups, whose first row is `first_row`) as text
    (missing values and `na_values` as nulls), indexed by `source_row`."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        table = parquet.read() if row_groups is None else parquet.read_row_groups(list(row_groups))
    except (OSError, pa.ArrowException) as error:
        raise DataError(f"cannot read Parquet file {path}: {str(error).splitlines()[0]}") from None
    names = [str(name) for name in table.column_names]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise DataError(f"{path}: duplicate column names {duplicates}")
    missing = pa.array([*na_values, ""], type=pa.string())
    columns = {}
    for name, column in zip(names, table.columns, strict=True):
        try:
            text = pc.cast(column, pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise DataError(f"{path}: column '{name}' ({column.type}) cannot be read as text") from None
        columns[name] = pc.if_else(pc.is_in(text, value_set=missing), pa.scalar(None, pa.string()), text)
    text_dtype = pd.Series([], dtype="str").dtype  # what read_csv(dtype=str) gives: pandas 3's str, or object
    mapper = {pa.string(): text_dtype}.get if isinstance(text_dtype, pd.StringDtype) else None
    rows = pa.table(columns).to_pandas(types_mapper=mapper)
    rows.index = pd.Index(np.arange(first_row, first_row + len(rows), dtype="int64"), name=SOURCE_ROW)
    return rows


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while data := stream.read(2**20):
            digest.update(data)
    return digest.hexdigest()
