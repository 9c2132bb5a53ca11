"""Records in a real MLflow store: the direct database read (no MLflow import) sees what the MLflow client sees."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from guardflow.io import registry
from guardflow.io.records import append_record, read_records, tracking_uri

EXPERIMENT = "records-test"
PREFIX = "test.record."


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home whose store holds five records of two models, one of them in a run deleted since."""
    home = tmp_path_factory.mktemp("records-home")
    registry.configure_tracking(home, experiment="records-other")
    for index, model in enumerate(["a", "b", "a", "a", "b"]):
        append_record(EXPERIMENT, PREFIX, f"record-{index}", {"model": model, "index": str(index)})
    client = MlflowClient()
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None, "the records' experiment exists"
    deleted = [
        run
        for run in client.search_runs([experiment.experiment_id])
        if run.data.tags.get(f"{PREFIX}index") == "2"
    ]
    client.delete_run(deleted[0].info.run_id)
    return home


@pytest.mark.parametrize(
    ("equal", "indexes"),
    [
        ({}, ["0", "1", "3", "4"]),
        ({"model": "a"}, ["0", "3"]),
        ({"model": "b"}, ["1", "4"]),
        ({"model": "z"}, []),
    ],
)
def test_database_read_equals_mlflow_read(store: Path, equal: dict[str, str], indexes: list[str]) -> None:
    # given records written through MLflow, one of them deleted
    # when they are read through the MLflow client and straight from the database
    through_mlflow = read_records(EXPERIMENT, PREFIX, equal)
    direct = read_records(EXPERIMENT, PREFIX, equal, store=tracking_uri(store))
    # then both give the same records, in the same order, without the deleted one
    assert direct == through_mlflow, f"the direct read must match MLflow's: {direct} != {through_mlflow}"
    assert [record["index"] for record in direct] == indexes, (
        f"records of {equal}, oldest first, none deleted"
    )


def test_database_read_of_an_unknown_experiment_is_empty(store: Path) -> None:
    assert read_records("no-such-experiment", PREFIX, {}, store=tracking_uri(store)) == [], "no records"


def test_database_read_of_a_missing_store_creates_nothing(tmp_path: Path) -> None:
    # given a home with no store yet / when records are read from it
    records = read_records(EXPERIMENT, PREFIX, {}, store=tracking_uri(tmp_path))
    # then there are none, and no database file was created by the read
    assert records == [], "a missing store has no records"
    assert not (tmp_path / "mlflow").exists(), "a read creates no store"
