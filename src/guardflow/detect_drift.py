"""Data drift of a new batch against the reference data, measured with Evidently 0.7.

Each compared column gets Evidently's automatic stat test (chosen from the reference size and the column
type) and one threshold, `DriftSettings.column_threshold`; the batch counts as drifted when the share of
drifted columns reaches `DriftSettings.max_drifted_share`.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from guardflow.errors import DataError
from guardflow.settings import DatasetSettings, DriftSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DriftResult:
    """What Evidently found when comparing a batch with the reference, column by column."""

    rows_reference: int
    rows_current: int
    drifted_share: float  # share of compared columns that drifted
    drifted_columns: tuple[str, ...]
    column_scores: dict[str, float]  # Evidently's per-column drift score (p-value or distance)
    column_tests: dict[str, str]  # which stat test Evidently used per column
    drift_detected: bool  # drifted_share >= settings.max_drifted_share


def _compared_columns(
    reference: pd.DataFrame, current: pd.DataFrame, dataset: DatasetSettings
) -> tuple[list[str], list[str]]:
    """Numeric and categorical columns to compare: every feature, plus the label when both frames carry it."""
    numeric = [name for name, feature in dataset.features.items() if feature.type == "numeric"]
    categorical = [name for name, feature in dataset.features.items() if feature.type == "categorical"]
    label = dataset.label.column
    if label in reference and label in current:
        categorical.append(label)
    return numeric, categorical


def _check_frame(frame: pd.DataFrame, role: str, numeric: list[str], categorical: list[str]) -> None:
    """Refuse, in one line, a frame Evidently could not compare: empty, missing or untyped columns."""
    if frame.empty:
        raise DataError(f"the {role} batch is empty: there is nothing to compare for drift")
    missing = [name for name in [*numeric, *categorical] if name not in frame]
    if missing:
        raise DataError(f"the {role} batch lacks columns needed for drift: {missing}")
    untyped = [name for name in numeric if not pd.api.types.is_numeric_dtype(frame[name])]
    if untyped:
        raise DataError(f"numeric features are not numeric in the {role} batch (use typed_frame): {untyped}")
    # Evidently raises on a column with no values at all; say which ones, in our words.
    blank = [name for name in [*numeric, *categorical] if frame[name].isna().all()]
    if blank:
        raise DataError(f"columns have no values at all in the {role} batch: {blank}")


def _run_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    settings: DriftSettings,
    html_path: Path | None,
) -> dict[str, Any]:
    """Run Evidently's drift metrics, save the HTML if asked, and return the snapshot as plain JSON."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # Imported here: Evidently takes several seconds to import, and importing this module must stay cheap.
        from evidently import DataDefinition, Dataset, Report
        from evidently.metrics import DriftedColumnsCount, ValueDrift

        columns = [*numeric, *categorical]
        definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
        # One threshold for every column: Evidently reads it as "drift when the p-value is below it" for
        # p-value tests and "drift when the distance reaches it" for distance tests.
        metrics = [
            DriftedColumnsCount(
                columns=columns, threshold=settings.column_threshold, drift_share=settings.max_drifted_share
            ),
            *[ValueDrift(column=name, threshold=settings.column_threshold) for name in columns],
        ]
        # include_tests: the per-column verdict (drifted or not) only reaches the snapshot as a test status.
        snapshot = Report(metrics, include_tests=True).run(
            current_data=Dataset.from_pandas(current[columns], data_definition=definition),
            reference_data=Dataset.from_pandas(reference[columns], data_definition=definition),
        )
        if html_path is not None:
            html_path.parent.mkdir(parents=True, exist_ok=True)
            snapshot.save_html(str(html_path))
        payload: dict[str, Any] = json.loads(snapshot.json())
    # Evidently's internals warn (numpy divisions on empty bins, deprecations): keep them off the console.
    for message in {f"{warning.category.__name__}: {warning.message}" for warning in caught}:
        logger.debug("evidently warned: %s", message)
    return payload


def _read_snapshot(
    payload: dict[str, Any], columns: list[str]
) -> tuple[float, dict[str, float], dict[str, str], set[str]]:
    """Drifted share, per-column scores, tests and verdicts, matched by metric id rather than position."""
    share: float | None = None
    scores: dict[str, float] = {}
    tests: dict[str, str] = {}
    column_of_metric: dict[str, str] = {}
    for metric in payload.get("metrics", []):
        config = metric.get("config", {})
        kind = str(config.get("type", "")).rsplit(":", 1)[-1]
        if kind == "ValueDrift" and config.get("column") in columns:
            scores[config["column"]] = float(metric["value"])
            tests[config["column"]] = str(config.get("method"))
            column_of_metric[metric["id"]] = config["column"]
        elif kind == "DriftedColumnsCount":
            share = float(metric["value"]["share"])
    verdicts: dict[str, bool] = {}
    for test in payload.get("tests", []):
        column = column_of_metric.get(test.get("metric_config", {}).get("metric_id"))
        if column is not None:
            verdicts[column] = test.get("status") == "FAIL"
    unread = [name for name in columns if name not in scores or name not in verdicts]
    if share is None or unread:
        raise RuntimeError(
            f"the Evidently snapshot lacks drift results (share found: {share is not None}): {unread}"
        )
    drifted = {name for name, has_drifted in verdicts.items() if has_drifted}
    if abs(share - len(drifted) / len(columns)) > 1e-9:
        raise RuntimeError(
            f"Evidently's drifted share {share} disagrees with its per-column verdicts {sorted(drifted)}"
        )
    return share, scores, tests, drifted


def detect_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    dataset: DatasetSettings,
    settings: DriftSettings,
    html_path: Path | None = None,
) -> DriftResult:
    """Compare a typed batch with the typed reference, column by column; save Evidently's HTML if asked.

    Raise `DataError` when either frame is empty or lacks, or leaves blank, a column to compare.
    """
    numeric, categorical = _compared_columns(reference, current, dataset)
    _check_frame(current, "current", numeric, categorical)
    _check_frame(reference, "reference", numeric, categorical)
    columns = [*numeric, *categorical]
    payload = _run_report(reference, current, numeric, categorical, settings, html_path)
    share, scores, tests, drifted = _read_snapshot(payload, columns)
    result = DriftResult(
        rows_reference=len(reference),
        rows_current=len(current),
        drifted_share=share,
        drifted_columns=tuple(name for name in columns if name in drifted),
        column_scores=scores,
        column_tests=tests,
        drift_detected=share >= settings.max_drifted_share,
    )
    logger.info(
        "drift: %d of %d columns drifted (share %.3f, limit %.3f): %s",
        len(result.drifted_columns),
        len(columns),
        share,
        settings.max_drifted_share,
        list(result.drifted_columns),
    )
    return result
