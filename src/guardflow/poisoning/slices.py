"""Slices of rows by their values of one to three columns: the codes the slice-based detectors share.

Categories by value; numerics by exact value when they take few values (age, hours, capital gain), else by their
public bins from the config (a sampling weight, say), except their frequent exact values.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from guardflow.settings import CategoricalFeature, DatasetSettings, NumericFeature

# A numeric column with at most this many distinct values is sliced by exact value; beyond it, by its public bins.
MAX_EXACT_VALUES = 200
FREQUENT_VALUE_ROWS = 20


@dataclass(frozen=True)
class SliceColumn:
    """One feature as integer codes (one per row) and the text of each code."""

    name: str
    codes: np.ndarray
    labels: list[str]


def slice_columns(rows: pd.DataFrame, dataset: DatasetSettings) -> list[SliceColumn]:
    """Each feature of the typed `rows` as integer codes with their text (see the module docstring)."""
    columns: list[SliceColumn] = []
    for name, feature in dataset.features.items():
        if isinstance(feature, CategoricalFeature):
            codes, uniques = pd.factorize(rows[name].astype("object"), use_na_sentinel=False)
            columns.append(SliceColumn(name, codes.astype("int64"), [value_text(value) for value in uniques]))
            continue
        values = rows[name].to_numpy(dtype="float64", na_value=np.nan)
        if pd.Series(values).nunique(dropna=False) <= MAX_EXACT_VALUES:
            codes, uniques = pd.factorize(values, use_na_sentinel=False)
            columns.append(SliceColumn(name, codes.astype("int64"), [value_text(value) for value in uniques]))
        else:
            # Many values: by public bin (one code when there are none), except that an exact value held by
            # FREQUENT_VALUE_ROWS rows or more keeps a code of its own (a trigger may be one exact value of a
            # continuous column, which natural rows seldom share).
            codes = np.digitize(np.nan_to_num(values, nan=feature.min), feature.bins).astype("int64")
            labels = bin_labels(feature)
            counts = pd.Series(values).value_counts()
            for value in counts.index[counts >= FREQUENT_VALUE_ROWS]:
                codes[values == value] = len(labels)
                labels.append(value_text(value))
            columns.append(SliceColumn(name, codes, labels))
    return columns


def bin_labels(feature: NumericFeature) -> list[str]:
    """The text of each public bin of a numeric feature, in code order (`[12, 14)`)."""
    edges = [feature.min, *feature.bins, feature.max]
    return [f"[{value_text(low)}, {value_text(high)})" for low, high in itertools.pairwise(edges)]


def value_text(value: object) -> str:
    """A value as a slice names it: `missing`, `13` for a whole number, else as it is."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "missing"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def slice_keys(columns: list[SliceColumn], chosen: tuple[int, ...]) -> np.ndarray:
    """One integer per row for its values of the `chosen` columns (positions in `columns`)."""
    key = np.zeros(len(columns[0].codes), dtype="int64")
    for position in chosen:
        key = key * (int(columns[position].codes.max()) + 1) + columns[position].codes
    return key


def decode_slice(key: int, chosen: tuple[int, ...], columns: list[SliceColumn]) -> tuple[str, ...]:
    """The text of each value of a slice key made by `slice_keys`."""
    values: list[str] = []
    for position in reversed(chosen):
        base = int(columns[position].codes.max()) + 1
        values.append(columns[position].labels[key % base])
        key //= base
    return tuple(values[::-1])


def describe_slice(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    """`occupation=Tech-support & hours-per-week=44`."""
    return " & ".join(f"{name}={value}" for name, value in zip(names, values, strict=True))
