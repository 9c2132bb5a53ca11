"""Record a stand-alone contract check in MLflow: row accounting as metrics, Data Docs and quarantine as files."""

from pathlib import Path

from guardflow.contract.validate_contract import ContractResult
from guardflow.io import registry
from guardflow.io.validate_file import FileContractResult
from guardflow.run.run_context import RunContext
from guardflow.run.summary import RunSummary, contract_summary
from guardflow.settings import settings_hash
from tasks.stage_log import stage_log
from tasks.stage_task import stage_task


@stage_task("record-contract")
def record_contract(
    context: RunContext,
    source: tuple[Path, str, int],
    contract: ContractResult | FileContractResult,
    quarantine: Path,
) -> RunSummary:
    """Log the check as an MLflow run of experiment `guardflow-<dataset>-contract`; return its summary.

    `source` is the checked file's path, sha256 and number of data rows.
    """
    path, sha256, _ = source
    settings = context.settings
    registry.track_dataset(context.home, settings.dataset.id, "contract")
    metrics = {
        "rows_in": float(contract.rows_in),
        "rows_accepted": float(contract.rows_accepted),
        "rows_quarantined": float(contract.rows_quarantined),
        "expectations_failed": float(sum(not outcome.success for outcome in contract.outcomes)),
    }
    tags = {
        "guardflow.suite": contract.suite_name,
        "guardflow.data_sha256": sha256,
        "guardflow.data_path": str(path),
        "guardflow.config_sha256": settings_hash(settings),
        "guardflow.dataset": settings.dataset.id,
        "guardflow.rows_balanced": str(
            contract.rows_in == contract.rows_accepted + contract.rows_quarantined
        ),
    }
    # The report's folder keeps its name (contract/), as in a training run's artifacts.
    report = contract.report_path.parent if contract.report_path else None
    artifacts = [path for path in (report, quarantine) if path is not None and path.exists()]
    run_id = registry.log_check(
        run_name=context.run_dir.name, metrics=metrics, tags=tags, artifacts=artifacts
    )
    stage_log.info("record    contract check logged to MLflow run %s", run_id)
    return contract_summary(context.header(), source, contract, quarantine, run_id)
