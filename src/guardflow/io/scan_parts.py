"""The poisoning scan over Parquet parts (the contract's accepted rows), partition by partition on Dask workers
(or in this process): partition-wise scoring against global reductions, plus the detectors that need rows
together run on a bounded sample.

1. Each part reduces to its numeric columns' distinct values (capped) and its row count; together they fix how
   every part codes its values.
2. Each part reduces to its code and code-pair counts (summed: the off-manifold statistics) and hands over its
   share of a seeded random sample of at most `sample_rows` rows (every row, when the data is that small).
3. On the sample, here: the outlier forest is fitted, and the detectors that judge rows against each other
   (duplicate floods, backdoors, slice purity, the trusted reference, label noise) run. They only see, and so
   only flag, sample rows: on data larger than the sample they are a bounded check, not an exhaustive one.
4. Each part is scored by the partition-wise detectors (out of range, outliers under the forest, off-manifold
   against the global counts), joined with the sample detectors' verdicts on its rows, and its verdicts are
   written to `<scan_dir>/part-NNNNN.parquet` (`source_row`, `flagged`, `reason`).
The scoring code is the in-memory scan's (`poisoning/scan_poisoning.py`): on data no larger than the sample, the
verdicts are the in-memory scan's, row for row.
"""

from __future__ import annotations

import functools
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pandas as pd

from guardflow.data.partitioned import CALIBRATION_ONLY, FLAGGED, REASON, part_name
from guardflow.data.table import SOURCE_ROW
from guardflow.poisoning.scan_poisoning import (
    _MAX_CODES_OFF_MANIFOLD,
    PARTITION_WISE,
    Detected,
    ScanStatistics,
    check_flagged_share,
    off_manifold_plan,
    scan_result,
    scan_statistics,
    score_partition,
    score_together,
)
from guardflow.poisoning.scan_result import ScanResult
from guardflow.poisoning.value_codes import CodePlan, NumericValues, PairCounts, count_pairs, numeric_values
from guardflow.settings import DatasetSettings, PoisoningSettings

if TYPE_CHECKING:
    from distributed import Client

_T = TypeVar("_T")
QUARANTINE_FILE = "quarantine.parquet"


@dataclass(frozen=True)
class PartitionedScan:
    """The scan's verdicts over every part: counts per detector, where the verdicts and flagged rows are."""

    rows_in: int
    rows_flagged: int
    per_detector: dict[str, int]
    scan_parts: tuple[Path, ...]
    quarantine_path: Path
    sample_rows: int
    # Detectors that ran on the sample only (when it is smaller than the data), and the ones that did not run.
    sampled: tuple[str, ...]
    skipped: dict[str, str]
    detector_seconds: dict[str, float]
    seconds: float

    @property
    def notes(self) -> list[str]:
        """What the summary must say about how the scan saw the data."""
        if not self.sampled:
            return []
        return [
            f"{', '.join(self.sampled)} judged a random sample of {self.sample_rows:,} of {self.rows_in:,} rows "
            "(they compare rows with each other); only sample rows can carry their flags"
        ]


def scan_parts(
    parts: Sequence[Path],
    dataset: DatasetSettings,
    settings: PoisoningSettings,
    scan_dir: Path,
    *,
    sample_rows: int,
    client: Client | None = None,
    reference: pd.DataFrame | None = None,
) -> PartitionedScan:
    """Scan the accepted parts (see the module docstring); raise `PoisoningError` past the flagged-share limit."""
    started = time.perf_counter()
    shutil.rmtree(scan_dir, ignore_errors=True)
    scan_dir.mkdir(parents=True)
    columns = [*dataset.features, dataset.label.column]
    read = functools.partial(_read_part, columns=columns)

    described = _map(client, functools.partial(_describe_part, read=read, dataset=dataset), list(parts))
    rows = [count for count, _ in described]
    total = sum(rows)
    values: dict[str, NumericValues] = functools.reduce(
        lambda left, right: {
            name: seen.merge(right[name], _MAX_CODES_OFF_MANIFOLD) for name, seen in left.items()
        },
        [found for _, found in described],
    )
    plan = off_manifold_plan(dataset, values) if settings.off_manifold else None
    quotas = _sample_quotas(rows, sample_rows)
    reduce_part = functools.partial(_reduce_part, read=read, dataset=dataset, plan=plan, seed=settings.seed)
    reduced = _map(client, reduce_part, list(enumerate(zip(parts, quotas, strict=True))))
    found = [counts for counts, _ in reduced if counts is not None]
    pairs = functools.reduce(lambda left, right: left + right, found) if found else None
    sample = pd.concat([drawn for _, drawn in reduced])
    sampled = len(sample) < total

    begun = time.perf_counter()
    statistics = scan_statistics(plan, pairs, sample, dataset, settings)
    on_sample = score_partition(sample, dataset, settings, statistics)
    together = score_together(sample, dataset, settings, on_sample, reference)
    sample_verdicts = scan_result(sample.index, [together], started)
    sample_seconds = time.perf_counter() - begun

    write_part = functools.partial(
        _score_part,
        read=read,
        dataset=dataset,
        settings=settings,
        statistics=statistics,
        together=sample_verdicts,
        scan_dir=scan_dir,
    )
    scored = _map(client, write_part, list(enumerate(parts)))
    per_detector: dict[str, int] = {}
    for counts, _, _ in scored:
        for name, count in counts.items():
            per_detector[name] = per_detector.get(name, 0) + count
    flagged = sum(count for _, count, _ in scored)
    quarantine_path = scan_dir / QUARANTINE_FILE
    quarantined = [frame for _, _, frame in scored if len(frame)]
    if quarantined:
        pd.concat(quarantined).to_parquet(quarantine_path)
    else:
        pd.DataFrame({"reasons": pd.Series(dtype="object")}, index=pd.Index([], name=SOURCE_ROW)).to_parquet(
            quarantine_path
        )
    check_flagged_share(per_detector, flagged, total, settings)
    order = [name for name in per_detector]
    return PartitionedScan(
        rows_in=total,
        rows_flagged=flagged,
        per_detector={name: per_detector[name] for name in order},
        scan_parts=tuple(scan_dir / part_name(index) for index in range(len(parts))),
        quarantine_path=quarantine_path,
        sample_rows=len(sample),
        sampled=tuple(name for name in together.flags if sampled),
        skipped=together.skipped,
        detector_seconds={**(sample_verdicts.detector_seconds or {}), "sample": round(sample_seconds, 3)},
        seconds=time.perf_counter() - started,
    )


def _map(client: Client | None, function: Callable[[Any], _T], items: list[Any]) -> list[_T]:
    """`function` over `items` on the cluster's workers (results in order), or here when there is no cluster."""
    if client is None:
        return [function(item) for item in items]
    return list(client.gather(client.map(function, items, pure=False)))


def _read_part(path: Path, columns: list[str]) -> pd.DataFrame:
    return pd.read_parquet(path, columns=[SOURCE_ROW, *columns]).set_index(SOURCE_ROW)


def _describe_part(
    path: Path, read: Callable[[Path], pd.DataFrame], dataset: DatasetSettings
) -> tuple[int, dict[str, NumericValues]]:
    frame = read(path)
    return len(frame), numeric_values(frame, dataset, _MAX_CODES_OFF_MANIFOLD)


def _sample_quotas(rows: list[int], sample_rows: int) -> list[int]:
    """How many rows each part gives the sample: all of them when the data fits, else in proportion."""
    total = sum(rows)
    if total <= sample_rows:
        return rows
    return [min(count, round(sample_rows * count / total)) for count in rows]


def _reduce_part(
    item: tuple[int, tuple[Path, int]],
    read: Callable[[Path], pd.DataFrame],
    dataset: DatasetSettings,
    plan: CodePlan | None,
    seed: int,
) -> tuple[PairCounts | None, pd.DataFrame]:
    index, (path, quota) = item
    frame = read(path)
    counts = count_pairs(frame, dataset, plan) if plan is not None else None
    if quota >= len(frame):
        return counts, frame
    chosen = np.sort(np.random.default_rng([seed, index]).choice(len(frame), size=quota, replace=False))
    return counts, frame.iloc[chosen]


def _score_part(
    item: tuple[int, Path],
    read: Callable[[Path], pd.DataFrame],
    dataset: DatasetSettings,
    settings: PoisoningSettings,
    statistics: ScanStatistics,
    together: ScanResult,
    scan_dir: Path,
) -> tuple[dict[str, int], int, pd.DataFrame]:
    """One part's verdicts: written as its scan part; returned as counts and its flagged rows with reasons."""
    started = time.perf_counter()
    index, path = item
    frame = read(path)
    partition_wise = score_partition(frame, dataset, settings, statistics)
    mine = frame.index.intersection(together.flags.index)
    together_notes = together.notes if together.notes is not None else pd.DataFrame(index=mine)
    joined = Detected(
        scores={
            name: together.scores[name].reindex(frame.index, fill_value=0.0).to_numpy()
            for name in together.flags.columns
        },
        flags={
            name: together.flags.loc[mine, name].reindex(frame.index, fill_value=False).to_numpy(dtype=bool)
            for name in together.flags.columns
        },
        notes={
            name: together_notes.loc[mine, name].reindex(frame.index, fill_value="").to_numpy(dtype=object)
            for name in together_notes.columns
        },
        seconds={},
        skipped={},
    )
    result = scan_result(frame.index, [partition_wise, joined], started)
    reasons = result.reasons()
    verdicts = pd.DataFrame(
        {
            SOURCE_ROW: frame.index.to_numpy(dtype="int64"),
            FLAGGED: result.flagged.to_numpy(dtype=bool),
            CALIBRATION_ONLY: result.calibration_only.to_numpy(dtype=bool),
            REASON: reasons.reindex(frame.index).map(
                lambda found: "; ".join(found) if isinstance(found, list) else ""
            ),
        }
    )
    verdicts.to_parquet(scan_dir / part_name(index), index=False)
    flagged = frame[result.flagged.to_numpy(dtype=bool)]  # only these need their values as text
    quarantined = result.quarantined(
        flagged.astype("object").astype("str").where(flagged.notna(), None), reasons
    )
    return result.per_detector, result.rows_flagged, quarantined


__all__ = ["PARTITION_WISE", "PartitionedScan", "scan_parts"]
