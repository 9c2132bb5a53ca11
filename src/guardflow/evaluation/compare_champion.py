"""The candidate against the champion on the same rows: headline figures, every group's rates with paired
bootstrap intervals of the difference, and the differential check of where predictions moved.

Every group's rates are compared on the test rows and, when the champion's training data is at hand (the scan's
trusted reference), again on those rows with their recorded labels: more rows for small groups, and labels the
candidate's own (possibly flipped) training data cannot have changed.

Paired: one set of resamples of the rows serves both models, so the interval of candidate - champion holds
only the uncertainty of the difference, not that of each rate (much narrower for two similar models).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from guardflow.evaluation.differential import DifferentialCheck, check_differential
from guardflow.evaluation.evaluate_safety import Evaluation
from guardflow.evaluation.fairness import MEASURED_ON, RATES, group_names
from guardflow.evaluation.intervals import (
    BOOTSTRAP_RESAMPLES,
    Interval,
    percentile_interval,
    ratio,
    resample_counts,
)
from guardflow.evaluation.metrics import champion_figures
from guardflow.gate_settings import GateSettings
from guardflow.settings import DatasetSettings

# Which way is worse for each group rate: a drop in TPR or selection rate, a rise in FPR.
HIGHER_IS_BETTER_RATE = {"tpr": True, "selection_rate": True, "fpr": False}


@dataclass(frozen=True)
class GroupChange:
    """One group's rate for candidate and champion on the same rows, and the paired 95% interval of the
    difference candidate - champion. `measured_on` counts the rows the rate is measured on."""

    attribute: str
    group: str
    rate: str  # "tpr", "fpr" or "selection_rate"
    candidate: float
    champion: float
    difference: Interval
    measured_on: int

    @property
    def favourable_end(self) -> float:
        """The end of the difference's interval most flattering to the candidate."""
        return self.difference.high if HIGHER_IS_BETTER_RATE[self.rate] else self.difference.low


@dataclass(frozen=True)
class ScoredRows:
    """Typed rows scored by both models (probability of the positive class)."""

    frame: pd.DataFrame
    candidate: np.ndarray
    champion: np.ndarray
    labels: np.ndarray | None = None  # the candidate's training labels (training rows only)


@dataclass(frozen=True)
class ChampionComparison:
    """The champion's figures on the candidate's held-out rows, the candidate's 95% intervals, every group's
    paired change, and the differential checks (training rows, test rows)."""

    champion_version: str
    champion: dict[str, float]
    candidate_interval: dict[str, tuple[float, float]]
    groups: tuple[GroupChange, ...] = ()
    differential: tuple[DifferentialCheck, ...] = ()
    # Every group's change on the champion's training rows with their trusted labels (None: not scored).
    reference_groups: tuple[GroupChange, ...] | None = None
    reference_rows: int = 0
    judged_on: str | None = None  # the rows both were scored on, when not the test set (a drift window)


def compare_groups(
    candidate: np.ndarray,
    champion: np.ndarray,
    labels: np.ndarray,
    sensitive: pd.DataFrame,
    threshold: float = 0.5,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> tuple[GroupChange, ...]:
    """TPR, FPR and selection rate of every group of every sensitive attribute, for both models, with the
    paired bootstrap interval of candidate - champion (the same resamples of the rows for both).

    Each rate is a share of weighted rows: the rows it is measured on (a group's rows, positives or negatives)
    and those of them each model predicts positive. All these indicators go in one matrix, so every resample of
    every rate comes from a single product with the resample counts (one pass over them, however many groups).
    """
    labels = np.asarray(labels)
    predicted = [np.asarray(scores) >= threshold for scores in (candidate, champion)]
    measured_on = {
        "rows": np.ones(len(labels), dtype=bool),
        "positives": labels == 1,
        "negatives": labels == 0,
    }
    keys, columns = [], []
    for attribute in sensitive.columns:
        names = group_names(sensitive[attribute])
        for group in sorted(set(names)):
            for rate in RATES:
                among = (names == group) & measured_on[MEASURED_ON[rate]]
                keys.append((attribute, group, rate, int(among.sum())))
                columns += [among, among & predicted[0], among & predicted[1]]
    if not keys:
        return ()
    indicators = np.stack(columns, axis=1).astype("float64")
    point = indicators.sum(axis=0)
    resampled = resample_counts(len(labels), resamples, seed) @ indicators
    changes = []
    for index, (attribute, group, rate, rows) in enumerate(keys):
        among, chosen = 3 * index, slice(3 * index + 1, 3 * index + 3)
        point_rates = ratio(point[chosen], np.full(2, point[among]))
        rates = ratio(resampled[:, chosen], resampled[:, [among, among]])
        changes.append(
            GroupChange(
                attribute=attribute,
                group=group,
                rate=rate,
                candidate=float(point_rates[0]),
                champion=float(point_rates[1]),
                difference=percentile_interval(rates[:, 0] - rates[:, 1]),
                measured_on=rows,
            )
        )
    return tuple(changes)


def compare_with_champion(
    champion_version: str,
    test: ScoredRows,
    training: ScoredRows | None,
    labels: np.ndarray,
    evaluation: Evaluation,
    dataset: DatasetSettings,
    gate: GateSettings,
    seed: int = 0,
    reference: ScoredRows | None = None,
) -> ChampionComparison:
    """Everything the gate holds the candidate to against the champion: headline figures on the test rows,
    per-group paired changes on the test rows (and on the `reference` rows, the champion's training data with
    its own labels in `reference.labels`), and the differential check on the training and test rows."""
    checks = [
        check_differential(
            rows.candidate,
            rows.champion,
            rows.frame,
            dataset,
            gate.differential,
            judged_on,
            labels=rows.labels,
        )
        for judged_on, rows in (("training rows", training), ("test rows", test))
        if rows is not None
    ]
    return ChampionComparison(
        champion_version=champion_version,
        champion=champion_figures(test.champion, labels),
        candidate_interval={
            metric: (evaluation.intervals[metric].low, evaluation.intervals[metric].high)
            for metric in gate.max_regression
            if metric in evaluation.intervals
        },
        groups=compare_groups(
            test.candidate, test.champion, labels, test.frame[dataset.sensitive], seed=seed
        ),
        differential=tuple(checks),
        reference_groups=_reference_groups(reference, dataset, seed),
        reference_rows=len(reference.frame) if reference is not None else 0,
    )


def _reference_groups(
    reference: ScoredRows | None, dataset: DatasetSettings, seed: int
) -> tuple[GroupChange, ...] | None:
    if reference is None:
        return None
    if reference.labels is None:
        raise ValueError("reference rows need their trusted labels")
    sensitive = reference.frame[dataset.sensitive]
    return compare_groups(reference.candidate, reference.champion, reference.labels, sensitive, seed=seed)
