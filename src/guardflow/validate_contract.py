"""Check a batch against its data contract, a Great Expectations suite: set bad rows aside, stop bad batches.

Each expectation in the suite says in `meta.on_failure` what breaking it means. `quarantine` (row-level
checks) sets the failing rows aside with their reasons; `stop` (table-level checks, checks with `mostly`,
the label set) rejects the whole batch with a `ContractError`. Some batch-level failures are checked here
before GX runs, because GX cannot see them or passes them vacuously: wrong columns, an empty batch, an
all-null column.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from guardflow.errors import ConfigError, ContractError
from guardflow.io.datasets import SOURCE_ROW, typed_frame
from guardflow.settings import ContractSettings, DatasetSettings

if TYPE_CHECKING:
    from great_expectations.core import ExpectationSuite, ExpectationSuiteValidationResult
    from great_expectations.core.expectation_validation_result import ExpectationValidationResult

logger = logging.getLogger(__name__)

OnFailure = Literal["quarantine", "stop"]
ON_FAILURE_VALUES: tuple[str, ...] = ("quarantine", "stop")
REASONS = "reasons"

# COMPLETE lists every failing row. Rows are named by the frame's index (named `source_row`): GX reads a named
# index directly, so source_row need not be added as a column, which would break the ordered-columns check.
# The pandas query string GX builds by default and the per-row values are not needed: we keep only row ids.
_RESULT_FORMAT: dict[str, Any] = {
    "result_format": "COMPLETE",
    "unexpected_index_column_names": [SOURCE_ROW],
    "return_unexpected_index_query": False,
    "exclude_unexpected_values": True,
}


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


def load_suite(path: Path) -> ExpectationSuite:
    """Read a suite saved as `suite.to_json_dict()`; every expectation must say what its failure means."""
    import great_expectations as gx

    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"contract suite not found: {path}") from None
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigError(f"contract suite {path} is not readable JSON: {error}") from None
    try:
        suite = gx.ExpectationSuite(**raw)
    except Exception as error:  # GX raises several unrelated types for a malformed suite
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(f"contract suite {path} is not a valid GX suite: {first_line}") from None
    for expectation in suite.expectations:
        on_failure = (expectation.meta or {}).get("on_failure")
        if on_failure not in ON_FAILURE_VALUES:
            where = _describe(expectation.expectation_type, getattr(expectation, "column", None))
            raise ConfigError(
                f"contract suite {path}: {where} needs meta.on_failure 'quarantine' or 'stop', "
                f"got {on_failure!r}"
            )
    return suite


def validate_contract(
    rows: pd.DataFrame,
    dataset: DatasetSettings,
    contract: ContractSettings,
    report_path: Path | None = None,
) -> ContractResult:
    """Type the text rows, run the contract suite, quarantine rows that break row-level expectations.

    Raises `ContractError` (one line) when the batch as a whole breaks the contract. With `report_path`, the
    validation result is also written there as Data Docs HTML, before any verdict, so a stopped batch has one.
    """
    suite = load_suite(contract.suite)
    _check_columns(rows, dataset)
    if rows.empty:
        raise ContractError("the batch is empty: 0 rows (the contract needs at least one)")
    if not rows.index.is_unique:
        raise ValueError(f"the rows' index ({SOURCE_ROW}) must be unique")
    rows = rows.rename_axis(SOURCE_ROW)
    typed = typed_frame(rows, dataset)
    _check_no_empty_columns(rows, typed)

    validation = _run_suite(typed, suite)
    if report_path is not None:
        from guardflow.report_contract import write_data_docs

        write_data_docs(validation, report_path)

    outcomes: list[ExpectationOutcome] = []
    stop_failures: list[str] = []
    reasons_by_row: dict[Any, list[str]] = {}
    for result in validation.results:
        config = result.expectation_config
        if config is None:  # never the case for suite results, but GX types it as optional
            continue
        column = config.kwargs.get("column")
        on_failure: OnFailure = config.meta["on_failure"]  # checked in load_suite
        failing_rows = _unexpected_rows(result)
        error = _raised_exception(result)
        outcomes.append(
            ExpectationOutcome(
                expectation=config.type,
                column=column,
                on_failure=on_failure,
                success=bool(result.success),
                unexpected_count=int(result.result.get("unexpected_count") or 0),
            )
        )
        if error is not None:
            # An expectation that could not be evaluated says nothing about rows: the batch cannot pass.
            stop_failures.append(f"{_describe(config.type, column)} could not be evaluated: {error}")
        elif result.success and on_failure == "stop":
            continue
        elif on_failure == "stop":
            stop_failures.append(_describe_failure(result, typed, failing_rows))
        else:
            reason = _describe(config.type, column)
            for row in failing_rows:
                reasons_by_row.setdefault(row, []).append(reason)
    if stop_failures:
        raise ContractError(f"batch breaks contract '{suite.name}': " + "; ".join(stop_failures))

    quarantined_index = pd.Index(sorted(reasons_by_row), name=SOURCE_ROW)
    quarantined = rows.loc[quarantined_index].copy()
    quarantined[REASONS] = [reasons_by_row[row] for row in quarantined_index]
    accepted = typed.drop(index=quarantined_index)
    rows_in, rows_accepted, rows_quarantined = len(rows), len(accepted), len(quarantined)
    if rows_in != rows_accepted + rows_quarantined:
        raise RuntimeError(
            f"contract split lost rows: {rows_in} in, "
            f"{rows_accepted} accepted + {rows_quarantined} quarantined"
        )

    share = rows_quarantined / rows_in
    if share > contract.max_quarantined_share:
        top = Counter(reason for reasons in reasons_by_row.values() for reason in reasons).most_common(3)
        top_text = ", ".join(f"{reason} ({count})" for reason, count in top)
        raise ContractError(
            f"batch breaks contract '{suite.name}': {rows_quarantined} of {rows_in} rows quarantined "
            f"({share:.1%}), above the limit of {contract.max_quarantined_share:.1%}; most common: {top_text}"
        )
    logger.info(
        "contract '%s': %d rows in, %d accepted, %d quarantined (%.2f%%)",
        suite.name, rows_in, rows_accepted, rows_quarantined, 100 * share,
    )  # fmt: skip
    return ContractResult(
        suite_name=suite.name,
        rows_in=rows_in,
        rows_accepted=rows_accepted,
        rows_quarantined=rows_quarantined,
        outcomes=tuple(outcomes),
        accepted=accepted,
        quarantined=quarantined,
        null_counts={str(column): int(count) for column, count in typed.isna().sum().items()},
        report_path=report_path,
    )


def _check_columns(rows: pd.DataFrame, dataset: DatasetSettings) -> None:
    """Missing and unexpected columns, named; a renamed column shows up as one of each."""
    expected = dataset.expected_columns
    present = [str(column) for column in rows.columns]
    missing = [column for column in expected if column not in present]
    unexpected = [column for column in present if column not in expected]
    problems = []
    if missing:
        problems.append(f"missing columns {missing}")
    if unexpected:
        problems.append(f"unexpected columns {unexpected}")
    if problems:
        raise ContractError(f"batch columns do not match the contract: {'; '.join(problems)}")


def _check_no_empty_columns(rows: pd.DataFrame, typed: pd.DataFrame) -> None:
    """A column with no value at all stops the batch, whether or not the suite has a not-null check for it.

    Map expectations skip nulls, so without this an all-null column would pass every between or in-set check.
    """
    problems = []
    for column in typed.columns:
        if typed[column].isna().all():
            if rows[column].isna().all():
                problems.append(f"'{column}' is entirely null")
            else:
                problems.append(f"'{column}' has no value that parses as a number")
    if problems:
        raise ContractError(f"batch breaks the contract: {'; '.join(problems)}")


def _run_suite(typed: pd.DataFrame, suite: ExpectationSuite) -> ExpectationSuiteValidationResult:
    """Validate the frame in a throwaway in-memory GX context, with progress bars and analytics off."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # read by GX versions that still ship analytics
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        # Progress bars default to on and print to stderr; the validator reads this context setting.
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    batch_definition = (
        context.data_sources.add_pandas("contract")
        .add_dataframe_asset(suite.name)
        .add_batch_definition_whole_dataframe("batch")
    )
    batch = batch_definition.get_batch(batch_parameters={"dataframe": typed})
    return batch.validate(suite, result_format=_RESULT_FORMAT)


def _unexpected_rows(result: ExpectationValidationResult) -> list[Any]:
    """source_row ids of the rows that broke a map expectation (none for table expectations)."""
    rows: list[Any] = []
    for entry in result.result.get("unexpected_index_list") or []:
        if isinstance(entry, dict):
            value = entry.get(SOURCE_ROW)
            # exclude_unexpected_values gives one dict of id lists; otherwise one dict per row.
            rows.extend(value if isinstance(value, list) else [value])
        else:
            rows.append(entry)
    return [row.item() if hasattr(row, "item") else row for row in rows]


def _raised_exception(result: ExpectationValidationResult) -> str | None:
    """The first line of the error GX caught while evaluating the expectation, if any."""
    info = result.exception_info or {}
    candidates = [info, *(value for value in info.values() if isinstance(value, dict))]
    for candidate in candidates:
        if candidate.get("raised_exception"):
            message = str(candidate.get("exception_message") or "unknown error").strip()
            return message.splitlines()[0] if message else "unknown error"
    return None


def _describe(expectation: str, column: str | None) -> str:
    return f"{column}: {expectation}" if column else expectation


def _describe_failure(
    result: ExpectationValidationResult, typed: pd.DataFrame, failing_rows: list[Any]
) -> str:
    """What a failed `stop` expectation saw: its observed value, or how many rows broke it and examples."""
    config = result.expectation_config
    if config is None:  # suite results always carry their configuration
        return "an expectation without configuration failed"
    column = config.kwargs.get("column")
    details = result.result
    where = _describe(config.type, column)
    if "observed_value" in details:
        return f"{where} failed, observed {details['observed_value']!r}"
    count = int(details.get("unexpected_count") or 0)
    total = int(details.get("element_count") or len(typed))
    percent = float(details.get("unexpected_percent") or 0)
    text = f"{where} failed: {count} of {total} rows unexpected ({percent:.1f}%)"
    mostly = config.kwargs.get("mostly")
    if mostly is not None:
        text += f", needs at least {mostly:.0%} to pass"
    if column in typed.columns and failing_rows:
        examples = typed.loc[failing_rows, column].dropna().drop_duplicates().head(3).tolist()
        text += f", e.g. {examples}" if examples else ", all null"
    return text
