"""A source cut into partitions of whole records, each read where it is processed (a Dask worker or here).

A CSV file is streamed by `FileReader` (records cut at newlines outside quotes, malformed lines set aside) into
partitions of about `partition_bytes`; a Parquet file is cut at row-group boundaries into partitions of about as
many rows as `partition_bytes` of CSV text would hold, and each partition is read by the worker from the path.
`source_row` is a row's position in the source: its line number in a CSV file, its row number in a Parquet file,
and in a folder, numbered on after the previous file's last row.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from guardflow.data.table import Table, column_problems, empty_malformed
from guardflow.errors import DataError
from guardflow.io.datasets import FileRange, FileReader, check_sha256, content_sha256
from guardflow.io.parse_records import Chunk
from guardflow.io.read_parquet import read_parquet_text
from guardflow.io.sources import Source, open_source, source_sha256
from guardflow.settings import DatasetSettings

if TYPE_CHECKING:
    from distributed import Client

# A Parquet row group counts as this many bytes per value, about what its CSV text takes (Adult's: 7): its stored
# size (dictionary-encoded, compressed: ~15 bytes a row for Adult) says little about the work and memory of
# parsing, validating and scoring its rows.
TEXT_BYTES_PER_VALUE = 8


@dataclass(frozen=True)
class CsvPartition:
    """Whole records of a CSV file, already cut (malformed lines set aside) or plain lines by their place in the
    file (read by the worker); `offset` shifts its `source_row`s."""

    chunk: Chunk | FileRange
    offset: int

    @property
    def row_count(self) -> int:
        return self.chunk.row_count


@dataclass(frozen=True)
class ParquetPartition:
    """Row groups of a Parquet file, read on the worker; `first_row` is the `source_row` of the first one."""

    path: Path
    row_groups: tuple[int, ...]
    first_row: int
    rows: int

    @property
    def row_count(self) -> int:
        return self.rows


Partition = CsvPartition | ParquetPartition


def read_partition(partition: Partition, na_values: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The partition's parsed rows as text and its malformed lines, both indexed by `source_row`."""
    if isinstance(partition, ParquetPartition):
        rows = read_parquet_text(partition.path, na_values, partition.row_groups, partition.first_row)
        return rows, empty_malformed()
    rows, malformed = partition.chunk.parse(na_values)
    if partition.offset:
        rows.index = rows.index + partition.offset
        malformed.index = malformed.index + partition.offset
    return rows, malformed


class SourceReader:
    """Cuts a source into partitions, in order; after the last one, `sha256s` holds each file's checksum and
    `rows_parsed` / `rows_malformed` the whole source's counts (as `FileReader` has them for one file)."""

    def __init__(
        self,
        source: Source,
        dataset: DatasetSettings,
        partition_bytes: int,
        skip_rows: int = 0,
        expected_sha256: str | None = None,
    ) -> None:
        self.source = source
        self.dataset = dataset
        self.partition_bytes = partition_bytes
        self.skip_rows = skip_rows
        self.expected_sha256 = expected_sha256 if len(source.files) == 1 else None
        self.sha256s: dict[Path, str] = {}
        self.rows_parsed = 0
        self.rows_malformed = 0

    def partitions(self) -> Iterator[Partition]:
        offset = 0
        for file in self.source.files:
            if file.parquet:
                yield from self._parquet(file.path, offset)
                offset = self._next_offset
                self.sha256s[file.path] = file.sha256 or content_sha256(file.path)
            else:
                reader = FileReader(
                    file.path, self.dataset, self.skip_rows, block_bytes=self.partition_bytes, ranges=True
                )
                last = -1
                for chunk in reader.chunks():
                    last = max(last, _last_row(chunk))
                    yield CsvPartition(chunk=chunk, offset=offset)
                offset += last + 1
                self.rows_parsed += reader.rows_parsed
                self.rows_malformed += reader.rows_malformed
                self.sha256s[file.path] = reader.sha256
            check_sha256(file.path, self.expected_sha256, self.sha256s[file.path])

    def _parquet(self, path: Path, offset: int) -> Iterator[ParquetPartition]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            metadata = pq.ParquetFile(path).metadata
            names = [str(name) for name in pq.ParquetFile(path).schema_arrow.names]
        except (OSError, pa.ArrowException) as error:
            raise DataError(f"cannot read Parquet file {path}: {str(error).splitlines()[0]}") from None
        problems = column_problems(names, self.dataset.expected_columns)
        if problems:
            raise DataError(
                f"{path}: the columns do not match the contract's columns: " + "; ".join(problems)
            )
        if metadata.num_rows == 0:
            raise DataError(f"data file has no rows: {path}")
        groups: list[int] = []
        size = rows = 0
        first = offset
        for index in range(metadata.num_row_groups):
            group = metadata.row_group(index)
            groups.append(index)
            size += group.num_rows * group.num_columns * TEXT_BYTES_PER_VALUE
            rows += group.num_rows
            if size >= self.partition_bytes or index == metadata.num_row_groups - 1:
                yield ParquetPartition(path=path, row_groups=tuple(groups), first_row=first, rows=rows)
                self.rows_parsed += rows
                first += rows
                groups, size, rows = [], 0, 0
        self._next_offset = first


def _last_row(chunk: Chunk | FileRange) -> int:
    if isinstance(chunk, FileRange):
        return chunk.first_line + chunk.lines - 1
    return max(int(row) for row in [*chunk.source_rows[-1:], *chunk.malformed.index[-1:]])


def sample_parts(
    parts: Sequence[Path],
    limit: int,
    seed: int,
    columns: list[str] | None = None,
    scan_parts: Sequence[Path] | None = None,
) -> pd.DataFrame:
    """A uniform random sample of at most `limit` rows over Parquet parts (index `source_row`), read part by part
    so memory holds one part and the sample: what drift compares when the data is large. With `scan_parts`,
    the rows the scan flagged are left out first. All rows, in order, when there are no more than `limit`."""
    import numpy as np

    from guardflow.data.partitioned import rows_to_train

    pairs = list(zip(parts, scan_parts if scan_parts is not None else [None] * len(parts), strict=True))
    if scan_parts is None:
        import pyarrow.parquet as pq

        sizes = [pq.ParquetFile(part).metadata.num_rows for part in parts]
    else:
        sizes = [len(rows_to_train(part, scan, columns=[])) for part, scan in pairs]
    total = sum(sizes)
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(total, size=limit, replace=False)) if total > limit else None
    frames = []
    start = 0
    for (part, scan), size in zip(pairs, sizes, strict=True):
        rows = rows_to_train(part, scan, columns)
        if chosen is not None:
            mine = chosen[(chosen >= start) & (chosen < start + size)] - start
            rows = rows.iloc[mine]
        frames.append(rows)
        start += size
    return pd.concat(frames)


def sample_source(
    path: Path,
    dataset: DatasetSettings,
    limit: int,
    seed: int,
    partition_bytes: int,
    client: Client | None = None,
    expected_sha256: str | None = None,
) -> Table:
    """A uniform seeded random sample of at most `limit` parsed rows of a source of any size, as text rows (a
    `Table` whose sha256 is the source's): what drift compares when the reference or the batch is large.

    Each partition (read and sampled on `client`'s workers, or here) gives every row a seeded random key and keeps
    its `limit` smallest; the `limit` smallest over all partitions are a uniform sample without replacement
    (bottom-k sampling), so memory holds two samples, whatever the source's size. Malformed lines are not
    sampled (they cannot be compared)."""
    source = open_source(Path(path), dataset, checksums=False)
    reader = SourceReader(source, dataset, partition_bytes, expected_sha256=expected_sha256)
    draw = functools.partial(_bottom_keys, na_values=dataset.na_values, limit=limit, seed=seed)
    kept: pd.DataFrame | None = None
    items = enumerate(reader.partitions())
    results = (
        (draw(item) for item in items)
        if client is None
        else (future.result() for future in _submitted(client, draw, items))
    )
    for keyed in results:
        kept = keyed if kept is None else pd.concat([kept, keyed]).nsmallest(limit, _KEY)
    rows = kept.drop(columns=[_KEY]).sort_index() if kept is not None else pd.DataFrame()
    sha256 = source_sha256(list(reader.sha256s.items()))
    return Table(path=source.path, sha256=sha256, rows=rows)


_KEY = "__sample_key__"


def _bottom_keys(item: tuple[int, Partition], na_values: list[str], limit: int, seed: int) -> pd.DataFrame:
    """The partition's `limit` rows with the smallest seeded random keys, with their keys."""
    import numpy as np

    index, partition = item
    rows, _ = read_partition(partition, na_values)
    rows[_KEY] = np.random.default_rng([seed, index]).random(len(rows))
    return rows.nsmallest(limit, _KEY) if len(rows) > limit else rows


def _submitted(
    client: Client,
    draw: Callable[[tuple[int, Partition]], pd.DataFrame],
    items: Iterator[tuple[int, Partition]],
) -> Iterator[Any]:
    """Futures of `draw` over the partitions, at most two per worker in flight."""
    from collections import deque

    window = 2 * max(len(client.scheduler_info(n_workers=-1)["workers"]), 1)
    pending: deque[Any] = deque()
    for item in items:
        (data,) = client.scatter([item])
        pending.append(client.submit(draw, data, pure=False))
        if len(pending) >= window:
            yield pending.popleft()
    yield from pending
