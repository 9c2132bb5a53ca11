"""The storm guard around a drift retrain: a durable per-dataset record decides, atomically, whether it runs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from prefect.runtime import flow_run

from guardflow.drift.guard_retrain import RetrainDecision
from guardflow.io import records, registry, server_state
from guardflow.settings import Settings, guardflow_home
from tasks.stage_log import stage_log
from tasks.stage_task import stage_task

TRIGGER_EXPERIMENT = "guardflow-drift-triggers"
_PREFIX = "guardflow.trigger."
TRIGGER_FILE = "retrain_trigger.json"


@dataclass(frozen=True)
class RetrainTicket:
    """One drift trigger as recorded: its record id and what the guard decided."""

    record_id: int
    dataset: str
    batch_sha256: str
    decision: RetrainDecision


@stage_task("enter-retrain")
def enter_retrain(settings: Settings, batch_sha256: str) -> RetrainTicket:
    """Record the trigger and decide: start, or not (cooldown window, or another retrain still in flight)."""
    record_id, decision = server_state.enter_retrain(
        server_state.state_path(guardflow_home()),
        settings.dataset.id,
        batch_sha256,
        str(flow_run.get_id() or "in-process"),
        timedelta(minutes=settings.drift.cooldown_minutes),
    )
    verb = "starts" if decision.acted_on else f"recorded, not acted on ({decision.action})"
    stage_log.info("trigger   drift retrain for batch %s... %s: %s", batch_sha256[:12], verb, decision.reason)
    return RetrainTicket(record_id, settings.dataset.id, batch_sha256, decision)


@stage_task("record-trigger")
def record_trigger(
    settings: Settings, ticket: RetrainTicket, drift_run_dir: str, outcome: str, retrain_run_dir: str | None
) -> dict[str, str]:
    """Close the trigger's record; write it beside the drift run and as an MLflow record (tags, searchable)."""
    server_state.finish_retrain(server_state.state_path(guardflow_home()), ticket.record_id, outcome)
    fields = {
        "dataset": ticket.dataset,
        "batch_sha256": ticket.batch_sha256,
        "decision": ticket.decision.action,
        "reason": ticket.decision.reason,
        "outcome": outcome,
        "drift_run_dir": drift_run_dir,
        "retrain_run_dir": retrain_run_dir or "",
        "flow_run_id": str(flow_run.get_id() or ""),
    }
    Path(drift_run_dir).mkdir(parents=True, exist_ok=True)
    (Path(drift_run_dir) / TRIGGER_FILE).write_text(json.dumps(fields, indent=2) + "\n", encoding="utf-8")
    registry.track_dataset(guardflow_home(), settings.dataset.id)
    records.append_record(TRIGGER_EXPERIMENT, _PREFIX, f"{ticket.dataset}-{ticket.decision.action}", fields)
    return fields
