"""Offline safety evaluation on held-out rows: utility, calibration, fairness per sensitive group, robustness to
perturbed inputs and counterfactual flips of sensitive attributes, each rate with a bootstrap interval.

The parts live in their own modules (metrics, intervals, fairness, robustness, plots); this one assembles them
into an `Evaluation` and keeps their public names importable from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from guardflow.evaluation.fairness import GroupFairness, bootstrap_fairness, group_fairness, group_names
from guardflow.evaluation.intervals import BOOTSTRAP_RESAMPLES, Interval, percentile_interval, resample_counts
from guardflow.evaluation.metrics import (
    CALIBRATION_BINS,
    Reliability,
    champion_figures,
    expected_calibration_error,
    reliability_diagram,
    weighted_accuracy,
    weighted_auc,
    weighted_ece,
)
from guardflow.evaluation.plots import save_plots
from guardflow.evaluation.robustness import (
    Perturbation,
    Predict,
    Robustness,
    counterfactual_flip_rate,
    robustness,
)
from guardflow.privacy.audit_membership import MembershipAudit
from guardflow.settings import CategoricalFeature, DatasetSettings

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "CALIBRATION_BINS",
    "Evaluation",
    "GroupFairness",
    "Interval",
    "Perturbation",
    "Predict",
    "Reliability",
    "Robustness",
    "champion_figures",
    "check_behaviour",
    "counterfactual_flip_rate",
    "evaluate_safety",
    "expected_calibration_error",
    "group_fairness",
    "reliability_diagram",
    "robustness",
    "save_plots",
]


@dataclass(frozen=True)
class Evaluation:
    """Every figure the gate can judge a candidate by."""

    rows: int
    accuracy: float
    roc_auc: float
    ece: float
    fairness: tuple[GroupFairness, ...]
    membership: MembershipAudit
    intervals: dict[str, Interval] = field(default_factory=dict)
    reliability: Reliability | None = None
    robustness: Robustness | None = None
    counterfactual_flip_rate: dict[str, float] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        """Flat name -> value view, for MLflow metrics and the summary."""
        flat = {
            "accuracy": self.accuracy,
            "roc_auc": self.roc_auc,
            "ece": self.ece,
            "mia_auc": self.membership.auc,
            "mia_tpr_at_1pct_fpr": self.membership.tpr_at_1pct_fpr,
            "mia_tpr_at_01pct_fpr": self.membership.tpr_at_01pct_fpr,
            "mia_epsilon_lower_bound": self.membership.epsilon_lower_bound,
        }
        for name, interval in self.intervals.items():
            flat[f"{name}_ci_low"] = interval.low
            flat[f"{name}_ci_high"] = interval.high
        for group in self.fairness:
            flat[f"dp_difference_{group.attribute}"] = group.demographic_parity_difference
            if group.true_positive_rate:
                flat[f"eo_difference_{group.attribute}"] = group.equalized_odds_difference
            for name, value in group.accuracy.items():
                flat[f"accuracy_{group.attribute}_{name}"] = value
            for name, value in group.true_positive_rate.items():
                flat[f"tpr_{group.attribute}_{name}"] = value
            for name, value in group.false_positive_rate.items():
                flat[f"fpr_{group.attribute}_{name}"] = value
        if self.robustness is not None:
            for perturbation in self.robustness.perturbations:
                flat[f"robust_accuracy_{perturbation.name}"] = perturbation.accuracy
        for attribute, rate in self.counterfactual_flip_rate.items():
            flat[f"counterfactual_flip_rate_{attribute}"] = rate
        return flat


def evaluate_safety(
    probabilities: np.ndarray,
    labels: np.ndarray,
    sensitive: pd.DataFrame,
    membership: MembershipAudit,
    threshold: float = 0.5,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    min_group_size: int = 0,
) -> Evaluation:
    """Score held-out predictions; `sensitive` holds the sensitive attribute columns of the same rows.

    Every rate gets a 95% percentile interval from `resamples` bootstrap resamples of the rows (0 turns them
    off). The ECE interval leans high for well-calibrated models: resampling adds its own binning noise.
    Groups below `min_group_size` are reported but left out of the parity and equalized-odds gaps.
    """
    probabilities = np.asarray(probabilities, dtype="float64")
    labels = np.asarray(labels)
    predictions = (probabilities >= threshold).astype("int64")
    fairness = [
        group_fairness(attribute, sensitive[attribute], predictions, labels, min_group_size)
        for attribute in sensitive.columns
    ]
    intervals: dict[str, Interval] = {}
    if resamples > 0:
        counts = resample_counts(len(labels), resamples, seed)
        intervals["accuracy"] = percentile_interval(weighted_accuracy(counts, predictions, labels))
        intervals["roc_auc"] = percentile_interval(weighted_auc(counts, probabilities, labels))
        intervals["ece"] = percentile_interval(weighted_ece(counts, probabilities, labels))
        fairness = [
            bootstrap_fairness(group, group_names(sensitive[group.attribute]), counts, predictions, labels)
            for group in fairness
        ]
    figures = champion_figures(probabilities, labels, threshold)
    return Evaluation(
        rows=len(labels),
        accuracy=figures["accuracy"],
        roc_auc=figures["roc_auc"],
        ece=figures["ece"],
        fairness=tuple(fairness),
        membership=membership,
        intervals=intervals,
        reliability=reliability_diagram(probabilities, labels),
    )


def check_behaviour(
    evaluation: Evaluation,
    predict: Predict,
    frame: pd.DataFrame,
    labels: np.ndarray,
    dataset: DatasetSettings,
    seed: int = 0,
) -> Evaluation:
    """The evaluation with robustness and counterfactual flip rates (per sensitive attribute) filled in."""
    return replace(
        evaluation,
        robustness=robustness(predict, frame, labels, dataset, seed),
        counterfactual_flip_rate={
            attribute: counterfactual_flip_rate(predict, frame, dataset, attribute)
            for attribute in dataset.sensitive
            if isinstance(dataset.features[attribute], CategoricalFeature)
        },
    )
