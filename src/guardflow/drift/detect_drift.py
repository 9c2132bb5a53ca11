"""Data and prediction drift of a new batch against the reference data, measured with Evidently 0.7.

Two batch rules (`DriftSettings.rule`):
- `family_wise` (default): every compared column gets a two-sample p-value test run by Evidently, the
  Kolmogorov-Smirnov test for numbers and the champion's scores, a chi-square test of homogeneity for
  categories, each at `family_alpha / number of tests` (Bonferroni). The batch drifts when any column does, so
  an undrifted batch is flagged with probability at most `family_alpha`, whatever the columns' dependence.
  Evidently's own `chisquare` is a goodness-of-fit test that takes the reference frequencies as exact: with a
  finite reference it flags far more than its level (and it cannot take a category the reference lacks), so
  the homogeneity test is registered with Evidently as a stat test of its own (`chi2_homogeneity`).
- `drifted_share`: Evidently's automatic test per column at `column_threshold`; drift when the share of
  drifted columns reaches `max_drifted_share`.

Each side is cut to a seeded random sample of at most `sample_rows` rows before Evidently runs: the time and
memory of a check stay flat however large the batch, a random sample of an i.i.d. batch is i.i.d. (the level
holds), and `detectable_ks_distance` / `detectable_category_effect` state what the sample can still detect.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

from guardflow.data.table import Table
from guardflow.errors import DataError
from guardflow.settings import DatasetSettings, DriftSettings

logger = logging.getLogger(__name__)

PREDICTION_COLUMN = "champion_score"  # the champion's scores, compared as one more numeric column
HOMOGENEITY_TEST = "chi2_homogeneity"  # the name our categorical test is registered under in Evidently
DETECTION_POWER = 0.95  # the power at which detectable effects are stated
# Categories expected fewer times than this in a cell are pooled (the chi-square approximation needs it).
MIN_EXPECTED_COUNT = 5.0


@dataclass(frozen=True)
class DriftResult:
    """What Evidently found when comparing a batch with the reference, column by column."""

    rows_reference: int
    rows_current: int
    drifted_share: float  # share of compared columns that drifted
    drifted_columns: tuple[str, ...]
    column_scores: dict[str, float]  # Evidently's per-column drift score (p-value or distance)
    column_tests: dict[str, str]  # which stat test Evidently used per column
    drift_detected: bool  # family_wise: any column drifted; drifted_share: share >= max_drifted_share
    rule: str = "drifted_share"
    column_alpha: float | None = None  # each column's level under the family-wise rule
    rows_compared_reference: int = 0  # rows Evidently compared (a seeded sample when the frame is larger)
    rows_compared_current: int = 0
    prediction_drift: bool | None = None  # the champion's scores drifted (None: no scores given)
    # Family-wise rule: smallest effect detected with DETECTION_POWER at the compared sizes. KS distance for
    # numeric columns and scores, chi-square effect size w (sqrt of sum (p_cur - p_ref)^2 / p) for categories.
    detectable_effects: dict[str, float] = field(default_factory=dict)


def describe_rule(settings: DriftSettings, column_alpha: float | None) -> str:
    """The rule a batch was judged by, in words: for logs, summaries and reports."""
    if settings.rule == "family_wise" and column_alpha is not None:
        return f"any column at p < {column_alpha:.4f}"
    return f"drifted share >= {settings.max_drifted_share:.0%}"


def detectable_ks_distance(
    rows_reference: int, rows_current: int, alpha: float, power: float = DETECTION_POWER
) -> float:
    """Smallest Kolmogorov-Smirnov distance the two-sample KS test at `alpha` detects with at least `power`.

    Valid for any distribution (discrete ones included): the test rejects when the observed distance passes
    the asymptotic critical value c(alpha) * sqrt(1/n + 1/m) with c(alpha) = sqrt(-ln(alpha / 2) / 2), and by
    Massart's DKW inequality each empirical CDF strays from its own by more than sqrt(ln(4 / beta) / (2 n))
    with probability at most beta / 2. The bound is conservative: the true detectable distance is smaller.
    """
    critical = math.sqrt(-0.5 * math.log(alpha / 2)) * math.sqrt(1 / rows_reference + 1 / rows_current)
    spread = math.log(4 / (1 - power)) / 2
    return critical + math.sqrt(spread / rows_reference) + math.sqrt(spread / rows_current)


def detectable_category_effect(
    rows_reference: int,
    rows_current: int,
    alpha: float,
    degrees_of_freedom: int,
    power: float = DETECTION_POWER,
) -> float:
    """Smallest effect size w the chi-square homogeneity test at `alpha` detects with `power` (noncentral chi-square).

    w = sqrt(sum over categories of (p_current - p_reference)^2 / p), the noncentrality being
    n * m / (n + m) * w^2. For a category of share p, a move of d points is detected when d >= w * sqrt(p (1 - p)).
    """
    critical = stats.chi2.isf(alpha, degrees_of_freedom)

    def shortfall(noncentrality: float) -> float:
        return float(stats.ncx2.sf(critical, degrees_of_freedom, noncentrality)) - power

    noncentrality = optimize.brentq(shortfall, 1e-9, 1e6)
    effective_rows = rows_reference * rows_current / (rows_reference + rows_current)
    return math.sqrt(noncentrality / effective_rows)


def homogeneity_p_value(reference: pd.Series, current: pd.Series) -> float:
    """p-value of the chi-square test that two samples of a categorical column share one distribution.

    Categories expected fewer than MIN_EXPECTED_COUNT times in either sample are pooled into one cell (chosen
    from the combined counts, so the pooling cannot favour either sample); a category the reference never
    saw is compared like any other, with its zero reference count.
    """
    counts = pd.concat([reference.value_counts(), current.value_counts()], axis=1).fillna(0).to_numpy(float)
    counts = counts[counts.sum(axis=1) > 0]
    sample_sizes = counts.sum(axis=0)
    if len(counts) < 2 or (sample_sizes == 0).any():
        return 1.0
    smallest_expected = counts.sum(axis=1) * sample_sizes.min() / sample_sizes.sum()
    rare = smallest_expected < MIN_EXPECTED_COUNT
    if rare.any():
        pooled = counts[rare].sum(axis=0)
        counts = counts[~rare]
        if len(counts) > 0 and pooled.sum() * sample_sizes.min() / sample_sizes.sum() < MIN_EXPECTED_COUNT:
            counts[np.argmin(counts.sum(axis=1))] += pooled  # still too sparse: fold into the least common
        else:
            counts = np.vstack([counts, pooled])
    if len(counts) < 2:
        return 1.0
    return float(stats.chi2_contingency(counts, correction=False).pvalue)


def drifted_by_family_rule(p_values: Mapping[str, float], family_alpha: float) -> tuple[str, ...]:
    """Columns whose p-value is below family_alpha / number of columns (Bonferroni); the batch drifts if any.

    The chance that an undrifted batch lists any column is at most `family_alpha`, for any dependence
    between the columns.
    """
    column_alpha = family_alpha / len(p_values)
    return tuple(name for name, p_value in p_values.items() if p_value < column_alpha)


def sample_positions(rows: int, limit: int, rng: np.random.Generator) -> np.ndarray | None:
    """Sorted positions of a uniform random sample of `limit` rows, or None when there are no more than that."""
    if rows <= limit:
        return None
    return np.sort(rng.choice(rows, size=limit, replace=False))


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


def _check_scores(scores: Sequence[float] | np.ndarray, frame: pd.DataFrame, role: str) -> np.ndarray:
    """The champion's scores for a frame as floats: one finite value per row, or a one-line DataError."""
    try:
        values = np.asarray(scores, dtype="float64")
    except (TypeError, ValueError):
        raise DataError(f"the {role} scores are not numbers") from None
    if values.ndim != 1 or len(values) != len(frame):
        raise DataError(f"the {role} scores hold {values.size} values for {len(frame)} rows")
    if not np.isfinite(values).all():
        raise DataError(f"the {role} scores contain missing or infinite values")
    return values


def _compared_frame(
    frame: pd.DataFrame, columns: list[str], scores: np.ndarray | None, positions: np.ndarray | None
) -> pd.DataFrame:
    """The compared columns (and scores) of the sampled rows, categories as plain values for Evidently."""
    picked = frame[columns] if positions is None else frame.iloc[positions][columns]
    compared = picked.reset_index(drop=True)
    for name in columns:
        if isinstance(compared[name].dtype, pd.CategoricalDtype):
            compared[name] = compared[name].astype(object)
    if scores is not None:
        compared[PREDICTION_COLUMN] = scores if positions is None else scores[positions]
    return compared


def _register_homogeneity_test() -> None:
    """Make `chi2_homogeneity` a stat test Evidently can run by name (registering twice is harmless)."""
    from evidently.legacy.calculations.stattests.registry import StatTest, register_stattest
    from evidently.legacy.core import ColumnType

    def chi2_homogeneity(
        reference: pd.Series, current: pd.Series, feature_type: ColumnType, threshold: float
    ) -> tuple[float, bool]:
        p_value = homogeneity_p_value(reference, current)
        return p_value, p_value < threshold

    register_stattest(
        StatTest(
            name=HOMOGENEITY_TEST,
            display_name="chi-square homogeneity p_value",
            allowed_feature_types=[ColumnType.Categorical],
        ),
        default_impl=chi2_homogeneity,
    )


def _drift_metrics(numeric: list[str], categorical: list[str], settings: DriftSettings) -> list[Any]:
    """Evidently metrics for the rule: p-value tests at the Bonferroni level, or the older share rule."""
    from evidently.metrics import DriftedColumnsCount, ValueDrift

    columns = [*numeric, *categorical]
    if settings.rule == "family_wise":
        _register_homogeneity_test()
        column_alpha = settings.family_alpha / len(columns)
        return [
            ValueDrift(
                column=name, method="ks" if name in numeric else HOMOGENEITY_TEST, threshold=column_alpha
            )
            for name in columns
        ]
    # One threshold for every column: Evidently reads it as "drift when the p-value is below it" for
    # p-value tests and "drift when the distance reaches it" for distance tests.
    return [
        DriftedColumnsCount(
            columns=columns, threshold=settings.column_threshold, drift_share=settings.max_drifted_share
        ),
        *[ValueDrift(column=name, threshold=settings.column_threshold) for name in columns],
    ]


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

        definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
        # include_tests: the per-column verdict (drifted or not) only reaches the snapshot as a test status.
        snapshot = Report(_drift_metrics(numeric, categorical, settings), include_tests=True).run(
            current_data=Dataset.from_pandas(current, data_definition=definition),
            reference_data=Dataset.from_pandas(reference, data_definition=definition),
        )
        if html_path is not None:
            html_path.parent.mkdir(parents=True, exist_ok=True)
            snapshot.save_html(str(html_path))
        payload: dict[str, Any] = json.loads(snapshot.json())
    # Evidently's internals warn (numpy divisions on empty bins, deprecations): keep them off the console.
    for message in {f"{warning.category.__name__}: {warning.message}" for warning in caught}:
        logger.debug("evidently warned: %s", message)
    return payload


def _run_column_tests(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    column_alpha: float,
) -> tuple[dict[str, float], dict[str, str], set[str]]:
    """The family-wise rule's tests without a report: Evidently's per-column drift calculation (the one its
    ValueDrift metric runs), minus the plotly widgets that cost most of a report's time. Same p-values."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from evidently.legacy.calculations.data_drift import get_one_column_drift
        from evidently.legacy.core import ColumnType
        from evidently.legacy.metric_results import DatasetColumns, DatasetUtilityColumns
        from evidently.legacy.options.data_drift import DataDriftOptions

        _register_homogeneity_test()
        scores: dict[str, float] = {}
        tests: dict[str, str] = {}
        drifted: set[str] = set()
        for name in [*numeric, *categorical]:
            is_numeric = name in numeric
            method = "ks" if is_numeric else HOMOGENEITY_TEST
            drift = get_one_column_drift(
                current_data=current,
                reference_data=reference,
                column_name=name,
                options=DataDriftOptions(all_features_stattest=method, all_features_threshold=column_alpha),
                dataset_columns=DatasetColumns(
                    utility_columns=DatasetUtilityColumns(date=None, id=None, target=None, prediction=None),
                    target_type=None,
                    task=None,
                    num_feature_names=[name] if is_numeric else [],
                    cat_feature_names=[] if is_numeric else [name],
                    text_feature_names=[],
                    datetime_feature_names=[],
                    target_names=None,
                ),
                column_type=ColumnType.Numerical if is_numeric else ColumnType.Categorical,
                agg_data=True,
            )
            scores[name] = float(drift.drift_score)
            tests[name] = method
            if drift.drift_detected:
                drifted.add(name)
    for message in {f"{warning.category.__name__}: {warning.message}" for warning in caught}:
        logger.debug("evidently warned: %s", message)
    return scores, tests, drifted


def _read_snapshot(
    payload: dict[str, Any], columns: list[str]
) -> tuple[float | None, dict[str, float], dict[str, str], set[str]]:
    """Drifted share (when Evidently counted it), per-column scores, tests and verdicts, matched by metric id."""
    share: float | None = None
    counted = False
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
            counted = True
            share = float(metric["value"]["share"])
    verdicts: dict[str, bool] = {}
    for test in payload.get("tests", []):
        column = column_of_metric.get(test.get("metric_config", {}).get("metric_id"))
        if column is not None:
            verdicts[column] = test.get("status") == "FAIL"
    unread = [name for name in columns if name not in scores or name not in verdicts]
    if unread or (counted and share is None):
        raise RuntimeError(f"the Evidently snapshot lacks drift results: {unread}")
    drifted = {name for name, has_drifted in verdicts.items() if has_drifted}
    if share is not None and abs(share - len(drifted) / len(columns)) > 1e-9:
        raise RuntimeError(
            f"Evidently's drifted share {share} disagrees with its per-column verdicts {sorted(drifted)}"
        )
    return share, scores, tests, drifted


def _detectable_effects(
    reference: pd.DataFrame,
    rows_current: int,
    numeric: list[str],
    categorical: list[str],
    column_alpha: float,
) -> dict[str, float]:
    """Per column, the smallest effect the compared sample sizes detect with DETECTION_POWER."""
    rows_reference = len(reference)
    effects = {name: detectable_ks_distance(rows_reference, rows_current, column_alpha) for name in numeric}
    for name in categorical:
        categories = max(int(reference[name].nunique()), 2)
        effects[name] = detectable_category_effect(rows_reference, rows_current, column_alpha, categories - 1)
    return effects


def detect_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    dataset: DatasetSettings,
    settings: DriftSettings,
    html_path: Path | None = None,
    reference_scores: Sequence[float] | np.ndarray | None = None,
    current_scores: Sequence[float] | np.ndarray | None = None,
) -> DriftResult:
    """Compare a typed batch with the typed reference, column by column; save Evidently's HTML if asked.

    With the champion's scores on both frames (one per row, e.g. its predict_proba), the scores are compared
    too (`PREDICTION_COLUMN`): the only place a shift in the label prior shows when the batch has no labels.
    Raise `DataError` when either frame is empty or lacks, or leaves blank, a column to compare, or when the
    scores do not match their frame.
    """
    numeric, categorical = _compared_columns(reference, current, dataset)
    _check_frame(current, "current", numeric, categorical)
    _check_frame(reference, "reference", numeric, categorical)
    if (reference_scores is None) != (current_scores is None):
        raise DataError("prediction drift needs the champion's scores on both the reference and the batch")
    scored = reference_scores is not None and current_scores is not None
    ref_scores = None if reference_scores is None else _check_scores(reference_scores, reference, "reference")
    cur_scores = None if current_scores is None else _check_scores(current_scores, current, "current")
    features = [*numeric, *categorical]
    rng = np.random.default_rng(settings.sample_seed)
    reference_positions = sample_positions(len(reference), settings.sample_rows, rng)
    current_positions = sample_positions(len(current), settings.sample_rows, rng)
    compared_reference = _compared_frame(reference, features, ref_scores, reference_positions)
    compared_current = _compared_frame(current, features, cur_scores, current_positions)
    numeric_compared = [*numeric, PREDICTION_COLUMN] if scored else numeric
    columns = [*numeric_compared, *categorical]

    family_wise = settings.rule == "family_wise"
    evidently_share: float | None = None
    if family_wise and html_path is None:
        # No report wanted: the same Evidently tests, without building the report's widgets.
        alpha = settings.family_alpha / len(columns)
        scores, tests, drifted = _run_column_tests(
            compared_reference, compared_current, numeric_compared, categorical, alpha
        )
    else:
        payload = _run_report(
            compared_reference, compared_current, numeric_compared, categorical, settings, html_path
        )
        evidently_share, scores, tests, drifted = _read_snapshot(payload, columns)
    column_alpha: float | None = None
    effects: dict[str, float] = {}
    if family_wise:
        listed = set(drifted_by_family_rule(scores, settings.family_alpha))
        if listed != drifted:
            raise RuntimeError(
                f"Evidently's verdicts {sorted(drifted)} disagree with the rule's {sorted(listed)}"
            )
        column_alpha = settings.family_alpha / len(columns)
        effects = _detectable_effects(
            compared_reference, len(compared_current), numeric_compared, categorical, column_alpha
        )
    share = len(drifted) / len(columns) if evidently_share is None else evidently_share
    result = DriftResult(
        rows_reference=len(reference),
        rows_current=len(current),
        drifted_share=share,
        drifted_columns=tuple(name for name in columns if name in drifted),
        column_scores=scores,
        column_tests=tests,
        drift_detected=bool(drifted) if family_wise else share >= settings.max_drifted_share,
        rule=settings.rule,
        column_alpha=column_alpha,
        rows_compared_reference=len(compared_reference),
        rows_compared_current=len(compared_current),
        prediction_drift=(PREDICTION_COLUMN in drifted) if scored else None,
        detectable_effects=effects,
    )
    logger.info(
        "drift (%s rule, %s vs %s rows compared): %d of %d columns drifted (share %.3f): %s -> %s",
        settings.rule,
        f"{result.rows_compared_current:,}",
        f"{result.rows_compared_reference:,}",
        len(result.drifted_columns),
        len(columns),
        share,
        list(result.drifted_columns),
        "DRIFT" if result.drift_detected else "no drift",
    )
    return result


@dataclass(frozen=True)
class Reference:
    """The champion's training data and the sha256 of the source files it was built from (for the ledger)."""

    table: Table
    sources: list[str]
