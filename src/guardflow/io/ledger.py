"""The privacy-budget ledger, kept in the tracking store: one MLflow run per (training run, source file) charge.

It lives beside the models it accounts for (same SQLite file, or the same tracking server at scale), in its own
experiment, so a reviewer can read it in the MLflow UI too.
"""

from __future__ import annotations

from datetime import UTC, datetime

import mlflow
from mlflow.tracking import MlflowClient

from guardflow.privacy_budget import Spend

LEDGER_EXPERIMENT = "guardflow-privacy-ledger"
_TAG = "guardflow.ledger."


def _experiment_id(client: MlflowClient) -> str:
    experiment = client.get_experiment_by_name(LEDGER_EXPERIMENT)
    if experiment is not None:
        return experiment.experiment_id
    return client.create_experiment(LEDGER_EXPERIMENT)


def record_spend(
    dataset_id: str, sources: list[str], epsilon: float, delta: float, purpose: str, run_dir: str
) -> None:
    """Charge `epsilon` to every source file; written before training starts, so a crash still counts."""
    client = MlflowClient()
    experiment_id = _experiment_id(client)
    recorded_at = datetime.now(UTC).isoformat(timespec="seconds")
    for source in sources:
        run = client.create_run(
            experiment_id,
            run_name=f"{dataset_id}-{purpose}-{source[:8]}",
            tags={
                f"{_TAG}dataset": dataset_id,
                f"{_TAG}source_sha256": source,
                f"{_TAG}epsilon": repr(epsilon),
                f"{_TAG}delta": repr(delta),
                f"{_TAG}purpose": purpose,
                f"{_TAG}recorded_at": recorded_at,
                f"{_TAG}run_dir": run_dir,
            },
        )
        client.log_metric(run.info.run_id, "epsilon", epsilon)
        client.set_terminated(run.info.run_id)


def read_spends(dataset_id: str) -> list[Spend]:
    """Every charge recorded for a dataset, oldest first."""
    client = MlflowClient()
    experiment = client.get_experiment_by_name(LEDGER_EXPERIMENT)
    if experiment is None:
        return []
    runs = mlflow.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{_TAG}dataset` = '{dataset_id}'",
        output_format="list",
        max_results=50_000,
    )
    spends = [
        Spend(
            dataset_id=run.data.tags[f"{_TAG}dataset"],
            source_sha256=run.data.tags[f"{_TAG}source_sha256"],
            epsilon=float(run.data.tags[f"{_TAG}epsilon"]),
            delta=float(run.data.tags[f"{_TAG}delta"]),
            purpose=run.data.tags[f"{_TAG}purpose"],
            recorded_at=run.data.tags[f"{_TAG}recorded_at"],
            run_dir=run.data.tags.get(f"{_TAG}run_dir", ""),
        )
        for run in runs
    ]
    return sorted(spends, key=lambda spend: spend.recorded_at)
