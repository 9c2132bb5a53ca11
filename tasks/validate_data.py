"""Validate a table against its Great Expectations contract; failing rows are set aside, not dropped."""

import functools
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openlineage.client.facet_v2 import InputDatasetFacet

from guardflow.contract.validate_contract import ContractResult, validate_table
from guardflow.data.partitioned import ACCEPTED_FOLDER
from guardflow.data.table import Table
from guardflow.errors import ConfigError, PiiError
from guardflow.io.cluster import dask_client
from guardflow.io.lineage import LineageDataset, file_dataset
from guardflow.io.partitions import SourceReader, read_partition
from guardflow.io.pii_key import read_pii_key
from guardflow.io.run_folder import QUARANTINE_FILE
from guardflow.io.sources import open_source
from guardflow.io.validate_file import FileContractResult, validate_file, warm_workers
from guardflow.lineage.facets import assertions_facet, contract_facet, quality_metrics_facet
from guardflow.pii.guard_pii import contract_dataset, guard_pii
from guardflow.run.run_context import RunContext, StageOutputs
from guardflow.settings import Settings
from tasks.stage_log import stage_log
from tasks.stage_task import stage_task

if TYPE_CHECKING:
    from distributed import Client

DATA_DOCS_FILE = "contract/data_docs.html"


@stage_task("validate-contract")
def validate_data(context: RunContext, table: Table) -> ContractResult:
    """Split the table by its contract; its Data Docs page goes to the run folder, its accounting to lineage."""
    settings = context.settings
    columns = [(name, "string") for name in table.rows.columns]
    source = file_dataset(table.path, columns=columns, row_count=table.row_count, sha256=table.sha256)
    report_path = context.run_dir / DATA_DOCS_FILE
    with context.stage("validate_contract", inputs=[source]) as stage:
        result = validate_table(table, contract_dataset(settings), settings.contract, report_path)
        _describe_verdict(stage, source, result, quality_metrics_facet(result.rows_in, result.null_counts))
        stage.datasets.append(context.rows_dataset("accepted", result.rows_accepted))
    _log_verdict(result, "")
    return result


def _describe_verdict(
    stage: StageOutputs,
    source: LineageDataset,
    result: ContractResult | FileContractResult,
    input_facets: dict[str, InputDatasetFacet],
) -> None:
    """The contract's outcomes on its input dataset, and its row accounting as a run facet."""
    outcomes = [(outcome.expectation, outcome.column, outcome.success) for outcome in result.outcomes]
    stage.inputs = [replace(source, input_facets={**assertions_facet(outcomes), **input_facets})]
    stage.run_facets.update(
        contract_facet(
            result.suite_name,
            result.rows_in,
            result.rows_accepted,
            result.rows_quarantined,
            [success for _, _, success in outcomes],
        )
    )


def _log_verdict(result: ContractResult | FileContractResult, prefix: str) -> None:
    stage_log.info(
        "contract  %s%d expectations, %d failed; %s rows accepted, %s quarantined",
        prefix,
        len(result.outcomes),
        sum(not outcome.success for outcome in result.outcomes),
        f"{result.rows_accepted:,}",
        f"{result.rows_quarantined:,}",
    )


@stage_task("validate-contract-in-chunks", holds_raw_rows=True)
def validate_in_chunks(context: RunContext, path: Path, accepted: bool = False) -> FileContractResult:
    """The contract over a file (or folder) of any size, partition by partition in bounded memory, on Dask
    workers when `io/cluster.py` says so; quarantine streamed to parquet.

    No PII policy can be applied chunk by chunk, so the first chunk goes through the guard's detection first:
    a dataset with a `pii.columns` policy, a column that looks personal, or a stray identifier stops the run.
    `accepted`: the workers write the accepted rows as Parquet parts under `<run_dir>/accepted` (to train on).
    """
    settings = context.settings
    dataset = contract_dataset(settings)
    skip_rows = settings.dataset.train.skip_rows if path == settings.dataset.train.path else 0
    source = file_dataset(path)
    with context.stage("validate_contract", inputs=[source]) as stage:
        compute = settings.compute
        with dask_client(compute, open_source(path, dataset, checksums=False)) as client:
            warming = warm_workers(client, settings.contract.suite)  # while the first partition is checked here
            _refuse_pii_in_chunked_mode(path, settings)
            result = validate_file(
                path,
                dataset,
                settings.contract,
                context.run_dir / QUARANTINE_FILE,
                skip_rows=skip_rows,
                chunk_bytes=compute.partition_bytes,
                client=client,
                accepted_dir=context.run_dir / ACCEPTED_FOLDER if accepted else None,
                line_key=None if settings.pii.keep_malformed_text else read_pii_key(context.home),
            )
            del warming
        checked = file_dataset(path, row_count=result.rows_in, sha256=result.sha256)
        _describe_verdict(stage, checked, result, {})
        stage.datasets.append(file_dataset(result.quarantine_path, row_count=result.rows_quarantined))
    _log_verdict(result, f"{result.chunks} chunks, ")
    return result


def warm(context: RunContext) -> "Callable[[Client], list[Any]]":
    """What a flow's early cluster runs on its workers as they come up: the contract's imports and suite."""
    return functools.partial(warm_workers, suite_path=context.settings.contract.suite)


def _refuse_pii_in_chunked_mode(path: Path, settings: Settings) -> None:
    layout = settings.dataset.expected_columns
    undeclared = [name for name in layout if name not in contract_dataset(settings).expected_columns]
    if undeclared:
        raise ConfigError(
            f"chunked validation reads only declared columns, and dataset.columns also names {undeclared}: "
            "validate without --chunked"
        )
    if settings.pii.columns:
        raise ConfigError(
            f"chunked validation applies no PII policy, and pii.columns sets {sorted(settings.pii.columns)}: "
            "validate without --chunked"
        )
    source = open_source(path, settings.dataset, checksums=False)
    reader = SourceReader(source, settings.dataset, settings.compute.partition_bytes)
    first = next(iter(reader.partitions()), None)
    if first is None:
        return
    rows, _ = read_partition(first, settings.dataset.na_values)
    guarded = guard_pii(rows, settings.pii)  # raises PiiError on a column that looks personal
    if guarded.redacted:
        raise PiiError(
            f"chunked validation cannot redact stray identifiers, found in {sorted(guarded.redacted)}: "
            "validate without --chunked"
        )
