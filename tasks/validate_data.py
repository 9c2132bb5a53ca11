"""Validate a table against its Great Expectations contract; failing rows are set aside, not dropped."""

from dataclasses import replace

from prefect import task
from prefect.cache_policies import NO_CACHE

from guardflow.guard_pii import contract_dataset
from guardflow.io.datasets import Table
from guardflow.io.lineage import file_dataset
from guardflow.lineage_facets import assertions_facet, contract_facet, quality_metrics_facet
from guardflow.run_context import RunContext
from guardflow.validate_contract import ContractResult, validate_table
from tasks.stage_log import stage_log

DATA_DOCS_FILE = "contract/data_docs.html"


@task(name="validate-contract", cache_policy=NO_CACHE)
def validate_data(context: RunContext, table: Table) -> ContractResult:
    """Split the table by its contract; its Data Docs page goes to the run folder, its accounting to lineage."""
    settings = context.settings
    columns = [(name, "string") for name in table.rows.columns]
    source = file_dataset(table.path, columns=columns, row_count=table.row_count, sha256=table.sha256)
    report_path = context.run_dir / DATA_DOCS_FILE
    with context.stage("validate_contract", inputs=[source]) as stage:
        result = validate_table(table, contract_dataset(settings), settings.contract, report_path)
        outcomes = [(outcome.expectation, outcome.column, outcome.success) for outcome in result.outcomes]
        stage.inputs = [
            replace(
                source,
                input_facets={
                    **assertions_facet(outcomes),
                    **quality_metrics_facet(result.rows_in, result.null_counts),
                },
            )
        ]
        stage.run_facets.update(
            contract_facet(
                result.suite_name,
                result.rows_in,
                result.rows_accepted,
                result.rows_quarantined,
                [success for _, _, success in outcomes],
            )
        )
        stage.datasets.append(context.rows_dataset("accepted", result.rows_accepted))
    failed = sum(not outcome.success for outcome in result.outcomes)
    stage_log.info(
        "contract  %s expectations, %d failed; %s rows accepted, %s quarantined",
        len(result.outcomes),
        failed,
        f"{result.rows_accepted:,}",
        f"{result.rows_quarantined:,}",
    )
    return result
