"""The differential check: where does the candidate's behaviour move away from the champion's far more than
it does elsewhere?

Both models score the same rows (the candidate's training rows, where a backdoor's trigger rows are, and the
held-out rows). A row's move is candidate minus champion probability. A slice is a value of one column or a
pair of values of two columns (categorical values; numeric columns by each exact value held by enough rows,
so a planted value shows up, and by their public bins). A slice's move is its mean move minus the mean move
of the rows outside it, so a shift of every prediction is not a slice's.

Two DP models trained with different seeds disagree broadly (noise on every weight), so a slice is not judged
against sampling noise alone: its move is standardized by the spread of the moves of the other slices of
similar size (median and MAD within bands of sizes doubling from the minimum), and turned into a p-value with
Bonferroni control over every slice tested. A slice stands out when it is significant and scores at least
`min_slice_score` robust standard deviations from its peers; the gate fails the candidate when one that stands
out moves by more than `max_slice_move`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from guardflow.settings import CategoricalFeature, DatasetSettings, DifferentialSettings

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


def _slice_sums(
    codes: np.ndarray, size: int, moves: np.ndarray, min_rows: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    inside = codes >= 0
    counts = np.bincount(codes[inside], minlength=size)
    sums = np.bincount(codes[inside], weights=moves[inside], minlength=size)
    kept = np.nonzero((counts >= min_rows) & (counts <= len(moves) - min_rows))[0]
    return kept, counts[kept], sums[kept]


def _robust_scores(moves: np.ndarray, sizes: np.ndarray, min_rows: int) -> np.ndarray:
    """Each slice's move in robust standard deviations of the moves of slices of similar size."""
    bands = np.floor(np.log2(sizes / min_rows)).astype(int)
    scores = np.empty(len(moves))

    def standardize(selected: np.ndarray, reference: np.ndarray) -> None:
        center = np.median(reference)
        scale = 1.4826 * np.median(np.abs(reference - center))
        scores[selected] = (moves[selected] - center) / max(scale, 1e-9)

    for band in np.unique(bands):
        selected = bands == band
        standardize(selected, moves[selected] if selected.sum() >= MIN_SLICES_PER_BAND else moves)
    return scores


def check_differential(
    candidate: np.ndarray,
    champion: np.ndarray,
    frame: pd.DataFrame,
    dataset: DatasetSettings,
    policy: DifferentialSettings,
    judged_on: str,
) -> DifferentialCheck:
    """Find the slices of `frame` (typed rows) where candidate and champion probabilities part far more than
    elsewhere; see the module docstring for how a slice is judged."""
    moves = np.asarray(candidate, dtype="float64") - np.asarray(champion, dtype="float64")
    rows, min_rows = len(moves), policy.min_slice_size
    descriptions: list[str] = []
    sizes: list[np.ndarray] = []
    slice_moves: list[np.ndarray] = []
    total = moves.sum()

    def add(kept: np.ndarray, counts: np.ndarray, sums: np.ndarray, describe: list[str]) -> None:
        descriptions.extend(describe)
        sizes.append(counts)
        slice_moves.append(sums / counts - (total - sums) / (rows - counts))

    columns = _slice_columns(frame, dataset, min_rows)
    for column in columns:
        kept, counts, sums = _slice_sums(column.codes, len(column.labels), moves, min_rows)
        add(kept, counts, sums, [column.labels[i] for i in kept])
    for position, first in enumerate(columns):
        for second in columns[position + 1 :]:
            if first.source == second.source:
                continue
            width = len(second.labels)
            both = (first.codes >= 0) & (second.codes >= 0)
            codes = np.where(both, first.codes * width + second.codes, -1)
            kept, counts, sums = _slice_sums(codes, len(first.labels) * width, moves, min_rows)
            add(
                kept, counts, sums, [f"{first.labels[i // width]} & {second.labels[i % width]}" for i in kept]
            )
    if not descriptions:
        return DifferentialCheck(judged_on, rows, 0, float(moves.mean()) if rows else 0.0, (), None)
    size, move = np.concatenate(sizes), np.concatenate(slice_moves)
    score = _robust_scores(move, size, min_rows)
    tested = len(move)
    # two-sided normal tail of the robust score, Bonferroni over every slice tested
    p_values = np.minimum(1.0, tested * np.array([math.erfc(abs(s) / math.sqrt(2)) for s in score]))
    standing_out = np.nonzero((p_values < policy.alpha) & (np.abs(score) >= policy.min_slice_score))[0]
    standing_out = standing_out[np.argsort(-np.abs(move[standing_out]), kind="stable")]

    def slice_at(index: int) -> SliceMove:
        return SliceMove(
            descriptions[index],
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
        strongest=slice_at(int(np.argmax(np.abs(score)))),
    )
