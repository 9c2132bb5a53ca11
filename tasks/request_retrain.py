"""Ask for a drift retrain with a Prefect event; the server's automation starts the guarded retrain."""

from prefect.events import emit_event

from guardflow.data.table import Table
from guardflow.run.run_context import RunContext
from tasks.check_drift import RetrainFiles
from tasks.stage_log import stage_log
from tasks.stage_task import stage_task

DRIFT_EVENT = "guardflow.drift.detected"


APPROVAL_SEPARATOR = " | "


def dataset_resource(dataset_id: str) -> str:
    """The event resource of a dataset: what a deployment trigger matches on."""
    return f"guardflow.dataset.{dataset_id}"


@stage_task("request-retrain")
def request_retrain(
    context: RunContext,
    batch: Table,
    files: RetrainFiles,
    sources: list[str],
    drifted_share: float,
    approval_reasons: list[str],
) -> None:
    """Emit `guardflow.drift.detected` with the dataset, the batch and the files the retrain needs."""
    dataset_id = context.settings.dataset.id
    payload = {
        "dataset": dataset_id,
        "batch_path": str(batch.path),
        "batch_sha256": batch.sha256,
        "drifted_share": f"{drifted_share:.4f}",
        "data_path": str(files.data_path),
        "window_path": str(files.window_path),
        # Joined: templated deployment parameters render to strings.
        "data_sources": ",".join(sources),
        "drift_run_dir": str(context.run_dir),
        # Why the retrain must wait for `guardflow approve` (the batch screen); empty when it need not.
        "approval_reasons": APPROVAL_SEPARATOR.join(approval_reasons),
    }
    event = emit_event(
        event=DRIFT_EVENT,
        resource={"prefect.resource.id": dataset_resource(dataset_id), "prefect.resource.name": dataset_id},
        payload=payload,
    )
    if event is None:
        raise RuntimeError(
            f"Prefect did not emit {DRIFT_EVENT}: no events client (is a Prefect API configured?)"
        )
    stage_log.info("event     %s for batch %s... (event id %s)", DRIFT_EVENT, batch.sha256[:12], event.id)
