"""Behaviour of a model on changed inputs: accuracy under numeric noise and category swaps of stated strengths,
and the share of predictions that flip when only a sensitive attribute changes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from guardflow.settings import CategoricalFeature, DatasetSettings, NumericFeature

# Typed rows -> probability of the positive class, one per row.
Predict = Callable[[pd.DataFrame], np.ndarray]

# Strengths of the robustness perturbations: noise std as a share of each numeric feature's public range, and
# the probability that a categorical value is swapped for another category of its public list.
NOISE_STRENGTHS = (0.05, 0.10)
SWAP_STRENGTHS = (0.05, 0.10)


@dataclass(frozen=True)
class Perturbation:
    """Accuracy when the held-out rows are perturbed in one stated way."""

    name: str
    kind: str  # "numeric_noise" or "category_swap"
    strength: float
    accuracy: float


@dataclass(frozen=True)
class Robustness:
    """Accuracy on clean rows and under each perturbation."""

    baseline_accuracy: float
    perturbations: tuple[Perturbation, ...]
    seed: int


def _accuracy(predict: Predict, frame: pd.DataFrame, labels: np.ndarray, threshold: float) -> float:
    return float(((np.asarray(predict(frame)) >= threshold).astype("int64") == labels).mean())


def _with_numeric_noise(
    frame: pd.DataFrame, dataset: DatasetSettings, strength: float, generator: np.random.Generator
) -> pd.DataFrame:
    """Gaussian noise with std `strength` x the public range on every numeric feature, clipped to the bounds."""
    noisy = frame.copy()
    for name, feature in dataset.features.items():
        if isinstance(feature, NumericFeature) and name in noisy:
            values = noisy[name].to_numpy(dtype="float64")
            noise = generator.normal(0.0, strength * (feature.max - feature.min), size=len(values))
            noisy[name] = np.clip(values + noise, feature.min, feature.max)  # missing values stay missing
    return noisy


def _with_category_swaps(
    frame: pd.DataFrame, dataset: DatasetSettings, strength: float, generator: np.random.Generator
) -> pd.DataFrame:
    """Each categorical value, with probability `strength`, replaced by a uniformly drawn other category of its
    public list (a missing or unlisted value by any listed category)."""
    swapped = frame.copy()
    for name, feature in dataset.features.items():
        if not isinstance(feature, CategoricalFeature) or name not in swapped:
            continue
        categories = np.asarray(feature.categories, dtype=object)
        count = len(categories)
        if count < 2:
            continue
        codes = pd.Index(feature.categories).get_indexer(swapped[name])
        chosen = generator.uniform(size=len(codes)) < strength
        shift = generator.integers(1, count, size=len(codes))  # never 0: always another category
        replacement = np.where(codes >= 0, (codes + shift) % count, generator.integers(0, count, len(codes)))
        values = swapped[name].to_numpy(dtype=object).copy()
        values[chosen] = categories[replacement[chosen]]
        swapped[name] = values
    return swapped


def robustness(
    predict: Predict,
    frame: pd.DataFrame,
    labels: np.ndarray,
    dataset: DatasetSettings,
    seed: int = 0,
    threshold: float = 0.5,
) -> Robustness:
    """Accuracy under numeric noise (std 5% and 10% of each public range) and category swaps (5% and 10%)."""
    generator = np.random.default_rng(seed)
    kinds = (
        ("numeric_noise", NOISE_STRENGTHS, _with_numeric_noise),
        ("category_swap", SWAP_STRENGTHS, _with_category_swaps),
    )
    perturbations = [
        Perturbation(
            f"{kind}_{round(strength * 100)}pct",
            kind,
            strength,
            _accuracy(predict, perturb(frame, dataset, strength, generator), labels, threshold),
        )
        for kind, strengths, perturb in kinds
        for strength in strengths
    ]
    return Robustness(_accuracy(predict, frame, labels, threshold), tuple(perturbations), seed)


def counterfactual_flip_rate(
    predict: Predict, frame: pd.DataFrame, dataset: DatasetSettings, attribute: str, threshold: float = 0.5
) -> float:
    """Share of rows whose predicted class changes when only `attribute` is set to some other listed category."""
    feature = dataset.features[attribute]
    if not isinstance(feature, CategoricalFeature):
        raise ValueError(f"counterfactuals need a categorical attribute, `{attribute}` is numeric")
    original = np.asarray(predict(frame)) >= threshold
    flipped = np.zeros(len(frame), dtype=bool)
    for category in feature.categories:
        changed = frame.assign(**{attribute: category})
        flipped |= (np.asarray(predict(changed)) >= threshold) != original
    return float(flipped.mean()) if len(frame) else 0.0
