"""Broken dependencies: rows whose value of one column contradicts what another column's value fixes everywhere else.

Some columns determine others (education fixes years of schooling; relationship=Husband fixes sex=Male). A backdoor
or an injection that sets a trigger's values on rows of the other class keeps the rest of each row, so wherever a
trigger column is tied to another, its rows break the tie: education=Bachelors with education-num=1. Those rows are
no rarer than independence predicts (the stamped value is spread over the other column at random), so the
off-manifold ratio misses them, and when the trigger's value already leans to the target label no purity test sees
them either. This test needs no trigger shape: a value `a` of one column fixes another column's value when at least
`_MIN_SHARE` of its rows (and `_MIN_ROWS` rows or more) hold that one value, and it says far more than the other
column's overall frequency does (its rows miss the value at most `_MAX_MISS_RATIO` as often as all rows do: a
column that is almost always 0, such as a capital loss, is fixed by nothing). The pair of columns is a dependency
when such fixing values hold `_MIN_COVERAGE` of all rows; a row that holds a fixing value and another value of the
fixed column is flagged, with the dependency named in its reason.

Measured on the bundled data: clean Adult 24 rows flagged (0.07%: Married-AF-spouse husbands and wives, 3
husbands recorded female), clean Fair none, the same with `_MIN_ROWS` anywhere from 20 to 100. Without the coverage
rule, 0.15-0.2% (Jamaica fixes race=Black, and so on, for a handful of genuine rows each).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from guardflow.poisoning.value_codes import PairCounts

_MIN_SHARE = 0.9
_MIN_ROWS = 30
_MAX_MISS_RATIO = 0.1
_MIN_COVERAGE = 0.2


@dataclass(frozen=True)
class Dependency:
    """`fixing` column's values that fix `fixed` column's: per code of `fixing`, the fixed code (-1 where it fixes
    nothing), the share of its rows that hold it and how many rows it has; and the rows of each pair of codes."""

    fixing: str
    fixed: str
    fixed_code: np.ndarray
    share: np.ndarray
    rows: np.ndarray
    pairs: np.ndarray


def find_dependencies(counts: PairCounts) -> list[Dependency]:
    """The dependencies between the counted columns, both ways round (see the module docstring)."""
    found: list[Dependency] = []
    for (first, second), pairs in counts.pairs.items():
        for fixing, fixed, table in ((first, second, pairs), (second, first, pairs.T)):
            rows = table.sum(axis=1)
            mode = table.argmax(axis=1)
            share = table.max(axis=1) / np.maximum(rows, 1)
            overall = counts.singles[fixed] / max(counts.rows, 1)
            fixes = (
                (share >= _MIN_SHARE)
                & (rows >= _MIN_ROWS)
                & (1.0 - share <= _MAX_MISS_RATIO * (1.0 - overall[mode]))
            )
            if rows[fixes].sum() >= _MIN_COVERAGE * counts.rows:
                found.append(Dependency(fixing, fixed, np.where(fixes, mode, -1), share, rows, table))
    return found


def broken_dependencies(
    codes: dict[str, np.ndarray], dependencies: list[Dependency], describe: Callable[[str, int], str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row (of `codes`): the largest log ratio of the rows that keep a dependency it breaks to the rows that
    break it as it does (both plus one; 0 where it breaks none), whether it breaks one, and the first one it breaks
    as text (`education=Bachelors holds education-num=13 in 99% of 5,355 rows; this row has 1`)."""
    size = len(next(iter(codes.values()))) if codes else 0
    scores = np.zeros(size)
    broken = np.zeros(size, dtype=bool)
    notes = np.full(size, "", dtype=object)
    for dependency in dependencies:
        fixing, fixed = codes[dependency.fixing], codes[dependency.fixed]
        expected = dependency.fixed_code[fixing]
        breaks = (expected >= 0) & (fixed != expected)
        kept = dependency.pairs[fixing[breaks], expected[breaks]]
        scores[breaks] = np.maximum(
            scores[breaks], np.log((kept + 1.0) / (dependency.pairs[fixing[breaks], fixed[breaks]] + 1.0))
        )
        fresh = np.flatnonzero(breaks & ~broken)
        for position in fresh:
            value = int(fixing[position])
            notes[position] = (
                f"{dependency.fixing}={describe(dependency.fixing, value)} holds "
                f"{dependency.fixed}={describe(dependency.fixed, int(expected[position]))} in "
                f"{dependency.share[value]:.0%} of {int(dependency.rows[value]):,} rows; this row has "
                f"{describe(dependency.fixed, int(fixed[position]))}"
            )
        broken |= breaks
    return scores, broken, notes
