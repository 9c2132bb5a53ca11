"""Feature encoding from public information only.

Every number used here comes from the config (published bounds and category lists), never from the rows
being encoded: nothing is fitted, so nothing about the training data leaks into the DP model around the
privacy accountant.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from guardflow.settings import CategoricalFeature, DatasetSettings, NumericFeature


@dataclass(frozen=True)
class FeatureLayout:
    """Names of the encoded columns, in order, and which source column each comes from."""

    names: tuple[str, ...]
    sources: tuple[str, ...]

    @property
    def width(self) -> int:
        return len(self.names)


def feature_layout(dataset: DatasetSettings) -> FeatureLayout:
    """The encoded columns the config implies: one per numeric feature, categories plus 'other' per categorical."""
    names: list[str] = []
    sources: list[str] = []
    for name, feature in dataset.features.items():
        if isinstance(feature, NumericFeature):
            names.append(name)
            sources.append(name)
        else:
            for category in [*feature.categories, "__other__"]:
                names.append(f"{name}={category}")
                sources.append(name)
    return FeatureLayout(tuple(names), tuple(sources))


def _scale_numeric(values: pd.Series, feature: NumericFeature) -> np.ndarray:
    lower, upper = feature.min, feature.max
    clipped = np.clip(values.to_numpy(dtype="float64", na_value=lower), lower, upper)
    if feature.transform == "log1p":
        clipped, lower, upper = np.log1p(clipped), np.log1p(lower), np.log1p(upper)
    return (clipped - lower) / (upper - lower)


def _one_hot(values: pd.Series, feature: CategoricalFeature) -> np.ndarray:
    codes = pd.Index(feature.categories).get_indexer(values)
    codes[codes < 0] = len(feature.categories)  # missing or unknown -> 'other'
    encoded = np.zeros((len(values), len(feature.categories) + 1), dtype="float32")
    encoded[np.arange(len(values)), codes] = 1.0
    return encoded


def encode_features(frame: pd.DataFrame, dataset: DatasetSettings) -> np.ndarray:
    """Encode typed rows into a float32 matrix laid out as `feature_layout(dataset)`."""
    blocks: list[np.ndarray] = []
    for name, feature in dataset.features.items():
        if isinstance(feature, NumericFeature):
            blocks.append(_scale_numeric(frame[name], feature).reshape(-1, 1))
        else:
            blocks.append(_one_hot(frame[name], feature))
    return np.hstack(blocks).astype("float32")
