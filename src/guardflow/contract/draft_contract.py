"""Draft a data contract (a Great Expectations suite) from reference rows, for a person to review.

The draft covers the column set and order, the row-count bounds, per column a null rule, the numeric range or
category set, uniqueness for identifier columns, and the label set. Ranges and category lists come from the config's
public bounds and categories, never from the rows: ranges measured on the data would leak statistics of the people in
it into the contract (and into every log that quotes it). Only columns the config does not describe (kept in the file
but not used by the model) get observed category sets, or their observed range in a note, each flagged for review.
What the rows do decide: whether a column may hold nulls, whether a column is an identifier, and where the reference
breaks a public bound (a note, not a change).

The output is the JSON form of a GX 1.x suite, as `load_suite` reads it, with `meta.on_failure` on every expectation
and the reviewer notes in the suite's `meta.guardflow`. It is deterministic: the same rows and config give the same
bytes (no timestamps, no absolute paths, sorted keys).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

import pandas as pd

from guardflow.data.table import typed_frame
from guardflow.errors import ConfigError
from guardflow.settings import CategoricalFeature, DatasetSettings, NumericFeature

DRAFTED_BY = "guardflow contract draft"
# A batch needs one row (drift batches can be small); the upper bound only catches a runaway or duplicated batch.
ROW_COUNT_HEADROOM = 100
# A column with missing values tolerates up to this many times its reference share of nulls, rounded down to
# MOSTLY_STEP, before the whole batch stops.
NULL_SHARE_HEADROOM = 2.0
MOSTLY_STEP = 0.05
# An undescribed column with at most this many distinct values gets its observed set; more, and it gets none.
MAX_OBSERVED_CATEGORIES = 20
# Distinct values in fewer rows than this say nothing about whether a column is an identifier.
MIN_ROWS_FOR_UNIQUENESS = 20
MAX_NOTED_VALUES = 5


@dataclass(frozen=True)
class DraftedSuite:
    """A drafted suite (the JSON-ready dict) and the notes a reviewer should read before adopting it."""

    suite: dict[str, Any]
    notes: tuple[str, ...]

    @property
    def expectation_count(self) -> int:
        return len(self.suite["expectations"])

    def to_json(self) -> str:
        """The suite as the file it is saved to: sorted keys, two-space indent, a final newline."""
        return json.dumps(self.suite, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def draft_contract(
    rows: pd.DataFrame,
    dataset: DatasetSettings,
    name: str,
    source: dict[str, Any] | None = None,
    private_columns: frozenset[str] = frozenset(),
) -> DraftedSuite:
    """Draft the contract of `dataset` from its reference text rows (as `read_table` reads them).

    `source` (e.g. file name, sha256, row count) is recorded in the suite's meta so a reviewer knows what the draft
    was made from. `private_columns` look like personal data: no value of theirs is drafted or quoted in a note.
    Raises `ConfigError` when the rows' columns differ from the config's, or there are no rows.
    """
    _check_columns(rows, dataset)
    if rows.empty:
        raise ConfigError("cannot draft a contract from 0 rows")
    typed = typed_frame(rows, dataset)
    notes: list[str] = []
    expectations: list[dict[str, Any]] = [
        _expectation(
            "expect_table_columns_to_match_ordered_list",
            {"column_list": list(typed.columns)},
            "stop",
            "the columns of the reference file, in order",
        ),
        _expectation(
            "expect_table_row_count_to_be_between",
            {"min_value": 1, "max_value": _row_count_ceiling(len(typed))},
            "stop",
            f"at least one row; at most the next power of ten above {ROW_COUNT_HEADROOM} x the reference rows",
        ),
    ]
    for column in typed.columns:
        if str(column) in private_columns and column != dataset.label.column:
            expectations += _private_column(str(column), typed[column], dataset, notes)
            continue
        expectations += _column_expectations(str(column), typed[column], dataset, notes)
    suite = {
        "name": name,
        "id": None,
        "expectations": expectations,
        "meta": {
            "great_expectations_version": version("great_expectations"),
            "notes": (
                f"Data contract of {dataset.id}, run against the typed frame (numeric features as float, label "
                "aliases resolved). meta.on_failure: 'quarantine' sets the failing rows aside, 'stop' fails the "
                "whole batch. meta.basis says where each bound comes from."
            ),
            "guardflow": {
                "drafted_by": DRAFTED_BY,
                "reviewed": False,
                "source": source or {"rows": len(typed)},
                "privacy": (
                    "Ranges and category sets of described columns are the config's public ones. Null tolerances, "
                    "identifier columns, the row-count ceiling and the sets of undescribed columns are derived from "
                    "the reference rows: they disclose a little about that data (see the notes)."
                ),
                "reviewer_notes": notes,
            },
        },
        "notes": None,
    }
    return DraftedSuite(suite=suite, notes=tuple(notes))


def _check_columns(rows: pd.DataFrame, dataset: DatasetSettings) -> None:
    expected = dataset.expected_columns
    present = [str(column) for column in rows.columns]
    missing = [column for column in expected if column not in present]
    unexpected = [column for column in present if column not in expected]
    if missing or unexpected:
        problems = [f"missing {missing}" if missing else "", f"unexpected {unexpected}" if unexpected else ""]
        raise ConfigError(
            f"the data's columns do not match the config's: {'; '.join(p for p in problems if p)}"
        )


def _expectation(kind: str, kwargs: dict[str, Any], on_failure: str, basis: str) -> dict[str, Any]:
    return {
        "type": kind,
        "kwargs": kwargs,
        "meta": {"on_failure": on_failure, "basis": basis},
        "severity": "critical",
    }


def _row_count_ceiling(rows: int) -> int:
    return int(10 ** math.ceil(math.log10(ROW_COUNT_HEADROOM * rows)))


def _column_expectations(
    column: str, values: pd.Series, dataset: DatasetSettings, notes: list[str]
) -> list[dict[str, Any]]:
    """The null rule, then the range or set, then uniqueness, for one column."""
    label = dataset.label
    if column == label.column:
        outside = sorted(set(values.dropna()) - {label.positive, label.negative})
        if outside:
            notes.append(
                f"{column}: reference labels outside the two classes would stop the batch: {outside[:5]}"
            )
        return _typed(
            "label",
            [
                _expectation(
                    "expect_column_values_to_not_be_null",
                    {"column": column},
                    "quarantine",
                    "a row needs its label",
                ),
                _expectation(
                    "expect_column_values_to_be_in_set",
                    {"column": column, "value_set": [label.positive, label.negative]},
                    "stop",
                    "the config's label classes (aliases resolved)",
                ),
            ],
        )
    drafted = [_null_rule(column, values, notes)]
    feature = dataset.features.get(column)
    if isinstance(feature, NumericFeature):
        return _typed("numeric", [*drafted, _public_range(column, values, feature, notes)])
    if isinstance(feature, CategoricalFeature):
        return _typed("categorical", [*drafted, _public_set(column, values, feature, notes)])
    return _typed("text", [*drafted, *_undescribed_column(column, values, notes)])


def _private_column(
    column: str, values: pd.Series, dataset: DatasetSettings, notes: list[str]
) -> list[dict[str, Any]]:
    """A column that looks personal and has no PII policy: the config's public bounds at most, never its values."""
    notes.append(
        f"{column}: looks like personal data and has no pii policy; none of its values is drafted (set "
        f"pii.columns.{column}, or replace the column)"
    )
    drafted = [_null_rule(column, values, notes)]
    feature = dataset.features.get(column)
    if isinstance(feature, NumericFeature):
        return _typed("numeric", [*drafted, _public_range(column, values, feature, [])])
    if isinstance(feature, CategoricalFeature):
        return _typed("categorical", [*drafted, _public_set(column, values, feature, [])])
    return _typed("text", drafted)


def _typed(column_type: str, expectations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Record the column's type (as the reader types it: numeric features as float, the rest as text)."""
    for expectation in expectations:
        expectation["meta"]["column_type"] = column_type
    return expectations


def _null_rule(column: str, values: pd.Series, notes: list[str]) -> dict[str, Any]:
    """No nulls in the reference: a null sets its row aside. Some: the batch may carry a bounded share of them."""
    null_share = float(values.isna().mean())
    if null_share == 0:
        return _expectation(
            "expect_column_values_to_not_be_null",
            {"column": column},
            "quarantine",
            "no nulls in the reference",
        )
    # Rounded down on a grid, with a little slack for float error, so 0.85 stays 0.85.
    mostly = math.floor((1 - NULL_SHARE_HEADROOM * null_share) / MOSTLY_STEP + 1e-9) * MOSTLY_STEP
    mostly = round(max(mostly, 0.0), 2)
    notes.append(
        f"{column}: {null_share:.1%} of the reference rows are null; drafted mostly={mostly} "
        f"({NULL_SHARE_HEADROOM:g}x that share, rounded down): null rows pass, too many stop the batch"
    )
    return _expectation(
        "expect_column_values_to_not_be_null",
        {"column": column, "mostly": mostly},
        "stop",
        f"observed null share {null_share:.4f}, tolerance {NULL_SHARE_HEADROOM:g}x",
    )


def _public_range(
    column: str, values: pd.Series, feature: NumericFeature, notes: list[str]
) -> dict[str, Any]:
    outside = int(((values < feature.min) | (values > feature.max)).sum())
    unparsable = int(values.isna().sum())
    if outside:
        notes.append(
            f"{column}: {outside} reference rows fall outside the public bounds [{feature.min:g}, {feature.max:g}] "
            "and would be quarantined; check the bounds (or the data)"
        )
    if unparsable:
        notes.append(f"{column}: {unparsable} reference values are missing or not numbers")
    return _expectation(
        "expect_column_values_to_be_between",
        {"column": column, "min_value": feature.min, "max_value": feature.max},
        "quarantine",
        "the config's public bounds",
    )


def _public_set(
    column: str, values: pd.Series, feature: CategoricalFeature, notes: list[str]
) -> dict[str, Any]:
    unknown = sorted(set(values.dropna()) - set(feature.categories))
    if unknown:
        shown = ", ".join(repr(value) for value in unknown[:MAX_NOTED_VALUES])
        more = f" and {len(unknown) - MAX_NOTED_VALUES} more" if len(unknown) > MAX_NOTED_VALUES else ""
        notes.append(
            f"{column}: reference values outside the config's categories would be quarantined: {shown}{more}"
        )
    return _expectation(
        "expect_column_values_to_be_in_set",
        {"column": column, "value_set": list(feature.categories)},
        "quarantine",
        "the config's public categories",
    )


def _undescribed_column(column: str, values: pd.Series, notes: list[str]) -> list[dict[str, Any]]:
    """A column the config lists but the model does not use: an identifier is unique, a code has its observed set."""
    present = values.dropna()
    if len(present) >= MIN_ROWS_FOR_UNIQUENESS and present.is_unique:
        notes.append(f"{column}: every reference value is distinct; drafted as an identifier (unique)")
        return [
            _expectation(
                "expect_column_values_to_be_unique",
                {"column": column},
                "quarantine",
                "every reference value distinct: an identifier",
            )
        ]
    distinct = sorted(present.astype(str).unique())
    if len(distinct) <= MAX_OBSERVED_CATEGORIES:
        notes.append(
            f"{column}: not described by the config; drafted the {len(distinct)} values observed in the "
            "reference (data-derived, not a public list): replace with the public list, or remove"
        )
        return [
            _expectation(
                "expect_column_values_to_be_in_set",
                {"column": column, "value_set": distinct},
                "quarantine",
                "observed in the reference data: review",
            )
        ]
    numbers = pd.to_numeric(present, errors="coerce")
    if numbers.notna().all():
        # The reader keeps undescribed columns as text, so a range check could not run on them: the observed range
        # goes to the reviewer, who can declare the column a numeric feature with public bounds instead.
        notes.append(
            f"{column}: not described by the config; numbers from {numbers.min():g} to {numbers.max():g} in the "
            "reference (data-derived): declare it a numeric feature with public bounds to get a range check"
        )
        return []
    notes.append(
        f"{column}: not described by the config and has {len(distinct)} distinct values; only its null rule drafted"
    )
    return []
