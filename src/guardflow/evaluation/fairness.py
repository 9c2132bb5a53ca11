"""Fairness per sensitive group: accuracy, selection rate, TPR and FPR per group, the parity and
equalized-odds gaps between groups, and their bootstrap intervals.

A group too small to judge (fewer than `min_group_size` rows for its selection rate, positives for its TPR,
negatives for its FPR) keeps its figures but is left out of the gaps, and says so (`small_groups`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from guardflow.evaluation.intervals import Interval, percentile_interval, unit_weights
from guardflow.evaluation.metrics import weighted_rate

MISSING_GROUP = "(missing)"
# The rates a group is judged by, and the rows each is measured on.
RATES = ("selection_rate", "tpr", "fpr")
MEASURED_ON = {"selection_rate": "rows", "tpr": "positives", "fpr": "negatives"}


def group_names(groups: pd.Series) -> np.ndarray:
    """Each row's group as text; missing values form their own group."""
    return groups.fillna(MISSING_GROUP).astype(str).to_numpy()


def group_rates(
    weights: np.ndarray, members: np.ndarray, predictions: np.ndarray, labels: np.ndarray
) -> dict[str, np.ndarray]:
    """Accuracy, selection rate, TPR and FPR of the rows in `members`, one value per weight row."""
    positives, negatives = members & (labels == 1), members & (labels == 0)
    return {
        "accuracy": weighted_rate(weights, (predictions == labels).astype("float64"), members),
        "selection_rate": weighted_rate(weights, predictions, members),
        "tpr": weighted_rate(weights, predictions, positives),
        "fpr": weighted_rate(weights, predictions, negatives),
    }


@dataclass(frozen=True)
class GroupFairness:
    """Per-group accuracy, positive-prediction (selection) rate, TPR and FPR for one sensitive attribute.

    `intervals` holds bootstrap intervals keyed `accuracy:<group>`, `selection_rate:<group>`, `tpr:<group>`,
    `fpr:<group>`, `dp_difference` and `eo_difference`. `positives` and `negatives` count each group's labels.
    """

    attribute: str
    accuracy: dict[str, float]
    positive_rate: dict[str, float]
    rows: dict[str, int]
    true_positive_rate: dict[str, float] = field(default_factory=dict)
    false_positive_rate: dict[str, float] = field(default_factory=dict)
    intervals: dict[str, Interval] = field(default_factory=dict)
    positives: dict[str, int] = field(default_factory=dict)
    negatives: dict[str, int] = field(default_factory=dict)
    min_group_size: int = 0

    def measured_rows(self, rate: str, group: str) -> int:
        """How many rows `rate` of `group` is measured on (rows, positives or negatives)."""
        counts = {"rows": self.rows, "positives": self.positives, "negatives": self.negatives}[
            MEASURED_ON[rate]
        ]
        return counts.get(group, self.rows[group])

    def judged(self, rate: str, group: str) -> bool:
        """Whether the group has enough rows for `rate` to be judged."""
        return self.measured_rows(rate, group) >= self.min_group_size

    def small_groups(self) -> list[str]:
        """One note per (group, rate) too small to judge, e.g. `Other: tpr on 25 positives < 50`."""
        return [
            f"{group}: {rate} on {self.measured_rows(rate, group)} {MEASURED_ON[rate]} < {self.min_group_size}"
            for group in self.rows
            for rate in RATES
            if not self.judged(rate, group)
        ]

    def _gap(self, rate: str, values: dict[str, float]) -> float | None:
        judged = [value for group, value in values.items() if self.judged(rate, group) and value == value]
        return float(max(judged) - min(judged)) if judged else None

    @property
    def demographic_parity_difference(self) -> float:
        """Largest gap in positive-prediction rate between any two groups large enough to judge."""
        return self._gap("selection_rate", self.positive_rate) or 0.0

    @property
    def equalized_odds_difference(self) -> float:
        """The larger of the largest TPR gap and the largest FPR gap between groups large enough to judge
        (groups without positives, or without negatives, have no such rate and are left out of that gap)."""
        gaps = [self._gap("tpr", self.true_positive_rate), self._gap("fpr", self.false_positive_rate)]
        return max((gap for gap in gaps if gap is not None), default=0.0)


def group_fairness(
    attribute: str,
    groups: pd.Series,
    predictions: np.ndarray,
    labels: np.ndarray,
    min_group_size: int = 0,
) -> GroupFairness:
    """Accuracy, positive rate, TPR and FPR per value of one sensitive attribute (missing values form their own
    group). A group without positive (negative) labels has TPR (FPR) NaN."""
    names = group_names(groups)
    weights = unit_weights(len(labels))
    figures: dict[str, dict[str, float]] = {key: {} for key in ("accuracy", "selection_rate", "tpr", "fpr")}
    rows, positives, negatives = {}, {}, {}
    for name in sorted(set(names)):
        members = names == name
        for key, value in group_rates(weights, members, predictions, labels).items():
            figures[key][name] = float(value[0])
        rows[name] = int(members.sum())
        positives[name] = int((members & (labels == 1)).sum())
        negatives[name] = int((members & (labels == 0)).sum())
    return GroupFairness(
        attribute=attribute,
        accuracy=figures["accuracy"],
        positive_rate=figures["selection_rate"],
        rows=rows,
        true_positive_rate=figures["tpr"],
        false_positive_rate=figures["fpr"],
        positives=positives,
        negatives=negatives,
        min_group_size=min_group_size,
    )


def _gap_samples(group: GroupFairness, rate: str, samples: dict[str, np.ndarray]) -> np.ndarray | None:
    judged = [values for name, values in samples.items() if group.judged(rate, name)]
    if not judged:
        return None
    stacked = np.stack(judged)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample where no judged group has the rate: NaN
        return np.nanmax(stacked, axis=0) - np.nanmin(stacked, axis=0)


def bootstrap_fairness(
    group: GroupFairness, names: np.ndarray, counts: np.ndarray, predictions: np.ndarray, labels: np.ndarray
) -> GroupFairness:
    """The group's figures with 95% intervals over the resamples `counts` (the same point-rate functions)."""
    intervals: dict[str, Interval] = {}
    samples: dict[str, dict[str, np.ndarray]] = {rate: {} for rate in RATES}
    for name in group.accuracy:
        rates = group_rates(counts, names == name, predictions, labels)
        for key, values in rates.items():
            intervals[f"{key}:{name}"] = percentile_interval(values)
            if key in samples:
                samples[key][name] = values
    parity = _gap_samples(group, "selection_rate", samples["selection_rate"])
    if parity is not None:
        intervals["dp_difference"] = percentile_interval(parity)
    gaps = [gap for rate in ("tpr", "fpr") if (gap := _gap_samples(group, rate, samples[rate])) is not None]
    if gaps:
        intervals["eo_difference"] = percentile_interval(gaps[0] if len(gaps) == 1 else np.fmax(*gaps))
    return replace(group, intervals=intervals)
