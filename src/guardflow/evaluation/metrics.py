"""Point metrics of a model's probabilities on labelled rows: accuracy, ROC AUC, calibration error and rates.

Each `weighted_*` function takes row weights of shape (resamples, rows) and returns one value per resample;
weights of one (`unit_weights`) give the point estimate, bootstrap counts give its resamples. The plain
functions below are those point estimates, so intervals and figures come from one implementation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from guardflow.evaluation.intervals import ratio, unit_weights

CALIBRATION_BINS = 15


@dataclass(frozen=True)
class Reliability:
    """The reliability diagram's data: per equal-width bin, mean predicted probability, observed rate, rows."""

    mean_probability: tuple[float, ...]
    observed_rate: tuple[float, ...]
    rows: tuple[int, ...]


def calibration_bins(probabilities: np.ndarray, bins: int = CALIBRATION_BINS) -> np.ndarray:
    """The equal-width bin of each probability (0 and 1 fall in the end bins)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    return np.clip(np.digitize(probabilities, edges[1:-1]), 0, bins - 1)


def weighted_rate(weights: np.ndarray, events: np.ndarray, among: np.ndarray) -> np.ndarray:
    """Share of the (weighted) rows in `among` where `events` holds; NaN when `among` is empty."""
    among = among.astype("float64")
    return ratio(weights @ (among * events), weights @ among)


def weighted_accuracy(weights: np.ndarray, predictions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return weighted_rate(weights, (predictions == labels).astype("float64"), np.ones(len(labels)))


def weighted_ece(
    weights: np.ndarray, probabilities: np.ndarray, labels: np.ndarray, bins: int = CALIBRATION_BINS
) -> np.ndarray:
    """Expected calibration error: sum over bins of |sum of (probability - label)| / rows."""
    one_hot = np.eye(bins)[calibration_bins(probabilities, bins)]
    gaps = weights @ (one_hot * (probabilities - labels)[:, None])
    return np.abs(gaps).sum(axis=1) / weights.sum(axis=1)


def weighted_auc(weights: np.ndarray, probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """ROC AUC under row weights, ties counted half: the Mann-Whitney statistic."""
    order = np.argsort(probabilities, kind="stable")
    sorted_scores = probabilities[order]
    positive = labels[order] == 1
    ordered = weights[:, order]
    negative_weight = np.cumsum(ordered * ~positive, axis=1)
    # first and last position of each position's tie group
    starts = np.searchsorted(sorted_scores, sorted_scores, side="left")
    ends = np.searchsorted(sorted_scores, sorted_scores, side="right") - 1
    padded = np.concatenate([np.zeros((len(ordered), 1)), negative_weight], axis=1)
    below = padded[:, starts]
    tied = padded[:, ends + 1] - below
    wins = (ordered[:, positive] * (below[:, positive] + 0.5 * tied[:, positive])).sum(axis=1)
    pairs = ordered[:, positive].sum(axis=1) * ordered[:, ~positive].sum(axis=1)
    return ratio(wins, pairs)


def expected_calibration_error(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = CALIBRATION_BINS
) -> float:
    """Mean gap between predicted probability and observed frequency, over equal-width bins, weighted by size."""
    probabilities = np.asarray(probabilities, dtype="float64")
    return float(weighted_ece(unit_weights(len(probabilities)), probabilities, np.asarray(labels), bins)[0])


def reliability_diagram(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = CALIBRATION_BINS
) -> Reliability:
    """Mean prediction and observed positive rate per equal-width bin (empty bins give NaN)."""
    bin_of_row = calibration_bins(probabilities, bins)
    rows = np.bincount(bin_of_row, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(bin_of_row, weights=probabilities, minlength=bins) / rows
        observed = np.bincount(bin_of_row, weights=labels.astype("float64"), minlength=bins) / rows
    return Reliability(tuple(map(float, mean)), tuple(map(float, observed)), tuple(map(int, rows)))


def champion_figures(
    probabilities: np.ndarray, labels: np.ndarray, threshold: float = 0.5
) -> dict[str, float]:
    """Accuracy, ROC AUC and ECE of any model's probabilities on the held-out rows (no intervals)."""
    probabilities = np.asarray(probabilities, dtype="float64")
    labels = np.asarray(labels)
    weights = unit_weights(len(labels))
    predictions = (probabilities >= threshold).astype("int64")
    return {
        "accuracy": float(weighted_accuracy(weights, predictions, labels)[0]),
        "roc_auc": float(weighted_auc(weights, probabilities, labels)[0]),
        "ece": float(weighted_ece(weights, probabilities, labels)[0]),
    }
