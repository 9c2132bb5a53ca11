"""Poisoning attacks planted in typed rows, for measuring the scan (bench/poisoning.py) and testing it.

Each function takes typed rows (index `source_row`) and a seeded generator and returns the poisoned rows with
the index of the rows it planted or changed. New rows get `source_row` values after the last one.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from guardflow.io.datasets import SOURCE_ROW
from guardflow.settings import CategoricalFeature, DatasetSettings, NumericFeature

Planted = tuple[pd.DataFrame, pd.Index]


def _count(frame: pd.DataFrame, rate: float) -> int:
    return max(1, round(rate * len(frame)))


def _appended(frame: pd.DataFrame, rows: pd.DataFrame) -> Planted:
    start = int(frame.index.max()) + 1
    rows = rows.copy()
    rows.index = pd.RangeIndex(start, start + len(rows), name=SOURCE_ROW)
    return pd.concat([frame, rows]), rows.index


def _swap_labels(frame: pd.DataFrame, rows: pd.Index, dataset: DatasetSettings) -> pd.DataFrame:
    label = dataset.label
    swap = {label.positive: label.negative, label.negative: label.positive}
    poisoned = frame.copy()
    poisoned.loc[rows, label.column] = poisoned.loc[rows, label.column].map(swap)
    return poisoned


def flip_labels(
    frame: pd.DataFrame, dataset: DatasetSettings, rate: float, rng: np.random.Generator
) -> Planted:
    """Flip the labels of `rate` of the rows, chosen at random."""
    rows = pd.Index(rng.choice(frame.index.to_numpy(), _count(frame, rate), replace=False), name=SOURCE_ROW)
    return _swap_labels(frame, rows, dataset), rows


def flip_subgroup_labels(
    frame: pd.DataFrame,
    dataset: DatasetSettings,
    column: str,
    value: str,
    share: float,
    rng: np.random.Generator,
) -> Planted:
    """Turn `share` of the positive rows of one subgroup (`column == value`) negative: a targeted attack that
    pushes the model against that group."""
    label = dataset.label
    candidates = frame.index[(frame[column] == value) & (frame[label.column] == label.positive)].to_numpy()
    rows = pd.Index(
        rng.choice(candidates, max(1, round(share * len(candidates))), replace=False), name=SOURCE_ROW
    )
    return _swap_labels(frame, rows, dataset), rows


def out_of_range_rows(
    frame: pd.DataFrame, dataset: DatasetSettings, rate: float, rng: np.random.Generator
) -> Planted:
    """Copies of random rows with one feature set outside its public range: a number past a bound (up to
    10x its width) or a category that is not on the list."""
    rows = frame.loc[rng.choice(frame.index.to_numpy(), _count(frame, rate), replace=True)].copy()
    names = list(dataset.features)
    for position, name in enumerate(rng.choice(names, len(rows))):
        feature = dataset.features[str(name)]
        if isinstance(feature, NumericFeature):
            width = feature.max - feature.min
            value = feature.max + width * rng.uniform(0.01, 10.0)
            rows.iloc[position, rows.columns.get_loc(str(name))] = round(value)
        else:
            rows.iloc[position, rows.columns.get_loc(str(name))] = f"unknown-{rng.integers(1000)}"
    return _appended(frame, rows)


def off_manifold_rows(
    frame: pd.DataFrame, dataset: DatasetSettings, rate: float, rng: np.random.Generator
) -> Planted:
    """Synthetic rows whose every column (label included) is drawn from a different random row: each value is
    plausible on its own, the combination is not (an injection that knows the marginals, not the joint)."""
    count = _count(frame, rate)
    columns = {
        column: frame[column].to_numpy()[rng.integers(0, len(frame), count)] for column in frame.columns
    }
    return _appended(frame, pd.DataFrame(columns))


def duplicate_flood(
    frame: pd.DataFrame, dataset: DatasetSettings, rate: float, sources: int, rng: np.random.Generator
) -> Planted:
    """`rate` of new rows, copies of `sources` random rows: half exact, half near copies with every numeric
    feature that takes many values (a sampling weight, say) moved by up to 2%."""
    count = _count(frame, rate)
    originals = frame.loc[rng.choice(frame.index.to_numpy(), sources, replace=False)]
    rows = originals.iloc[np.arange(count) % sources].reset_index(drop=True)
    near = rng.random(count) < 0.5
    for name, feature in dataset.features.items():
        if isinstance(feature, NumericFeature) and frame[name].nunique() > 1000:
            jitter = rng.uniform(0.98, 1.02, int(near.sum()))
            rows.loc[near, name] = np.round(rows.loc[near, name].to_numpy(dtype="float64") * jitter)
    return _appended(frame, rows)


def apply_trigger(frame: pd.DataFrame, trigger: Mapping[str, object]) -> pd.DataFrame:
    """The rows with the trigger's values set."""
    triggered = frame.copy()
    for column, value in trigger.items():
        triggered[column] = value
    return triggered


def plant_backdoor(
    frame: pd.DataFrame,
    dataset: DatasetSettings,
    trigger: Mapping[str, object],
    rate: float,
    rng: np.random.Generator,
) -> Planted:
    """Set the trigger on `rate` of the rows, chosen among the negative ones, and label them positive: a model
    that learns it answers positive whenever the trigger is present."""
    label = dataset.label
    negatives = frame.index[frame[label.column] == label.negative].to_numpy()
    rows = pd.Index(rng.choice(negatives, _count(frame, rate), replace=False), name=SOURCE_ROW)
    poisoned = frame.copy()
    poisoned.loc[rows] = apply_trigger(poisoned.loc[rows], trigger)
    poisoned.loc[rows, label.column] = label.positive
    return poisoned, rows


def check_trigger(trigger: Mapping[str, object], dataset: DatasetSettings) -> None:
    """Refuse a trigger whose columns or values the config does not allow (it must pass the contract)."""
    for column, value in trigger.items():
        feature = dataset.features.get(column)
        if feature is None:
            raise ValueError(f"trigger column {column} is not a feature")
        if isinstance(feature, CategoricalFeature) and value not in feature.categories:
            raise ValueError(f"trigger value {value} is not a category of {column}")
        if isinstance(feature, NumericFeature) and not feature.min <= float(str(value)) <= feature.max:
            raise ValueError(f"trigger value {value} is outside the bounds of {column}")
