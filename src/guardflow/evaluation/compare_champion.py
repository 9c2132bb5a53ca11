"""The candidate against the champion on the same rows: headline figures, every group's rates with paired
bootstrap intervals of the difference, and the differential check of where predictions moved.

Paired: one set of resamples of the rows serves both models, so the interval of candidate - champion holds
only the uncertainty of the difference, not that of each rate (much narrower for two similar models).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from guardflow.evaluation.differential import DifferentialCheck, check_differential
from guardflow.evaluation.evaluate_safety import Evaluation
from guardflow.evaluation.fairness import MEASURED_ON, RATES, group_names, group_rates
from guardflow.evaluation.intervals import BOOTSTRAP_RESAMPLES, Interval, percentile_interval, resample_counts
from guardflow.evaluation.metrics import champion_figures
from guardflow.settings import DatasetSettings, GateSettings

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
    paired bootstrap interval of candidate - champion (the same resamples of the rows for both)."""
    labels = np.asarray(labels)
    predicted = {
        "candidate": (np.asarray(candidate) >= threshold).astype("int64"),
        "champion": (np.asarray(champion) >= threshold).astype("int64"),
    }
    ones = np.ones((1, len(labels)))
    counts = resample_counts(len(labels), resamples, seed)
    changes = []
    for attribute in sensitive.columns:
        names = group_names(sensitive[attribute])
        for group in sorted(set(names)):
            members = names == group
            point = {model: group_rates(ones, members, p, labels) for model, p in predicted.items()}
            resampled = {model: group_rates(counts, members, p, labels) for model, p in predicted.items()}
            measured = {
                "rows": int(members.sum()),
                "positives": int((members & (labels == 1)).sum()),
                "negatives": int((members & (labels == 0)).sum()),
            }
            for rate in RATES:
                changes.append(
                    GroupChange(
                        attribute=attribute,
                        group=group,
                        rate=rate,
                        candidate=float(point["candidate"][rate][0]),
                        champion=float(point["champion"][rate][0]),
                        difference=percentile_interval(
                            resampled["candidate"][rate] - resampled["champion"][rate]
                        ),
                        measured_on=measured[MEASURED_ON[rate]],
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
) -> ChampionComparison:
    """Everything the gate holds the candidate to against the champion: headline figures on the test rows,
    per-group paired changes on the test rows, and the differential check on the training and test rows."""
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
    )
