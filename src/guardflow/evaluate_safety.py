"""Offline safety evaluation on held-out rows: utility, calibration and fairness per sensitive group."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, roc_auc_score

from guardflow.audit_membership import MembershipAudit


@dataclass(frozen=True)
class GroupFairness:
    """Per-group accuracy and positive-prediction rate for one sensitive attribute."""

    attribute: str
    accuracy: dict[str, float]
    positive_rate: dict[str, float]
    rows: dict[str, int]

    @property
    def demographic_parity_difference(self) -> float:
        """Largest gap in positive-prediction rate between any two groups."""
        rates = list(self.positive_rate.values())
        return float(max(rates) - min(rates)) if rates else 0.0


@dataclass(frozen=True)
class Evaluation:
    """Every figure the gate can judge a candidate by."""

    rows: int
    accuracy: float
    roc_auc: float
    ece: float
    fairness: tuple[GroupFairness, ...]
    membership: MembershipAudit

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
        for group in self.fairness:
            flat[f"dp_difference_{group.attribute}"] = group.demographic_parity_difference
            for name, value in group.accuracy.items():
                flat[f"accuracy_{group.attribute}_{name}"] = value
        return flat


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Mean gap between predicted probability and observed frequency, over equal-width bins, weighted by size."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    bin_of_row = np.clip(np.digitize(probabilities, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for index in range(bins):
        in_bin = bin_of_row == index
        if in_bin.any():
            error += in_bin.mean() * abs(probabilities[in_bin].mean() - labels[in_bin].mean())
    return float(error)


def group_fairness(
    attribute: str, groups: pd.Series, predictions: np.ndarray, labels: np.ndarray
) -> GroupFairness:
    """Accuracy and positive rate per value of one sensitive attribute (missing values form their own group)."""
    names = groups.fillna("(missing)").astype(str).to_numpy()
    accuracy: dict[str, float] = {}
    positive_rate: dict[str, float] = {}
    rows: dict[str, int] = {}
    for name in sorted(set(names)):
        members = names == name
        accuracy[name] = float((predictions[members] == labels[members]).mean())
        positive_rate[name] = float(predictions[members].mean())
        rows[name] = int(members.sum())
    return GroupFairness(attribute=attribute, accuracy=accuracy, positive_rate=positive_rate, rows=rows)


def evaluate_safety(
    probabilities: np.ndarray,
    labels: np.ndarray,
    sensitive: pd.DataFrame,
    membership: MembershipAudit,
    threshold: float = 0.5,
) -> Evaluation:
    """Score held-out predictions; `sensitive` holds the sensitive attribute columns of the same rows."""
    predictions = (probabilities >= threshold).astype("int64")
    return Evaluation(
        rows=len(labels),
        accuracy=float(accuracy_score(labels, predictions)),
        roc_auc=float(roc_auc_score(labels, probabilities)),
        ece=expected_calibration_error(probabilities, labels),
        fairness=tuple(
            group_fairness(attribute, sensitive[attribute], predictions, labels)
            for attribute in sensitive.columns
        ),
        membership=membership,
    )
