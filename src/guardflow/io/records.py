"""Append-only records kept in the tracking store: one MLflow run per record, its fields as tags.

The privacy-budget ledger and the champion history both live here, beside the models they are about (the same
SQLite file, or the same tracking server at scale), each in its own experiment, readable in the MLflow UI too.

Reading needs no MLflow when the store is a database: commands that only print records (`guardflow history`,
`guardflow budget`) read MLflow's own tables with SQLAlchemy, which spares them MLflow's seconds-long import.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

_DATABASE_SCHEMES = ("sqlite:", "postgresql")
_ACTIVE = "active"
_MAX_RECORDS = 50_000


# Stores many processes and machines can write at once, taken from MLFLOW_TRACKING_URI. An `sqlite:` value there
# is not one of them: MLflow itself exports the URI it was last pointed at (`set_tracking_uri` sets the variable
# for subprocesses), so an SQLite value may be a previous home's file; the home's own file is used instead.
SHARED_STORE_SCHEMES = ("postgresql", "mysql", "mssql", "http:", "https:")


def shared_tracking_uri() -> str | None:
    """`MLFLOW_TRACKING_URI` when it names a shared store (a database or a tracking server), else None."""
    configured = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    return configured if configured.startswith(SHARED_STORE_SCHEMES) else None


def tracking_uri(home: Path) -> str:
    """The store for runs and the registry: the shared one in `MLFLOW_TRACKING_URI`, else SQLite under `home`."""
    return shared_tracking_uri() or f"sqlite:///{(home / 'mlflow' / 'mlflow.db').resolve()}"


def public_tracking_uri(home: Path) -> str:
    """`tracking_uri` without any user name or password in it (for lineage namespaces and messages)."""
    parts = urlsplit(tracking_uri(home))
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _experiment_id(client: MlflowClient, experiment: str) -> str:
    existing = client.get_experiment_by_name(experiment)
    return existing.experiment_id if existing is not None else client.create_experiment(experiment)


def append_record(experiment: str, prefix: str, run_name: str, fields: dict[str, str]) -> None:
    """Write one record; `recorded_at` (UTC, ISO 8601) is added to its fields."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    tags = {f"{prefix}{key}": value for key, value in fields.items()}
    tags[f"{prefix}recorded_at"] = datetime.now(UTC).isoformat(timespec="microseconds")
    run = client.create_run(_experiment_id(client, experiment), run_name=run_name, tags=tags)
    client.set_terminated(run.info.run_id)


def read_records(
    experiment: str, prefix: str, equal: dict[str, str], store: str | None = None
) -> list[dict[str, str]]:
    """Every record whose fields equal `equal`, oldest first, with the prefix taken off the field names.

    `store`: read this tracking store's database directly (a sqlite: or postgresql URL); by default, and for any
    other store (an MLflow server), read through the MLflow client from the store MLflow is pointed at. Both
    read the same rows: runs not deleted, in the experiment of that name.
    """
    if store is not None and store.startswith(_DATABASE_SCHEMES):
        tag_sets = _read_tag_sets(store, experiment)
    else:
        tag_sets = _read_tag_sets_with_mlflow(experiment, prefix, equal)
    records = [
        {key.removeprefix(prefix): value for key, value in tags.items() if key.startswith(prefix)}
        for tags in tag_sets
    ]
    wanted = [record for record in records if all(record.get(key) == value for key, value in equal.items())]
    return sorted(wanted, key=lambda record: record["recorded_at"])


def _read_tag_sets_with_mlflow(experiment: str, prefix: str, equal: dict[str, str]) -> list[dict[str, str]]:
    import mlflow
    from mlflow.tracking import MlflowClient

    found = MlflowClient().get_experiment_by_name(experiment)
    if found is None:
        return []
    conditions = " and ".join(f"tags.`{prefix}{key}` = '{value}'" for key, value in equal.items())
    runs = mlflow.search_runs(
        [found.experiment_id], filter_string=conditions, output_format="list", max_results=_MAX_RECORDS
    )
    return [dict(run.data.tags) for run in runs]


def _read_tag_sets(store: str, experiment: str) -> list[dict[str, str]]:
    """The tags of every active run of `experiment`, read from MLflow's tables (`experiments`, `runs`, `tags`).

    A store that does not exist yet, or holds no MLflow tables, has no records; nothing is created.
    """
    import sqlalchemy as sa

    if store.startswith("sqlite:///") and not Path(store.removeprefix("sqlite:///")).is_file():
        return []
    engine = sa.create_engine(store)
    try:
        if not sa.inspect(engine).has_table("tags"):
            return []
        experiments = sa.table("experiments", sa.column("experiment_id"), sa.column("name"))
        runs = sa.table(
            "runs", sa.column("run_uuid"), sa.column("experiment_id"), sa.column("lifecycle_stage")
        )
        tags = sa.table("tags", sa.column("run_uuid"), sa.column("key"), sa.column("value"))
        query = (
            sa.select(tags.c.run_uuid, tags.c.key, tags.c.value)
            .join(runs, runs.c.run_uuid == tags.c.run_uuid)
            .join(experiments, experiments.c.experiment_id == runs.c.experiment_id)
            .where(experiments.c.name == experiment, runs.c.lifecycle_stage == _ACTIVE)
        )
        by_run: dict[str, dict[str, str]] = {}
        with engine.connect() as connection:
            for run_uuid, key, value in connection.execute(query):
                by_run.setdefault(run_uuid, {})[key] = value
    finally:
        engine.dispose()
    return list(by_run.values())
