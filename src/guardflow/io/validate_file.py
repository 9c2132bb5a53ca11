"""The contract on a file of any size: whole-record chunks validated in worker processes, the quarantine
streamed to parquet, and the whole-file rules judged on the totals."""

from __future__ import annotations

import contextlib
import functools
import gc
import multiprocessing
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from guardflow.contract.suite import load_suite
from guardflow.contract.validate_contract import (
    ExpectationOutcome,
    Verdict,
    check_not_empty,
    conclude,
    judge_rows,
    stop_early,
)
from guardflow.data.table import LINE, REASONS, SOURCE_ROW, empty_malformed, typed_frame
from guardflow.errors import ContractError
from guardflow.io.datasets import Chunk, FileReader, check_sha256
from guardflow.pii.guard_pii import LINE_HMAC, LINE_LENGTH, mask_malformed
from guardflow.settings import ContractSettings, DatasetSettings

if TYPE_CHECKING:
    from great_expectations.core import ExpectationSuite

# About 530k rows of Adult. GX has a fixed cost per validation (about as much as 500k rows of work, measured),
# so chunks are big; memory stays bounded by chunk size x workers, whatever the file's size.
# About 530k rows of Adult. GX has a fixed cost per validation (about as much as 500k rows of work, measured),
# so chunks are big; memory stays bounded by chunk size x workers, whatever the file's size.
CHUNK_BYTES = 56 * 2**20


@dataclass(frozen=True)
class FileContractResult:
    """The contract's verdict on a whole file validated in chunks; quarantined rows were streamed to parquet."""

    path: Path
    sha256: str
    suite_name: str
    rows_in: int
    rows_accepted: int
    rows_quarantined: int
    rows_malformed: int
    outcomes: tuple[ExpectationOutcome, ...]
    quarantine_path: Path
    chunks: int
    report_path: Path | None = None  # chunks are validated apart: no single Data Docs page


def validate_file(
    path: Path,
    dataset: DatasetSettings,
    contract: ContractSettings,
    quarantine_path: Path,
    *,
    skip_rows: int = 0,
    expected_sha256: str | None = None,
    chunk_bytes: int = CHUNK_BYTES,
    workers: int = 1,
    line_key: bytes | None = None,
) -> FileContractResult:
    """Validate a file of any size chunk by chunk, in bounded memory, with the verdict taken over the whole file.

    Chunks of about `chunk_bytes` (whole records) are validated by GX in `workers` processes; quarantined rows
    (original text, `source_row`, reasons; malformed lines with their `line` text) stream to `quarantine_path`.
    Batch-level checks (empty file, all-null columns, row count, `mostly`, label set, quarantined share) are
    judged on the totals; a `stop` expectation broken in any chunk stops at once. Raises `ContractError` or
    `DataError` with one line. `line_key`: write malformed lines as length and keyed hash, not as text.
    """
    try:
        return _validate_file(
            path,
            dataset,
            contract,
            quarantine_path,
            skip_rows,
            expected_sha256,
            chunk_bytes,
            workers,
            line_key,
        )
    except ContractError as error:
        raise ContractError(f"{Path(path).resolve()}: {error}") from None


def _validate_file(
    path: Path,
    dataset: DatasetSettings,
    contract: ContractSettings,
    quarantine_path: Path,
    skip_rows: int,
    expected_sha256: str | None,
    chunk_bytes: int,
    workers: int,
    line_key: bytes | None,
) -> FileContractResult:
    suite = load_suite(contract.suite)
    reader = FileReader(path, dataset, skip_rows, block_bytes=chunk_bytes)
    verdicts: list[Verdict] = []
    quarantined = 0
    with _QuarantineWriter(quarantine_path, dataset, line_key) as writer, _pool(workers) as pool:
        for verdict in _judge_chunks(reader, dataset, contract.suite, pool, workers):
            writer.write(verdict.quarantined)
            quarantined += len(verdict.quarantined)
            verdicts.append(verdict.summary())
            stop_early(verdict, suite)
            del verdict
            _release_memory()
    check_sha256(path, expected_sha256, reader.sha256)
    check_not_empty(sum(verdict.rows_parsed for verdict in verdicts), empty_malformed())
    outcomes = conclude(suite, contract, verdicts)
    rows_in = sum(verdict.rows_in for verdict in verdicts)
    rows_accepted = sum(verdict.rows_accepted for verdict in verdicts)
    if rows_in != rows_accepted + quarantined or rows_in != reader.rows_parsed + reader.rows_malformed:
        raise RuntimeError(
            f"chunked contract lost rows: {rows_in} in, {rows_accepted} accepted + {quarantined} quarantined"
        )
    return FileContractResult(
        path=Path(path).resolve(),
        sha256=reader.sha256,
        suite_name=suite.name,
        rows_in=rows_in,
        rows_accepted=rows_accepted,
        rows_quarantined=quarantined,
        rows_malformed=reader.rows_malformed,
        outcomes=outcomes,
        quarantine_path=quarantine_path,
        chunks=len(verdicts),
    )


def _judge_chunk(chunk: Chunk, dataset: DatasetSettings, suite_path: Path) -> Verdict:
    """The contract on one chunk of a file; runs in a worker process."""
    suite = _cached_suite(suite_path)
    rows, malformed = chunk.parse(dataset.na_values)
    verdict = judge_rows(rows, typed_frame(rows, dataset), malformed, suite)
    del rows
    _release_memory()
    return verdict


def _release_memory() -> None:
    """Hand freed memory back to the system after a chunk: Arrow's pool otherwise keeps it, and a long file
    would grow each worker's resident set chunk after chunk."""
    import pyarrow as pa

    gc.collect()
    pa.default_memory_pool().release_unused()


@functools.lru_cache(maxsize=4)
def _cached_suite(path: Path) -> ExpectationSuite:
    return load_suite(path)


def _judge_chunks(
    reader: FileReader, dataset: DatasetSettings, suite_path: Path, pool: Executor | None, workers: int
) -> Iterator[Verdict]:
    """Verdicts of the file's chunks in order; at most `workers` chunks in flight, so memory stays bounded."""
    if pool is None:
        for chunk in reader.chunks():
            yield _judge_chunk(chunk, dataset, suite_path)
        return
    pending: deque[Future[Verdict]] = deque()
    for chunk in reader.chunks():
        pending.append(pool.submit(_judge_chunk, chunk, dataset, suite_path))
        if len(pending) >= workers:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


@contextlib.contextmanager
def _pool(workers: int) -> Iterator[Executor | None]:
    """Worker processes forked from this one (GX already imported), or None to validate in this process."""
    if workers <= 1:
        yield None
        return
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"))
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


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
