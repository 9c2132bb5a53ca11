"""MLflow tracking and model registry: one run per candidate, its model registered without pickle.

The store is SQLite under the guardflow home, unless `MLFLOW_TRACKING_URI` names a store every writer shares
(a database such as `postgresql://...`, or a tracking server `http(s)://...`). Each candidate is a pyfunc logged as code
(`guardflow/serving.py`) with safetensors weights and a JSON spec as its only artifacts, so loading a
model never unpickles anything and works with `MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false`.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import logging
import os
import random
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version as installed_version
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, RESOURCE_DOES_NOT_EXIST, ErrorCode
from mlflow.pyfunc import PyFuncModel
from mlflow.tracking import MlflowClient
from mlflow.types.schema import AnyType, ColSpec, Schema, TensorSpec
from mlflow.utils.mlflow_tags import MLFLOW_MODEL_VERSIONS
from packaging.version import Version

from guardflow.errors import RegistryError
from guardflow.io.records import public_tracking_uri, shared_tracking_uri, tracking_uri  # noqa: F401 (re-exported)

_logger = logging.getLogger(__name__)

CHAMPION_ALIAS = "champion"
# A version is created `pending` and set `complete` once its aliases are settled; the run that finds it still
# pending after its run's process died sets it `crashed` (never aliased, never matched by a rerun).
REGISTRATION_TAG = "guardflow.registration"
RUN_DIR_TAG = "guardflow.run_dir"
RUN_KEY_TAG = (
    "guardflow.run_key"  # data, config and code of the run that trained the version, hashed together
)
MODEL_NAME_IN_RUN = "model"
SPEC_FILE_NAME = "model_spec.json"

# What the logged model needs at load time, pinned to what it was logged with. Listed explicitly: MLflow's
# inference imports the model in a subprocess (slow) and warns when it guesses. guardflow itself travels
# with the model as code (`code_paths`), since it is not on a package index.
_RUNTIME_PACKAGES = ("mlflow", "torch", "safetensors", "pandas", "numpy", "pydantic", "pyyaml")

# Set (unless the caller chose otherwise) before MLflow writes anything, so a batch run's console stays
# readable. log_model copies each artifact through a "Downloading artifacts" tqdm bar, local files
# included; a tracking server would also get "View run ... at" links printed on stdout.
_QUIET_ENVIRONMENT = {
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}


@dataclass(frozen=True)
class RegisteredVersion:
    """One version of a registered model, as the pipeline needs to know it."""

    name: str
    version: str
    run_id: str
    model_uri: str
    aliases: tuple[str, ...]


# A new version takes max(version)+1; MLflow retries a clash 3 times, then gives up with this message.
_VERSION_CLASH = "Model Version creation error"
REGISTER_ATTEMPTS = 8


def _quiet_mlflow() -> None:
    """Keep MLflow's console output to warnings and errors, unless the user asked for its log level.

    MLflow logs to stderr through its own handler (it does not propagate), at INFO: database migrations on a
    fresh store, signature validation of the input example. Those are routine in a batch run.
    """
    for name, value in _QUIET_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    if "MLFLOW_LOGGING_LEVEL" not in os.environ:
        logging.getLogger("mlflow").setLevel(logging.WARNING)


def experiment_name(dataset_id: str, kind: str = "") -> str:
    """The MLflow experiment of one dataset's runs, `guardflow-<dataset>`; a `kind` (`contract`, `drift`) keeps
    those runs in an experiment of their own, `guardflow-<dataset>-<kind>`."""
    return f"guardflow-{dataset_id}-{kind}" if kind else f"guardflow-{dataset_id}"


def track_dataset(home: Path, dataset_id: str, kind: str = "") -> str:
    """`configure_tracking` for one dataset's experiment (see `experiment_name`); returns the experiment id."""
    return configure_tracking(home, experiment_name(dataset_id, kind))


def configure_tracking(home: Path, experiment: str) -> str:
    """Point MLflow at the store (`tracking_uri`), make `experiment` active (creating it once), return its id.

    Artifacts go under `<home>/mlflow/artifacts` on a local store (SQLite, or a database named directly); a
    tracking server keeps them where it was told to (`--artifacts-destination`), so every machine reads them.
    A fresh store runs MLflow's database migrations here (seconds), under a file lock: two processes
    migrating one new SQLite file at once collide ("duplicate column name"). Afterwards MLflow's own
    `PRAGMA busy_timeout = 20000` on every session lets a few concurrent writers wait instead of failing
    with "database is locked".
    """
    _quiet_mlflow()
    store = home / "mlflow"
    store.mkdir(parents=True, exist_ok=True)
    uri = tracking_uri(home)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    with _exclusive(store / "init.lock"):
        # The client opens the store (and migrates it) lazily, on its first call: inside the lock.
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        served = uri.startswith(("http:", "https:"))
        artifacts = None if served else (store / "artifacts").resolve().as_uri()
        experiment_id = _active_experiment_id(client, experiment, artifacts)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `lock_path` (other processes block until it is released)."""
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _active_experiment_id(client: MlflowClient, experiment: str, artifact_location: str | None) -> str:
    """The id of `experiment`, created with `artifact_location` if missing; deleted ones are refused.

    On a shared store another machine may create it between the lookup and the create: then it is looked up
    again."""
    existing = client.get_experiment_by_name(experiment)
    if existing is None:
        try:
            experiment_id = client.create_experiment(experiment, artifact_location=artifact_location)
        except MlflowException as error:
            if error.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                raise
            existing = client.get_experiment_by_name(experiment)
            if existing is None:
                raise
        else:
            _logger.info("created MLflow experiment %s (%s)", experiment, experiment_id)
            return experiment_id
    if existing.lifecycle_stage != "active":
        raise RegistryError(
            f"MLflow experiment {experiment!r} is deleted; restore it (`mlflow experiments restore`) "
            "or choose another name"
        )
    return existing.experiment_id


def _serving_code_path() -> Path:
    """The models-from-code file, found without importing it (importing it calls `set_model`)."""
    spec = importlib.util.find_spec("guardflow.serving")
    if spec is None or spec.origin is None:
        raise RegistryError("guardflow.serving is not installed alongside guardflow.io.registry")
    return Path(spec.origin)


def _pip_requirements() -> list[str]:
    # The public version only: torch reports "2.13.0+cpu", which no package index serves under that name.
    return [f"{package}=={Version(installed_version(package)).public}" for package in _RUNTIME_PACKAGES]


def _signature(example: pd.DataFrame) -> ModelSignature:
    """Every example column is required; numeric ones also accept text (rows as read from CSV).

    MLflow would infer `double` for them and then refuse text with "Can not safely convert str to float64";
    missing values pass either way. The output is one probability per row.
    """
    columns: list[ColSpec | TensorSpec] = [
        ColSpec(AnyType() if pd.api.types.is_numeric_dtype(example[name]) else "string", str(name))
        for name in example.columns
    ]
    return ModelSignature(inputs=Schema(columns), outputs=Schema([TensorSpec(np.dtype("float32"), (-1,))]))


def _register(
    client: MlflowClient, model_name: str, model_id: str, run_id: str, tags: dict[str, str]
) -> ModelVersion:
    """A new version of `model_name` (created if missing) for the logged model `model_id`.

    Through the client rather than `log_model(registered_model_name=...)`: the fluent path prints
    "Successfully registered model" and "Created version" to stderr unconditionally. Like it, we record the
    version on the logged model, which is how the MLflow UI links the two.
    """
    try:
        client.create_registered_model(model_name)
    except MlflowException as error:
        if error.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
            raise
    version = create_version(client, model_name, model_id, run_id, tags)
    link = [{"name": version.name, "version": str(version.version)}]
    client.set_logged_model_tags(model_id, {MLFLOW_MODEL_VERSIONS: json.dumps(link)})
    return version


def create_version(
    client: MlflowClient, model_name: str, model_id: str, run_id: str, tags: dict[str, str]
) -> ModelVersion:
    """`create_model_version`, retried with a random pause when MLflow's own retries lost to other writers.

    The store numbers a version max(version)+1 inside a transaction; two writers that read the same maximum
    clash on the key, MLflow retries three times at once and then raises "Model Version creation error". A
    clash means no version was created, so trying again cannot leave a gap or a duplicate."""
    attempt = 1
    while True:
        try:
            return client.create_model_version(
                model_name, source=f"models:/{model_id}", run_id=run_id, tags=tags, model_id=model_id
            )
        except MlflowException as error:
            if _VERSION_CLASH not in error.message or attempt == REGISTER_ATTEMPTS:
                raise
        pause = random.uniform(0.05, 0.1 * 2**attempt)
        _logger.info("version clash on %s; retry %d in %.2f s", model_name, attempt, pause)
        time.sleep(pause)
        attempt += 1


def _check_scores(model_uri: str, example: pd.DataFrame) -> None:
    """Load the logged model back and score its own example; raise if it cannot.

    MLflow does the same after `log_model` but only warns ("Failed to validate serving input example") and
    keeps the model, which we would then register.
    """
    scores = np.asarray(mlflow.pyfunc.load_model(model_uri).predict(example))
    if scores.shape != (len(example),) or not np.all((scores >= 0) & (scores <= 1)):
        raise ValueError(
            f"logged model {model_uri} gave {scores.shape} scores for {len(example)} example rows, "
            "or scores outside [0, 1]"
        )


def _registered_version(version: ModelVersion) -> RegisteredVersion:
    return RegisteredVersion(
        name=version.name,
        version=str(version.version),
        run_id=version.run_id or "",
        model_uri=f"models:/{version.name}/{version.version}",
        aliases=tuple(version.aliases or ()),
    )


def _log_record(
    params: dict[str, object], metrics: dict[str, float], tags: dict[str, str], artifacts: list[Path]
) -> None:
    """Params, metrics, tags and files into the active MLflow run."""
    mlflow.log_params(params)
    mlflow.log_metrics(metrics)
    mlflow.set_tags(tags)
    for artifact in artifacts:
        if artifact.is_dir():  # a folder keeps its name, so relative links (plots/...) still resolve
            mlflow.log_artifacts(str(artifact), artifact_path=artifact.name)
        else:
            mlflow.log_artifact(str(artifact))


def log_check(
    *, run_name: str, metrics: dict[str, float], tags: dict[str, str], artifacts: list[Path]
) -> str:
    """Log a check that produces no model (a stand-alone contract validation) as one MLflow run; its id."""
    with mlflow.start_run(run_name=run_name) as run:
        _log_record({}, metrics, tags, artifacts)
    return str(run.info.run_id)


def log_candidate(
    *,
    run_name: str,
    params: dict[str, object],
    metrics: dict[str, float],
    tags: dict[str, str],
    artifacts: list[Path],
    weights_path: Path,
    spec: dict,
    model_name: str,
    input_example: pd.DataFrame,
    version_tags: dict[str, str] | None = None,
) -> RegisteredVersion:
    """Log one candidate as an MLflow run and register its model as a new version of `model_name`.

    `version_tags` go on the version only (its registration state), on top of `tags`."""
    serving_code = _serving_code_path()
    client = MlflowClient()
    with (
        tempfile.TemporaryDirectory(prefix="guardflow-spec-") as scratch,
        mlflow.start_run(run_name=run_name) as run,
    ):
        spec_path = Path(scratch) / SPEC_FILE_NAME
        # No sort_keys: the order of the features in the spec is the order of the encoded columns.
        spec_path.write_text(json.dumps(spec, indent=2), encoding="utf-8")
        _log_record(params, metrics, tags, artifacts)
        model_info = mlflow.pyfunc.log_model(
            name=MODEL_NAME_IN_RUN,
            python_model=str(serving_code),
            artifacts={"weights": str(weights_path.resolve()), "spec": str(spec_path)},
            code_paths=[str(serving_code.parent)],
            pip_requirements=_pip_requirements(),
            signature=_signature(input_example),
            input_example=input_example,
            tags=tags,
        )
        _check_scores(model_info.model_uri, input_example)
        version = _register(
            client, model_name, model_info.model_id, run.info.run_id, {**tags, **(version_tags or {})}
        )
    registered = _registered_version(version)
    _logger.info("registered %s version %s from run %s", model_name, registered.version, registered.run_id)
    return registered


def set_alias(name: str, alias: str, version: str) -> None:
    """Point `alias` of model `name` at `version` (moving it if it pointed elsewhere).

    The store looks the alias up and then inserts or updates it: two writers that set an alias the model does not
    have yet both insert it, and the second is refused on the alias's key (seen with three trainings at once on
    PostgreSQL). Set again, the alias exists and is moved, so the last writer wins, as with one writer after
    another."""
    attempt = 1
    while True:
        try:
            MlflowClient().set_registered_model_alias(name, alias, version)
            return
        except MlflowException as error:
            if error.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
                raise RegistryError(f"model {name!r} has no version {version}") from None
            if not _alias_clash(error.message) or attempt == REGISTER_ATTEMPTS:
                raise
        _logger.info("alias clash on %s@%s; retry %d", name, alias, attempt)
        time.sleep(random.uniform(0.05, 0.1 * 2**attempt))
        attempt += 1


def _alias_clash(message: str) -> bool:
    """The store's refusal of a second insert of one alias (PostgreSQL's or SQLite's words)."""
    lowered = message.lower()
    return "registered_model_alias" in lowered and (
        "duplicate key" in lowered or "unique constraint" in lowered
    )


def aliases(name: str) -> dict[str, str]:
    """Alias -> version of a registered model; empty when the model does not exist."""
    return _aliases(MlflowClient(), name)


def _aliases(client: MlflowClient, name: str) -> dict[str, str]:
    """Alias -> version of a registered model; empty when the model does not exist.

    Read from the model rather than by asking for one alias: a missing alias is INVALID_PARAMETER_VALUE in
    the SQL store, the same code as a malformed request, so catching could not tell the two apart.
    """
    try:
        return {alias: str(version) for alias, version in client.get_registered_model(name).aliases.items()}
    except MlflowException as error:
        if error.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            return {}
        raise


def champion_version(name: str) -> RegisteredVersion | None:
    """The version the champion alias points at, or None when there is none yet (or no such model)."""
    client = MlflowClient()
    champion = _aliases(client, name).get(CHAMPION_ALIAS)
    if champion is None:
        return None
    return _registered_version(client.get_model_version(name, champion))


def version_of(name: str, version: str) -> RegisteredVersion:
    """One version of a registered model, with its current aliases."""
    try:
        return _registered_version(MlflowClient().get_model_version(name, version))
    except MlflowException as error:
        if error.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            raise RegistryError(f"model {name!r} has no version {version}") from None
        raise


def champion_data(name: str) -> tuple[str, str, list[str]] | None:
    """Path, sha256 and source-file sha256s of the data the champion was trained on (its tags), or None."""
    client = MlflowClient()
    champion = _aliases(client, name).get(CHAMPION_ALIAS)
    if champion is None:
        return None
    tags = client.get_model_version(name, champion).tags
    if "guardflow.data_path" not in tags or "guardflow.data_sha256" not in tags:
        raise RegistryError(f"champion of {name!r} (version {champion}) has no recorded training data")
    sources = tags.get("guardflow.data_sources", tags["guardflow.data_sha256"]).split(",")
    return tags["guardflow.data_path"], tags["guardflow.data_sha256"], sources


def load_model(model_uri: str) -> PyFuncModel:
    """Load a registered model (`models:/<name>/<version>` or `models:/<name>@<alias>`) for batch scoring."""
    name, by_alias, alias = model_uri.removeprefix("models:/").partition("@")
    if model_uri.startswith("models:/") and by_alias and alias not in _aliases(MlflowClient(), name):
        raise RegistryError(f"model {name!r} has no alias {alias!r}")
    try:
        return mlflow.pyfunc.load_model(model_uri)
    except MlflowException as error:
        if error.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            raise RegistryError(f"no registered model at {model_uri}") from None
        raise


def set_version_tag(name: str, version: str, key: str, value: str) -> None:
    MlflowClient().set_model_version_tag(name, version, key, value)


def versions_tagged(name: str, tag: str, value: str) -> list[ModelVersion]:
    """The versions of model `name` whose `tag` is `value`, newest first; empty when there is no such model."""
    if "'" in value:
        raise ValueError(f"a tag value to search for cannot hold a quote: {value!r}")
    found = MlflowClient().search_model_versions(
        f"name = '{name}' and tags.`{tag}` = '{value}'", order_by=["version_number DESC"]
    )
    return list(found)


def matching_version(name: str, run_key: str) -> tuple[RegisteredVersion, str] | None:
    """The newest fully registered version trained on the same data, config and code (its `RUN_KEY_TAG`), with
    its weights' sha256; a version whose run crashed, or whose registration never completed, does not count."""
    for version in versions_tagged(name, RUN_KEY_TAG, run_key):
        if version.tags.get(REGISTRATION_TAG) == "complete":
            # A search leaves a version's aliases out: read the version itself for them.
            full = MlflowClient().get_model_version(name, str(version.version))
            return _registered_version(full), version.tags.get("guardflow.weights_sha256", "")
    return None


def end_crashed_runs(experiment: str, run_dir: str) -> list[str]:
    """Mark KILLED the MLflow runs of a crashed run (tag `RUN_DIR_TAG`) still RUNNING; their ids."""
    client = MlflowClient()
    found = client.get_experiment_by_name(experiment)
    if found is None or "'" in run_dir:
        return []
    runs = client.search_runs(
        [found.experiment_id], f"tags.`{RUN_DIR_TAG}` = '{run_dir}' and attributes.status = 'RUNNING'"
    )
    for run in runs:
        client.set_terminated(run.info.run_id, status="KILLED")
    return [run.info.run_id for run in runs]
