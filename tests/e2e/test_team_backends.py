"""guardflow for a team: PostgreSQL behind an MLflow tracking server and a Prefect server, both asking who calls,
and two process workers that share nothing but those servers and the ledger database.

The module starts a throwaway PostgreSQL cluster on loopback (tests/postgres.py) with three databases (MLflow's
store, Prefect's, the privacy ledger), `guardflow ui` (MLflow's basic-auth app over the PostgreSQL store, artifacts
served from a temporary folder) and `guardflow serve` (Prefect with an auth string, on PostgreSQL), then two
`guardflow worker`s, each with a guardflow home of its own, as on two machines. Three trainings start at once
through the safety-train deployment; afterwards the registry, the ledger and the lineage must agree. A load test
registers 32 versions at once against the same MLflow server. Everything started is stopped (process groups).
Timings and the load figures go to tests/output/e2e/team_backends.json.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from guardflow.io.datasets import read_split, write_table
from tests.conftest import ROOT, WIRING_POISONING, write_adult_config
from tests.flows.conftest import LENIENT_GATE
from tests.net import free_port, start_logged, stop_group
from tests.postgres import create_database, postgres_bin, running_postgres

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.team,
    pytest.mark.skipif(postgres_bin() is None, reason="PostgreSQL server binaries missing (make postgres)"),
]

VENV_BIN = Path(sys.executable).parent
MODEL_NAME = "guardflow-team"
LOAD_MODEL_NAME = "guardflow-team-load"
DATASET = "adult"
TRAININGS = 3
REGISTRATIONS = 32
OUTPUT = ROOT / "tests" / "output" / "e2e"
START_TIMEOUT = 240.0
RUN_TIMEOUT = 900.0  # a guard against a hang, not a speed target (2 busy cores)
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
PREFECT_AUTH = ("team", "prefect-e2e-secret")
MLFLOW_AUTH = ("admin", "mlflow-e2e-admin-secret")
LINEAGE_ENDS = {"COMPLETE", "FAIL", "ABORT"}


@dataclass
class Team:
    """The servers, the workers' homes and the environment a client needs to reach them."""

    prefect_api: str
    mlflow_url: str
    mlflow_store: str
    ledger_url: str
    client_env: dict[str, str]
    homes: list[Path]
    folder: Path
    logs: list[Path]
    timings: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def mark(self, phase: str) -> None:
        self.timings[phase] = round(time.monotonic() - self.started, 1)

    def tail(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text()[-1500:]}" for log in self.logs if log.exists())


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until `url` answers at all (any status: an auth refusal is an answer)."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{log.stem} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(requests.RequestException):
            requests.get(url, timeout=2)
            return
        time.sleep(0.5)
    pytest.fail(f"{log.stem} did not answer in {START_TIMEOUT:.0f} s:\n{log.read_text()[-3000:]}")


def _basic_auth_ini(folder: Path) -> Path:
    """MLflow's basic-auth configuration: its own credentials database and the first admin."""
    path = folder / "basic_auth.ini"
    path.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{folder / 'mlflow-auth.db'}\n"
        f"admin_username = {MLFLOW_AUTH[0]}\n"
        f"admin_password = {MLFLOW_AUTH[1]}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "auth_cache_ttl_seconds = 60\n"
    )
    return path


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory, adult_settings) -> Iterator[Team]:
    folder = tmp_path_factory.mktemp("team")
    train = folder / "adult-slice.data.gz"
    sha256 = write_table(
        read_split(adult_settings.dataset, "train").rows.head(6_000), train, adult_settings.dataset
    )
    config = write_adult_config(
        folder,
        dataset={"train": {"path": str(train), "sha256": sha256}},
        registry={"model_name": MODEL_NAME},
        # the backends are under test here, not the scan: its cheapest setting
        poisoning={**WIRING_POISONING, "folds": 2},
        privacy={"epochs": 2},  # nor the model: training is most of a run's time
        gate={
            **LENIENT_GATE,
            "min_accuracy": 0.6,
            "min_roc_auc": 0.6,
            "max_demographic_parity_difference": 0.5,
            "max_equalized_odds_difference": 0.5,
        },
        drift={"inbox": str(folder / "inbox"), "schedule": "0 0 1 1 *"},
    )
    base = {key: value for key, value in os.environ.items() if not key.startswith(("PREFECT_", "MLFLOW_"))}
    base.pop("GUARDFLOW_LEDGER_URL", None)
    base |= {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_ENABLED": "false"}
    started: list[subprocess.Popen[bytes]] = []
    logs = [folder / name for name in ("mlflow.log", "prefect.log", "worker-a.log", "worker-b.log")]
    with running_postgres("ledger") as ledger_url, pytest.MonkeyPatch.context() as patch:
        # MLflow's client takes credentials from the environment only: set for this module, then restored.
        patch.setenv("MLFLOW_TRACKING_USERNAME", MLFLOW_AUTH[0])
        patch.setenv("MLFLOW_TRACKING_PASSWORD", MLFLOW_AUTH[1])
        state = Team("", "", "", ledger_url, {}, [], folder, logs)
        try:
            state.mark("postgres_up")
            mlflow_store = state.mlflow_store = create_database(ledger_url, "mlflow")
            prefect_store = create_database(ledger_url, "prefect").replace("+psycopg2", "+asyncpg")
            mlflow_port, prefect_port = free_port(), free_port()
            state.mlflow_url = f"http://127.0.0.1:{mlflow_port}"
            state.prefect_api = f"http://127.0.0.1:{prefect_port}/api"
            mlflow_env = base | {
                "GUARDFLOW_HOME": str(folder / "mlflow-home"),
                "MLFLOW_AUTH_CONFIG_PATH": str(_basic_auth_ini(folder)),
                "MLFLOW_FLASK_SERVER_SECRET_KEY": "team-e2e-csrf-key",
            }
            ui = [
                str(VENV_BIN / "guardflow"), "ui", "--host", "127.0.0.1", "--port", str(mlflow_port),
                "--backend-store-uri", mlflow_store, "--artifacts-destination", str(folder / "artifacts"),
                "--workers", "1",
            ]  # fmt: skip
            started.append(start_logged(ui, mlflow_env, logs[0]))
            prefect_env = base | {
                "GUARDFLOW_HOME": str(folder / "prefect-home"),
                "PREFECT_HOME": str(folder / "prefect-home" / "prefect"),
                "PREFECT_SERVER_API_AUTH_STRING": ":".join(PREFECT_AUTH),
                "PREFECT_API_DATABASE_CONNECTION_URL": prefect_store,
                "PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS": "2",
            }
            serve = [str(VENV_BIN / "guardflow"), "serve", "--host", "127.0.0.1", "--port", str(prefect_port)]
            started.append(start_logged(serve, prefect_env, logs[1]))
            _wait_until_up(f"{state.mlflow_url}/health", started[0], logs[0])
            _wait_until_up(f"{state.prefect_api}/health", started[1], logs[1])
            state.mark("servers_up")
            state.client_env = base | {
                "MLFLOW_TRACKING_URI": state.mlflow_url,
                "MLFLOW_TRACKING_USERNAME": MLFLOW_AUTH[0],
                "MLFLOW_TRACKING_PASSWORD": MLFLOW_AUTH[1],
                "GUARDFLOW_LEDGER_URL": ledger_url,
                "PREFECT_API_URL": state.prefect_api,
                "PREFECT_API_AUTH_STRING": ":".join(PREFECT_AUTH),
                "PREFECT_WORKER_QUERY_SECONDS": "1",
                "PREFECT_WORKER_PREFETCH_SECONDS": "5",
            }
            for name, log in zip(("a", "b"), logs[2:], strict=True):
                home = folder / f"home-{name}"
                state.homes.append(home)
                env = state.client_env | {"GUARDFLOW_HOME": str(home), "PREFECT_HOME": str(home / "prefect")}
                # Two runs at most each: three trainings must spread over both "machines".
                worker = [str(VENV_BIN / "guardflow"), "worker", "--config", str(config), "--limit", "2"]
                started.append(start_logged(worker, env, log))
            deploy_env = state.client_env | {"GUARDFLOW_HOME": str(folder / "deploy-home")}
            deployed = subprocess.run(
                [str(VENV_BIN / "guardflow"), "deploy", "--config", str(config)],
                env=deploy_env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert deployed.returncode == 0, f"guardflow deploy failed:\n{deployed.stdout}\n{deployed.stderr}"
            state.mark("deployed")
            yield state
        finally:
            for process in reversed(started):
                stop_group(process)
            OUTPUT.mkdir(parents=True, exist_ok=True)
            (OUTPUT / "team_backends.json").write_text(json.dumps(state.timings, indent=2) + "\n")
            for log in logs:
                if log.exists():
                    shutil.copy(log, OUTPUT / f"team_{log.name}")


def _prefect(team: Team, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    response = requests.request(method, f"{team.prefect_api}{path}", json=body, auth=PREFECT_AUTH, timeout=30)
    response.raise_for_status()
    return response.json()


def _wait_for_trainings(team: Team, run_ids: list[str]) -> list[dict[str, Any]]:
    deadline = time.monotonic() + RUN_TIMEOUT
    runs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        runs = [_prefect(team, "GET", f"/flow_runs/{run_id}") for run_id in run_ids]
        if all(run["state_type"] in TERMINAL for run in runs):
            return runs
        time.sleep(2)
    pytest.fail(
        f"trainings unfinished after {RUN_TIMEOUT:.0f} s: {[r['state_name'] for r in runs]}\n{team.tail()}"
    )


def _flow_run_logs(team: Team, run_ids: list[str]) -> str:
    """The warnings and errors the flow runs logged, oldest first: why a run failed."""
    body = {
        "logs": {"flow_run_id": {"any_": run_ids}, "level": {"ge_": 30}},
        "sort": "TIMESTAMP_ASC",
        "limit": 50,
    }
    logs = _prefect(team, "POST", "/logs/filter", body)
    return "--- flow run logs\n" + "\n".join(f"{log['name']}: {log['message']}" for log in logs)


def _run_trainings(team: Team, count: int) -> list[str]:
    """Start `count` runs of safety-train at once through the deployment (`run_deployment`, not waiting).

    Each is forced: the runs share data, config and code, so a run that starts after another registered would
    otherwise report that version unchanged instead of training (an idempotent rerun)."""
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    updates = {PREFECT_API_URL: team.prefect_api, PREFECT_API_AUTH_STRING: ":".join(PREFECT_AUTH)}
    with temporary_settings(updates=updates):
        runs = [
            run_deployment(f"safety-train/{DATASET}", parameters={"force": True}, timeout=0)
            for _ in range(count)
        ]
    return [str(run.id) for run in runs]


def _mlflow_client(team: Team):
    """A client of the team's MLflow server (the credentials come from the environment the fixture set)."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=team.mlflow_url, registry_uri=team.mlflow_url)


@pytest.fixture(scope="module")
def trainings(team: Team) -> list[dict[str, Any]]:
    """Three trainings started at once on the two workers; the finished flow runs."""
    run_ids = _run_trainings(team, TRAININGS)
    runs = _wait_for_trainings(team, run_ids)
    team.mark("trainings_done")
    team.timings["training_run_seconds"] = [round(run["total_run_time"], 1) for run in runs]
    return runs


def test_servers_refuse_requests_without_credentials(team: Team) -> None:
    # given both servers started with authentication, on loopback
    # when the same read is asked without credentials, with wrong ones, and with the right ones
    prefect = [
        requests.post(f"{team.prefect_api}/flows/filter", json={}, auth=auth, timeout=30).status_code
        for auth in (None, ("team", "wrong"), PREFECT_AUTH)
    ]
    search = f"{team.mlflow_url}/api/2.0/mlflow/experiments/search"
    mlflow = [
        requests.get(search, params={"max_results": 1}, auth=auth, timeout=30).status_code
        for auth in (None, (MLFLOW_AUTH[0], "wrong"), MLFLOW_AUTH)
    ]
    # then both refuse the first two (401) and answer the third (200)
    assert prefect == [401, 401, 200], f"Prefect answered {prefect} (none, wrong, right credentials)"
    assert mlflow == [401, 401, 200], f"MLflow answered {mlflow} (none, wrong, right credentials)"


def test_concurrent_trainings_keep_registry_ledger_and_lineage_exact(
    team: Team, trainings: list[dict[str, Any]]
) -> None:
    # given three trainings run at once through the deployment on two workers with separate homes
    failed = [(run["name"], run["state_name"]) for run in trainings if run["state_type"] != "COMPLETED"]
    assert not failed, (
        f"trainings did not complete: {failed}\n"
        f"{_flow_run_logs(team, [run['id'] for run in trainings if run['state_type'] != 'COMPLETED'])}\n"
        f"{team.tail()}"
    )
    summaries = [json.loads(path.read_text()) for home in team.homes for path in home.rglob("summary.json")]
    trained = [summary for summary in summaries if summary["flow"] == "safety-train"]
    workers_used = [home.name for home in team.homes if any(home.rglob("summary.json"))]
    team.timings["runs_per_worker"] = {
        home.name: sum(1 for _ in home.rglob("summary.json")) for home in team.homes
    }
    # when the registry, the ledger and the lineage events are read back
    client = _mlflow_client(team)
    versions = client.search_model_versions(f"name='{MODEL_NAME}'")
    numbers = sorted(int(version.version) for version in versions)
    # Searches do not carry aliases: each version is read on its own.
    champions = [
        version.version
        for version in versions
        if "champion" in client.get_model_version(MODEL_NAME, version.version).aliases
    ]
    from guardflow.io.ledger import Ledger

    spends = Ledger(team.ledger_url).spends(DATASET)
    events = [
        json.loads(line)
        for home in team.homes
        for log in home.rglob("events.jsonl")
        for line in log.read_text().splitlines()
        if line.strip()
    ]
    # then the three ran on both workers and the versions are 1..3, no gap, exactly one of them champion
    assert len(trained) == TRAININGS, f"{len(trained)} safety-train summaries, expected {TRAININGS}"
    assert len(workers_used) == 2, f"both workers must have taken runs: {team.timings['runs_per_worker']}"
    assert numbers == list(range(1, TRAININGS + 1)), f"registered versions {numbers}"
    statuses = [summary["status"] for summary in trained]
    assert len(champions) == 1, f"champion alias on versions {champions} (run statuses {statuses})"
    # and the ledger holds one spent charge per run, whose sum is exactly what the runs reserved
    run_dirs = {summary["run_dir"] for summary in trained}
    assert sorted(spend.run_dir for spend in spends) == sorted(run_dirs), (
        f"ledger charges {[(s.run_dir, s.state) for s in spends]} vs runs {run_dirs}"
    )
    assert all(spend.state == "spent" for spend in spends), f"states: {[s.state for s in spends]}"
    charged = sum(spend.epsilon for spend in spends)
    assert charged == pytest.approx(TRAININGS * spends[0].epsilon), f"ledger sum {charged}"
    # and each reservation saw every earlier one: the budgets the runs report are 1, 2 and 3 charges
    seen = sorted(round(summary["privacy"]["budget_spent"] / spends[0].epsilon) for summary in trained)
    assert seen == list(range(1, TRAININGS + 1)), f"charges each run saw (its own included): {seen}"
    # and every lineage run that started has ended (COMPLETE, FAIL or ABORT)
    started = {event["run"]["runId"] for event in events if event["eventType"] == "START"}
    ended = {event["run"]["runId"] for event in events if event["eventType"] in LINEAGE_ENDS}
    assert started and not started - ended, f"{len(started - ended)} of {len(started)} lineage runs left open"


@dataclass
class Load:
    """What one burst of concurrent registrations gave: versions per writer, errors, guardflow's retries."""

    created: list[str]
    errors: list[str]
    retries: int
    seconds: float


def _register_at_once(make_client: Callable[[], Any], model_name: str, experiment_id: str) -> Load:
    """REGISTRATIONS threads, one client each, register a version of `model_name` at the same moment."""
    from guardflow.io import registry

    client = make_client()
    run_id = client.create_run(experiment_id).info.run_id
    models = [
        client.create_logged_model(experiment_id, name=f"load-{n}").model_id for n in range(REGISTRATIONS)
    ]
    client.create_registered_model(model_name)
    retries: list[str] = []

    class Retries(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            retries.append(record.getMessage())

    handler = Retries(level=logging.INFO)
    logger = logging.getLogger("guardflow.io.registry")
    previous_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    errors: list[str] = []
    barrier = threading.Barrier(REGISTRATIONS)

    def register(model_id: str) -> str:
        barrier.wait()
        try:
            own = make_client()  # one client (and HTTP session) per writer
            return str(registry.create_version(own, model_name, model_id, run_id, {}).version)
        except Exception as error:  # recorded: an error surfaced to the user is the failure under test
            errors.append(f"{type(error).__name__}: {error}")
            return ""

    began = time.monotonic()
    try:
        with ThreadPoolExecutor(max_workers=REGISTRATIONS) as pool:
            created = list(pool.map(register, models))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)
    return Load(created, errors, len(retries), round(time.monotonic() - began, 1))


def _stored_versions(client: Any, model_name: str) -> list[int]:
    return sorted(int(version.version) for version in client.search_model_versions(f"name='{model_name}'"))


def test_32_concurrent_registrations_through_the_server_leave_no_gap(team: Team) -> None:
    # given 32 logged models in one experiment of the shared MLflow server
    client = _mlflow_client(team)
    experiment_id = client.create_experiment("guardflow-team-load")
    log = team.folder / "mlflow.log"
    clashes_before = log.read_text().count("Model Version creation error")
    # when 32 writers register a version each at the same moment
    load = _register_at_once(lambda: _mlflow_client(team), LOAD_MODEL_NAME, experiment_id)
    server_log = log.read_text()
    team.timings["load_http"] = {
        "registrations": REGISTRATIONS,
        "versions_created": len([version for version in load.created if version]),
        "mlflow_store_clashes": server_log.count("Model Version creation error") - clashes_before,
        "mlflow_gave_up_http_500": server_log.count("Giving up after"),
        "guardflow_retries": load.retries,
        "errors": len(load.errors),
        "wall_seconds": load.seconds,
    }
    stored = _stored_versions(client, LOAD_MODEL_NAME)
    # then no error reached the caller and the versions are exactly 1..32, each returned to one writer
    assert not load.errors, f"{len(load.errors)} registrations failed: {load.errors[:3]}"
    assert stored == list(range(1, REGISTRATIONS + 1)), f"versions stored: {stored}"
    assert sorted(int(version) for version in load.created) == stored, f"versions returned: {load.created}"


def test_32_concurrent_registrations_on_the_database_leave_no_gap(
    team: Team, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given MLFLOW_TRACKING_URI naming the PostgreSQL store itself (no server: no HTTP retry in between)
    import mlflow
    from mlflow.tracking import MlflowClient

    from guardflow.io import registry

    monkeypatch.setenv("MLFLOW_TRACKING_URI", team.mlflow_store)
    try:
        experiment_id = registry.configure_tracking(tmp_path, "guardflow-team-load-database")
        # when 32 writers register a version each at the same moment
        load = _register_at_once(MlflowClient, f"{LOAD_MODEL_NAME}-database", experiment_id)
        stored = _stored_versions(MlflowClient(), f"{LOAD_MODEL_NAME}-database")
    finally:
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
        mlflow.set_registry_uri(None)  # type: ignore[arg-type]
    team.timings["load_database"] = {
        "registrations": REGISTRATIONS,
        "versions_created": len([version for version in load.created if version]),
        "guardflow_retries": load.retries,
        "errors": len(load.errors),
        "wall_seconds": load.seconds,
    }
    # then the experiment guardflow created is the server's too (one store), no error reached the caller,
    # and the versions are exactly 1..32
    shared = _mlflow_client(team).get_experiment_by_name("guardflow-team-load-database")
    assert shared is not None and shared.experiment_id == experiment_id, "the database is the server's store"
    assert not load.errors, f"{len(load.errors)} registrations failed: {load.errors[:3]}"
    assert stored == list(range(1, REGISTRATIONS + 1)), f"versions stored: {stored}"
    assert sorted(int(version) for version in load.created) == stored, f"versions returned: {load.created}"
