"""The differential check: where does the candidate's behaviour move away from the champion's far more than
it does elsewhere?

Both models score the same rows (the candidate's training rows, where a backdoor's trigger rows are, and the
held-out rows). A row's move is candidate minus champion probability. A slice is a value of one column or a
pair of values of two columns (categorical values; numeric columns by each exact value held by enough rows,
so a planted value shows up, and by their public bins), every one of them tested; and a triple, below the
`triple_beam` pairs that stand out most (a trigger of three common values shows, diluted, in its pairs).
A slice's move is its mean move minus the mean move of the rows outside it, so a shift of every prediction is
not a slice's.

Two DP models trained with different seeds disagree broadly (noise on every weight), so a slice is not judged
against sampling noise alone: its move is standardized by the spread of the moves of the other slices of
similar size (median and MAD within bands of sizes doubling from the minimum), and turned into a p-value with
Bonferroni control over every slice tested. A slice stands out when it is significant and scores at least
`min_slice_score` robust standard deviations from its peers; the gate fails the candidate when one that stands
out moves by more than `max_slice_move`.

On the training rows the move is taken towards each row's training label (candidate minus champion probability
of that label): a model that learned planted labels fits them far better than the champion in their slice, while
two sound DP models differ in either direction. There only slices the candidate fits better count (one-sided),
and the limit is `max_label_fit_gain`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from guardflow.gate_settings import DifferentialSettings
from guardflow.settings import CategoricalFeature, DatasetSettings

MISSING = "(missing)"
# A band needs this many slices for its own median and MAD; otherwise all slices' are used.
MIN_SLICES_PER_BAND = 30


@dataclass(frozen=True)
class SliceMove:
    """One slice's rows, its move (mean move inside minus outside, in probability), its robust score and its
    Bonferroni-adjusted p-value."""

    description: str
    rows: int
    move: float
    score: float
    p_value: float

    def describe(self) -> str:
        return f"{self.description} ({self.rows:,} rows): move {self.move:+.3f}, score {self.score:.1f}"


@dataclass(frozen=True)
class DifferentialCheck:
    """The slices of one set of rows where the candidate moved away from the champion."""

    judged_on: str  # which rows: "training rows" or "test rows"
    rows: int
    slices_tested: int
    mean_move: float  # candidate minus champion over every row (a shift of every prediction)
    significant: tuple[SliceMove, ...]  # slices standing out (p-value and score), largest move first
    strongest: SliceMove | None  # the slice with the highest score, standing out or not
    exhaustive_slices: int = 0  # of `slices_tested`, the single values and pairs (the rest: triples)
    # True: moves were taken towards each row's label (how much better the candidate fits the labels it was
    # trained on than the champion does), and only slices the candidate fits better stand out.
    aligned_with_labels: bool = False

    @property
    def worst(self) -> SliceMove | None:
        """The slice standing out with the largest move: the gate holds it to `max_slice_move`."""
        return self.significant[0] if self.significant else None


@dataclass(frozen=True)
class _Column:
    """A column seen as slices: each row's slice code (-1: in none) and the description of each code."""

    source: str
    codes: np.ndarray
    labels: tuple[str, ...]


def _slice_columns(frame: pd.DataFrame, dataset: DatasetSettings, min_rows: int) -> list[_Column]:
    columns: list[_Column] = []
    for name, feature in dataset.features.items():
        if name not in frame:
            continue
        values = frame[name]
        if isinstance(feature, CategoricalFeature):
            codes, uniques = pd.factorize(values.fillna(MISSING).astype(str))
            columns.append(_Column(name, codes, tuple(f"{name}={value}" for value in uniques)))
            continue
        counts = values.value_counts()
        common = counts.index[counts >= min_rows]
        codes, uniques = pd.factorize(values.where(values.isin(common)))
        columns.append(_Column(name, codes, tuple(f"{name}={value:g}" for value in uniques)))
        if feature.bins:
            edges = [feature.min, *feature.bins, feature.max]
            binned = np.digitize(values.to_numpy(dtype="float64"), feature.bins)
            binned = np.where(values.isna().to_numpy(), -1, binned)
            labels = tuple(f"{name} in [{edges[i]:g}, {edges[i + 1]:g})" for i in range(len(edges) - 1))
            columns.append(_Column(name, binned, labels))
    return columns


@dataclass(frozen=True)
class _Reference:
    """Median and robust scale (1.4826 x MAD) of slice moves per size band, from the exhaustive slices."""

    min_rows: int
    bands: dict[int, tuple[float, float]]
    overall: tuple[float, float]

    def scores(self, moves: np.ndarray, sizes: np.ndarray) -> np.ndarray:
        """Each slice's move in robust standard deviations of the moves of slices of similar size."""
        bands = np.floor(np.log2(sizes / self.min_rows)).astype(int)
        centers = np.array([self.bands.get(int(band), self.overall)[0] for band in bands])
        scales = np.array([self.bands.get(int(band), self.overall)[1] for band in bands])
        return (moves - centers) / np.maximum(scales, 1e-9)


def _center_scale(moves: np.ndarray) -> tuple[float, float]:
    center = float(np.median(moves))
    return center, 1.4826 * float(np.median(np.abs(moves - center)))


def _reference(moves: np.ndarray, sizes: np.ndarray, min_rows: int) -> _Reference:
    bands = np.floor(np.log2(sizes / min_rows)).astype(int)
    per_band = {
        int(band): _center_scale(moves[bands == band])
        for band in np.unique(bands)
        if (bands == band).sum() >= MIN_SLICES_PER_BAND
    }
    return _Reference(min_rows, per_band, _center_scale(moves))


class _Slices:
    """The slices tested so far: each as its (column, code) pairs, its rows and its move."""

    def __init__(self, columns: list[_Column], moves: np.ndarray, min_rows: int) -> None:
        self.columns, self.moves, self.min_rows = columns, moves, min_rows
        self.total = float(moves.sum())
        self.keys: list[tuple[tuple[int, int], ...]] = []
        self.sizes: list[int] = []
        self.slice_moves: list[float] = []

    def add(
        self, prefix: tuple[tuple[int, int], ...], column: int, codes: np.ndarray, moves: np.ndarray
    ) -> None:
        """Every value of `column` among the rows `codes` / `moves` (already restricted to `prefix`)."""
        inside = codes >= 0
        width = len(self.columns[column].labels)
        counts = np.bincount(codes[inside], minlength=width)
        sums = np.bincount(codes[inside], weights=moves[inside], minlength=width)
        rows = len(self.moves)
        for code in np.nonzero((counts >= self.min_rows) & (counts <= rows - self.min_rows))[0]:
            self.keys.append((*prefix, (column, int(code))))
            self.sizes.append(int(counts[code]))
            self.slice_moves.append(
                sums[code] / counts[code] - (self.total - sums[code]) / (rows - counts[code])
            )

    def drop_repeats(self, start: int, seen: set[frozenset[tuple[int, int]]]) -> None:
        """Forget the slices added from `start` on that an earlier pair already reached."""
        kept = [index for index in range(start, len(self.keys)) if frozenset(self.keys[index]) not in seen]
        seen.update(frozenset(self.keys[index]) for index in kept)
        for name in ("keys", "sizes", "slice_moves"):
            values = getattr(self, name)
            values[start:] = [values[index] for index in kept]

    def members(self, key: tuple[tuple[int, int], ...]) -> np.ndarray:
        inside = np.ones(len(self.moves), dtype=bool)
        for column, code in key:
            inside &= self.columns[column].codes == code
        return inside

    def describe(self, index: int) -> str:
        return " & ".join(self.columns[column].labels[code] for column, code in self.keys[index])


def check_differential(
    candidate: np.ndarray,
    champion: np.ndarray,
    frame: pd.DataFrame,
    dataset: DatasetSettings,
    policy: DifferentialSettings,
    judged_on: str,
    labels: np.ndarray | None = None,
) -> DifferentialCheck:
    """Find the slices of `frame` (typed rows) where candidate and champion probabilities part far more than
    elsewhere; see the module docstring for how a slice is judged.

    With `labels` (the labels the candidate trained on), a row's move is taken towards its label: a slice stands
    out only when the candidate fits those labels far better than the champion there (one-sided), which is what
    a model that learned planted labels (a backdoor, targeted flips) does and DP noise does not.
    """
    moves = np.asarray(candidate, dtype="float64") - np.asarray(champion, dtype="float64")
    if labels is not None:
        moves = moves * (2 * np.asarray(labels, dtype="float64") - 1)
    rows, min_rows = len(moves), policy.min_slice_size
    columns = _slice_columns(frame, dataset, min_rows)
    slices = _Slices(columns, moves, min_rows)
    for position, column in enumerate(columns):
        slices.add((), position, column.codes, moves)
    for first, column in enumerate(columns):
        for code in range(len(column.labels)):
            inside = column.codes == code
            if inside.sum() < min_rows:
                continue
            for second in range(first + 1, len(columns)):
                if column.source != columns[second].source:
                    slices.add(((first, code),), second, columns[second].codes[inside], moves[inside])
    if not slices.keys:
        return DifferentialCheck(judged_on, rows, 0, float(moves.mean()) if rows else 0.0, (), None)
    reference = _reference(np.array(slices.slice_moves), np.array(slices.sizes), min_rows)
    exhaustive = len(slices.keys)
    # Triples only below the pairs that stand out most: a trigger of three values shows, diluted, in its pairs.
    scores = reference.scores(np.array(slices.slice_moves), np.array(slices.sizes))
    ranked = np.argsort(-(scores if labels is not None else np.abs(scores)))
    pairs = [index for index in ranked if len(slices.keys[index]) == 2][: policy.triple_beam]
    seen: set[frozenset[tuple[int, int]]] = set()
    for index in pairs:
        key = slices.keys[index]
        inside = slices.members(key)
        used = {columns[column].source for column, _ in key}
        for third, column in enumerate(columns):
            if column.source in used:
                continue
            start = len(slices.keys)
            slices.add(key, third, column.codes[inside], moves[inside])
            slices.drop_repeats(start, seen)
    size, move = np.array(slices.sizes), np.array(slices.slice_moves)
    score = reference.scores(move, size)
    tested = len(move)
    # normal tail of the robust score (two-sided, or the upper tail for moves towards the labels), Bonferroni
    # over every slice tested
    directed = score if labels is not None else np.abs(score)
    tails = np.array([math.erfc(value / math.sqrt(2)) for value in directed]) / (
        2 if labels is not None else 1
    )
    p_values = np.minimum(1.0, tested * tails)
    standing_out = np.nonzero((p_values < policy.alpha) & (directed >= policy.min_slice_score))[0]
    standing_out = standing_out[np.argsort(-np.abs(move[standing_out]), kind="stable")]

    def slice_at(index: int) -> SliceMove:
        return SliceMove(
            slices.describe(index),
            int(size[index]),
            float(move[index]),
            float(score[index]),
            float(p_values[index]),
        )

    return DifferentialCheck(
        judged_on=judged_on,
        rows=rows,
        slices_tested=tested,
        mean_move=float(moves.mean()),
        significant=tuple(slice_at(int(index)) for index in standing_out[:10]),
        strongest=slice_at(int(np.argmax(directed))),
        exhaustive_slices=exhaustive,
        aligned_with_labels=labels is not None,
    )
