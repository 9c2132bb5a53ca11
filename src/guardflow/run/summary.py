"""The run summary: one typed record of what a run did, written as summary.json and printed for people."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from guardflow.contract.validate_contract import ContractResult
    from guardflow.data.table import Table
    from guardflow.drift.screen_batch import BatchScreen
    from guardflow.evaluation.decide_gate import GateDecision
    from guardflow.evaluation.evaluate_safety import Evaluation
    from guardflow.io.registry import RegisteredVersion
    from guardflow.io.validate_file import FileContractResult
    from guardflow.poisoning.scan_result import ScanResult
    from guardflow.privacy.privacy_budget import SourceBudget
    from guardflow.privacy.train_private import PrivacyReport


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataFigures(Record):
    path: str
    sha256: str
    rows_in: int
    rows_accepted: int
    rows_quarantined: int
    quarantined_by_contract: int
    quarantined_by_scan: int
    quarantine_path: str


class ContractFigures(Record):
    suite: str
    expectations: int
    expectations_failed: int
    report_path: str | None  # the Data Docs page of the validation result
    tracking_run_id: str | None = None  # the MLflow run that records a stand-alone validation


class PoisoningFigures(Record):
    rows_scanned: int
    rows_flagged: int
    per_detector: dict[str, int]
    seconds: float
    detector_seconds: dict[str, float] = {}
    skipped: dict[
        str, str
    ] = {}  # detectors that did not run, with why (the trusted reference without a champion)
    shifted_slices: list[str] = []  # the trusted reference's shifted slices, described


class PrivacyFigures(Record):
    epsilon: float
    delta: float
    accountant: str
    epsilon_rdp: float
    noise_multiplier: float
    max_grad_norm: float
    sample_rate: float
    steps: int
    epochs: int
    training_rows: int
    calibration_rows: int
    calibration_epsilon: float
    audit_rows: int = 0  # accepted rows held out of training as the membership audit's non-members
    label_noise_calibration_rows: int = 0  # of the calibration rows, the scan's label-noise rows (never trained on)
    budget_spent: float
    lifetime_epsilon: float
    data_sources: list[str]


class GroupFigures(Record):
    demographic_parity_difference: float
    accuracy: dict[str, float]
    positive_rate: dict[str, float]
    rows: dict[str, int]
    # Groups too small to judge (below gate.min_group_size): left out of the gaps, their gate lines WAIVED.
    small_groups: list[str] = []


class MetricFigures(Record):
    rows: int
    accuracy: float
    roc_auc: float
    ece: float
    mia_auc: float
    mia_tpr_at_1pct_fpr: float
    mia_tpr_at_01pct_fpr: float
    mia_epsilon_lower_bound: float
    fairness: dict[str, GroupFigures]
    # The one-run audit's bound (Steinke, Nasr and Jagielski 2023) on the same rows, beside the threshold attack's.
    mia_one_run_epsilon_lower_bound: float | None = None


class GateFigures(Record):
    passed: bool
    reasons: list[str]
    lines: list[str]
    compared_to: str | None = None  # the champion version held against, or None when there was none


class WindowFigures(Record):
    """A drift retrain's window (the batch's held-out rows): candidate and champion scored on the same rows."""

    judged_on: str
    rows: int
    candidate: dict[str, float]
    champion: dict[str, float] | None = None  # None when there was no champion yet
    champion_version: str | None = None


class ModelFigures(Record):
    name: str
    version: str
    aliases: list[str]
    run_id: str
    weights_sha256: str


class LineageFigures(Record):
    events: int
    failed: int
    path: str
    run_id: str  # the flow's OpenLineage run id: its stage runs point at it as their parent


class ColumnFigures(Record):
    """Data minimisation: which columns went past the PII guard, and the names (never values) of those dropped."""

    kept: list[str]  # the declared columns: features, label, hashed identifiers
    undeclared_dropped: list[str]  # in the file but not declared by the config: dropped right after the guard
    pii_dropped: list[str]
    pii_hashed: list[str]
    malformed_lines_masked: int  # malformed lines kept as line number, length and keyed hash, not their text


class DriftFigures(Record):
    batch_path: str
    batch_sha256: str
    rows_reference: int
    rows_current: int
    drifted_share: float
    drifted_columns: list[str]
    drift_detected: bool
    report_path: str
    retrain_run_dir: str | None = None
    retrain_status: str | None = None
    # The champion's mean score on reference and batch (prediction drift; None without a champion).
    champion_version: str | None = None
    mean_score_reference: float | None = None
    mean_score_current: float | None = None
    prediction_drift: bool | None = None  # the champion's scores drifted (None without a champion)
    rule: str | None = None  # family_wise or drifted_share
    column_alpha: float | None = None  # each column's test level under the family-wise rule
    # The batch screen against the champion's data (a drifted batch only): rows set aside as suspects, the
    # slices whose label rate moved, and why the retrain waits for approval (empty: it need not).
    screened: bool = False
    suspects: int = 0
    shifted_slices: list[str] = []
    approval_reasons: list[str] = []


class CrashFigures(Record):
    """A run whose process died, as the run that found it repaired it."""

    last_stage: str | None  # the last stage the run started
    pid: int
    host: str
    started_at: str
    last_seen: str  # the marker's last update: the run was alive then
    recovered_at: str
    recovered_by: str  # the run folder (or `guardflow recover`) that repaired it
    lineage_runs_aborted: int  # the flow's own run and every stage run left open
    reservations_released: int  # ledger charges still `reserved`: training never started, given back
    charges_kept_spent: int  # ledger charges in `training`: the data may have been learnt from, so they count
    ledger: str  # the two figures above, said in a sentence
    versions_withdrawn: list[str]  # model versions it left half-registered: tagged crashed, aliases removed
    tracking_runs_killed: list[str]  # MLflow runs it left RUNNING, marked KILLED
    orchestrator_run_id: str | None  # its Prefect flow run
    orchestrator: str  # what became of that flow run


class RerunFigures(Record):
    """The keys that make two trainings the same, and the registered version they matched (if any)."""

    run_key: str
    data_sources: list[str]
    config_sha256: str
    code_version: str
    matched_version: str | None = None
    forced: bool = False  # --force: trained even though a version matched


Status = Literal[
    "validated",
    "scanned",
    "promoted",
    "awaiting_approval",
    "rejected",
    "failed",
    "no_drift",
    "drift_retrained",
    "drift_rejected",
    "drift_detected",  # on a server: the retrain was requested by an event, it runs as its own flow
    "crashed",  # the process died; written by the next run (see `crash`)
    "unchanged",  # a registered version was trained on the same data, config and code: nothing trained
]


class RunSummary(Record):
    """summary.json: the sections a stage has not reached stay null; `error` says why a run failed."""

    flow: str
    status: Status
    config: str
    config_sha256: str
    run_dir: str
    seconds: float
    error: str | None = None
    data: DataFigures | None = None
    contract: ContractFigures | None = None
    poisoning: PoisoningFigures | None = None
    privacy: PrivacyFigures | None = None
    metrics: MetricFigures | None = None
    gate: GateFigures | None = None
    model: ModelFigures | None = None
    drift: DriftFigures | None = None
    lineage: LineageFigures | None = None
    window: WindowFigures | None = None  # a drift retrain: candidate and champion on the batch's window
    # Why a candidate that passed the gate waits as challenger for `guardflow approve` (awaiting_approval only).
    approval_reasons: list[str] | None = None
    columns: ColumnFigures | None = None
    crash: CrashFigures | None = None
    rerun: RerunFigures | None = None


def data_figures(
    path: str, sha256: str, rows_in: int, by_contract: int, by_scan: int, quarantine_path: str
) -> DataFigures:
    """Row accounting for a run; refuses figures where a row would be lost."""
    quarantined = by_contract + by_scan
    figures = DataFigures(
        path=path,
        sha256=sha256,
        rows_in=rows_in,
        rows_accepted=rows_in - quarantined,
        rows_quarantined=quarantined,
        quarantined_by_contract=by_contract,
        quarantined_by_scan=by_scan,
        quarantine_path=quarantine_path,
    )
    if figures.rows_in != figures.rows_accepted + figures.rows_quarantined or figures.rows_accepted < 0:
        raise RuntimeError(f"row accounting broken: {figures}")
    return figures


class RunHeader(Record):
    """What every summary of a run starts with."""

    flow: str
    config: str
    config_sha256: str
    run_dir: str


def contract_figures(
    contract: ContractResult | FileContractResult, tracking_run_id: str | None = None
) -> ContractFigures:
    return ContractFigures(
        suite=contract.suite_name,
        expectations=len(contract.outcomes),
        expectations_failed=sum(not outcome.success for outcome in contract.outcomes),
        report_path=str(contract.report_path) if contract.report_path else None,
        tracking_run_id=tracking_run_id,
    )


def contract_summary(
    header: RunHeader,
    source: tuple[Path, str, int],
    contract: ContractResult | FileContractResult,
    quarantine_path: Path,
    tracking_run_id: str,
) -> RunSummary:
    """The summary of a stand-alone contract check (`guardflow validate`) that passed the batch.

    `source` is the checked file's path, sha256 and number of data rows.
    """
    path, sha256, row_count = source
    if contract.rows_in != row_count:
        raise RuntimeError(f"contract saw {contract.rows_in} rows of {row_count}")
    return RunSummary(
        **header.model_dump(),
        status="validated",
        seconds=0.0,
        data=data_figures(str(path), sha256, row_count, contract.rows_quarantined, 0, str(quarantine_path)),
        contract=contract_figures(contract, tracking_run_id),
    )


def training_summary(
    header: RunHeader,
    train: Table,
    contract: ContractResult,
    scan: ScanResult,
    quarantine_path: Path,
    privacy: PrivacyReport,
    evaluation: Evaluation,
    decision: GateDecision,
    budgets: list[SourceBudget],
) -> RunSummary:
    """The summary of a safety-train run that reached the gate (the model section is added at registration)."""
    scanned = scan_summary(header, train, contract, scan, quarantine_path)
    return scanned.model_copy(
        update={
            "status": "promoted" if decision.passed else "rejected",
            **_training_sections(privacy, evaluation, decision, budgets),
        }
    )


def partitioned_training_summary(
    header: RunHeader,
    contract: FileContractResult,
    poisoning: PoisoningFigures,
    quarantine_path: Path,
    privacy: PrivacyReport,
    evaluation: Evaluation,
    decision: GateDecision,
    budgets: list[SourceBudget],
) -> RunSummary:
    """`training_summary` for a source validated and scanned in partitions (the large path): the same sections,
    the row accounting from the contract's totals and the scan's flags."""
    partitioned = RunSummary(
        **header.model_dump(),
        status="promoted" if decision.passed else "rejected",
        seconds=0.0,
        data=data_figures(
            str(contract.path),
            contract.sha256,
            contract.rows_in,
            contract.rows_quarantined,
            poisoning.rows_flagged,
            str(quarantine_path),
        ),
        contract=contract_figures(contract),
        poisoning=poisoning,
    )
    return partitioned.model_copy(update=_training_sections(privacy, evaluation, decision, budgets))


def _training_sections(
    privacy: PrivacyReport, evaluation: Evaluation, decision: GateDecision, budgets: list[SourceBudget]
) -> dict[str, Record]:
    """The privacy, metrics and gate sections of a training run's summary."""
    return dict(
        privacy=PrivacyFigures(
            **{name: value for name, value in asdict(privacy).items() if name != "empty_batches"},
            budget_spent=max(budget.spent for budget in budgets),
            lifetime_epsilon=budgets[0].lifetime,
            data_sources=[budget.source_sha256 for budget in budgets],
        ),
        metrics=MetricFigures(
            rows=evaluation.rows,
            accuracy=evaluation.accuracy,
            roc_auc=evaluation.roc_auc,
            ece=evaluation.ece,
            mia_auc=evaluation.membership.auc,
            mia_tpr_at_1pct_fpr=evaluation.membership.tpr_at_1pct_fpr,
            mia_tpr_at_01pct_fpr=evaluation.membership.tpr_at_01pct_fpr,
            mia_epsilon_lower_bound=evaluation.membership.epsilon_lower_bound,
            mia_one_run_epsilon_lower_bound=evaluation.membership.one_run_epsilon_lower_bound,
            fairness={
                group.attribute: GroupFigures(
                    demographic_parity_difference=group.demographic_parity_difference,
                    accuracy=group.accuracy,
                    positive_rate=group.positive_rate,
                    rows=group.rows,
                    small_groups=group.small_groups(),
                )
                for group in evaluation.fairness
            },
        ),
        gate=GateFigures(
            passed=decision.passed,
            reasons=decision.reasons,
            lines=[line.describe() for line in decision.lines],
            compared_to=decision.compared_to,
        ),
    )


def poisoning_figures(scan: ScanResult) -> PoisoningFigures:
    """The scan's figures: rows scanned and flagged, and per detector the rows flagged and the seconds taken."""
    return PoisoningFigures(
        rows_scanned=scan.rows_in,
        rows_flagged=scan.rows_flagged,
        per_detector=scan.per_detector,
        seconds=round(scan.seconds, 2),
        detector_seconds=dict(scan.detector_seconds or {}),
        skipped=dict(scan.skipped or {}),
        shifted_slices=[shift.describe() for shift in scan.reference.slices] if scan.reference else [],
    )


def scan_summary(
    header: RunHeader, train: Table, contract: ContractResult, scan: ScanResult, quarantine_path: Path
) -> RunSummary:
    """The summary of a poisoning-scan run: row accounting and the scan's figures."""
    if contract.rows_in != train.row_count:
        raise RuntimeError(f"contract saw {contract.rows_in} rows of {train.row_count}")
    return RunSummary(
        **header.model_dump(),
        status="scanned",
        seconds=0.0,
        data=data_figures(
            str(train.path),
            train.sha256,
            train.row_count,
            contract.rows_quarantined,
            scan.rows_flagged,
            str(quarantine_path),
        ),
        contract=contract_figures(contract),
        poisoning=poisoning_figures(scan),
    )


def with_model(summary: RunSummary, version: RegisteredVersion, weights_sha256: str) -> RunSummary:
    """The summary once the candidate is registered."""
    model = ModelFigures(
        name=version.name,
        version=version.version,
        aliases=list(version.aliases),
        run_id=version.run_id,
        weights_sha256=weights_sha256,
    )
    return summary.model_copy(update={"model": model})


def failed_summary(header: RunHeader, error: BaseException) -> RunSummary:
    """The summary of a run that stopped: status failed and the one-line reason."""
    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return RunSummary(**header.model_dump(), status="failed", seconds=0.0, error=message)


def with_screen(drift: DriftFigures, screen: BatchScreen) -> DriftFigures:
    """The drift figures with the batch screen's findings."""
    return drift.model_copy(
        update={
            "screened": True,
            "suspects": screen.suspect_count,
            "shifted_slices": [found.describe() for found in screen.slices],
            "approval_reasons": list(screen.hold_reasons),
        }
    )


def drift_summary(
    header: RunHeader, drift: DriftFigures, retrain: RunSummary | None, requested: bool = False
) -> RunSummary:
    """The summary of a drift check, with the outcome of the retrain it started, if any.

    `requested`: the retrain was asked for by an event (on a server) rather than run here.
    """
    if requested:
        drift = drift.model_copy(update={"retrain_status": "requested"})
        return RunSummary(**header.model_dump(), status="drift_detected", seconds=0.0, drift=drift)
    if retrain is None:
        return RunSummary(**header.model_dump(), status="no_drift", seconds=0.0, drift=drift)
    drift = drift.model_copy(update={"retrain_run_dir": retrain.run_dir, "retrain_status": retrain.status})
    status: Status = "drift_rejected" if retrain.status == "rejected" else "drift_retrained"
    return RunSummary(**header.model_dump(), status=status, seconds=0.0, drift=drift)
