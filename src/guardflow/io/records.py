"""Append-only records kept in the tracking store: one MLflow run per record, its fields as tags.

The privacy-budget ledger and the champion history both live here, beside the models they are about (the same
SQLite file, or the same tracking server at scale), each in its own experiment, readable in the MLflow UI too.
"""

from __future__ import annotations

from datetime import UTC, datetime

import mlflow
from mlflow.tracking import MlflowClient


def _experiment_id(client: MlflowClient, experiment: str) -> str:
    existing = client.get_experiment_by_name(experiment)
    return existing.experiment_id if existing is not None else client.create_experiment(experiment)


def append_record(experiment: str, prefix: str, run_name: str, fields: dict[str, str]) -> None:
    """Write one record; `recorded_at` (UTC, ISO 8601) is added to its fields."""
    client = MlflowClient()
    tags = {f"{prefix}{key}": value for key, value in fields.items()}
    tags[f"{prefix}recorded_at"] = datetime.now(UTC).isoformat(timespec="microseconds")
    run = client.create_run(_experiment_id(client, experiment), run_name=run_name, tags=tags)
    client.set_terminated(run.info.run_id)


def read_records(experiment: str, prefix: str, equal: dict[str, str]) -> list[dict[str, str]]:
    """Every record whose fields equal `equal`, oldest first, with the prefix taken off the field names."""
    client = MlflowClient()
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    conditions = " and ".join(f"tags.`{prefix}{key}` = '{value}'" for key, value in equal.items())
    runs = mlflow.search_runs(
        [found.experiment_id], filter_string=conditions, output_format="list", max_results=50_000
    )
    records = [
        {key.removeprefix(prefix): value for key, value in run.data.tags.items() if key.startswith(prefix)}
        for run in runs
    ]
    return sorted(records, key=lambda record: record["recorded_at"])
