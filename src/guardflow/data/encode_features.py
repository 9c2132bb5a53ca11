"""Feature encoding from public information only.

Every number used here comes from the config (published bounds and category lists), never from the rows
being encoded: nothing is fitted, so nothing about the training data leaks into the DP model around the
privacy accountant.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from guardflow.data.table import label_vector
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
            if not feature.bins:
                continue
            edges = [feature.min, *feature.bins]
            for lower, upper in zip(edges, [*feature.bins, None], strict=True):
                names.append(
                    f"{name}[{lower:g},{upper:g})" if upper is not None else f"{name}[{lower:g},max]"
                )
                sources.append(name)
        else:
            for category in [*feature.categories, "__other__"]:
                names.append(f"{name}={category}")
                sources.append(name)
    return FeatureLayout(tuple(names), tuple(sources))


def _scale_numeric(values: pd.Series, feature: NumericFeature) -> np.ndarray:
    """The scaled value, then (when the config gives bins) a one-hot of its public interval."""
    lower, upper = feature.min, feature.max
    clipped = np.clip(values.to_numpy(dtype="float64", na_value=lower), lower, upper)
    if feature.bins:
        intervals = np.digitize(clipped, feature.bins)
        one_hot = np.zeros((len(clipped), len(feature.bins) + 1), dtype="float64")
        one_hot[np.arange(len(clipped)), intervals] = 1.0
    else:
        one_hot = np.zeros((len(clipped), 0))
    if feature.transform == "log1p":
        clipped, lower, upper = np.log1p(clipped), np.log1p(lower), np.log1p(upper)
    return np.column_stack([(clipped - lower) / (upper - lower), one_hot])


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
            # Cast per block: the same float32 values, without a float64 copy of the whole matrix.
            blocks.append(_scale_numeric(frame[name], feature).astype("float32"))
        else:
            blocks.append(_one_hot(frame[name], feature))
    return np.hstack(blocks).astype("float32")


def encode_rows(frame: pd.DataFrame, dataset: DatasetSettings) -> tuple[np.ndarray, np.ndarray]:
    """Labelled typed rows as DP training takes them: the encoded features and the 0/1 labels."""
    return encode_features(frame, dataset), label_vector(frame, dataset).to_numpy()


def ordinal_features(frame: pd.DataFrame, dataset: DatasetSettings) -> tuple[np.ndarray, np.ndarray]:
    """Numeric features as they are and categoricals as codes of their public list (unknown or missing -> NaN),
    with the mask of categorical columns: the compact input tree models want (used by the poisoning scan)."""
    columns: list[np.ndarray] = []
    categorical: list[bool] = []
    for name, feature in dataset.features.items():
        if isinstance(feature, NumericFeature):
            columns.append(frame[name].to_numpy(dtype="float64", na_value=np.nan))
            categorical.append(False)
        else:
            codes = pd.Index(feature.categories).get_indexer(frame[name]).astype("float64")
            codes[codes < 0] = np.nan
            columns.append(codes)
            categorical.append(True)
    return np.column_stack(columns), np.array(categorical)
