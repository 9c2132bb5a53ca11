"""Rows as integer codes per feature, planned over the whole data so that partitions code alike, and the counts of
codes and code pairs that partitions add up: what the pair-based detectors (off-manifold, backdoor) work on."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from guardflow.poisoning.slices import bin_labels, value_text
from guardflow.settings import CategoricalFeature, DatasetSettings, NumericFeature


@dataclass(frozen=True)
class NumericValues:
    """A numeric column's distinct values (sorted, missing apart), or None once they are more than a cap: what
    partitions reduce to decide, over the whole data, whether the column is coded by exact value."""

    values: np.ndarray | None
    has_missing: bool

    def merge(self, other: NumericValues, cap: int) -> NumericValues:
        if self.values is None or other.values is None:
            return NumericValues(None, self.has_missing or other.has_missing)
        values = np.union1d(self.values, other.values)
        return NumericValues(values if len(values) <= cap else None, self.has_missing or other.has_missing)


def numeric_values(frame: pd.DataFrame, dataset: DatasetSettings, cap: int) -> dict[str, NumericValues]:
    """Each numeric feature's distinct values in `frame` (None beyond `cap` of them)."""
    found: dict[str, NumericValues] = {}
    for name, feature in dataset.features.items():
        if isinstance(feature, NumericFeature):
            values = frame[name].to_numpy(dtype="float64", na_value=np.nan)
            missing = np.isnan(values)
            distinct = np.unique(values[~missing])
            found[name] = NumericValues(distinct if len(distinct) <= cap else None, bool(missing.any()))
    return found


@dataclass(frozen=True)
class CodePlan:
    """How each feature becomes integer codes, fixed over the whole data so partitions code alike: categories by
    their public list (unknown or missing -> 0), numerics by exact value (missing -> 0) when they take few
    values, else by their public bins (when `bin_wide`) or left out. `sizes` bounds each feature's codes."""

    exact: dict[str, np.ndarray]
    binned: tuple[str, ...]
    sizes: dict[str, int]


def code_plan(
    dataset: DatasetSettings, values: dict[str, NumericValues], max_codes: int, bin_wide: bool
) -> CodePlan:
    exact: dict[str, np.ndarray] = {}
    binned: list[str] = []
    sizes: dict[str, int] = {}
    for name, feature in dataset.features.items():
        if isinstance(feature, CategoricalFeature):
            sizes[name] = len(feature.categories) + 1
            continue
        seen = values[name]
        if seen.values is not None and len(seen.values) + seen.has_missing <= max_codes:
            exact[name] = seen.values
            sizes[name] = len(seen.values) + 1
        elif bin_wide and feature.bins:
            binned.append(name)
            sizes[name] = len(feature.bins) + 1
    return CodePlan(exact, tuple(binned), sizes)


def plan_codes(frame: pd.DataFrame, dataset: DatasetSettings, plan: CodePlan) -> dict[str, np.ndarray]:
    """Each planned feature of `frame` as integer codes (see `CodePlan`)."""
    codes: dict[str, np.ndarray] = {}
    for name, feature in dataset.features.items():
        if name not in plan.sizes:
            continue
        if isinstance(feature, CategoricalFeature):
            codes[name] = pd.Index(feature.categories).get_indexer(frame[name]).astype("int64") + 1
            continue
        values = frame[name].to_numpy(dtype="float64", na_value=np.nan)
        if name in plan.exact:
            known = plan.exact[name]
            position = np.searchsorted(known, values).clip(0, max(len(known) - 1, 0))
            found = (len(known) > 0) & ~np.isnan(values)
            codes[name] = np.where(found, position + 1, 0).astype("int64")
        else:
            codes[name] = np.digitize(np.nan_to_num(values, nan=feature.min), feature.bins).astype("int64")
    return codes


def code_text(plan: CodePlan, dataset: DatasetSettings, name: str, code: int) -> str:
    """The text of a feature's code under `plan` (`Bachelors`, `13`, `[12, 14)`; code 0 is `unknown` for a
    category, `missing` for an exact number)."""
    feature = dataset.features[name]
    if isinstance(feature, CategoricalFeature):
        return feature.categories[code - 1] if code > 0 else "unknown"
    if name in plan.exact:
        return value_text(float(plan.exact[name][code - 1])) if code > 0 else "missing"
    assert isinstance(feature, NumericFeature)
    return bin_labels(feature)[code]


def frame_codes(
    frame: pd.DataFrame, dataset: DatasetSettings, max_codes: int, bin_wide: bool
) -> dict[str, np.ndarray]:
    """Each feature of `frame` as integer codes, planned on `frame` itself (see `CodePlan`)."""
    values = numeric_values(frame, dataset, max_codes)
    return plan_codes(frame, dataset, code_plan(dataset, values, max_codes, bin_wide))


def pair_groups(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The group of each row by its pair of codes, and the size of each group."""
    _, group, counts = np.unique(
        first * (int(second.max()) + 1) + second, return_inverse=True, return_counts=True
    )
    return group, counts


@dataclass(frozen=True)
class PairCounts:
    """How many rows hold each code of each planned feature and each pair of codes: the global reduction the
    off-manifold detector scores partitions against (partitions' counts add up)."""

    rows: int
    singles: dict[str, np.ndarray]
    pairs: dict[tuple[str, str], np.ndarray]

    def __add__(self, other: PairCounts) -> PairCounts:
        return PairCounts(
            self.rows + other.rows,
            {name: counts + other.singles[name] for name, counts in self.singles.items()},
            {pair: counts + other.pairs[pair] for pair, counts in self.pairs.items()},
        )


def count_pairs(frame: pd.DataFrame, dataset: DatasetSettings, plan: CodePlan) -> PairCounts:
    """The code and code-pair counts of `frame` (one partition, or all of it)."""
    codes = plan_codes(frame, dataset, plan)
    singles = {name: np.bincount(code, minlength=plan.sizes[name]) for name, code in codes.items()}
    pairs = {}
    for first, second in itertools.combinations(codes, 2):
        width = plan.sizes[second]
        flat = np.bincount(codes[first] * width + codes[second], minlength=plan.sizes[first] * width)
        pairs[(first, second)] = flat.reshape(plan.sizes[first], width)
    return PairCounts(len(frame), singles, pairs)
