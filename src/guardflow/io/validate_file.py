"""The contract on a source of any size: partitions of whole records validated on Dask workers (or in this
process), accepted rows written by the workers as Parquet parts, the quarantine streamed to parquet, and the
whole-file rules judged on the totals."""

from __future__ import annotations

import functools
import gc
import shutil
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from guardflow.contract.suite import load_suite
from guardflow.contract.validate_contract import (
    Verdict,
    check_not_empty,
    conclude,
    judge_rows,
    stop_early,
)
from guardflow.data.partitioned import PartitionedData, SourceChecksum, part_name
from guardflow.data.table import LINE, REASONS, SOURCE_ROW, empty_malformed, typed_frame
from guardflow.errors import ContractError
from guardflow.io.partitions import Partition, SourceReader, read_partition
from guardflow.io.sources import Source, open_source, source_sha256
from guardflow.pii.guard_pii import LINE_HMAC, LINE_LENGTH, mask_malformed
from guardflow.runtime import freeze_loaded_objects
from guardflow.settings import ContractSettings, DatasetSettings

if TYPE_CHECKING:
    from distributed import Client
    from great_expectations.core import ExpectationSuite

# About 530k rows of Adult. GX has a fixed cost per validation (about as much as 500k rows of work, measured),
# so partitions are big; memory stays bounded by partition size x partitions in flight, whatever the file's size.
CHUNK_BYTES = 56 * 2**20
# Partitions at least this big hand their memory back to the system when done (see _release_memory).
_RELEASE_ROWS = 50_000


@dataclass(frozen=True)
class FileContractResult:
    """The contract's verdict on a whole source validated in partitions; quarantined rows were streamed to parquet
    and, when asked for, accepted rows written as Parquet parts (`partitioned.parts`)."""

    path: Path
    sha256: str
    suite_name: str
    rows_in: int
    rows_accepted: int
    rows_quarantined: int
    rows_malformed: int
    outcomes: tuple[Any, ...]
    quarantine_path: Path
    chunks: int
    partitioned: PartitionedData
    report_path: Path | None = None  # partitions are validated apart: no single Data Docs page


def validate_file(
    path: Path,
    dataset: DatasetSettings,
    contract: ContractSettings,
    quarantine_path: Path,
    *,
    skip_rows: int = 0,
    expected_sha256: str | None = None,
    chunk_bytes: int = CHUNK_BYTES,
    client: Client | None = None,
    accepted_dir: Path | None = None,
    line_key: bytes | None = None,
) -> FileContractResult:
    """Validate a file or a folder of files partition by partition, with the verdict taken over the whole source.

    Partitions of about `chunk_bytes` (whole records) are validated by GX on `client`'s workers (in this process
    when None), at most two per worker in flight; quarantined rows (original text, `source_row`, reasons;
    malformed lines with their `line` text) stream to `quarantine_path`. With `accepted_dir`, each worker writes
    its partition's accepted rows there as `part-NNNNN.parquet`. Batch-level checks (empty file, all-null
    columns, row count, `mostly`, label set, quarantined share) are judged on the totals; a `stop` expectation
    broken in any partition stops at once. Raises `ContractError` or `DataError` with one line. `line_key`:
    write malformed lines as length and keyed hash, not as text.
    """
    source = open_source(Path(path), dataset, checksums=False)
    try:
        partitioned, chunks = _validate_source(
            source,
            dataset,
            contract,
            quarantine_path,
            skip_rows,
            expected_sha256,
            chunk_bytes,
            client,
            accepted_dir,
            line_key,
        )
    except ContractError as error:
        if accepted_dir is not None:
            shutil.rmtree(accepted_dir, ignore_errors=True)  # a stopped batch leaves no rows to train on
        raise ContractError(f"{source.path}: {error}") from None
    return FileContractResult(
        path=source.path,
        sha256=source_sha256([(source.path, source.sha256) for source in partitioned.sources]),
        suite_name=partitioned.suite_name,
        rows_in=partitioned.rows_in,
        rows_accepted=partitioned.rows_accepted,
        rows_quarantined=partitioned.rows_quarantined,
        rows_malformed=partitioned.rows_malformed,
        outcomes=partitioned.outcomes,
        quarantine_path=quarantine_path,
        chunks=chunks,
        partitioned=partitioned,
    )


def _validate_source(
    source: Source,
    dataset: DatasetSettings,
    contract: ContractSettings,
    quarantine_path: Path,
    skip_rows: int,
    expected_sha256: str | None,
    chunk_bytes: int,
    client: Client | None,
    accepted_dir: Path | None,
    line_key: bytes | None,
) -> tuple[PartitionedData, int]:
    suite = load_suite(contract.suite)
    reader = SourceReader(source, dataset, chunk_bytes, skip_rows, expected_sha256)
    if accepted_dir is not None:
        shutil.rmtree(accepted_dir, ignore_errors=True)
        accepted_dir.mkdir(parents=True)
    verdicts: list[Verdict] = []
    quarantined = 0
    judge = functools.partial(
        _judge_partition, dataset=dataset, suite_path=contract.suite, accepted_dir=accepted_dir
    )
    with _QuarantineWriter(quarantine_path, dataset, line_key) as writer:
        for verdict in _in_order(judge, enumerate(reader.partitions()), client):
            writer.write(verdict.quarantined)
            quarantined += len(verdict.quarantined)
            verdicts.append(verdict.summary())
            stop_early(verdict, suite)
    check_not_empty(sum(verdict.rows_parsed for verdict in verdicts), empty_malformed())
    outcomes = conclude(suite, contract, verdicts)
    rows_in = sum(verdict.rows_in for verdict in verdicts)
    rows_accepted = sum(verdict.rows_accepted for verdict in verdicts)
    # Counted where the lines were parsed: a plain block's lines are all taken as records when it is cut.
    rows_malformed = sum(verdict.rows_in - verdict.rows_parsed for verdict in verdicts)
    if rows_in != rows_accepted + quarantined or rows_in != reader.rows_parsed + reader.rows_malformed:
        raise RuntimeError(
            f"partitioned contract lost rows: {rows_in} in, {rows_accepted} accepted + {quarantined} quarantined"
        )
    parts = (
        tuple(accepted_dir / part_name(index) for index in range(len(verdicts)))
        if accepted_dir is not None
        else ()
    )
    partitioned = PartitionedData(
        parts=parts,
        rows_in=rows_in,
        rows_accepted=rows_accepted,
        rows_quarantined=quarantined,
        rows_malformed=rows_malformed,
        sources=tuple(SourceChecksum(path, sha256) for path, sha256 in reader.sha256s.items()),
        suite_name=suite.name,
        outcomes=outcomes,
        quarantine_path=quarantine_path,
    )
    return partitioned, len(verdicts)


def _in_order(
    judge: Callable[[tuple[int, Partition]], Verdict],
    partitions: Iterator[tuple[int, Partition]],
    client: Client | None,
) -> Iterator[Verdict]:
    """Verdicts of the partitions in order; on a cluster, at most two partitions per worker in flight (one being
    judged, one on its way), so the client's memory stays bounded."""
    if client is None:
        for item in partitions:
            yield judge(item)
        return
    window = 2 * max(len(client.scheduler_info(n_workers=-1)["workers"]), 1)
    pending: deque[Any] = deque()
    try:
        for item in partitions:
            (data,) = client.scatter([item])  # a partition of CSV carries its bytes: send them, not a graph
            pending.append(client.submit(judge, data, pure=False))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()


def _judge_partition(
    item: tuple[int, Partition], dataset: DatasetSettings, suite_path: Path, accepted_dir: Path | None
) -> Verdict:
    """The contract on one partition (on a worker): its verdict, and its accepted rows written as a part."""
    index, partition = item
    suite = _cached_suite(suite_path)
    rows, malformed = read_partition(partition, dataset.na_values)
    typed = typed_frame(rows, dataset)
    verdict = judge_rows(rows, typed, malformed, suite)
    if accepted_dir is not None:
        accepted = typed.drop(index=verdict.quarantined.index.difference(malformed.index))
        accepted.reset_index().to_parquet(accepted_dir / part_name(index), index=False)
    size = len(rows)
    del rows, typed
    _release_memory(size)
    return verdict


def warm_workers(client: Client | None, suite_path: Path) -> list[Any]:
    """Have each worker import the contract's libraries and load the suite now, in the background, while this
    process does other work (about 4.6 s per worker, measured, otherwise spent when the first partition comes).
    Keep the returned futures until the contract runs: Dask drops work whose futures are gone."""
    if client is None:
        return []
    workers = client.scheduler_info(n_workers=-1)["workers"]
    return [
        client.submit(_cached_suite, suite_path, workers=[worker], allow_other_workers=False, pure=False)
        for worker in workers
    ]


def _release_memory(rows: int) -> None:
    """Hand freed memory back to the system after a partition of `rows` rows: Arrow's pool otherwise keeps it, and
    a long file would grow each worker's resident set partition after partition. Small partitions (tests, small
    files) skip it."""
    if rows < _RELEASE_ROWS:
        return
    import pyarrow as pa

    freeze_loaded_objects()  # once per worker, after its first partition's imports
    gc.collect()
    pa.default_memory_pool().release_unused()


@functools.lru_cache(maxsize=4)
def _cached_suite(path: Path) -> ExpectationSuite:
    return load_suite(path)


class _QuarantineWriter:
    """Appends quarantined rows to one parquet file as they come: `source_row`, the columns as text, `line`,
    `stage` and `reasons`."""

    def __init__(self, path: Path, dataset: DatasetSettings, line_key: bytes | None = None) -> None:
        import pyarrow as pa

        self.path = Path(path)
        self.columns = list(dataset.expected_columns)
        self.line_key = line_key
        line_fields = (
            [(LINE, pa.string())]
            if line_key is None
            else [(LINE_LENGTH, pa.int64()), (LINE_HMAC, pa.string())]
        )
        self.schema = pa.schema(
            [
                (SOURCE_ROW, pa.int64()),
                *[(column, pa.string()) for column in self.columns],
                *line_fields,
                ("stage", pa.string()),
                (REASONS, pa.list_(pa.string())),
            ]
        )
        self.rows_written = 0

    def __enter__(self) -> _QuarantineWriter:
        import pyarrow.parquet as pq

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = pq.ParquetWriter(self.path, self.schema)
        return self

    def write(self, quarantined: pd.DataFrame) -> None:
        import pyarrow as pa

        if quarantined.empty:
            return
        if self.line_key is not None and LINE in quarantined:
            lines = quarantined[LINE].notna()
            masked = mask_malformed(quarantined.loc[lines, [LINE]], self.line_key)
            quarantined = quarantined.drop(columns=[LINE]).join(masked)
        lines_as = [LINE] if self.line_key is None else [LINE_LENGTH, LINE_HMAC]
        frame = quarantined.reset_index().reindex(columns=[SOURCE_ROW, *self.columns, *lines_as, REASONS])
        frame["stage"] = "contract"
        frame = frame[[field.name for field in self.schema]].astype(object).where(frame.notna(), None)
        self._writer.write_table(pa.Table.from_pandas(frame, schema=self.schema, preserve_index=False))
        self.rows_written += len(frame)

    def __exit__(self, *exc_info: object) -> None:
        self._writer.close()
