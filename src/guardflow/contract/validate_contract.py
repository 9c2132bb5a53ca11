"""Check a batch against its data contract, a Great Expectations suite: set bad rows aside, stop bad batches.

Each expectation in the suite says in `meta.on_failure` what breaking it means. `quarantine` (row-level
checks) sets the failing rows aside with their reasons; `stop` (table-level checks, checks with `mostly`,
the label set) rejects the whole batch with a `ContractError`. Some batch-level failures are checked here
before GX runs, because GX cannot see them or passes them vacuously: wrong columns, an empty batch, an
all-null column.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from guardflow.contract.suite import (
    categorical,
    describe,
    describe_failure,
    load_suite,
    raised_exception,
    run_suite,
    unexpected_rows,
)
from guardflow.data.table import REASONS, SOURCE_ROW, Table, column_problems, empty_malformed, typed_frame
from guardflow.errors import ContractError
from guardflow.settings import ContractSettings, DatasetSettings

if TYPE_CHECKING:
    from great_expectations.core import ExpectationSuite

logger = logging.getLogger(__name__)

OnFailure = Literal["quarantine", "stop"]
_ROW_COUNT_EXPECTATIONS = ("expect_table_row_count_to_be_between", "expect_table_row_count_to_equal")
_NULL_EXPECTATIONS = ("expect_column_values_to_not_be_null", "expect_column_values_to_be_null")


@dataclass(frozen=True)
class ExpectationOutcome:
    """How one expectation of the suite fared on the batch."""

    expectation: str
    column: str | None
    on_failure: OnFailure
    success: bool
    unexpected_count: int


@dataclass(frozen=True)
class ContractResult:
    """The batch split by the contract: typed rows accepted, original text rows quarantined with reasons."""

    suite_name: str
    rows_in: int
    rows_accepted: int
    rows_quarantined: int
    outcomes: tuple[ExpectationOutcome, ...]
    accepted: pd.DataFrame
    quarantined: pd.DataFrame
    null_counts: dict[str, int] = field(default_factory=dict)  # per column, on the typed batch
    report_path: Path | None = None  # the Data Docs page, when one was asked for

    @property
    def passed_share(self) -> float:
        """Share of the batch's rows that passed every row-level expectation."""
        return self.rows_accepted / self.rows_in if self.rows_in else 0.0


def validate_contract(
    rows: pd.DataFrame,
    dataset: DatasetSettings,
    contract: ContractSettings,
    malformed: pd.DataFrame | None = None,
    report_path: Path | None = None,
) -> ContractResult:
    """Type the text rows, run the contract suite, quarantine rows that break row-level expectations.

    `malformed` are the lines the reader could not parse (`Table.malformed`): they count in `rows_in` and are
    quarantined as they are. Raises `ContractError` (one line) when the batch as a whole breaks the contract.
    With `report_path`, the validation result is also written there as Data Docs HTML, before any verdict, so
    a stopped batch has one too.
    """
    suite = load_suite(contract.suite)
    _check_columns(rows, dataset)
    malformed = empty_malformed() if malformed is None else malformed
    check_not_empty(len(rows), malformed)
    if not rows.index.is_unique:
        raise ValueError(f"the rows' index ({SOURCE_ROW}) must be unique")
    rows = rows.rename_axis(SOURCE_ROW)
    typed = typed_frame(rows, dataset)
    verdict = judge_rows(rows, typed, malformed, suite, report_path)
    outcomes = conclude(suite, contract, [verdict])
    accepted = typed.drop(index=verdict.quarantined.index.difference(malformed.index))
    rows_in, rows_accepted, rows_quarantined = verdict.rows_in, len(accepted), len(verdict.quarantined)
    if rows_in != rows_accepted + rows_quarantined:
        raise RuntimeError(
            f"contract split lost rows: {rows_in} in, "
            f"{rows_accepted} accepted + {rows_quarantined} quarantined"
        )
    return ContractResult(
        suite_name=suite.name,
        rows_in=rows_in,
        rows_accepted=rows_accepted,
        rows_quarantined=rows_quarantined,
        outcomes=outcomes,
        accepted=accepted,
        quarantined=verdict.quarantined,
        null_counts={str(column): int(count) for column, count in typed.isna().sum().items()},
        report_path=report_path,
    )


def validate_table(
    table: Table, dataset: DatasetSettings, contract: ContractSettings, report_path: Path | None = None
) -> ContractResult:
    """`validate_contract` on a table as read, its malformed lines included; errors name the file."""
    try:
        return validate_contract(
            table.rows, dataset, contract, malformed=table.malformed, report_path=report_path
        )
    except ContractError as error:
        raise ContractError(f"{table.path}: {error}") from None


@dataclass(frozen=True)
class Partial:
    """One expectation's result on one chunk, reduced to what the whole-file verdict needs."""

    expectation: str
    column: str | None
    on_failure: OnFailure
    kwargs: dict[str, Any]
    success: bool
    unexpected_count: int
    element_count: int
    missing_count: int
    failure: str | None
    raised: bool


@dataclass(frozen=True)
class Verdict:
    """The contract on one chunk: its quarantined rows and the counts the whole-file verdict adds up."""

    rows_in: int
    rows_parsed: int
    rows_accepted: int
    partials: tuple[Partial, ...]
    quarantined: pd.DataFrame
    rows_quarantined: int
    reason_counts: Counter[str]
    first_quarantined: int | None
    present: dict[str, int]
    numbers: dict[str, int]

    def summary(self) -> Verdict:
        """The same verdict without its rows, to keep while the next chunks run."""
        return replace(self, quarantined=self.quarantined.head(0))


def judge_rows(
    rows: pd.DataFrame,
    typed: pd.DataFrame,
    malformed: pd.DataFrame,
    suite: ExpectationSuite,
    report_path: Path | None = None,
) -> Verdict:
    """Run the suite on typed rows; gather every row-level failure per row and every batch-level failure.

    With `report_path`, GX's validation result is written there as Data Docs HTML first.
    """
    partials: list[Partial] = []
    reasons_by_row: dict[Any, list[str]] = {}
    results = []
    if len(rows):
        validation = run_suite(categorical(typed), suite)
        if report_path is not None:
            from guardflow.contract.report_contract import write_data_docs

            write_data_docs(validation, report_path)
        results = validation.results
    for result in results:
        config = result.expectation_config
        if config is None:  # never the case for suite results, but GX types it as optional
            continue
        column = config.kwargs.get("column")
        on_failure: OnFailure = config.meta["on_failure"]  # checked in load_suite
        failing_rows = unexpected_rows(result)
        error = raised_exception(result)
        failure = None
        if error is not None:
            # An expectation that could not be evaluated says nothing about rows: the batch cannot pass.
            failure = f"{describe(config.type, column)} could not be evaluated: {error}"
        elif on_failure == "stop" and not result.success:
            failure = describe_failure(result, typed, failing_rows)
        elif on_failure == "quarantine":
            reason = describe(config.type, column)
            for row in failing_rows:
                reasons_by_row.setdefault(row, []).append(reason)
        details = result.result
        partials.append(
            Partial(
                expectation=config.type,
                column=column,
                on_failure=on_failure,
                kwargs=dict(config.kwargs),
                success=bool(result.success),
                unexpected_count=int(details.get("unexpected_count") or 0),
                element_count=int(details.get("element_count") or 0),
                missing_count=int(details.get("missing_count") or 0),
                failure=failure,
                raised=error is not None,
            )
        )
    quarantined_index = pd.Index(sorted(reasons_by_row), dtype="int64", name=SOURCE_ROW)
    quarantined = rows.loc[quarantined_index].copy()
    quarantined[REASONS] = [reasons_by_row[row] for row in quarantined_index]
    if len(malformed):
        quarantined = pd.concat([quarantined, malformed]).sort_index()
    reason_counts = Counter(reason for reasons in quarantined[REASONS] for reason in reasons)
    return Verdict(
        rows_in=len(rows) + len(malformed),
        rows_parsed=len(rows),
        rows_accepted=len(rows) - len(quarantined_index),
        partials=tuple(partials),
        quarantined=quarantined,
        rows_quarantined=len(quarantined),
        reason_counts=reason_counts,
        first_quarantined=int(quarantined.index[0]) if len(quarantined) else None,
        present={column: int(rows[column].notna().sum()) for column in rows.columns},
        numbers={column: int(typed[column].notna().sum()) for column in typed.columns},
    )


def conclude(
    suite: ExpectationSuite, contract: ContractSettings, verdicts: list[Verdict]
) -> tuple[ExpectationOutcome, ...]:
    """The batch-level verdict over every chunk: all-null columns, stop expectations, the quarantined share.

    With one chunk, GX's own success stands; with several, row counts and `mostly` are judged on the sums.
    """
    _check_no_empty_columns(verdicts)
    judged = [verdict for verdict in verdicts if verdict.partials]
    rows_parsed = sum(verdict.rows_parsed for verdict in verdicts)
    outcomes: list[ExpectationOutcome] = []
    stop_failures: list[str] = []
    for position in range(len(judged[0].partials) if judged else 0):
        parts = [verdict.partials[position] for verdict in judged]
        first = parts[0]
        success, failure = _combine(parts, rows_parsed)
        outcomes.append(
            ExpectationOutcome(
                expectation=first.expectation,
                column=first.column,
                on_failure=first.on_failure,
                success=success,
                unexpected_count=sum(part.unexpected_count for part in parts),
            )
        )
        if failure is not None and (first.on_failure == "stop" or any(part.raised for part in parts)):
            stop_failures.append(failure)
    if stop_failures:
        raise ContractError(f"batch breaks contract '{suite.name}': " + "; ".join(stop_failures))

    rows_in = sum(verdict.rows_in for verdict in verdicts)
    rows_quarantined = sum(verdict.rows_quarantined for verdict in verdicts)
    share = rows_quarantined / rows_in if rows_in else 0.0
    if share > contract.max_quarantined_share:
        reasons: Counter[str] = Counter()
        for verdict in verdicts:
            reasons.update(verdict.reason_counts)
        top_text = ", ".join(f"{reason} ({count})" for reason, count in reasons.most_common(3))
        first_row = min(v.first_quarantined for v in verdicts if v.first_quarantined is not None)
        raise ContractError(
            f"batch breaks contract '{suite.name}': {rows_quarantined} of {rows_in} rows quarantined "
            f"({share:.1%}), above the limit of {contract.max_quarantined_share:.1%}; most common: {top_text}; "
            f"first at line {first_row + 1}"
        )
    logger.info(
        "contract '%s': %d rows in, %d accepted, %d quarantined (%.2f%%)",
        suite.name, rows_in, rows_in - rows_quarantined, rows_quarantined, 100 * share,
    )  # fmt: skip
    return tuple(outcomes)


def _combine(parts: list[Partial], rows_parsed: int) -> tuple[bool, str | None]:
    """One expectation's success and failure text over every chunk."""
    first = parts[0]
    raised = [part for part in parts if part.raised]
    if raised:
        return False, raised[0].failure
    if len(parts) == 1:
        return first.success, first.failure
    where = describe(first.expectation, first.column)
    if first.expectation in _ROW_COUNT_EXPECTATIONS:
        low, high = first.kwargs.get("min_value"), first.kwargs.get("max_value")
        if "value" in first.kwargs:
            low = high = first.kwargs["value"]
        if (low is not None and rows_parsed < low) or (high is not None and rows_parsed > high):
            return False, f"{where} failed, observed {rows_parsed!r}"
        return True, None
    mostly = first.kwargs.get("mostly")
    if mostly is not None:
        unexpected = sum(part.unexpected_count for part in parts)
        total = sum(part.element_count for part in parts)
        judged = total - (
            0 if first.expectation in _NULL_EXPECTATIONS else sum(p.missing_count for p in parts)
        )
        if judged == 0 or 1 - unexpected / judged >= mostly:
            return True, None
        return False, (
            f"{where} failed: {unexpected} of {total} rows unexpected ({100 * unexpected / judged:.1f}%), "
            f"needs at least {mostly:.0%} to pass"
        )
    failed = [part for part in parts if not part.success]
    if not failed:
        return True, None
    text = str(failed[0].failure or f"{where} failed")
    if len(failed) > 1:
        text += f" (and in {len(failed) - 1} more chunks)"
    return False, text


def stop_early(verdict: Verdict, suite: ExpectationSuite) -> None:
    """A `stop` expectation without `mostly` broken in one chunk breaks the file: no need to read on."""
    for part in verdict.partials:
        settled = part.expectation not in _ROW_COUNT_EXPECTATIONS and part.kwargs.get("mostly") is None
        if part.failure is not None and (part.raised or (part.on_failure == "stop" and settled)):
            raise ContractError(f"batch breaks contract '{suite.name}': {part.failure}")


def check_not_empty(rows_parsed: int, malformed: pd.DataFrame) -> None:
    if rows_parsed:
        return
    if len(malformed):
        raise ContractError(
            f"the batch has no parsable row: all {len(malformed)} rows are malformed, first at line "
            f"{int(malformed.index[0]) + 1}: {malformed[REASONS].iloc[0][0]}"
        )
    raise ContractError("the batch is empty: 0 rows (the contract needs at least one)")


def _check_columns(rows: pd.DataFrame, dataset: DatasetSettings) -> None:
    """Missing and unexpected columns, named; a renamed column shows up as one of each."""
    problems = column_problems([str(column) for column in rows.columns], dataset.expected_columns)
    if problems:
        raise ContractError(f"batch columns do not match the contract: {'; '.join(problems)}")


def _check_no_empty_columns(verdicts: list[Verdict]) -> None:
    """A column with no value at all stops the batch, whether or not the suite has a not-null check for it.

    Map expectations skip nulls, so without this an all-null column would pass every between or in-set check.
    """
    judged = [verdict for verdict in verdicts if verdict.rows_parsed]
    if not judged:
        return
    problems = []
    for column in judged[0].numbers:
        if sum(verdict.numbers[column] for verdict in judged) == 0:
            if sum(verdict.present[column] for verdict in judged) == 0:
                problems.append(f"'{column}' is entirely null")
            else:
                problems.append(f"'{column}' has no value that parses as a number")
    if problems:
        raise ContractError(f"batch breaks the contract: {'; '.join(problems)}")
