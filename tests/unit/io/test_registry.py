"""Unit tests of the MLflow registry adapter, against a real SQLite store in a temporary guardflow home.

One untrained MLP (fixed seed) on the Adult feature layout is logged once per module: logging and the
store's first migrations take seconds, the checks on the result do not.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient
from torch import nn

from guardflow.data.encode_features import encode_features, feature_layout
from guardflow.data.table import typed_frame
from guardflow.errors import RegistryError
from guardflow.io import registry
from guardflow.io.datasets import read_split
from guardflow.privacy.network import build_mlp, predict_proba, save_weights
from guardflow.settings import Settings, load_settings

# MLflow 3.17's SQL store configures its mappers with a loader strategy SQLAlchemy 2.1 deprecates; not ours.
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")

ADULT_CONFIG = Path(__file__).resolve().parents[3] / "configs" / "adult.yaml"
MODEL_NAME = "guardflow-test"
TAGS = {"dataset": "adult", "stage": "candidate"}
PICKLE_SUFFIXES = (".pkl", ".pickle")
# Environment MLflow writes when a store is configured; restored after the module so other tests start clean.
MLFLOW_ENVIRONMENT = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_EXPERIMENT_ID",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT",
)


@dataclass(frozen=True)
class LoggedCandidate:
    """What the module fixture logged, and what it logged it from."""

    home: Path
    network: nn.Sequential
    settings: Settings
    rows: pd.DataFrame  # 20 rows of adult.test, typed, feature columns only
    text_rows: pd.DataFrame  # the same rows as read: every value is text
    version: registry.RegisteredVersion


def _spec(settings: Settings, input_width: int) -> dict[str, object]:
    """The spec serving.py reads: the MLP's shape and the dataset's public feature settings."""
    return {
        "hidden_units": settings.model.hidden_units,
        "input_width": input_width,
        "dataset": settings.dataset.model_dump(mode="json"),
    }


@pytest.fixture(scope="module")
def candidate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoggedCandidate]:
    settings = load_settings(ADULT_CONFIG)
    dataset = settings.dataset
    features = list(dataset.features)
    read_rows = read_split(dataset, "test").rows.head(20)
    rows = typed_frame(read_rows, dataset)[features]
    torch.manual_seed(settings.model.seed)
    layout = feature_layout(dataset)
    network = build_mlp(layout.width, settings.model.hidden_units)
    home = tmp_path_factory.mktemp("guardflow-home")
    weights = home / "weights.safetensors"
    save_weights(network, weights)
    summary = home / "summary.json"
    summary.write_text('{"status": "candidate"}', encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        for name in MLFLOW_ENVIRONMENT:
            patch.delenv(name, raising=False)
        registry.configure_tracking(home, "registry-test")
        version = registry.log_candidate(
            run_name="candidate-1",
            params={"hidden_units": settings.model.hidden_units, "seed": settings.model.seed},
            metrics={"accuracy": 0.5},
            tags=TAGS,
            artifacts=[summary],
            weights_path=weights,
            spec=_spec(settings, layout.width),
            model_name=MODEL_NAME,
            input_example=rows.head(5),
        )
        yield LoggedCandidate(home, network, settings, rows, read_rows[features], version)
        # None puts MLflow back on its default store: MLflow handles it, its annotations leave it out.
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
        mlflow.set_registry_uri(None)  # type: ignore[arg-type]


def test_tracking_uri__home_given__sqlite_file_under_home_mlflow(tmp_path: Path) -> None:
    # given a guardflow home
    # when the tracking URI is derived from it
    uri = registry.tracking_uri(tmp_path)
    # then it names an SQLite file in <home>/mlflow, by absolute path, and creates nothing yet
    assert uri == f"sqlite:///{tmp_path.resolve()}/mlflow/mlflow.db", f"tracking URI: {uri}"
    assert not (tmp_path / "mlflow").exists(), "tracking_uri created the store folder"


@pytest.mark.parametrize(
    "shared",
    ["postgresql+psycopg2://team@db.example.org:5432/mlflow", "http://mlflow.example.org:5000"],
)
def test_tracking_uri__shared_store_in_environment__taken(
    shared: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given MLFLOW_TRACKING_URI naming a store every writer shares (a database or a tracking server)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", shared)
    # when the tracking URI of a home is derived / then it is the shared store, not the home's file
    assert registry.tracking_uri(tmp_path) == shared, "the ecosystem's own setting is honoured"


def test_tracking_uri__sqlite_in_environment__the_homes_own_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given MLFLOW_TRACKING_URI naming another home's SQLite file (MLflow exports the last URI it was set to)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'elsewhere' / 'mlflow.db'}")
    # when the tracking URI of this home is derived / then it is this home's file
    expected = f"sqlite:///{tmp_path.resolve()}/mlflow/mlflow.db"
    assert registry.tracking_uri(tmp_path) == expected, "an SQLite value is not a shared store"


def test_public_tracking_uri__credentials_in_url__left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a database URL with a user name and password
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "postgresql+psycopg2://team:s3cret@db.example.org:5432/mlflow")
    # when the URI is made fit for lineage and messages / then neither user nor password remain
    public = registry.public_tracking_uri(tmp_path)
    assert public == "postgresql+psycopg2://db.example.org:5432/mlflow", f"public URI: {public}"


def test_configure_tracking__called_twice__same_experiment_with_artifacts_under_home(
    candidate: LoggedCandidate,
) -> None:
    # given a store already configured by the fixture (experiment "registry-test")
    # when tracking is configured again with the same experiment
    experiment_id = registry.configure_tracking(candidate.home, "registry-test")
    # then the same experiment is active, its artifacts live under <home>/mlflow/artifacts
    experiment = MlflowClient().get_experiment(experiment_id)
    expected_location = (candidate.home / "mlflow" / "artifacts").resolve().as_uri()
    assert experiment.name == "registry-test", f"experiment name: {experiment.name}"
    assert experiment.artifact_location == expected_location, f"artifacts at {experiment.artifact_location}"
    by_name = mlflow.get_experiment_by_name("registry-test")
    assert by_name is not None, "experiment not found by name"
    assert by_name.experiment_id == experiment_id, f"name resolves to {by_name.experiment_id}"
    assert (candidate.home / "mlflow" / "mlflow.db").is_file(), "no SQLite file under <home>/mlflow"


def test_log_candidate__tiny_model__version_registered_with_run_and_tags(candidate: LoggedCandidate) -> None:
    # given the candidate logged by the fixture into an empty registry
    version = candidate.version
    client = MlflowClient()
    # then it is version 1 of the model, linked to its run, tagged like the run, with no alias yet
    assert version.name == MODEL_NAME, f"model name: {version.name}"
    assert version.version == "1", f"version: {version.version}"
    assert version.model_uri == f"models:/{MODEL_NAME}/1", f"model URI: {version.model_uri}"
    assert version.aliases == (), f"aliases: {version.aliases}"
    model_version = client.get_model_version(MODEL_NAME, "1")
    assert {key: model_version.tags.get(key) for key in TAGS} == TAGS, f"version tags: {model_version.tags}"
    run = client.get_run(version.run_id)
    assert run.info.run_name == "candidate-1", f"run name: {run.info.run_name}"
    assert {key: run.data.tags.get(key) for key in TAGS} == TAGS, f"run tags: {run.data.tags}"
    assert run.data.metrics == {"accuracy": 0.5}, f"run metrics: {run.data.metrics}"
    assert run.data.params == {"hidden_units": "[64]", "seed": "0"}, f"run params: {run.data.params}"
    logged_files = [entry.path for entry in client.list_artifacts(version.run_id)]
    assert "summary.json" in logged_files, f"run artifacts: {logged_files}"


def test_champion_version__alias_set__version_read_back(candidate: LoggedCandidate) -> None:
    # given the logged candidate
    # when it is made champion
    registry.set_alias(MODEL_NAME, registry.CHAMPION_ALIAS, candidate.version.version)
    champion = registry.champion_version(MODEL_NAME)
    # then the champion is that version, from that run, and carries the alias
    assert champion is not None, "no champion after setting the alias"
    assert champion.version == candidate.version.version, f"champion version: {champion.version}"
    assert champion.run_id == candidate.version.run_id, f"champion run: {champion.run_id}"
    assert registry.CHAMPION_ALIAS in champion.aliases, f"champion aliases: {champion.aliases}"


def test_set_alias__unknown_version__registry_error(candidate: LoggedCandidate) -> None:
    # given a registry whose model has one version
    # when an alias is pointed at a version that does not exist
    # then a RegistryError names the model and the version
    with pytest.raises(RegistryError, match=f"{MODEL_NAME}.*99"):
        registry.set_alias(MODEL_NAME, "challenger", "99")


def test_set_alias__writers_at_once__each_alias_set_without_error(candidate: LoggedCandidate) -> None:
    # given six writers that set the same new alias at the same moment, for 20 new aliases (the store inserts an
    # alias it does not find, so two of them may insert it twice: without the retry, about 1 call in 12 failed)
    version = candidate.version.version
    errors: list[BaseException] = []

    def write(alias: str) -> None:
        try:
            registry.set_alias(MODEL_NAME, alias, version)
        except BaseException as error:  # collected for the assertion below
            errors.append(error)

    for round_ in range(20):
        writers = [threading.Thread(target=write, args=(f"race-{round_}",)) for _ in range(6)]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()
    # then every write succeeded and every alias points at the version
    assert errors == [], f"{len(errors)} alias writes failed: {errors[:2]}"
    assert all(registry.aliases(MODEL_NAME)[f"race-{round_}"] == version for round_ in range(20))


def test_load_model__pickle_forbidden__predictions_equal_the_network(
    candidate: LoggedCandidate, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given that MLflow may not unpickle anything
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    dataset = candidate.settings.dataset
    expected = predict_proba(candidate.network, encode_features(candidate.rows, dataset)).numpy()
    # when the registered version is loaded and scores 20 typed rows of adult.test, and the same rows as text
    model = registry.load_model(candidate.version.model_uri)
    typed_scores: np.ndarray = np.asarray(model.predict(candidate.rows))
    text_scores: np.ndarray = np.asarray(model.predict(candidate.text_rows))
    # then both equal the original network's probabilities
    assert typed_scores.shape == (20,), f"prediction shape: {typed_scores.shape}"
    assert np.array_equal(typed_scores, expected), f"max difference: {np.abs(typed_scores - expected).max()}"
    assert np.array_equal(text_scores, expected), (
        f"max difference (text): {np.abs(text_scores - expected).max()}"
    )


@pytest.mark.parametrize(
    ("model_uri", "message"),
    [
        (f"models:/{MODEL_NAME}/99", "no registered model at"),
        (f"models:/{MODEL_NAME}@retired", "has no alias 'retired'"),
        ("models:/never-registered@champion", "has no alias 'champion'"),
    ],
)
def test_load_model__nothing_at_uri__registry_error(
    candidate: LoggedCandidate, model_uri: str, message: str
) -> None:
    # given a registry holding version 1 of one model
    # when a version, an alias or a model that does not exist is loaded
    # then a RegistryError says what is missing
    with pytest.raises(RegistryError, match=message):
        registry.load_model(model_uri)


def test_log_candidate__logged_model_files__no_pickle_and_safetensors_weights(
    candidate: LoggedCandidate,
) -> None:
    # given the candidate's logged model, where MLflow stored it
    client = MlflowClient()
    location = client.get_model_version_download_uri(MODEL_NAME, candidate.version.version)
    model_folder = Path(location.removeprefix("file://"))
    files = [path.relative_to(model_folder).as_posix() for path in model_folder.rglob("*") if path.is_file()]
    # then the weights are safetensors, the model is code, and no file is a pickle
    assert model_folder.is_relative_to(candidate.home / "mlflow" / "artifacts"), f"model at {model_folder}"
    assert "artifacts/weights.safetensors" in files, f"model files: {files}"
    assert "serving.py" in files, f"model files: {files}"
    pickles = [name for name in files if name.endswith(PICKLE_SUFFIXES)]
    assert pickles == [], f"pickle files in the logged model: {pickles}"


def test_log_candidate__spec_disagrees_with_weights__raises_and_registers_nothing(
    candidate: LoggedCandidate,
) -> None:
    # given weights for the Adult layout and a spec that claims one more input column
    layout = feature_layout(candidate.settings.dataset)
    broken_name = f"{MODEL_NAME}-broken"
    # when the candidate is logged
    # then logging fails on loading the model back (MLflow itself would only warn), and no version exists
    with pytest.raises(ValueError, match="input_width"):
        registry.log_candidate(
            run_name="candidate-broken",
            params={},
            metrics={},
            tags={},
            artifacts=[],
            weights_path=candidate.home / "weights.safetensors",
            spec=_spec(candidate.settings, layout.width + 1),
            model_name=broken_name,
            input_example=candidate.rows.head(5),
        )
    versions = MlflowClient().search_model_versions(f"name = '{broken_name}'")
    assert list(versions) == [], f"versions registered for a broken model: {versions}"
    broken_runs = mlflow.search_runs(
        filter_string="attributes.run_name = 'candidate-broken'", output_format="list"
    )
    assert [run.info.status for run in broken_runs] == ["FAILED"], f"runs: {broken_runs}"


def test_champion_version__model_without_alias__none(candidate: LoggedCandidate) -> None:
    # given a second model with a version but no alias, and a name that was never registered
    weights = candidate.home / "weights.safetensors"
    layout = feature_layout(candidate.settings.dataset)
    registry.log_candidate(
        run_name="candidate-no-alias",
        params={},
        metrics={},
        tags={},
        artifacts=[],
        weights_path=weights,
        spec=_spec(candidate.settings, layout.width),
        model_name=f"{MODEL_NAME}-no-alias",
        input_example=candidate.rows.head(5),
    )
    # when their champions are asked for
    without_alias = registry.champion_version(f"{MODEL_NAME}-no-alias")
    never_registered = registry.champion_version(f"{MODEL_NAME}-never-registered")
    # then there is none, and no exception
    assert without_alias is None, f"champion of a model without alias: {without_alias}"
    assert never_registered is None, f"champion of an unregistered model: {never_registered}"


def test_a_dataset_runs_go_to_one_experiment_named_after_it(tmp_path: Path, monkeypatch) -> None:
    # given a fresh store and no tracking URI from the environment
    for name in MLFLOW_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    # when adult's training runs and its drift checks are tracked
    try:
        training = registry.track_dataset(tmp_path, "adult")
        drift = registry.track_dataset(tmp_path, "adult", "drift")
        again = registry.track_dataset(tmp_path, "adult")
        client = MlflowClient(tracking_uri=registry.tracking_uri(tmp_path))
        names = {
            experiment_id: client.get_experiment(experiment_id).name for experiment_id in (training, drift)
        }
    finally:
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
        mlflow.set_registry_uri(None)  # type: ignore[arg-type]
    # then each kind has its own experiment, named as the UI shows it, and the same one is found again
    assert names == {training: "guardflow-adult", drift: "guardflow-adult-drift"}, names
    assert again == training, "tracking the same dataset again reuses its experiment"
    assert registry.experiment_name("fair", "contract") == "guardflow-fair-contract", "kind goes last"
