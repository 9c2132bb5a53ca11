"""guardflow on a real Prefect server: deployments, a process worker, the inbox, the drift event and its guard.

The module starts `prefect server start` on loopback (its own PREFECT_HOME, SQLite) and `guardflow worker`,
registers the deployments with `guardflow deploy`, then drops batches into the inbox and runs the drift-check
deployment: a drifted batch starts a retrain through the event trigger (a new model version is registered), an
i.i.d. batch does not, and a second drifted batch, poisoned, is screened (its planted rows quarantined) and, inside
the cooldown, recorded but not acted on. Everything
started here is stopped at the end (process groups). Phase timings go to tests/output/e2e/prefect_server.json.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests

from guardflow.data.table import typed_frame
from guardflow.io import server_state
from guardflow.io.datasets import read_split, write_table
from guardflow.io.registry import experiment_name
from tests.conftest import ROOT, write_adult_config
from tests.flows.conftest import LENIENT_GATE
from tests.net import free_port, start_logged, stop_group

pytestmark = pytest.mark.e2e

VENV_BIN = Path(sys.executable).parent
MODEL_NAME = "guardflow-e2e-server"
DATASET = "adult"
OUTPUT = ROOT / "tests" / "output" / "e2e"
START_TIMEOUT = 120.0
RUN_TIMEOUT = 420.0
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


@dataclass
class Server:
    """A Prefect server, a worker and a guardflow home wired together, with the timings of each phase."""

    api: str
    env: dict[str, str]
    home: Path
    config: Path
    inbox: Path
    folder: Path
    timings: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def mark(self, phase: str) -> None:
        self.timings[phase] = round(time.monotonic() - self.started, 1)


def _wait_for_api(api: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"prefect server exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{api}/health", timeout=2).ok:
                return
        time.sleep(0.5)
    pytest.fail(f"prefect server did not answer in {START_TIMEOUT:.0f} s:\n{log.read_text()[-3000:]}")


def _call(method: str, url: str, body: dict[str, Any] | None = None) -> Any:
    """One API call; 503 (the server's SQLite is busy) and dropped connections are retried, as Prefect's client does."""
    deadline = time.monotonic() + 60
    while True:
        try:
            response = requests.request(method, url, json=body, timeout=30)
            if response.status_code != 503:
                response.raise_for_status()
                return response.json()
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{method} {url} kept failing for 60 s")
        time.sleep(1)


def _flow_runs(server: Server, flow_name: str) -> list[dict[str, Any]]:
    body = {"flows": {"name": {"any_": [flow_name]}}, "sort": "EXPECTED_START_TIME_ASC"}
    return list(_call("POST", f"{server.api}/flow_runs/filter", body))


def _wait_for_runs(server: Server, flow_name: str, count: int, logs: list[Path]) -> list[dict[str, Any]]:
    """Wait until `count` runs of a flow are finished; fail with the worker's log when one did not complete."""
    deadline = time.monotonic() + RUN_TIMEOUT
    runs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        runs = _flow_runs(server, flow_name)
        finished = [run for run in runs if run["state_type"] in TERMINAL]
        if len(finished) >= count:
            failed = [run for run in finished if run["state_type"] != "COMPLETED"]
            assert not failed, (
                f"{flow_name} runs did not complete: {[(r['name'], r['state_name']) for r in failed]}\n"
                + "\n".join(log.read_text()[-4000:] for log in logs)
            )
            return finished
        time.sleep(1)
    states = [(run["name"], run["state_name"]) for run in runs]
    pytest.fail(
        f"{count} finished {flow_name} runs expected within {RUN_TIMEOUT:.0f} s, found {states}\n"
        + "\n".join(log.read_text()[-4000:] for log in logs)
    )


def _run_deployment(server: Server, name: str) -> str:
    deployment = _call("GET", f"{server.api}/deployments/name/{name}")
    return str(_call("POST", f"{server.api}/deployments/{deployment['id']}/create_flow_run", {})["id"])


def _model_versions(home: Path) -> list[str]:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    return sorted(str(version.version) for version in client.search_model_versions(f"name='{MODEL_NAME}'"))


def _champion(home: Path) -> str | None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    aliases = client.get_registered_model(MODEL_NAME).aliases
    return str(aliases["champion"]) if "champion" in aliases else None


@pytest.fixture(scope="module")
def batches(adult_settings) -> dict[str, Any]:
    """Batches cut from adult.test: people over 50 (two disjoint halves, both drift) and an i.i.d. sample. The
    second half is poisoned: 5% of its rows get a trigger (Sales, 37 hours a week) and the label >50K."""
    from bench.plant_attacks import plant_random_backdoor

    dataset = adult_settings.dataset
    rows = read_split(dataset, "test").rows
    over50 = rows[typed_frame(rows, dataset)["age"] > 50]
    poisoned, planted = plant_random_backdoor(
        typed_frame(over50.iloc[1_500:3_000], dataset),
        dataset,
        {"occupation": "Sales", "hours-per-week": 37.0},
        dataset.label.positive,
        0.05,
        "relabel",
        np.random.default_rng(0),
    )
    return {
        "drifted": over50.iloc[:1_500],
        "iid": rows.iloc[:3_000],
        "poisoned": poisoned,
        # write_table numbers a file's rows from 0: the planted rows' positions are their source rows
        "poisoned_rows": set(np.flatnonzero(poisoned.index.isin(planted)).tolist()),
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, adult_settings) -> Iterator[Server]:
    """A fresh Prefect server (SQLite) on a free loopback port, the deployments, and one process worker."""
    folder = tmp_path_factory.mktemp("prefect-server")
    home, inbox = folder / "home", folder / "inbox"
    train = folder / "adult-slice.data.gz"
    sha256 = write_table(
        read_split(adult_settings.dataset, "train").rows.head(6_000), train, adult_settings.dataset
    )
    config = write_adult_config(
        folder,
        dataset={"train": {"path": str(train), "sha256": sha256}},
        registry={"model_name": MODEL_NAME},
        # the wiring is under test here, not the scan: its cheapest setting
        poisoning={"folds": 2, "slice_purity": False},
        gate={
            **LENIENT_GATE,
            "min_accuracy": 0.6,
            "min_roc_auc": 0.6,
            "max_demographic_parity_difference": 0.5,
        },
        # Scheduled once a year: the test starts drift-check runs itself instead of waiting for a cron.
        drift={"inbox": str(inbox), "schedule": "0 0 1 1 *", "cooldown_minutes": 60},
    )
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    env |= {
        "GUARDFLOW_HOME": str(home),
        "PREFECT_HOME": str(folder / "prefect"),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_PREFETCH_SECONDS": "5",
        "PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS": "2",
        "PREFECT_UI_ENABLED": "false",
    }
    state = Server(api=api, env=env, home=home, config=config, inbox=inbox, folder=folder)
    server_log, worker_log = folder / "server.log", folder / "worker.log"
    started: list[subprocess.Popen[bytes]] = []
    try:
        command = [str(VENV_BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
        started.append(start_logged(command, env, server_log))
        _wait_for_api(api, started[0], server_log)
        state.mark("server_up")
        # The worker starts beside the deploy (it creates the work pool if it comes first).
        worker = [str(VENV_BIN / "guardflow"), "worker", "--config", str(config)]
        started.append(start_logged(worker, env, worker_log))
        deployed = subprocess.run(
            [str(VENV_BIN / "guardflow"), "deploy", "--config", str(config)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert deployed.returncode == 0, (
            f"guardflow deploy failed:\n{deployed.stdout}\n{deployed.stderr[-3000:]}"
        )
        state.mark("deployed")
        yield state
    finally:
        for process in reversed(started):
            stop_group(process)
        OUTPUT.mkdir(parents=True, exist_ok=True)
        (OUTPUT / "prefect_server.json").write_text(json.dumps(state.timings, indent=2) + "\n")
        for log in (server_log, worker_log):
            if log.exists():
                shutil.copy(log, OUTPUT / f"prefect_{log.name}")


def test_deploy_registers_the_three_deployments(server: Server) -> None:
    # given the server after `guardflow deploy`
    # when its deployments are listed
    flows = {flow["id"]: flow["name"] for flow in _call("POST", f"{server.api}/flows/filter", {})}
    found = _call("POST", f"{server.api}/deployments/filter", {})
    names = {f"{flows[deployment['flow_id']]}/{deployment['name']}" for deployment in found}
    drift = _call("GET", f"{server.api}/deployments/name/drift-check-inbox/{DATASET}")
    # then all three are there, drift-check on its cron and one run at a time
    assert len(names) == 3, (
        f"expected safety-train, drift-check-inbox and drift-retrain deployments, got {names}"
    )
    crons = [schedule["schedule"].get("cron") for schedule in drift["schedules"]]
    assert crons == ["0 0 1 1 *"], f"drift-check must carry the config's cron, has {crons}"
    assert drift["global_concurrency_limit"]["limit"] == 1, "drift-check runs one at a time"


def _wait_for_started_retrain(server: Server, state: Path) -> None:
    """Wait until the first retrain has passed its guard (its `started` record exists): the cooldown is on."""
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        if any(row["decision"] == "started" for row in server_state.retrain_records(state, DATASET)):
            return
        time.sleep(1)
    pytest.fail(f"no retrain started within {RUN_TIMEOUT:.0f} s")


def _record_run_times(server: Server) -> None:
    for flow_name in ("drift-check-inbox", "drift-check", "drift-retrain", "safety-train"):
        finished = [run for run in _flow_runs(server, flow_name) if run["state_type"] in TERMINAL]
        for number, run in enumerate(finished, start=1):
            server.timings[f"run_seconds.{flow_name}.{number}"] = round(run["total_run_time"], 1)


def test_drift_retrains_once_iid_does_not_and_cooldown_is_recorded(
    server: Server, batches, adult_settings
) -> None:
    logs = [server.folder / "worker.log"]
    state = server_state.state_path(server.home)
    # given a champion trained through the safety-train deployment
    _run_deployment(server, f"safety-train/{DATASET}")
    _wait_for_runs(server, "safety-train", 1, logs)
    server.mark("champion_trained")
    assert _model_versions(server.home) == ["1"], "the champion is version 1"
    # and a drifted batch and an i.i.d. batch in the inbox
    server.inbox.mkdir(parents=True, exist_ok=True)
    write_table(batches["drifted"], server.inbox / "a-over50.csv", adult_settings.dataset)
    write_table(batches["iid"], server.inbox / "b-iid.csv", adult_settings.dataset)
    # when the drift-check deployment runs
    _run_deployment(server, f"drift-check-inbox/{DATASET}")
    _wait_for_runs(server, "drift-check-inbox", 1, logs)
    server.mark("first_drift_check_done")
    # then both batches are checked once and filed, none deleted
    outcomes = {
        Path(str(row["path"])).name: row["outcome"] for row in server_state.batch_records(state, DATASET)
    }
    assert outcomes == {"a-over50.csv": "drift_detected", "b-iid.csv": "no_drift"}, (
        f"batch outcomes: {outcomes}"
    )
    processed = sorted(path.name for path in (server.inbox / "processed").iterdir())
    assert processed == ["a-over50.csv", "b-iid.csv"], f"both batches are filed, none deleted: {processed}"

    # given the drifted batch's retrain has started (the cooldown runs from its start)
    _wait_for_started_retrain(server, state)
    server.mark("retrain_started")
    # and a second drifted batch arrives, with the first drifted batch again under a new name
    write_table(batches["poisoned"], server.inbox / "c-over50.csv", adult_settings.dataset)
    shutil.copy(server.inbox / "processed" / "a-over50.csv", server.inbox / "d-over50-again.csv")
    # when drift-check runs again
    _run_deployment(server, f"drift-check-inbox/{DATASET}")
    _wait_for_runs(server, "drift-check-inbox", 2, logs)
    server.mark("second_drift_check_done")
    # then the first event's retrain completed and registered a new model version
    retrains = _wait_for_runs(server, "drift-retrain", 2, logs)
    server.mark("both_retrain_runs_done")
    trains = _wait_for_runs(server, "safety-train", 2, logs)
    _record_run_times(server)
    assert len(retrains) == 2 and len(trains) == 2, (
        "two drift events (a and c), one retrain trained (beside the champion's run); b starts none"
    )
    versions = _model_versions(server.home)
    assert versions == ["1", "2"], (
        f"the retrain must register version 2 of {MODEL_NAME}, and only it: {versions}"
    )
    # and the second drifted batch's trigger is recorded but not acted on
    triggers = server_state.retrain_records(state, DATASET)
    decisions = [row["decision"] for row in triggers]
    assert decisions[0] == "started" and decisions[1] in ("cooldown", "in_flight"), f"triggers: {triggers}"
    run_dirs = {
        Path(str(row["path"])).name: row["run_dir"] for row in server_state.batch_records(state, DATASET)
    }
    # and the sound retrain on the subpopulation shift is promoted: the audit (one pool) passes, the absolute
    # lines are judged on the test split and the no-regression lines also on the batch's window
    retrain = json.loads((Path(str(run_dirs["a-over50.csv"])) / "retrain" / "summary.json").read_text())
    lines = {line.split()[1]: line for line in retrain["gate"]["lines"]}
    assert triggers[0]["outcome"] == "promoted", f"the retrain must be promoted: {retrain['gate']['reasons']}"
    for name in ("mia_auc", "mia_epsilon_lower_bound"):
        assert lines[name].startswith("PASS") and "audit-split rows" in lines[name], (
            f"audit line: {lines[name]}"
        )
    assert "on test set adult.test.gz" in lines["accuracy"], f"absolute lines on the test split: {lines}"
    assert lines["no_regression_window[accuracy]"].startswith("PASS"), f"window line: {lines}"
    assert retrain["window"]["champion_version"] == "1", f"judged against the champion: {retrain['window']}"
    recorded = json.loads((Path(str(run_dirs["c-over50.csv"])) / "retrain_trigger.json").read_text())
    assert recorded["decision"] == decisions[1] and not recorded["retrain_run_dir"], (
        f"c's trigger: {recorded}"
    )
    assert not (Path(str(run_dirs["c-over50.csv"])) / "retrain").exists(), "nothing trained for batch c"
    # and the poisoned batch c was screened against the champion's data: its planted rows are quarantined as
    # suspects, its retrain would wait for approval, and the champion stays the sound retrain (version 2)
    checked = json.loads((Path(str(run_dirs["c-over50.csv"])) / "summary.json").read_text())
    quarantine = pd.read_parquet(Path(str(run_dirs["c-over50.csv"])) / "quarantine.parquet")
    suspects = set(quarantine.loc[quarantine["stage"] == "batch_screen", "source_row"])
    planted = batches["poisoned_rows"]
    assert len(suspects & planted) >= 0.9 * len(planted), f"{len(suspects & planted)} of {len(planted)} found"
    assert checked["drift"]["approval_reasons"], f"a poisoned batch's retrain waits: {checked['drift']}"
    assert _champion(server.home) == "2", "the champion did not move to a model trained on a poisoned batch"
    # and the copy of an already processed batch is filed without a second drift-check
    drift_checks = _flow_runs(server, "drift-check")
    assert len(drift_checks) == 3, (
        f"batches a, b and c are checked once each, copy d never: {len(drift_checks)}"
    )
    filed = sorted(path.name for path in (server.inbox / "processed").iterdir())
    assert "d-over50-again.csv" in filed and not any(server.inbox.glob("*.csv")), f"inbox left: {filed}"


def test_drift_figures_are_published_to_mlflow_and_prefect(server: Server) -> None:
    # given the three batches checked above (a, b, c)
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{server.home / 'mlflow' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.get_experiment_by_name(experiment_name(DATASET, "drift"))
    assert experiment is not None, "drift figures need their experiment"
    # when the dataset's drift monitor run, the trigger records and the Prefect artifacts are read
    monitors = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`guardflow.drift_monitor` = '{DATASET}'"
    )
    history = client.get_metric_history(monitors[0].info.run_id, "drifted_share") if monitors else []
    triggers = client.get_experiment_by_name("guardflow-drift-triggers")
    recorded = client.search_runs([triggers.experiment_id]) if triggers is not None else []
    body = {"artifacts": {"key": {"any_": [f"drift-{DATASET}"]}}}
    artifacts = _call("POST", f"{server.api}/artifacts/filter", body)
    # then one monitor run holds a time series of three points, one per batch, the drifted ones above threshold
    assert len(monitors) == 1, f"one drift monitor run per dataset, found {len(monitors)}"
    shares = [point.value for point in sorted(history, key=lambda point: point.step)]
    assert len(shares) == 3 and shares[0] >= 0.3 > shares[1] and shares[2] >= 0.3, f"drifted shares: {shares}"
    # and both triggers are recorded in the tracking store with their decision
    decisions = sorted(run.data.tags.get("guardflow.trigger.decision", "") for run in recorded)
    assert len(decisions) == 2 and decisions[1] == "started", f"trigger records: {decisions}"
    # and a markdown artifact per batch names the drifted columns
    assert len(artifacts) == 3, f"one markdown artifact per batch, found {len(artifacts)}"
    assert any("`age`" in artifact["data"] for artifact in artifacts), "the drifted age column is listed"
