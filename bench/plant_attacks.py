"""Poisoning attacks planted in typed rows, for the benchmarks and the tests; kept out of the installed package.

Each function takes typed rows (index `source_row`) and a seeded generator and returns the poisoned rows with
the index of the rows it planted or changed. New rows get `source_row` values after the last one.

Kinds, not instances: `random_backdoor` draws a trigger (1 to 3 features, categorical values or exact numeric
values, common or rare in the clean rows), a target class and the rows it poisons from the generator, in either
mode (relabel rows of the other class in place, or inject triggered copies of them); `random_group_flip` draws
a sensitive attribute, one of its groups and a share of that group's positive labels to flip.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from guardflow.data.table import SOURCE_ROW
from guardflow.settings import CategoricalFeature, DatasetSettings, NumericFeature, Settings

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


# A value is common when at least this share of the clean rows holds it, rare when at most this share does.
COMMON_SHARE = 0.05
RARE_SHARE = 0.005
# A trigger of several values is kept only when at most this share of the clean rows already carries all of it.
MAX_TRIGGER_PREVALENCE = 0.002
Rarity = Literal["common", "rare"]
Mode = Literal["relabel", "inject"]


@dataclass(frozen=True)
class Backdoor:
    """One planted backdoor: its trigger (column -> value), the class it forces, how it was planted and where."""

    trigger: dict[str, object]
    target: str
    mode: Mode
    rate: float
    rarity: Rarity
    rows: pd.Index = field(repr=False)

    def describe(self) -> dict[str, object]:
        """JSON-ready: the trigger with its values as text, the target, mode, rate and rarity."""
        return {
            "trigger": {column: _plain(value) for column, value in self.trigger.items()},
            "target": self.target,
            "mode": self.mode,
            "rate": self.rate,
            "rarity": self.rarity,
            "rows": len(self.rows),
        }


def _plain(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value


def _value_shares(values: pd.Series) -> pd.Series:
    return values.value_counts(normalize=True, dropna=True)


def _draw_value(
    frame: pd.DataFrame, dataset: DatasetSettings, column: str, rarity: Rarity, rng: np.random.Generator
) -> object | None:
    """A value of `column` that passes the contract: one held by >= COMMON_SHARE of the rows, or a rare one (held
    by <= RARE_SHARE of them, or, for a number, any value in its public bounds that few or no rows hold)."""
    feature = dataset.features[column]
    shares = _value_shares(frame[column])
    if rarity == "common":
        pool = shares[shares >= COMMON_SHARE].index.to_numpy()
        return None if len(pool) == 0 else pool[rng.integers(len(pool))]
    if isinstance(feature, CategoricalFeature):
        pool = np.array([value for value in feature.categories if shares.get(value, 0.0) <= RARE_SHARE])
        return None if len(pool) == 0 else str(pool[rng.integers(len(pool))])
    low, high = int(np.ceil(feature.min)), int(np.floor(feature.max))
    for _ in range(50):
        value = float(rng.integers(low, high + 1))
        if shares.get(value, 0.0) <= RARE_SHARE:
            return value
    return None


def random_trigger(
    frame: pd.DataFrame, dataset: DatasetSettings, size: int, rarity: Rarity, rng: np.random.Generator
) -> dict[str, object]:
    """`size` distinct features with a value each. `rare`: at least one value is rare in `frame`; `common`: every
    value is common alone. A trigger of one feature is always rare (a common value alone is no trigger), and a
    conjunction is redrawn until few clean rows carry all of it already."""
    if size == 1:
        rarity = "rare"
    columns = list(dataset.features)
    for _ in range(200):
        chosen = [str(column) for column in rng.choice(columns, size, replace=False)]
        rare_at = int(rng.integers(size)) if rarity == "rare" else -1
        trigger = {
            column: _draw_value(frame, dataset, column, "rare" if position == rare_at else "common", rng)
            for position, column in enumerate(chosen)
        }
        if any(value is None for value in trigger.values()):
            continue
        carrying = np.ones(len(frame), dtype=bool)
        for column, value in trigger.items():
            carrying &= (frame[column] == value).to_numpy()
        if carrying.mean() <= MAX_TRIGGER_PREVALENCE:
            check_trigger(trigger, dataset)
            return trigger
    raise ValueError(f"no {rarity} trigger of {size} features found in 200 draws")


def plant_random_backdoor(
    frame: pd.DataFrame,
    dataset: DatasetSettings,
    trigger: Mapping[str, object],
    target: str,
    rate: float,
    mode: Mode,
    rng: np.random.Generator,
) -> Planted:
    """`rate` of the rows (of the whole frame) poisoned towards `target`: rows of the other class with the trigger
    set and the label `target`, changed in place (`relabel`) or appended as copies (`inject`)."""
    label = dataset.label
    other = label.negative if target == label.positive else label.positive
    sources = frame.index[frame[label.column] == other].to_numpy()
    chosen = pd.Index(rng.choice(sources, _count(frame, rate), replace=False), name=SOURCE_ROW)
    rows = apply_trigger(frame.loc[chosen], trigger)
    rows[label.column] = target
    if mode == "inject":
        return _appended(frame, rows)
    poisoned = frame.copy()
    poisoned.loc[chosen] = rows
    return poisoned, chosen


def random_backdoor(
    frame: pd.DataFrame,
    dataset: DatasetSettings,
    rate: float,
    rng: np.random.Generator,
    size: int | None = None,
    rarity: Rarity | None = None,
    mode: Mode | None = None,
    target: str | None = None,
) -> tuple[pd.DataFrame, Backdoor]:
    """A backdoor with every unset choice drawn from `rng`: trigger size 1-3, rarity, mode and target class."""
    size = int(rng.integers(1, 4)) if size is None else size
    rarity = rarity or ("common", "rare")[int(rng.integers(2))]
    mode = mode or ("relabel", "inject")[int(rng.integers(2))]
    target = target or (dataset.label.positive, dataset.label.negative)[int(rng.integers(2))]
    trigger = random_trigger(frame, dataset, size, rarity, rng)
    poisoned, rows = plant_random_backdoor(frame, dataset, trigger, target, rate, mode, rng)
    return poisoned, Backdoor(trigger, target, mode, rate, "rare" if size == 1 else rarity, rows)


@dataclass(frozen=True)
class GroupFlip:
    """A targeted label flip: `share` of the positive rows of `column == group` turned negative."""

    column: str
    group: str
    share: float
    rows: pd.Index = field(repr=False)

    def describe(self) -> dict[str, object]:
        return {"column": self.column, "group": self.group, "share": self.share, "rows": len(self.rows)}


def random_group_flip(
    frame: pd.DataFrame,
    dataset: DatasetSettings,
    rng: np.random.Generator,
    share_range: tuple[float, float] = (0.2, 0.5),
    min_positives: int = 100,
) -> tuple[pd.DataFrame, GroupFlip]:
    """Flip a random share (in `share_range`) of the positive labels of a random group of a random sensitive
    attribute; only groups with at least `min_positives` positive rows are drawn."""
    label = dataset.label
    positives = frame[frame[label.column] == label.positive]
    groups = [
        (column, str(group))
        for column in dataset.sensitive
        for group, count in positives[column].value_counts().items()
        if count >= min_positives
    ]
    column, group = groups[int(rng.integers(len(groups)))]
    share = float(rng.uniform(*share_range))
    poisoned, rows = flip_subgroup_labels(frame, dataset, column, group, share, rng)
    return poisoned, GroupFlip(column, group, round(share, 4), rows)


def attack_success_rate(
    predict: Callable[[pd.DataFrame], np.ndarray],
    test: pd.DataFrame,
    dataset: DatasetSettings,
    backdoor: Backdoor,
) -> float:
    """Share of the test rows of the other class that the model assigns to the target once the trigger is set
    (`predict` returns the probability of the positive class). Run it on a clean model too: that is the ASR the
    trigger gets without any poisoning."""
    label = dataset.label
    other = label.negative if backdoor.target == label.positive else label.positive
    triggered = apply_trigger(test[test[label.column] == other], backdoor.trigger)
    positive = predict(triggered) >= 0.5
    return float(positive.mean() if backdoor.target == label.positive else (~positive).mean())


def train_dp_model(
    rows: pd.DataFrame, settings: Settings, calibration_only: pd.DataFrame | None = None
) -> Callable[[pd.DataFrame], np.ndarray]:
    """The project's DP model trained on `rows` (and calibrated also on `calibration_only`, the scan's label-noise
    rows, as `guardflow train` does); returns its positive-class probability function."""
    import torch

    from guardflow.data.encode_features import encode_features, encode_rows
    from guardflow.privacy.network import predict_proba
    from guardflow.privacy.train_private import train_private

    dataset = settings.dataset
    trained = train_private(
        *encode_rows(rows, dataset),
        settings.privacy,
        settings.model,
        calibration_extra=None if calibration_only is None else encode_rows(calibration_only, dataset),
    )

    def predict(frame: pd.DataFrame) -> np.ndarray:
        with torch.no_grad():
            return predict_proba(trained.model, torch.tensor(encode_features(frame, dataset))).numpy()

    return predict
