"""Trusted reference: compare new typed rows with the rows the champion was trained on.

For each single value and each pair of values, the rate of each label in the new rows is tested against what the
reference expects for that slice: its own rate there, shrunk towards what a model trained on the reference predicts
for the new slice's very rows (so a value combination the reference never saw still gets an expectation). One-sided
beta-binomial tests, Benjamini-Hochberg over every test made, and a minimum effect (odds ratio and excess rows) so a
genuine large-sample shift of a few points is not a finding. Inside each shifted slice, the rows carrying the
shifted label that the reference model finds least likely are flagged, as many as the slice's excess (times a
margin; where the excess is a small share of the slice, only rows the model finds likelier of the other label), the
slice named in their reason. Values new or newly frequent against the reference are reported too.
"""

from __future__ import annotations

import heapq
import itertools
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.stats import betabinom, false_discovery_control, norm
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from guardflow.data.encode_features import ordinal_features
from guardflow.data.table import label_vector
from guardflow.poisoning.slices import SliceColumn, decode_slice, slice_columns, slice_keys
from guardflow.settings import DatasetSettings, PoisoningSettings

TRUSTED_REFERENCE = "trusted_reference"
# Weight, in rows, of the reference model's expectation against the slice's own reference rate.
_PRIOR_ROWS = 20.0
# A prior weight that makes a slice's expectation the reference model's prediction for its new rows alone.
MODEL_EXPECTATION = 1e6
# Flag this many times a slice's excess rows: the excess is an estimate, and the planted rows are not all the least
# likely ones under the reference model.
_EXCESS_MARGIN = 1.5
# In a slice where the excess is a small share of the holders (a flipped group), only holders the reference model
# finds at least this likely of the other label are flagged.
_FLIP_FLOOR = 0.5
# Slices with more new rows than this get a normal approximation of their beta-binomial p-value.
_EXACT_ROWS = 1000


@dataclass(frozen=True)
class ShiftedSlice:
    """A slice (one or two column values) where a label became more frequent than the reference expects."""

    columns: tuple[str, ...]
    values: tuple[str, ...]
    label: str
    reference_rows: int
    reference_rate: float | None  # the label's rate among the reference rows of the slice (None: it has none)
    expected_rate: float  # the reference rate shrunk towards the reference model's mean on the new rows
    rows: int
    current_rate: float
    excess_rows: float
    p_value: float
    flagged_rows: int = 0

    @property
    def name(self) -> str:
        """`occupation=Tech-support & hours-per-week=44`."""
        return " & ".join(
            f"{column}={value}" for column, value in zip(self.columns, self.values, strict=True)
        )

    def describe(self) -> str:
        """`occupation=Tech-support & hours-per-week=44 (>50K 0.31 -> 0.92, n=412)`: the slice, the label, the
        rate the reference expects, the rate seen and the new rows in the slice."""
        return (
            f"{self.name} ({self.label} {self.expected_rate:.2f} -> {self.current_rate:.2f}, n={self.rows})"
        )


@dataclass(frozen=True)
class ValueShift:
    """A value held by far more of the new rows than of the reference rows (new when the reference has none)."""

    column: str
    value: str
    reference_rows: int
    reference_share: float
    rows: int
    current_share: float
    p_value: float

    def describe(self) -> str:
        return f"{self.column}={self.value} (share {self.reference_share:.4f} -> {self.current_share:.4f})"


@dataclass(frozen=True)
class ReferenceComparison:
    """Per-row scores, flags and reasons (index of the new rows), the shifted slices and values found."""

    scores: (
        pd.Series
    )  # how unlikely the reference model finds the row's label, inside a shifted slice; else 0
    flags: pd.Series
    reasons: pd.Series  # the slice that flagged the row, described; "" for rows not flagged
    slices: tuple[ShiftedSlice, ...]
    value_shifts: tuple[ValueShift, ...]
    reference_rows: int
    tests: int
    seconds: float
    # The reference model's mean probability of the positive label over the new rows: the label rate the
    # reference predicts for them from their features.
    model_rate: float = float("nan")


def reference_probabilities(
    reference: pd.DataFrame, frame: pd.DataFrame, dataset: DatasetSettings, seed: int
) -> np.ndarray:
    """The positive-class probability of each new row under a model trained on the reference rows only."""
    features, categorical = ordinal_features(reference, dataset)
    model = HistGradientBoostingClassifier(
        max_iter=100,
        max_leaf_nodes=15,
        min_samples_leaf=50,
        categorical_features=categorical,
        random_state=seed,
    )
    # One OpenMP thread: on shared cores, gradient boosting's spin-waiting threads run far slower under load.
    with threadpool_limits(limits=1):
        model.fit(features, label_vector(reference, dataset).to_numpy())
        return np.asarray(model.predict_proba(ordinal_features(frame, dataset)[0])[:, 1])


def _tests(
    columns: list[SliceColumn],
    split: int,
    reference_labels: np.ndarray,
    labels: np.ndarray,
    positive: np.ndarray,
    settings: PoisoningSettings,
) -> pd.DataFrame:
    """One line per (slice of one or two values, label) held by at least `reference_min_rows` new rows: the
    slice's columns and key, the label, and its counts among the new rows (`n`, `k`), the reference rows (`n_ref`,
    `k_ref`), and the reference model's expected count of the label among the new rows (`model_k`)."""
    parts: list[pd.DataFrame] = []
    for size in (1, 2):
        for chosen in itertools.combinations(range(len(columns)), size):
            cells, group = np.unique(slice_keys(columns, chosen), return_inverse=True)
            reference_group, current_group = group[:split], group[split:]
            n_ref = np.bincount(reference_group, minlength=len(cells)).astype("float64")
            n = np.bincount(current_group, minlength=len(cells)).astype("float64")
            k_ref = np.bincount(reference_group, weights=reference_labels, minlength=len(cells))
            k = np.bincount(current_group, weights=labels, minlength=len(cells))
            model_k = np.bincount(current_group, weights=positive, minlength=len(cells))
            for label in (0, 1):
                hits = k if label == 1 else n - k
                keep = hits >= settings.reference_min_rows
                parts.append(
                    pd.DataFrame(
                        {
                            "columns": pd.Series([chosen] * int(keep.sum()), dtype="object"),
                            "key": cells[keep],
                            "label": label,
                            "n": n[keep],
                            "k": hits[keep],
                            "n_ref": n_ref[keep],
                            "k_ref": (k_ref if label == 1 else n_ref - k_ref)[keep],
                            "model_k": (model_k if label == 1 else n - model_k)[keep],
                        }
                    )
                )
    return pd.concat(parts, ignore_index=True)


Figures = dict[str, np.ndarray]


def _p_values(k: np.ndarray, n: np.ndarray, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """P(X >= k) for X beta-binomial(n, alpha, beta): exact up to `_EXACT_ROWS` rows (scipy sums the terms one
    by one), a normal approximation with continuity correction beyond, where it is accurate and ~1000x faster."""
    p = np.ones(len(k))
    exact = n <= _EXACT_ROWS
    if exact.any():
        p[exact] = betabinom.sf(k[exact] - 1, n[exact], alpha[exact], beta[exact])
    if (~exact).any():
        a, b, m = alpha[~exact], beta[~exact], n[~exact]
        mean = m * a / (a + b)
        variance = m * a * b * (a + b + m) / ((a + b) ** 2 * (a + b + 1.0))
        p[~exact] = norm.sf((k[~exact] - 0.5 - mean) / np.sqrt(variance))
    return np.clip(np.nan_to_num(p, nan=1.0), 1e-300, 1.0)


def _judge(
    tests: Figures,
    settings: PoisoningSettings,
    scale: np.ndarray | None = None,
    prior_rows: float = _PRIOR_ROWS,
) -> Figures:
    """Each test's expected rate (the slice's reference rate with `_PRIOR_ROWS` pseudo-rows at the reference
    model's mean on its new rows), excess rows, odds ratio, one-sided p-value and verdict. The p-value is the chance
    of at least `k` of `n` new rows holding the label if drawn like the reference's (beta-binomial: a slice with few
    reference rows is uncertain). Benjamini-Hochberg over all the tests, unless `scale` (adjusted over raw p-value,
    kept from the first pass) is given for a recount."""
    n, k, n_ref, k_ref = tests["n"], tests["k"], tests["n_ref"], tests["k_ref"]
    prior = prior_rows * tests["model_k"] / np.maximum(n, 1.0)
    expected = (k_ref + prior) / (n_ref + prior_rows)
    raw = _p_values(k, n, k_ref + prior + 0.5, n_ref - k_ref + prior_rows - prior + 0.5)
    if scale is None:
        scale = false_discovery_control(raw, method="bh") / raw
    excess = k - n * expected
    odds_ratio = ((k + 0.5) / (n - k + 0.5)) / np.maximum(expected / np.maximum(1.0 - expected, 1e-9), 1e-9)
    # The likelihood-ratio statistic ranks the shifts: it weighs both how far the rate moved and over how many
    # rows, so a trigger's pure slice beats its values alone, and a flipped group beats its subgroups.
    rate = np.clip(k / np.maximum(n, 1.0), 1e-9, 1 - 1e-9)
    statistic = k * np.log(rate / expected) + (n - k) * np.log((1.0 - rate) / (1.0 - expected))
    shifted = (
        (excess >= settings.reference_min_rows)
        & (odds_ratio >= settings.reference_min_odds_ratio)
        & (np.minimum(1.0, raw * scale) <= settings.reference_fdr)
    )
    return {
        **tests,
        "expected": expected,
        "excess": excess,
        "odds_ratio": odds_ratio,
        "p": raw,
        "scale": scale,
        "statistic": statistic,
        "shifted": shifted,
    }


def _recount(
    tests: Figures, index: int, held: np.ndarray, labels: np.ndarray, positive: np.ndarray
) -> Figures:
    """Test `index` alone, its new-row counts over `held` (its rows no stronger slice has claimed yet)."""
    one = {name: values[index : index + 1] for name, values in tests.items()}
    label = int(one["label"][0])
    rows = float(held.sum())
    model = float(positive[held].sum())
    one["n"] = np.array([rows])
    one["k"] = np.array([float((labels[held] == label).sum())])
    one["model_k"] = np.array([model if label == 1 else rows - model])
    return one


def _with_prior(positive: np.ndarray, rate: float) -> np.ndarray:
    """The probabilities with every row's odds multiplied by the one factor that makes their mean `rate` (the
    prior correction of a label shift, Saerens et al. 2002)."""
    if not 0.0 < rate < 1.0:
        return positive
    clipped = np.clip(positive, 1e-6, 1 - 1e-6)
    odds = clipped / (1.0 - clipped)

    def mean_gap(log_factor: float) -> float:
        scaled = odds * np.exp(log_factor)
        return float((scaled / (1.0 + scaled)).mean() - rate)

    factor = np.exp(brentq(mean_gap, -20.0, 20.0))
    return odds * factor / (1.0 + odds * factor)


def compare_reference(
    frame: pd.DataFrame,
    reference: pd.DataFrame,
    dataset: DatasetSettings,
    settings: PoisoningSettings,
    prior_rows: float = _PRIOR_ROWS,
    label_shift_tolerance: float = 0.0,
) -> ReferenceComparison:
    """Flag the new rows (`frame`, typed) that carry a label shifted against the trusted `reference` rows (typed,
    labelled) inside a slice of one or two values; see the module docstring.

    `prior_rows`: the weight, in rows, of the reference model's expectation against a slice's own reference rate.
    Where the new rows come from another population than the reference (a drifted batch), a slice's reference
    rate averages over other people than the slice's new rows; a large weight (`MODEL_EXPECTATION`) makes the
    expectation the reference model's prediction for the new rows themselves (P(label | features) is what a
    genuine covariate or subpopulation shift leaves in place). `label_shift_tolerance`: when the new rows' label
    rate is within this of the rate the reference model predicts for them, the model's probabilities are moved
    to the new rows' prior first (a genuine label shift multiplies every row's odds alike), so only slices that
    moved beyond it stand out."""
    started = time.perf_counter()
    features = list(dataset.features)
    columns = slice_columns(pd.concat([reference[features], frame[features]], ignore_index=True), dataset)
    split = len(reference)
    labels = label_vector(frame, dataset).to_numpy()
    positive = reference_probabilities(reference, frame, dataset, settings.seed)
    model_rate = float(positive.mean()) if len(positive) else float("nan")
    observed = float(labels.mean()) if len(labels) else float("nan")
    if label_shift_tolerance > 0 and abs(observed - model_rate) <= label_shift_tolerance:
        positive = _with_prior(positive, observed)
    own_label = np.where(labels == 1, positive, 1.0 - positive)
    reference_labels = label_vector(reference, dataset).to_numpy()
    frame_tests = _tests(columns, split, reference_labels, labels, positive, settings)
    tests = _judge(
        {name: frame_tests[name].to_numpy() for name in frame_tests.columns}, settings, prior_rows=prior_rows
    )
    candidates = np.flatnonzero(tests["shifted"])
    keys = {
        chosen: slice_keys(columns, chosen)[split:] for chosen in {tests["columns"][i] for i in candidates}
    }
    members = {int(index): keys[tests["columns"][index]] == tests["key"][index] for index in candidates}
    scores = np.zeros(len(frame))
    flags = np.zeros(len(frame), dtype=bool)
    reasons = np.full(len(frame), "", dtype=object)
    shifted: list[ShiftedSlice] = []
    # Strongest shift first; the rows it claims leave the counts of the weaker ones (a three-value trigger shifts
    # its pairs and its values alone: its purest slice should claim the rows, the others then show no excess).
    # Lazy greedy: claiming rows only lowers the others' statistics, so a slice recounted and still ahead of every
    # other's last statistic is the strongest.
    queue = [(-float(tests["statistic"][index]), int(index)) for index in candidates]
    heapq.heapify(queue)
    while queue:
        _, index = heapq.heappop(queue)
        held = members[index] & ~flags
        if not held.any():
            continue
        one = _judge(
            _recount(tests, index, held, labels, positive),
            settings,
            scale=tests["scale"][index : index + 1],
            prior_rows=prior_rows,
        )
        figure = {name: values[0] for name, values in one.items()}
        if not figure["shifted"]:
            continue
        if queue and figure["statistic"] < -queue[0][0]:
            heapq.heappush(queue, (-float(figure["statistic"]), index))
            continue
        best = index
        label = int(figure["label"])
        holders = np.flatnonzero(members[best] & ~flags & (labels == label))
        unlikely = 1.0 - own_label[holders]
        # When most of the slice's holders are excess (a trigger), the rank is enough; when few are (a flipped
        # group), only rows the reference model finds more likely of the other label.
        excess_share = float(figure["excess"]) / max(len(holders), 1)
        ranked = np.argsort(-unlikely, kind="stable")[: int(np.ceil(_EXCESS_MARGIN * figure["excess"]))]
        take = holders[ranked[unlikely[ranked] > min(_FLIP_FLOOR, 1.0 - excess_share)]]
        record = ShiftedSlice(
            columns=tuple(columns[position].name for position in figure["columns"]),
            values=decode_slice(int(figure["key"]), figure["columns"], columns),
            label=(dataset.label.negative, dataset.label.positive)[label],
            reference_rows=int(figure["n_ref"]),
            reference_rate=round(float(figure["k_ref"] / figure["n_ref"]), 4) if figure["n_ref"] else None,
            expected_rate=round(float(figure["expected"]), 4),
            rows=int(figure["n"]),
            current_rate=round(float(figure["k"] / figure["n"]), 4),
            excess_rows=round(float(figure["excess"]), 1),
            p_value=float(figure["p"]),
            flagged_rows=len(take),
        )
        shifted.append(record)
        scores[holders] = np.maximum(scores[holders], unlikely)
        flags[take] = True
        reasons[take] = record.describe()
    index = frame.index
    return ReferenceComparison(
        scores=pd.Series(scores, index=index, name=TRUSTED_REFERENCE),
        flags=pd.Series(flags, index=index, name=TRUSTED_REFERENCE),
        reasons=pd.Series(reasons, index=index, name=TRUSTED_REFERENCE, dtype="object"),
        slices=tuple(shifted),
        value_shifts=tuple(_value_shifts(columns, split, len(frame), settings)),
        reference_rows=split,
        tests=len(tests),
        seconds=time.perf_counter() - started,
        model_rate=model_rate,
    )


def _value_shifts(
    columns: list[SliceColumn], split: int, rows: int, settings: PoisoningSettings
) -> list[ValueShift]:
    """Values whose share of the new rows is significantly (BH) above the reference's, by at least
    `reference_min_odds_ratio` and `reference_min_rows` rows: new values, or values that became frequent."""
    candidates: list[tuple[str, str, int, int, float]] = []
    for column in columns:
        counts_reference = np.bincount(column.codes[:split], minlength=len(column.labels))
        counts_current = np.bincount(column.codes[split:], minlength=len(column.labels))
        for code in np.flatnonzero(counts_current >= settings.reference_min_rows):
            n_ref, n = int(counts_reference[code]), int(counts_current[code])
            p = float(betabinom.sf(n - 1, rows, n_ref + 0.5, split - n_ref + 0.5))
            candidates.append((column.name, column.labels[code], n_ref, n, p))
    if not candidates:
        return []
    adjusted = false_discovery_control(np.clip([c[4] for c in candidates], 1e-300, 1.0), method="bh")
    shifts: list[ValueShift] = []
    for (name, value, n_ref, n, p), q in zip(candidates, adjusted, strict=True):
        reference_share, current_share = n_ref / max(split, 1), n / max(rows, 1)
        excess = n - rows * (n_ref + 0.5) / (split + 1.0)
        ratio = current_share / max((n_ref + 0.5) / (split + 1.0), 1e-12)
        significant = q <= settings.reference_fdr and ratio >= settings.reference_min_odds_ratio
        if significant and excess >= settings.reference_min_rows:
            shifts.append(
                ValueShift(name, value, n_ref, round(reference_share, 6), n, round(current_share, 6), p)
            )
    return shifts
