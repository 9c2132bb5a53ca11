"""A training source: one CSV or Parquet file, or a folder of such files, each with its size and sha256.

The sha256 is streamed over each file's content (decompressed when gzip), as `io/datasets.content_sha256` does
for a single file, so memory stays flat whatever the size. In a folder, files are taken in name order and a
file's `source_row`s are numbered after the previous file's (see `io/partitions.py`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from guardflow.errors import DataError
from guardflow.io.datasets import content_sha256
from guardflow.io.read_parquet import PARQUET_SUFFIXES, is_parquet
from guardflow.settings import DatasetSettings

CSV_SUFFIXES = (".csv", ".csv.gz", ".data", ".txt")


@dataclass(frozen=True)
class SourceFile:
    """One file of a source: its path, size in bytes, sha256 of its content and format, with what its records
    take decoded: `text_bytes` (a CSV's size, a gzip file's decompressed size; a Parquet file's own size) and
    `rows` (a Parquet file's, from its footer; None for CSV, whose rows are only known once read)."""

    path: Path
    bytes: int
    sha256: str
    parquet: bool
    text_bytes: int
    rows: int | None = None


@dataclass(frozen=True)
class Source:
    """What a stage reads: the path given (a file or a folder) and its files, in order."""

    path: Path
    files: tuple[SourceFile, ...]

    @property
    def is_folder(self) -> bool:
        return self.path.is_dir()

    @property
    def bytes(self) -> int:
        return sum(file.bytes for file in self.files)

    @property
    def text_bytes(self) -> int:
        return sum(file.text_bytes for file in self.files)

    @property
    def parquet_rows(self) -> int:
        """The rows of its Parquet files (CSV files count none)."""
        return sum(file.rows or 0 for file in self.files)


def _gzip_size(path: Path) -> int:
    """The decompressed size gzip records in a file's last four bytes (modulo 4 GiB, of its last member: a lower
    bound, enough to tell a large file from a small one); 0 when the file is not gzip."""
    with path.open("rb") as stream:
        if stream.read(2) != b"\x1f\x8b":
            return 0
        stream.seek(-4, 2)
        return int.from_bytes(stream.read(4), "little")


def list_source(path: Path, dataset: DatasetSettings) -> list[tuple[Path, bool]]:
    """The data files of `path` (itself, or a folder's CSV and Parquet files in name order) and which are Parquet."""
    path = Path(path)
    if path.is_file():
        return [(path.resolve(), is_parquet(path, dataset))]
    if not path.is_dir():
        raise DataError(f"data file not found: {path}")
    found = [
        (file.resolve(), is_parquet(file, dataset))
        for file in sorted(path.iterdir())
        if file.is_file() and file.name.lower().endswith((*CSV_SUFFIXES, *PARQUET_SUFFIXES))
    ]
    if not found:
        raise DataError(f"{path}: the folder holds no CSV or Parquet file")
    return found


def open_source(
    path: Path, dataset: DatasetSettings, expected_sha256: str | None = None, checksums: bool = True
) -> Source:
    """The source at `path` with every file's size and sha256 (streamed; `checksums=False` leaves them empty for
    a caller that computes them while reading). `expected_sha256` applies to a single file."""
    files = []
    for file, parquet in list_source(path, dataset):
        digest = content_sha256(file) if checksums else ""
        if expected_sha256 is not None and checksums and digest != expected_sha256:
            raise DataError(
                f"checksum mismatch for {file}: expected sha256 {expected_sha256}, found {digest}"
            )
        size = file.stat().st_size
        if parquet:
            import pyarrow as pa
            import pyarrow.parquet as pq

            try:
                rows = pq.ParquetFile(file).metadata.num_rows
            except (OSError, pa.ArrowException) as error:
                raise DataError(f"cannot read Parquet file {file}: {str(error).splitlines()[0]}") from None
            files.append(SourceFile(file, size, digest, parquet, text_bytes=size, rows=rows))
        else:
            files.append(SourceFile(file, size, digest, parquet, text_bytes=max(size, _gzip_size(file))))
    return Source(path=Path(path).resolve(), files=tuple(files))


def source_sha256(checksums: Sequence[tuple[Path, str]]) -> str:
    """A source's identity: a single file's sha256, or for a folder the sha256 of its files' names and sha256s."""
    if len(checksums) == 1:
        return checksums[0][1]
    listing = "".join(f"{path.name}\t{digest}\n" for path, digest in checksums)
    return hashlib.sha256(listing.encode()).hexdigest()
