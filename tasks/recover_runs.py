"""Repair the crashed runs of this home before a flow starts (and for `guardflow recover`): the Prefect side."""

from pathlib import Path
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound
from prefect.states import Crashed

from guardflow.run.recover_runs import describe_repair, recover_crashed_runs
from guardflow.run.summary import RunSummary
from tasks.stage_log import stage_log


def mark_flow_run_crashed(flow_run_id: str, message: str) -> str:
    """Set a Prefect flow run left Running by a dead process to Crashed (forced: no transition rule applies)."""
    with get_client(sync_client=True) as client:
        try:
            flow_run = client.read_flow_run(UUID(flow_run_id))
        except ObjectNotFound:
            return f"Prefect flow run {flow_run_id} not found on this API"
        if flow_run.state is not None and flow_run.state.is_final():
            return f"Prefect flow run {flow_run_id} already {flow_run.state.name}"
        client.set_flow_run_state(UUID(flow_run_id), Crashed(message=message), force=True)
    return f"Prefect flow run {flow_run_id} set Crashed"


def recover_runs(home: Path, recovered_by: str) -> list[RunSummary]:
    """Repair every run of `home` whose process is gone; one log line each."""
    repaired = recover_crashed_runs(home, recovered_by, mark_flow_run_crashed)
    for summary in repaired:
        stage_log.warning("%s", describe_repair(summary))
    return repaired
