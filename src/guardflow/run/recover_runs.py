"""Repair the runs of a home whose process died (SIGKILL, out of memory, a lost machine) before they could end.

Each such run left its marker (see `guardflow.io.run_marker`). The repair closes everything it left open:
an OpenLineage ABORT for every stage run and for the flow's own run, its ledger charges (still `reserved`:
released, no training happened; `training`: kept as spent, the data may have been learnt from), a model version it
created but never finished registering (tagged crashed, its aliases taken back), MLflow runs it left RUNNING
(KILLED), its orchestrator's flow run (through `mark_orchestrator_run`, since this library never imports Prefect),
and writes its summary.json with status `crashed` and the last stage it reached.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from guardflow.io import run_folder, run_marker
from guardflow.io.lineage import LineageEmitter
from guardflow.io.run_marker import RunMarker
from guardflow.run.summary import CrashFigures, LineageFigures, RunSummary

log = logging.getLogger(__name__)

# (orchestrator run id, message) -> what became of that run, in a few words
MarkOrchestratorRun = Callable[[str, str], str]


def recover_crashed_runs(
    home: Path, recovered_by: str, mark_orchestrator_run: MarkOrchestratorRun | None = None
) -> list[RunSummary]:
    """Repair every run of `home` whose process is gone (see `run_marker.process_gone`); their crashed summaries.

    `recovered_by` names who repairs (a run folder, or `guardflow recover`). Safe to call from many runs at once:
    each crashed run is claimed by one of them."""
    repaired: list[RunSummary] = []
    for marker in run_marker.claim_crashed(home):
        summary_path = Path(marker.run_dir) / run_folder.SUMMARY_FILE
        if marker.flow_closed and summary_path.exists() and _status(summary_path) != "crashed":
            run_marker.release_claim(home, marker)  # it ended; only the marker's removal was cut short
            continue
        try:
            repaired.append(_repair(home, marker, recovered_by, mark_orchestrator_run))
        except Exception as error:  # a repair that cannot finish must not stop the run that found it
            log.warning("could not repair run %s (%s: %s); the next run tries again", marker.run_dir,
                        type(error).__name__, error)  # fmt: skip
            run_marker.return_claim(home, marker)
            continue
        run_marker.release_claim(home, marker)
    return repaired


def _status(path: Path) -> str | None:
    try:
        return str(json.loads(path.read_text(encoding="utf-8")).get("status"))
    except (OSError, ValueError):
        return None


def _repair(
    home: Path, marker: RunMarker, recovered_by: str, mark_orchestrator_run: MarkOrchestratorRun | None
) -> RunSummary:
    stage = marker.last_stage or "start"
    message = (
        f"process {marker.pid} on {marker.host} died during stage {stage} (last seen {marker.updated_at})"
    )
    emitter = LineageEmitter(
        namespace=marker.lineage_namespace,
        log_path=home / "lineage" / "events.jsonl",
        url=marker.lineage_url,
        spool_dir=home / "lineage" / "spool",
    )
    aborted = _abort_lineage(emitter, marker, message)
    released, kept = _settle_ledger(home, marker.run_dir)
    withdrawn, killed = _withdraw_registration(home, marker)
    orchestrator = "no orchestrator run"
    if marker.orchestrator_run_id and mark_orchestrator_run is not None:
        try:
            orchestrator = mark_orchestrator_run(marker.orchestrator_run_id, message)
        except Exception as error:  # the rest of the repair stands; say what happened
            orchestrator = (
                f"flow run {marker.orchestrator_run_id} not marked: {type(error).__name__}: {error}"
            )
    crash = CrashFigures(
        last_stage=marker.last_stage,
        pid=marker.pid,
        host=marker.host,
        started_at=marker.started_at,
        last_seen=marker.updated_at,
        recovered_at=datetime.now(UTC).isoformat(timespec="seconds"),
        recovered_by=recovered_by,
        lineage_runs_aborted=aborted,
        reservations_released=released,
        charges_kept_spent=kept,
        ledger=_ledger_sentence(released, kept),
        versions_withdrawn=withdrawn,
        tracking_runs_killed=killed,
        orchestrator_run_id=marker.orchestrator_run_id,
        orchestrator=orchestrator,
    )
    seconds = _seconds_between(marker.started_at, marker.updated_at)
    summary = RunSummary(
        flow=marker.flow,
        status="crashed",
        config=marker.config,
        config_sha256=marker.config_sha256,
        run_dir=marker.run_dir,
        seconds=seconds,
        error=message,
        lineage=LineageFigures(
            events=emitter.events_emitted,
            failed=emitter.events_failed,
            path=str(emitter.log_path),
            run_id=marker.lineage_run_id,
        ),
        crash=crash,
    )
    run_folder.write_summary(Path(marker.run_dir), summary.model_dump(mode="json"))
    return summary


def _abort_lineage(emitter: LineageEmitter, marker: RunMarker, message: str) -> int:
    """ABORT every stage run left open, then the flow's own run (unless it already ended); how many."""
    parent = (marker.flow_job, marker.lineage_run_id)
    for run_id, job in marker.open_stages.items():
        emitter.abort(job, run_id, message, parent=parent)
    aborted = len(marker.open_stages)
    if not marker.flow_closed:
        emitter.abort(marker.flow_job, marker.lineage_run_id, message)
        aborted += 1
    emitter.flush()
    return aborted


def _settle_ledger(home: Path, run_dir: str) -> tuple[int, int]:
    """Release the run's `reserved` charges, keep its `training` ones as spent; (released, kept)."""
    from guardflow.io.ledger import Ledger, ledger_url

    url = ledger_url(home)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return 0, 0  # no store yet: the run died before it could reserve anything
    ledger = Ledger(url)
    return ledger.release(run_dir), ledger.advance(run_dir, "spent")


def _ledger_sentence(released: int, kept: int) -> str:
    if kept:
        return (
            f"{kept} charges kept as spent: training had started, so the data may have been learnt from"
            + (f"; {released} reservations released" if released else "")
        )
    if released:
        return f"{released} reservations released: the run died before training started"
    return "no ledger charge: the run died before reserving budget, or had settled its charges"


def _withdraw_registration(home: Path, marker: RunMarker) -> tuple[list[str], list[str]]:
    """Versions left half-registered (withdrawn) and MLflow runs left RUNNING (KILLED) by the run."""
    from guardflow.io import promotion, registry

    if not (home / "mlflow" / "mlflow.db").exists() and not _remote_tracking():
        return [], []
    registry.track_dataset(home, marker.dataset)
    withdrawn = promotion.withdraw_crashed(marker.model_name, marker.run_dir)
    killed = registry.end_crashed_runs(registry.experiment_name(marker.dataset), marker.run_dir)
    return withdrawn, killed


def _remote_tracking() -> bool:
    return bool(os.environ.get("MLFLOW_TRACKING_URI"))


def _seconds_between(start: str, end: str) -> float:
    try:
        return round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds(), 2)
    except ValueError:
        return 0.0


def describe_repair(summary: RunSummary) -> str:
    """One log line per repaired run."""
    crash = summary.crash
    if crash is None:
        return f"recovered {summary.run_dir}"
    ledger = crash.ledger
    versions = f"versions {', '.join(crash.versions_withdrawn)} withdrawn" if crash.versions_withdrawn else ""
    parts = [f"{crash.lineage_runs_aborted} lineage runs aborted", ledger, versions, crash.orchestrator]
    return (
        f"recovered {summary.flow} run {summary.run_dir} (pid {crash.pid} died in stage "
        f"{crash.last_stage or 'start'}): " + "; ".join(part for part in parts if part)
    )
