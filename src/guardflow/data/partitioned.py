"""A large table as the data stages leave it: Parquet parts on disk, with the accounting of the rows.

Accepted rows are in `<run_dir>/accepted/part-NNNNN.parquet` (the typed columns `data.table.typed_frame`
gives, plus `source_row`, int64); the scan's verdicts are in `<run_dir>/scan/part-NNNNN.parquet` (`source_row`,
`flagged`, `reason`), one per accepted part. The rows to train on: each accepted part minus the rows flagged in
its scan part (`rows_to_train`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from guardflow.data.table import SOURCE_ROW

if TYPE_CHECKING:
    from guardflow.contract.validate_contract import ExpectationOutcome

ACCEPTED_FOLDER = "accepted"
SCAN_FOLDER = "scan"
FLAGGED = "flagged"
REASON = "reason"
# Flagged by `label_noise` alone: never trained on, but fit for the calibration (ScanResult.calibration_only).
CALIBRATION_ONLY = "calibration_only"


def part_name(index: int) -> str:
    """`part-00007.parquet`: parts sort in the order of the source."""
    return f"part-{index:05d}.parquet"


@dataclass(frozen=True)
class SourceChecksum:
    """One input file and the sha256 of its content."""

    path: Path
    sha256: str


@dataclass(frozen=True)
class PartitionedData:
    """The contract's split of a source, partition by partition: accepted parts on disk, quarantine streamed."""

    parts: tuple[Path, ...]
    rows_in: int
    rows_accepted: int
    rows_quarantined: int
    rows_malformed: int
    sources: tuple[SourceChecksum, ...]
    suite_name: str
    outcomes: tuple[ExpectationOutcome, ...]
    quarantine_path: Path


def rows_to_train(
    accepted_part: Path, scan_part: Path | None, columns: list[str] | None = None
) -> pd.DataFrame:
    """One accepted part (index `source_row`) minus the rows its scan part flags."""
    rows = pd.read_parquet(accepted_part, columns=None if columns is None else [SOURCE_ROW, *columns])
    rows = rows.set_index(SOURCE_ROW)
    if scan_part is None:
        return rows
    verdicts = pd.read_parquet(scan_part, columns=[SOURCE_ROW, FLAGGED])
    flagged = verdicts.loc[verdicts[FLAGGED], SOURCE_ROW]
    return rows.drop(index=flagged.to_numpy())
