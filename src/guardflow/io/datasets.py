"""Reading tabular data files: checksums first, every value kept as the text it was written as."""

from __future__ import annotations

import gzip
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from guardflow.errors import DataError
from guardflow.settings import DataFile, DatasetSettings

SOURCE_ROW = "source_row"


@dataclass(frozen=True)
class Table:
    """A data file as read: its rows as text (index = `source_row`, 0-based in the file) and its sha256."""

    path: Path
    sha256: str
    rows: pd.DataFrame

    @property
    def row_count(self) -> int:
        return len(self.rows)


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except (OSError, EOFError) as error:
        raise DataError(f"cannot read data file {path}: {error}") from None


def content_sha256(path: Path) -> str:
    """sha256 of a file's content, decompressed when the file is gzip: the identity of the data itself."""
    return hashlib.sha256(_read_bytes(path)).hexdigest()


def read_table(
    path: Path, dataset: DatasetSettings, skip_rows: int = 0, expected_sha256: str | None = None
) -> Table:
    """Read a CSV as text, refusing it when its checksum does not match or it holds no data at all."""
    content = _read_bytes(path)
    digest = hashlib.sha256(content).hexdigest()
    if expected_sha256 is not None and digest != expected_sha256:
        raise DataError(f"checksum mismatch for {path}: expected sha256 {expected_sha256}, found {digest}")
    if not content.strip():
        raise DataError(f"data file is empty: {path}")
    try:
        rows = pd.read_csv(
            io.BytesIO(content),
            header=0 if dataset.header else None,
            names=None if dataset.header else dataset.columns,
            skiprows=skip_rows,
            dtype=str,
            skipinitialspace=True,
            keep_default_na=False,
            na_values=[*dataset.na_values, ""],
            skip_blank_lines=True,
        )
    except pd.errors.EmptyDataError:
        raise DataError(f"data file is empty: {path}") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        first_line = str(error).strip().splitlines()[0]
        raise DataError(f"cannot parse {path} as CSV: {first_line}") from None
    rows.columns = [str(column).strip() for column in rows.columns]
    rows.index = pd.RangeIndex(len(rows), name=SOURCE_ROW)
    return Table(path=path.resolve(), sha256=digest, rows=rows)


def read_split(dataset: DatasetSettings, split: str) -> Table:
    """Read the configured train or test file, checking it against the sha256 in the config."""
    data_file: DataFile = getattr(dataset, split)
    return read_table(data_file.path, dataset, data_file.skip_rows, data_file.sha256)


def typed_frame(rows: pd.DataFrame, dataset: DatasetSettings) -> pd.DataFrame:
    """Numeric features as floats (unparsable text becomes missing), labels with aliases resolved."""
    typed = rows.copy()
    for name, feature in dataset.features.items():
        if feature.type == "numeric" and name in typed:
            typed[name] = pd.to_numeric(typed[name], errors="coerce").astype("float64")
    label = dataset.label.column
    if label in typed and dataset.label.aliases:
        typed[label] = typed[label].replace(dataset.label.aliases)
    return typed


def label_vector(frame: pd.DataFrame, dataset: DatasetSettings) -> pd.Series:
    """1 for the positive class, 0 for the negative one (rows with other labels must be filtered before)."""
    return (frame[dataset.label.column] == dataset.label.positive).astype("int64")


def write_table(rows: pd.DataFrame, path: Path, dataset: DatasetSettings) -> str:
    """Write text rows in the dataset's own format (so `read_table` reads them back) and return the sha256."""
    missing = dataset.na_values[0] if dataset.na_values else ""
    text = rows.to_csv(index=False, header=dataset.header, na_rep=missing, lineterminator="\n")
    content = text.encode("utf-8")
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(content, mtime=0))
    else:
        path.write_bytes(content)
    return hashlib.sha256(content).hexdigest()


def labelled_rows(rows: pd.DataFrame, dataset: DatasetSettings) -> pd.DataFrame:
    """Typed rows whose label is one of the two classes: the held-out rows a model is judged on."""
    typed = typed_frame(rows, dataset)
    return typed[typed[dataset.label.column].isin([dataset.label.positive, dataset.label.negative])]
