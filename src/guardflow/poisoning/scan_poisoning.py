"""Poisoning scan: every row gets a score per detector and one verdict; flagged rows go to quarantine.

Detectors, each a score per row and a flag:
- out of range: values outside the config's public bounds or category lists (exact, cheap);
- label noise: confident learning (cleanlab) on out-of-fold gradient-boosting probabilities, kept only where the
  probability of the given label is also low;
- outliers: an isolation forest on the public-bounds encoding, for rows far from every other row;
- off-manifold: pairs of values that occur far less often than their columns' frequencies predict (a row
  assembled from plausible values that do not belong together: injected or synthetic rows), and values that break
  a dependency the rest of the data keeps (education=Bachelors with education-num=1: a trigger set on rows it does
  not fit; dependencies.py);
- duplicate floods: rows identical or near-identical (every numeric within a relative tolerance, everything
  else equal) beyond a tolerated number of copies;
- backdoor: rows carrying a rare pair of values whose label is almost always one class while each value
  alone is not (a trigger pattern tied to one label);
- trusted reference (trusted_reference.py), when the champion's training rows are given: rows carrying a label
  whose rate rose, against those rows, inside a slice of one or two values; the slice is named in their reason.
The scan is not differentially private: it decides which rows the DP training step sees (README: limits).
Its verdicts, with the detectors' names, are `scan_result.ScanResult`.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import false_discovery_control, poisson
from sklearn.ensemble import IsolationForest
from sklearn.neighbors import KDTree
from threadpoolctl import threadpool_limits

from guardflow.data.encode_features import encode_features, ordinal_features
from guardflow.data.table import label_vector
from guardflow.errors import PoisoningError
from guardflow.poisoning.dependencies import broken_dependencies, find_dependencies
from guardflow.poisoning.label_noise import score_label_noise
from guardflow.poisoning.scan_result import (
    BACKDOOR,
    DETECTORS,
    DUPLICATE_FLOOD,
    LABEL_NOISE,
    OFF_MANIFOLD,
    OUT_OF_RANGE,
    OUTLIER,
    ScanResult,
)
from guardflow.poisoning.slice_purity import SLICE_PURITY, PurityResult, find_impure_triggers
from guardflow.poisoning.slices import MAX_EXACT_VALUES
from guardflow.poisoning.trusted_reference import TRUSTED_REFERENCE, ReferenceComparison, compare_reference
from guardflow.poisoning.value_codes import (
    CodePlan,
    NumericValues,
    PairCounts,
    code_plan,
    code_text,
    count_pairs,
    frame_codes,
    numeric_values,
    pair_groups,
    plan_codes,
)
from guardflow.settings import DatasetSettings, NumericFeature, PoisoningSettings

logger = logging.getLogger(__name__)

# A numeric column with at most this many distinct values is read as a code (age, hours, years of schooling);
# beyond it (a sampling weight, say) only its public bins, if any, take part in the pair statistics.
_MAX_CODES_OFF_MANIFOLD = 20
_MAX_CODES_BACKDOOR = 200


def _out_of_range(frame: pd.DataFrame, dataset: DatasetSettings) -> tuple[np.ndarray, np.ndarray]:
    """Number of values outside their public bounds or category list (missing values are the contract's)."""
    violations = np.zeros(len(frame))
    for name, feature in dataset.features.items():
        values = frame[name]
        if isinstance(feature, NumericFeature):
            numbers = values.to_numpy(dtype="float64", na_value=np.nan)
            violations += (numbers < feature.min) | (numbers > feature.max)
        else:
            violations += (values.notna() & ~values.isin(feature.categories)).to_numpy()
    return violations, violations > 0


def fit_outlier_model(features: np.ndarray, settings: PoisoningSettings) -> IsolationForest:
    """An isolation forest fitted on `features` (the whole frame, or a bounded sample of a partitioned one); its
    threshold is the `outlier_contamination` quantile of the scores of the rows it was fitted on."""
    forest = IsolationForest(
        n_estimators=200, contamination=settings.outlier_contamination, random_state=settings.seed
    )
    return forest.fit(features)


def score_outliers(forest: IsolationForest, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's anomaly score under the fitted forest and whether it passes the forest's threshold (the rows a
    `fit_predict` on the fitting rows marks -1)."""
    samples = forest.score_samples(features)
    return -samples, samples - forest.offset_ < 0


def off_manifold_plan(dataset: DatasetSettings, values: dict[str, NumericValues]) -> CodePlan:
    """The codes the off-manifold detector counts, from the numeric values of the whole data."""
    return code_plan(dataset, values, _MAX_CODES_OFF_MANIFOLD, bin_wide=True)


def _off_manifold(
    frame: pd.DataFrame,
    dataset: DatasetSettings,
    settings: PoisoningSettings,
    plan: CodePlan,
    counts: PairCounts,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each row, the largest log ratio, over its pairs of values, of how often the pair should occur if
    the two columns were independent to how often it does (both counts smoothed by one), counts taken over the
    whole data (`counts`), so a partition is scored as the whole frame would be. A row is flagged when that ratio
    passes `off_manifold_threshold`, or when it breaks a dependency between two columns (dependencies.py; its
    note names the dependency, and its score is at least the log ratio of the rows that keep it to those that
    break it alike)."""
    codes = plan_codes(frame, dataset, plan)
    worst = np.full(len(frame), -np.inf)
    for first, second in itertools.combinations(codes, 2):
        expected = counts.singles[first][codes[first]] * counts.singles[second][codes[second]] / counts.rows
        seen = counts.pairs[(first, second)][codes[first], codes[second]]
        worst = np.maximum(worst, np.log((expected + 1.0) / (seen + 1.0)))
    broken_score, broken, notes = broken_dependencies(
        codes, find_dependencies(counts), lambda name, code: code_text(plan, dataset, name, code)
    )
    return np.maximum(worst, broken_score), (worst > settings.off_manifold_threshold) | broken, notes


def _duplicate_floods(
    frame: pd.DataFrame, dataset: DatasetSettings, settings: PoisoningSettings
) -> tuple[np.ndarray, np.ndarray]:
    """Copies beyond what the data predicts. With a numeric column of many values (a sampling weight), natural
    copies are rare: rows with at least `duplicate_limit` earlier rows identical or near-identical to them (every
    numeric within `near_duplicate_tolerance`, relative, everything else equal) are flagged. Without one (few
    values in every column), identical rows are natural, and the count of each row is judged against its
    neighbours' (`_calibrated_copies`). The score is the number of such rows around each row (itself included)."""
    numeric = [name for name, feature in dataset.features.items() if isinstance(feature, NumericFeature)]
    many_values = [name for name in numeric if frame[name].nunique() > MAX_EXACT_VALUES]
    if not many_values:
        return _calibrated_copies(frame, dataset, settings)
    exact = [column for column in frame.columns if column not in numeric]
    key = frame.groupby(exact, dropna=False, sort=False).ngroup().to_numpy(dtype="float64")
    magnitudes = np.log1p(np.abs(np.nan_to_num(frame[numeric].to_numpy(dtype="float64"), nan=-1.0)))
    # Chebyshev distance 1 = every numeric within the tolerance; groups of the other columns lie 10 apart.
    points = np.column_stack([key * 10.0, magnitudes / settings.near_duplicate_tolerance])
    neighbours = KDTree(points, metric="chebyshev").query_radius(points, r=1.0)
    order = np.arange(len(frame))
    earlier = np.array([int((found < row).sum()) for row, found in zip(order, neighbours, strict=True)])
    sizes = np.array([len(found) for found in neighbours], dtype="float64")
    return sizes, earlier >= settings.duplicate_limit


def _calibrated_copies(
    frame: pd.DataFrame, dataset: DatasetSettings, settings: PoisoningSettings
) -> tuple[np.ndarray, np.ndarray]:
    """Identical rows (label included) counted against what their neighbourhood predicts: for each column, the
    mean count of the rows that differ from them in that column only (the densest such neighbourhood is the
    expectation, at least 1). A group is a flood when a Poisson test at that expectation rejects it (Benjamini-
    Hochberg at `duplicate_fdr` over all repeated rows); its copies beyond the expectation are flagged, the earliest
    rows kept. A common profile in a dense region is not a flood; one row copied many times is."""
    columns = [*dataset.features, dataset.label.column]
    codes = {
        column: pd.factorize(frame[column].astype("object"), use_na_sentinel=False)[0] for column in columns
    }
    full = frame.groupby(columns, dropna=False, sort=False).ngroup().to_numpy()
    sizes = np.bincount(full)[full].astype("float64")
    expected = np.ones(len(frame))
    for column in dataset.features:
        others = pd.DataFrame({name: codes[name] for name in columns if name != column})
        partial = others.groupby(list(others.columns), sort=False).ngroup().to_numpy()
        around = np.bincount(partial)[partial]
        # Distinct full rows in each one-column neighbourhood, the row's own included.
        distinct = pd.Series(full).groupby(partial).nunique().to_numpy()[partial]
        mean_other = np.where(distinct > 1, (around - sizes) / np.maximum(distinct - 1, 1), 0.0)
        expected = np.maximum(expected, mean_other)
    repeated = sizes >= 2
    flags = np.zeros(len(frame), dtype=bool)
    if repeated.any():
        first = pd.Series(np.arange(len(frame))).groupby(full).transform("min").to_numpy()
        group_rows = repeated & (np.arange(len(frame)) == first)
        p_values = poisson.sf(sizes[group_rows] - 1, expected[group_rows])
        adjusted = false_discovery_control(np.clip(p_values, 1e-300, 1.0), method="bh")
        flood_groups = set(full[group_rows][adjusted <= settings.duplicate_fdr].tolist())
        rank = pd.Series(np.arange(len(frame))).groupby(full).cumcount().to_numpy()
        flags = np.isin(full, list(flood_groups)) & (rank >= np.ceil(expected))
    return sizes, flags


def _backdoors(
    frame: pd.DataFrame, dataset: DatasetSettings, labels: np.ndarray, settings: PoisoningSettings
) -> tuple[np.ndarray, np.ndarray]:
    """Rows carrying a pair of values (a candidate trigger) whose rows are at least `backdoor_min_purity` one
    label, seen on at least `backdoor_min_support` rows of that label, while the rows with either value alone
    (at least `backdoor_min_support` of them, so that neither value implies the other) are at most
    `backdoor_max_alone` that label.
    The score is how much purer the pair is than the purer of its values alone."""
    codes = frame_codes(frame, dataset, _MAX_CODES_BACKDOOR, bin_wide=False)
    minimum = settings.backdoor_min_support
    score = np.zeros(len(frame))
    for first, second in itertools.combinations(codes.values(), 2):
        group, counts = pair_groups(first, second)
        positives = np.bincount(group, weights=labels, minlength=len(counts))
        for target in (0, 1):
            matching = positives if target == 1 else counts - positives
            for candidate in np.flatnonzero(
                (matching >= minimum) & (matching >= settings.backdoor_min_purity * counts)
            ):
                in_pattern = group == candidate
                row = int(np.argmax(in_pattern))
                alone_rates = []
                for column in (first, second):
                    alone = (column == column[row]) & ~in_pattern
                    alone_rates.append(
                        float((labels[alone] == target).mean()) if alone.sum() >= minimum else 1.0
                    )
                if max(alone_rates) > settings.backdoor_max_alone:
                    continue
                lift = matching[candidate] / counts[candidate] - max(alone_rates)
                hit = in_pattern & (labels == target)
                score[hit] = np.maximum(score[hit], lift)
    return score, score > 0


@dataclass(frozen=True)
class ScanStatistics:
    """What scoring a partition needs from the whole data: the off-manifold codes and counts (reduced over every
    partition) and the outlier forest (fitted on the whole frame, or on a bounded sample of a partitioned one)."""

    plan: CodePlan | None
    pairs: PairCounts | None
    forest: IsolationForest | None


@dataclass(frozen=True)
class Detected:
    """Detectors' scores, flags and notes on some rows (positions of those rows), with each detector's seconds."""

    scores: dict[str, np.ndarray]
    flags: dict[str, np.ndarray]
    notes: dict[str, np.ndarray]
    seconds: dict[str, float]
    skipped: dict[str, str]
    reference: ReferenceComparison | None = None


# Detectors scored row by row against the statistics: exact on a partition. The others see rows together.
PARTITION_WISE = (OUT_OF_RANGE, OUTLIER, OFF_MANIFOLD)


def scan_statistics(
    plan: CodePlan | None,
    pairs: PairCounts | None,
    sample: pd.DataFrame,
    dataset: DatasetSettings,
    settings: PoisoningSettings,
) -> ScanStatistics:
    """The statistics from the reductions (`pairs` under `plan`) and the forest fitted on `sample`."""
    forest = fit_outlier_model(encode_features(sample, dataset), settings) if settings.outliers else None
    return ScanStatistics(plan, pairs, forest)


def score_partition(
    frame: pd.DataFrame, dataset: DatasetSettings, settings: PoisoningSettings, statistics: ScanStatistics
) -> Detected:
    """The partition-wise detectors on one partition (or the whole frame): out of range, outliers under the
    fitted forest, off-manifold against the global pair counts."""
    scores: dict[str, np.ndarray] = {}
    flags: dict[str, np.ndarray] = {}
    notes: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}

    def run(name: str, detect: Callable[[], tuple[np.ndarray, np.ndarray]]) -> None:
        begun = time.perf_counter()
        scores[name], flags[name] = detect()
        seconds[name] = round(time.perf_counter() - begun, 3)

    run(OUT_OF_RANGE, lambda: _out_of_range(frame, dataset))
    if settings.outliers and statistics.forest is not None:
        forest = statistics.forest
        run(OUTLIER, lambda: score_outliers(forest, encode_features(frame, dataset)))
    if settings.off_manifold and statistics.plan is not None and statistics.pairs is not None:
        begun = time.perf_counter()
        scores[OFF_MANIFOLD], flags[OFF_MANIFOLD], notes[OFF_MANIFOLD] = _off_manifold(
            frame, dataset, settings, statistics.plan, statistics.pairs
        )
        seconds[OFF_MANIFOLD] = round(time.perf_counter() - begun, 3)
    return Detected(scores, flags, notes, seconds, {})


def score_together(
    frame: pd.DataFrame,
    dataset: DatasetSettings,
    settings: PoisoningSettings,
    partition_wise: Detected,
    reference: pd.DataFrame | None = None,
) -> Detected:
    """The detectors that judge rows against each other (duplicates, backdoors, slice purity, the trusted
    reference, label noise) on `frame`: the whole frame, or a bounded sample of a partitioned one, whose
    `partition_wise` flags tell label noise which rows not to learn from."""
    columns = [*dataset.features, dataset.label.column]
    labels = label_vector(frame, dataset).to_numpy()
    scores: dict[str, np.ndarray] = {}
    flags: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    notes: dict[str, np.ndarray] = {}
    skipped: dict[str, str] = {}
    comparison: ReferenceComparison | None = None

    def run(name: str, detect: Callable[[], tuple[np.ndarray, np.ndarray]]) -> None:
        begun = time.perf_counter()
        scores[name], flags[name] = detect()
        seconds[name] = round(time.perf_counter() - begun, 3)

    def slice_purity() -> tuple[PurityResult, float]:
        begun = time.perf_counter()
        return find_impure_triggers(frame, dataset, labels, settings), time.perf_counter() - begun

    # Slice purity, the costliest (~6 s on Adult), depends on no other detector and none depends on it: it runs
    # on a thread of its own beside the others, on the other core (both threads spend most of their time in
    # gradient boosting's compiled code, which releases the GIL): on Adult the scan takes 8.4 s instead of 10.6.
    # One OpenMP thread each, set around both, so that neither's own limit, when it ends, lifts the other's.
    with threadpool_limits(limits=1), ThreadPoolExecutor(max_workers=1) as pool:
        purity_done = pool.submit(slice_purity) if settings.slice_purity else None
        run(DUPLICATE_FLOOD, lambda: _duplicate_floods(frame[columns], dataset, settings))
        if settings.backdoor:
            run(BACKDOOR, lambda: _backdoors(frame, dataset, labels, settings))
        if settings.trusted_reference and reference is not None and len(reference):
            begun = time.perf_counter()
            comparison = compare_reference(frame, reference, dataset, settings)
            scores[TRUSTED_REFERENCE] = comparison.scores.to_numpy()
            flags[TRUSTED_REFERENCE] = comparison.flags.to_numpy()
            notes[TRUSTED_REFERENCE] = comparison.reasons.to_numpy()
            seconds[TRUSTED_REFERENCE] = round(time.perf_counter() - begun, 3)
        elif settings.trusted_reference:
            skipped[TRUSTED_REFERENCE] = "no trusted reference (no champion yet)"
        if settings.label_noise:
            # After the others: its model learns only from rows no other detector flagged, except slice
            # purity's (still running, and left out on purpose): the genuine pure slices it also flags (exact
            # capital gains only high earners report) are what the model must learn to judge their neighbours
            # (measured on clean Adult: 866 -> 1,015 label-noise flags when they are left out).
            suspect = np.logical_or.reduce(
                [np.asarray(flagged, dtype=bool) for flagged in {**partition_wise.flags, **flags}.values()]
            )
            ordinal, categorical = ordinal_features(frame, dataset)
            run(LABEL_NOISE, lambda: score_label_noise(ordinal, categorical, labels, settings, suspect))
        if purity_done is not None:
            purity, purity_seconds = purity_done.result()
            scores[SLICE_PURITY], flags[SLICE_PURITY], notes[SLICE_PURITY] = (
                purity.scores,
                purity.flags,
                purity.notes,
            )
            seconds[SLICE_PURITY] = round(purity_seconds, 3)
    return Detected(scores, flags, notes, seconds, skipped, comparison)


def scan_result(
    index: pd.Index, detected: list[Detected], started: float, rows_in: int | None = None
) -> ScanResult:
    """The detectors' verdicts on the rows of `index` as one `ScanResult`, detectors in `DETECTORS` order."""
    scores = {name: values for part in detected for name, values in part.scores.items()}
    flags = {name: values for part in detected for name, values in part.flags.items()}
    notes = {name: values for part in detected for name, values in part.notes.items()}
    order = [detector for detector in DETECTORS if detector in flags]
    comparison = next((part.reference for part in detected if part.reference is not None), None)
    return ScanResult(
        rows_in=len(index) if rows_in is None else rows_in,
        scores=pd.DataFrame({name: scores[name] for name in order}, index=index),
        flags=pd.DataFrame({name: flags[name] for name in order}, index=index),
        seconds=time.perf_counter() - started,
        detector_seconds={name: part.seconds[name] for part in detected for name in part.seconds},
        notes=pd.DataFrame(
            {name: notes.get(name, np.full(len(index), "", dtype=object)) for name in order}, index=index
        ),
        skipped={name: why for part in detected for name, why in part.skipped.items()},
        reference=comparison,
    )


def check_flagged_share(
    per_detector: dict[str, int], flagged: int, rows: int, settings: PoisoningSettings
) -> None:
    """Raise `PoisoningError` when the scan flagged more of the rows than the policy allows."""
    share = flagged / max(rows, 1)
    if share > settings.max_flagged_share:
        raise PoisoningError(
            f"poisoning scan flagged {share:.1%} of rows ({per_detector}), "
            f"above the policy's limit of {settings.max_flagged_share:.1%}"
        )


def scan_poisoning(
    frame: pd.DataFrame,
    dataset: DatasetSettings,
    settings: PoisoningSettings,
    reference: pd.DataFrame | None = None,
) -> ScanResult:
    """Score every typed row with each enabled detector; raise when the flagged share passes the policy.

    The in-memory scan is the partitioned one (`io/scan_parts.py`) with one partition that is also the sample:
    the same statistics, the same scoring code.
    `reference`: the typed, labelled rows the champion was trained on (trusted); without it the trusted-reference
    detector is skipped, and the result says so."""
    started = time.perf_counter()
    plan = pairs = None
    if settings.off_manifold:
        plan = off_manifold_plan(dataset, numeric_values(frame, dataset, _MAX_CODES_OFF_MANIFOLD))
        pairs = count_pairs(frame, dataset, plan)
    statistics = scan_statistics(plan, pairs, frame, dataset, settings)
    partition_wise = score_partition(frame, dataset, settings, statistics)
    together = score_together(frame, dataset, settings, partition_wise, reference)
    result = scan_result(frame.index, [partition_wise, together], started)
    check_flagged_share(result.per_detector, result.rows_flagged, result.rows_in, settings)
    logger.debug("poisoning scan: %s in %.1fs", result.per_detector, result.seconds)
    return result
