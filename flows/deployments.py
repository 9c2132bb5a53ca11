"""Prefect deployments of guardflow's flows, per configured dataset, on a process work pool.

For each config: `safety-train/<dataset>` (manual, or `deploy.train_schedule`), `drift-check-inbox/<dataset>` (cron
`drift.schedule`, one run at a time) and `drift-retrain/<dataset>`, started by a deployment trigger on the event
`guardflow.drift.detected` of that dataset (one run at a time; the guard inside records cooldown triggers).
prefect.yaml at the repository root declares the same deployments for `prefect deploy --all`.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from prefect import Flow, flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.events import DeploymentEventTrigger
from prefect.exceptions import ObjectAlreadyExists
from prefect.workers.process import ProcessWorker

from guardflow.errors import ConfigError
from guardflow.settings import load_settings
from tasks.request_retrain import DRIFT_EVENT, dataset_resource

ROOT = Path(__file__).resolve().parents[1]
ENTRYPOINTS = {
    "safety-train": "flows/safety_train.py:safety_train",
    "drift-check-inbox": "flows/drift_inbox.py:drift_inbox",
    "drift-retrain": "flows/drift_retrain.py:drift_retrain",
}
# The event's payload fields the retrain takes as parameters (templated when the trigger fires).
TRIGGER_FIELDS = (
    "batch_sha256",
    "data_path",
    "window_path",
    "data_sources",
    "drift_run_dir",
    "approval_reasons",
)


@dataclass(frozen=True)
class Deployed:
    """One deployment as registered: `flow/deployment` name, its id, and when it runs."""

    name: str
    deployment_id: str
    runs: str


def ensure_work_pool(name: str) -> bool:
    """Create the process work pool unless it exists; True when it was created now."""
    template = ProcessWorker.get_default_base_job_template()
    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name=name, type="process", base_job_template=template))
        except ObjectAlreadyExists:
            return False
    return True


def retrain_trigger(dataset_id: str, config_path: str) -> DeploymentEventTrigger:
    """Start drift-retrain on each `guardflow.drift.detected` event of this dataset, parameters from its payload."""
    parameters = {"config_path": config_path}
    parameters |= {field: "{{ event.payload." + field + " }}" for field in TRIGGER_FIELDS}
    return DeploymentEventTrigger(
        name=f"drift-retrain-{dataset_id}",
        expect={DRIFT_EVENT},
        match={"prefect.resource.id": dataset_resource(dataset_id)},
        parameters=parameters,
    )


def deploy_dataset(config_path: Path, root: Path = ROOT) -> list[Deployed]:
    """Register the three deployments of one configured dataset on the Prefect API in use."""
    settings = load_settings(config_path)
    if settings.drift.inbox is None:
        raise ConfigError(f"config {config_path}: drift.inbox must name a folder to deploy drift-check")
    config = str(config_path.resolve())
    dataset_id = settings.dataset.id
    pool = settings.deploy.work_pool
    ensure_work_pool(pool)
    source = str(root.resolve())
    parameters = {"config_path": config}
    deployed: list[Deployed] = []

    def deploy(flow_name: str, runs: str, **options: object) -> None:
        loaded = cast(Flow[..., object], flow.from_source(source=source, entrypoint=ENTRYPOINTS[flow_name]))
        # Prefect prints a table per deployment; the CLI prints one line each instead.
        with contextlib.redirect_stdout(io.StringIO()):
            deployment_id = loaded.deploy(
                name=dataset_id,
                work_pool_name=pool,
                parameters=parameters,
                tags=["guardflow", dataset_id],
                print_next_steps=False,
                ignore_warnings=True,
                **options,  # type: ignore[arg-type]
            )
        deployed.append(Deployed(f"{flow_name}/{dataset_id}", str(deployment_id), runs))

    train_cron = settings.deploy.train_schedule
    deploy("safety-train", f"cron {train_cron}" if train_cron else "manual", cron=train_cron)
    deploy(
        "drift-check-inbox",
        f"cron {settings.drift.schedule}, inbox {settings.drift.inbox}",
        cron=settings.drift.schedule,
        concurrency_limit=1,
    )
    deploy(
        "drift-retrain",
        f"on {DRIFT_EVENT} of {dataset_id}, cooldown {settings.drift.cooldown_minutes} min",
        triggers=[retrain_trigger(dataset_id, config)],
        concurrency_limit=1,
    )
    return deployed
