"""Slice purity against column-blind models: a trigger-agnostic backdoor test that needs no reference.

A backdoor sets a few values (the trigger) on rows of one class and gives them the other label. Whatever the
trigger's shape (one rare value, or two or three common values rare together), the slice of rows holding it is
almost pure in the target label, while the rest of each poisoned row still looks like the other class. So for every
slice of one, two or three values whose rows are at least `purity_min_purity` one label, the label's rate is
compared with what a model that does not see the slice's columns predicts for those very rows (a gradient-boosting
model fitted without that column: it cannot learn a trigger built on it). A genuine pure slice (a capital gain that
only high earners report) is mostly explained by the other columns; a trigger is not. Slices whose purity exceeds the
blind expectation by `purity_min_gap` flag their rows of that label that the blind models call the other class.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from guardflow.data.encode_features import ordinal_features
from guardflow.poisoning.slices import SliceColumn, decode_slice, describe_slice, slice_columns, slice_keys
from guardflow.settings import DatasetSettings, NumericFeature, PoisoningSettings

SLICE_PURITY = "slice_purity"
# Slices holding more than this share of the rows are not candidate triggers (a poisoning of 10% is no backdoor).
_MAX_SLICE_SHARE = 0.1
# Flag this many times a slice's excess rows (the excess is an estimate).
_EXCESS_MARGIN = 1.5
# At most this many models blind to a set of columns per scan (each ~0.2 s on Adult): the cost stays bounded.
_MAX_FITS = 60
# Each blind model learns from at most this many rows (a random sample): ~3x faster on Adult, as good for the test.
_MAX_FIT_ROWS = 12000
# Each blind model's boosting rounds and step size. Measured on Adult (bench/attacks.py, 5 seeds of clean and of
# 1% backdoors): 15 rounds at 0.2 flag what 30 at 0.1 did (slice purity recall 0.86-1.0 either way, clean rows
# flagged by the whole scan 3.97% both) in 11 s instead of 16 (one thread). Halving _MAX_FITS instead lost a seed.
_BLIND_ROUNDS = 15
_BLIND_LEARNING_RATE = 0.2


@dataclass(frozen=True)
class PureSlice:
    """A slice far purer in one label than models blind to its columns expect."""

    columns: tuple[str, ...]
    values: tuple[str, ...]
    label: str
    rows: int
    purity: float
    blind_expected: float
    flagged_rows: int

    def describe(self) -> str:
        """`native-country=Laos (>50K 0.98 of 412 rows; 0.14 expected without native-country)`."""
        blind = ", ".join(self.columns)
        return (
            f"{describe_slice(self.columns, self.values)} ({self.label} {self.purity:.2f} of {self.rows} rows; "
            f"{self.blind_expected:.2f} expected without {blind})"
        )


@dataclass(frozen=True)
class PurityResult:
    """Per-row scores, flags and notes (positions of the scanned rows) and the slices that flagged them."""

    scores: np.ndarray
    flags: np.ndarray
    notes: np.ndarray
    slices: tuple[PureSlice, ...]


def _candidates(
    columns: list[SliceColumn], labels: np.ndarray, settings: PoisoningSettings
) -> list[tuple[float, tuple[int, ...], int, int]]:
    """(lift times rows, column positions, key, label) of each slice of one to three values whose rows are at least
    `purity_min_purity` one label, with at least `purity_min_rows` rows of it, on at most `_MAX_SLICE_SHARE` of all
    rows. Slices of two or three values must also remove `purity_min_lift` of the impurity each slice with one value
    fewer leaves
    (a conjunction that makes the label, not a value that already does: pure slices of the majority label are
    everywhere, and each needs a model of its own)."""
    found: list[tuple[float, tuple[int, ...], int, int]] = []
    limit = _MAX_SLICE_SHARE * len(labels)
    rates: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray, np.ndarray]] = {
        (): (np.zeros(1, dtype="int64"), np.array([labels.mean()]), np.zeros(len(labels), dtype="int64"))
    }
    for size in (1, 2, 3):
        for chosen in itertools.combinations(range(len(columns)), size):
            keys = slice_keys(columns, chosen)
            cells, first, group, counts = np.unique(
                keys, return_index=True, return_inverse=True, return_counts=True
            )
            positives = np.bincount(group, weights=labels, minlength=len(cells))
            if size < 3:
                rates[chosen] = (cells, positives / counts, keys)
            for label in (0, 1):
                hits = positives if label == 1 else counts - positives
                pure = (
                    (hits >= settings.purity_min_rows)
                    & (hits >= settings.purity_min_purity * counts)
                    & (counts <= limit)
                )
                for cell in np.flatnonzero(pure):
                    purity = hits[cell] / counts[cell]
                    row = int(first[cell])
                    # Relative lift: the share of the impurity left by the purest slice with one value fewer that
                    # this conjunction removes (a <=50K trigger is no purer in points than a value already 89% <=50K).
                    purest = max(
                        (_rate(rates[sub], row, label) for sub in itertools.combinations(chosen, size - 1)),
                        default=0.0,
                    )
                    lift = (purity - purest) / max(1.0 - purest, 1e-9)
                    # A conjunction whose every part is impure (a part pure already is its own candidate).
                    if size == 1 or (
                        lift >= settings.purity_min_lift and purest < settings.purity_max_part_purity
                    ):
                        # Ranked by lift times rows: a trigger lifts many rows, a small genuine pure slice few.
                        found.append((float(lift * hits[cell]), chosen, int(cells[cell]), label))
    return found


def _rate(rates: tuple[np.ndarray, np.ndarray, np.ndarray], row: int, label: int) -> float:
    """The label's rate in the slice (of the columns `rates` was made for) that holds `row`."""
    cells, positive_rate, keys = rates
    rate = float(positive_rate[np.searchsorted(cells, keys[row])])
    return rate if label == 1 else 1.0 - rate


def _blind_positive(
    features: np.ndarray,
    categorical: np.ndarray,
    labels: np.ndarray,
    blinded: tuple[int, ...],
    coarse: dict[int, np.ndarray],
    learn: np.ndarray,
    seed: int,
) -> np.ndarray:
    """The positive-class probability of every row under a model fitted on the `learn` rows that does not see the
    `blinded` columns: numerics with public bins are seen by their bin only (a capital gain's size still explains
    high earners, its exact value no longer can), the others not at all."""
    features = features.copy()
    keep = np.ones(features.shape[1], dtype=bool)
    for column in blinded:
        if column in coarse:
            features[:, column] = coarse[column]
        else:
            keep[column] = False
    model = HistGradientBoostingClassifier(
        max_iter=_BLIND_ROUNDS,
        learning_rate=_BLIND_LEARNING_RATE,
        max_leaf_nodes=15,
        min_samples_leaf=50,
        categorical_features=categorical[keep],
        early_stopping=False,
        random_state=seed,
    )
    model.fit(features[learn][:, keep], labels[learn])
    return np.asarray(model.predict_proba(features[:, keep])[:, 1])


def find_impure_triggers(
    frame: pd.DataFrame, dataset: DatasetSettings, labels: np.ndarray, settings: PoisoningSettings
) -> PurityResult:
    """Score and flag the rows of slices far purer than column-blind models expect (see the module docstring)."""
    columns = slice_columns(frame, dataset)
    candidates = _candidates(columns, labels, settings)
    features, categorical = ordinal_features(frame, dataset)
    positions = {name: index for index, name in enumerate(dataset.features)}
    coarse = {
        positions[name]: np.digitize(
            np.nan_to_num(frame[name].to_numpy(dtype="float64"), nan=feature.min), feature.bins
        ).astype("float64")
        for name, feature in dataset.features.items()
        if isinstance(feature, NumericFeature) and feature.bins
    }
    blind: dict[tuple[tuple[int, ...], int], np.ndarray] = {}
    keys: dict[tuple[int, ...], np.ndarray] = {}

    # The candidate slices of each set of columns, in two halves: each half is judged by a model fitted without its
    # rows (a 3% trigger would otherwise teach the model its rows through their other values), but with the other
    # half's (so that genuine pure slices, the many exact capital gains, still teach it what their bin means).
    by_columns: dict[tuple[int, ...], list[tuple[tuple[int, ...], int]]] = {}
    for _, chosen, key, _ in candidates:
        blinded = tuple(sorted(positions[columns[position].name] for position in chosen))
        by_columns.setdefault(blinded, []).append((chosen, key))
    half = {
        (chosen, key): position % 2
        for slices in by_columns.values()
        for position, (chosen, key) in enumerate(slices)
    }
    rng = np.random.default_rng(settings.seed)

    def granted(
        blinded: tuple[int, ...], chosen: tuple[int, ...], key: int, members: np.ndarray, label: int
    ) -> tuple[np.ndarray, float]:
        """What the model blind to the slice's columns, fitted without its half of the candidate slices on those
        columns (and on at most `_MAX_FIT_ROWS` rows), grants the label on the slice's rows."""
        side = half[(chosen, key)]
        if (blinded, side) not in blind:
            learn = np.ones(len(labels), dtype=bool)
            for other, other_key in by_columns[blinded]:
                if half[(other, other_key)] == side:
                    if other not in keys:
                        keys[other] = slice_keys(columns, other)
                    learn &= keys[other] != other_key
            learn &= rng.random(len(labels)) < _MAX_FIT_ROWS / max(int(learn.sum()), 1)
            blind[(blinded, side)] = _blind_positive(
                features, categorical, labels, blinded, coarse, learn, settings.seed
            )
        model = blind[(blinded, side)]
        predicted = model[members] if label == 1 else 1.0 - model[members]
        # What the model grants the label on the rows of the other label, on average: a poisoned row is one of
        # those, so the gap is measured against the most it could be (0.85 for >50K on Adult, 0.6 for <=50K).
        other = labels != label
        granted_to_other = float((model[other] if label == 1 else 1.0 - model[other]).mean())
        return predicted, granted_to_other

    scores = np.zeros(len(frame))
    flags = np.zeros(len(frame), dtype=bool)
    notes = np.full(len(frame), "", dtype=object)
    found: list[PureSlice] = []
    fits = 0
    # One OpenMP thread: on shared cores, gradient boosting's spin-waiting threads run far slower under load.
    with threadpool_limits(limits=1):
        # Single values first (one blind model per column serves them all), then conjunctions by lift; a slice
        # whose rows of the label a stronger one already flagged needs no model of its own.
        for _, chosen, key, label in sorted(candidates, key=lambda item: (len(item[1]) > 1, -item[0])):
            column_chosen = tuple(sorted(positions[columns[position].name] for position in chosen))
            if chosen not in keys:
                keys[chosen] = slice_keys(columns, chosen)
            members = keys[chosen] == key
            holders = members & (labels == label)
            if (holders & ~flags).sum() < settings.purity_min_rows:
                continue
            if (column_chosen, half[(chosen, key)]) not in blind:
                if fits >= _MAX_FITS:
                    continue
                fits += 1
            expected, granted_to_other = granted(column_chosen, chosen, key, members, label)
            purity = float(holders.sum() / members.sum())
            gap = (purity - float(expected.mean())) / max(1.0 - granted_to_other, 1e-9)
            scores[holders] = np.maximum(scores[holders], gap)
            if gap < settings.purity_min_gap:
                continue
            # The rows of the label the blind model finds least likely, as many as the slice's excess over its
            # expectation (times a margin): most of a trigger's slice, few of a genuine slice it half explains.
            excess = float(holders.sum() - expected.sum())
            candidates_rows = np.flatnonzero(members)
            ranked = np.argsort(expected, kind="stable")
            ranked = ranked[labels[candidates_rows[ranked]] == label][: int(np.ceil(_EXCESS_MARGIN * excess))]
            contradicted = candidates_rows[ranked]
            record = PureSlice(
                columns=tuple(columns[position].name for position in chosen),
                values=decode_slice(key, chosen, columns),
                label=(dataset.label.negative, dataset.label.positive)[label],
                rows=int(members.sum()),
                purity=round(purity, 4),
                blind_expected=round(float(expected.mean()), 4),
                flagged_rows=len(contradicted),
            )
            found.append(record)
            fresh = contradicted[~flags[contradicted]]
            flags[fresh] = True
            notes[fresh] = record.describe()
    return PurityResult(scores, flags, notes, tuple(found))
