"""Open a run (folder, lineage) and write its record: quarantine.parquet and summary.json."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from prefect.runtime import flow_run

from guardflow.contract.validate_contract import ContractResult
from guardflow.data.table import Table
from guardflow.drift.judge_retrain import WindowJudgement
from guardflow.evaluation.decide_gate import GateDecision
from guardflow.evaluation.evaluate_safety import Evaluation
from guardflow.io import run_folder
from guardflow.io.lineage import file_dataset
from guardflow.io.scan_parts import PartitionedScan
from guardflow.io.validate_file import FileContractResult
from guardflow.lineage.facets import prefect_facet
from guardflow.poisoning.scan_result import ScanResult
from guardflow.privacy.privacy_budget import SourceBudget
from guardflow.privacy.train_private import SavedModel
from guardflow.run.run_context import RunContext, open_run
from guardflow.run.summary import (
    LineageFigures,
    PoisoningFigures,
    RunSummary,
    WindowFigures,
    failed_summary,
    partitioned_training_summary,
    scan_summary,
    training_summary,
)
from guardflow.settings import guardflow_home, load_settings
from tasks.recover_runs import recover_runs
from tasks.register_model import model_dataset
from tasks.stage_log import stage_log
from tasks.stage_task import stage_task


@stage_task("open-run")
def start_run(flow_name: str, config_path: str, run_dir: str | None) -> RunContext:
    """Validate the config, make the run folder and emit the flow's lineage START."""
    settings = load_settings(config_path)
    home = guardflow_home()
    folder = run_folder.prepare_run_dir(Path(run_dir)) if run_dir else run_folder.new_run_dir(home, flow_name)
    recover_runs(home, recovered_by=str(folder))
    context = open_run(flow_name, settings, Path(config_path).resolve(), folder, home)
    flow_run_id = flow_run.get_id()
    context.begin(
        inputs=[file_dataset(settings.dataset.train.path)],
        run_facets=prefect_facet(str(flow_run_id), flow_name),
        orchestrator_run_id=str(flow_run_id) if flow_run_id else None,
    )
    stage_log.info("%s  dataset %s, run folder %s", flow_name, settings.dataset.id, folder)
    return context


@stage_task("write-quarantine")
def save_quarantine(context: RunContext, parts: dict[str, pd.DataFrame]) -> Path:
    with context.stage("write_quarantine", inputs=[]) as stage:
        path = run_folder.write_quarantine(context.run_dir, parts)
        written = pd.read_parquet(path)
        columns = [(str(name), str(dtype)) for name, dtype in written.dtypes.items()]
        stage.datasets.append(file_dataset(path, columns=columns, row_count=len(written)))
    return path


@stage_task("summarize-training")
def summarize_training(
    context: RunContext,
    train: Table,
    contract: ContractResult,
    scan: ScanResult,
    quarantine: Path,
    saved: SavedModel,
    evaluation: Evaluation,
    decision: GateDecision,
    budgets: list[SourceBudget],
    window: WindowJudgement | None = None,
) -> RunSummary:
    summary = training_summary(
        context.header(),
        train,
        contract,
        scan,
        quarantine,
        saved.trained.privacy,
        evaluation,
        decision,
        budgets,
    )
    if window is None:
        return summary
    figures = WindowFigures(
        judged_on=window.judged_on,
        rows=window.rows,
        candidate=window.candidate,
        champion=window.champion,
        champion_version=window.comparison.champion_version if window.comparison else None,
    )
    return summary.model_copy(update={"window": figures})


@stage_task("summarize-training")
def summarize_partitioned_training(
    context: RunContext,
    contract: FileContractResult,
    scan: PartitionedScan,
    saved: SavedModel,
    evaluation: Evaluation,
    decision: GateDecision,
    budgets: list[SourceBudget],
) -> RunSummary:
    """The training summary of the large path: row accounting from the contract's totals and the scan's flags
    (both streamed to the one quarantine file)."""
    poisoning = PoisoningFigures(
        rows_scanned=scan.rows_in,
        rows_flagged=scan.rows_flagged,
        per_detector=scan.per_detector,
        seconds=round(scan.seconds, 2),
        detector_seconds=dict(scan.detector_seconds),
        skipped=dict(scan.skipped),
    )
    return partitioned_training_summary(
        context.header(),
        contract,
        poisoning,
        scan.quarantine_path,
        saved.trained.privacy,
        evaluation,
        decision,
        budgets,
    )


@stage_task("summarize-scan")
def summarize_scan(
    context: RunContext, train: Table, contract: ContractResult, scan: ScanResult, quarantine: Path
) -> RunSummary:
    return scan_summary(context.header(), train, contract, scan, quarantine)


def _write_summary(context: RunContext, summary: RunSummary) -> RunSummary:
    lineage = context.lineage
    recorded = summary.model_copy(
        update={
            "seconds": round(context.elapsed(), 2),
            "lineage": LineageFigures(
                events=lineage.events_emitted,
                failed=lineage.events_failed,
                path=str(lineage.log_path),
                run_id=context.run_id,
            ),
            "columns": context.columns,
            "rerun": summary.rerun or context.rerun,
        }
    )
    run_folder.write_summary(context.run_dir, recorded.model_dump(mode="json"))
    context.close_marker()
    return recorded


@stage_task("finish-run")
def finish_run(context: RunContext, summary: RunSummary) -> RunSummary:
    """Emit the flow's lineage COMPLETE (with the model version as output) and write summary.json."""
    # An unchanged run trained nothing: the version it matched is another run's output.
    outputs = [model_dataset(context, summary.model)] if summary.model and summary.status != "unchanged" else []
    context.finish(inputs=[file_dataset(context.settings.dataset.train.path)], outputs=outputs)
    context.lineage.flush()  # HTTP only: deliver anything an endpoint outage left in the spool
    return _write_summary(context, summary)


@stage_task("fail-run")
def fail_run(context: RunContext, error: BaseException) -> RunSummary:
    """Emit the flow's lineage FAIL, give back a budget reservation that no training used, and write
    summary.json with status failed and the reason."""
    context.abort(error)
    released = _release_budget(context)
    if released:
        stage_log.info("budget    reservation released: the run stopped before training")
    context.lineage.flush()
    return _write_summary(context, failed_summary(context.header(), error))


def _release_budget(context: RunContext) -> int:
    """Release this run's ledger charges that are still `reserved` (training never started); 0 when none."""
    from guardflow.io.ledger import Ledger, ledger_url

    url = ledger_url(context.home)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return 0  # no store yet: the run stopped before it could reserve anything
    return Ledger(url).release(str(context.run_dir))


@dataclass
class RecordedRun:
    """A flow run in progress: its context, and the summary the flow's body sets before it ends."""

    context: RunContext
    summary: RunSummary | None = None
    finished: RunSummary | None = None

    def result(self) -> RunSummary:
        """The summary as written to summary.json (after `recorded_run` has closed)."""
        if self.finished is None:
            raise RuntimeError(f"{self.context.flow_name} has not finished")
        return self.finished


@contextmanager
def recorded_run(flow_name: str, config_path: str, run_dir: str | None) -> Iterator[RecordedRun]:
    """The bracket of every flow: open the run (folder, lineage START); if the body raises, record the failure
    (lineage FAIL, summary.json `failed`, a budget reservation no training used given back) and re-raise; else
    write the summary the body set, with the lineage COMPLETE."""
    run = RecordedRun(start_run(flow_name, config_path, run_dir))
    try:
        yield run
        if run.summary is None:
            raise RuntimeError(f"{flow_name} ended without a summary")
    except Exception as error:
        fail_run(run.context, error)
        raise
    run.finished = finish_run(run.context, run.summary)
