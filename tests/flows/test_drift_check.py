"""drift-check under the session's Prefect harness: no drift on held-out data, a guarded retrain on a shift."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flows.drift_check import drift_check
from flows.drift_retrain import drift_retrain
from flows.safety_train import safety_train
from guardflow.data.table import typed_frame
from guardflow.io.datasets import read_split, read_table, write_table
from guardflow.settings import guardflow_home
from tests.conftest import WIRING_POISONING, write_adult_config
from tests.flows.conftest import LENIENT_GATE


@pytest.fixture(scope="module")
def test_rows(adult_settings):
    return read_split(adult_settings.dataset, "test").rows


def test_held_out_batch_shows_no_drift(tmp_path: Path, adult_settings, test_rows) -> None:
    # given 5,000 rows of adult.test as a new batch and no champion yet (reference: the configured train file)
    batch = tmp_path / "batch.csv"
    write_table(test_rows.head(5_000), batch, adult_settings.dataset)
    config = write_adult_config(
        tmp_path, poisoning=WIRING_POISONING, registry={"model_name": "adult-drift-none"}
    )
    # when drift-check runs
    summary = drift_check(str(config), str(batch), str(tmp_path / "run"))
    # then nothing drifted, no retrain ran, and the report and summary are written
    assert summary.status == "no_drift", f"held-out Adult must not drift: {summary.drift}"
    assert summary.drift is not None and summary.drift.retrain_run_dir is None, "no retrain without drift"
    assert (tmp_path / "run" / "drift_report.html").stat().st_size > 10_000, "the HTML report is saved"
    written = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert written["drift"]["drifted_share"] == summary.drift.drifted_share, "summary.json matches"


def test_shifted_batch_triggers_a_guarded_retrain(tmp_path: Path, adult_settings, test_rows) -> None:
    # given a batch of people over 50 only (a subpopulation shift)
    typed = typed_frame(test_rows, adult_settings.dataset)
    batch = tmp_path / "over50.csv"
    write_table(test_rows[typed["age"] > 50], batch, adult_settings.dataset)
    config = write_adult_config(
        tmp_path, poisoning=WIRING_POISONING, registry={"model_name": "adult-drift-shift"}
    )
    # when drift-check runs
    summary = drift_check(str(config), str(batch), str(tmp_path / "run"))
    # then drift is detected on age and safety-train ran on reference plus the batch minus its window
    assert summary.drift is not None and summary.drift.drift_detected, "an over-50 batch must drift"
    assert "age" in summary.drift.drifted_columns, f"age must be among drifted columns: {summary.drift}"
    assert summary.status in ("drift_retrained", "drift_rejected"), (
        f"a retrain must have run: {summary.status}"
    )
    retrain = json.loads((tmp_path / "run" / "retrain" / "summary.json").read_text())
    batch_rows = len(typed[typed["age"] > 50])
    window_rows = round(0.3 * batch_rows)
    assert retrain["data"]["rows_in"] == 32_561 + batch_rows - window_rows, (
        "reference plus batch minus window"
    )
    assert retrain["gate"] is not None, "the retrained candidate goes through the gate"
    assert retrain["window"]["rows"] == window_rows, "the window is the held-out 30% of the batch"
    assert retrain["window"]["champion"] is None, "no champion yet: nothing to compare on the window"


@pytest.fixture(scope="module")
def agreeing_champion(tmp_path_factory: pytest.TempPathFactory, adult_slice: Path) -> str:
    """A champion trained on the 6,000-row slice; the name of its registered model."""
    name = "adult-drift-agree"
    folder = tmp_path_factory.mktemp("champion")
    config = write_adult_config(
        folder, poisoning=WIRING_POISONING, registry={"model_name": name}, gate=LENIENT_GATE
    )
    summary = safety_train(str(config), str(folder / "run"), str(adult_slice))
    assert summary.status == "promoted", f"the champion must be promoted first: {summary.gate}"
    return name


def test_in_process_and_server_retrains_judge_alike(
    tmp_path: Path, adult_settings, test_rows, agreeing_champion
):
    # given a champion, a config that keeps passing candidates as challengers (so both retrains face the same
    # champion), and a batch of 2,000 people over 50
    config = write_adult_config(
        tmp_path,
        poisoning=WIRING_POISONING,
        registry={"model_name": agreeing_champion, "approval": "required"},
        gate=LENIENT_GATE,
    )
    typed = typed_frame(test_rows, adult_settings.dataset)
    batch = tmp_path / "over50.csv"
    write_table(test_rows[typed["age"] > 50].head(2_000), batch, adult_settings.dataset)
    # when `guardflow drift` retrains in-process
    in_process = drift_check(str(config), str(batch), str(tmp_path / "in-process"))
    # and the server path runs: drift-check emits the event, drift-retrain trains on the files it names
    requested = drift_check(str(config), str(batch), str(tmp_path / "server"), retrain="event")
    assert requested.status == "drift_detected", f"the server path requests a retrain: {requested.status}"
    first = json.loads((tmp_path / "in-process" / "retrain" / "summary.json").read_text())
    outcome = drift_retrain(
        str(config),
        requested.drift.batch_sha256,  # type: ignore[union-attr]
        str(tmp_path / "server" / "retrain_data.csv.gz"),
        str(tmp_path / "server" / "retrain_window.csv.gz"),
        ",".join(first["privacy"]["data_sources"]),
        str(tmp_path / "server"),
    )
    second = json.loads((tmp_path / "server" / "retrain" / "summary.json").read_text())
    # then both held out the same window and trained on the same rows
    windows = [
        read_table(tmp_path / path / "retrain_window.csv.gz", adult_settings.dataset)
        for path in ("in-process", "server")
    ]
    assert windows[0].sha256 == windows[1].sha256, (
        "the same batch and seed give the same window on both paths"
    )
    assert first["data"]["rows_in"] == second["data"]["rows_in"], "both train on reference plus the same rows"
    # and reach the same decision by the same lines, each saying which rows it was judged on
    assert in_process.status in ("drift_retrained", "drift_rejected"), f"a retrain ran: {in_process.status}"
    assert first["gate"]["lines"] == second["gate"]["lines"], (
        f"one rule on both paths:\n{first['gate']['lines']}\n{second['gate']['lines']}"
    )
    assert first["status"] == second["status"] == outcome["outcome"], (
        f"the same decision: {first['status']}, {second['status']}, trigger {outcome}"
    )
    assert first["window"] == second["window"], "candidate and champion score alike on the window"
    lines = {line.split()[1]: line for line in first["gate"]["lines"]}
    assert " on drift window retrain_window.csv.gz" in lines["no_regression_window[accuracy]"], (
        f"window lines are judged on the window: {lines}"
    )
    assert " on test set adult.test.gz" in lines["accuracy"], f"absolute lines stay on the test set: {lines}"
    assert " on test set adult.test.gz" in lines["no_regression[accuracy]"], "and no-regression there too"
    assert "audit-split rows" in lines["mia_epsilon_lower_bound"], "the audit is judged on the audit split"
    reference = [line for line in first["gate"]["lines"] if ", reference rows]" in line]
    assert reference and all("WAIVED" in line and "drift retrain" in line for line in reference), (
        f"a retrain's reference-row lines are waived with the reason (the labels predate the shift): {reference}"
    )
    assert first["window"]["champion_version"] is not None, "the window comparison names the champion"


def test_poisoned_batch_is_screened_and_its_retrain_waits(tmp_path: Path, adult_settings, test_rows) -> None:
    # given a batch of people over 50 (a genuine shift) in which 3% of the rows carry a trigger and the label >50K
    from bench.plant_attacks import plant_random_backdoor
    from guardflow.io import registry

    dataset = adult_settings.dataset
    typed = typed_frame(test_rows, dataset)
    over_50 = typed[typed["age"] > 50]
    trigger = {"occupation": "Sales", "hours-per-week": 37.0}
    poisoned, planted = plant_random_backdoor(
        over_50, dataset, trigger, dataset.label.positive, 0.03, "relabel", np.random.default_rng(0)
    )
    batch = tmp_path / "over50-poisoned.csv"
    write_table(poisoned, batch, dataset)
    config = write_adult_config(
        tmp_path, poisoning=WIRING_POISONING, registry={"model_name": "adult-drift-poisoned"}
    )
    # when drift-check runs in-process
    summary = drift_check(str(config), str(batch), str(tmp_path / "run"))
    # then the planted rows are quarantined as suspects, the retrain waits for a person, and no champion exists
    drift = summary.drift
    assert drift is not None and drift.screened, f"a drifted batch is screened: {drift}"
    quarantine = pd.read_parquet(tmp_path / "run" / "quarantine.parquet")
    suspects = quarantine[quarantine["stage"] == "batch_screen"]
    # write_table numbers rows from 0 in the order of `poisoned`: the planted rows' positions are their source rows
    planted_rows = set(np.flatnonzero(poisoned.index.isin(planted)))
    found = planted_rows & set(suspects["source_row"])
    assert len(found) >= 0.9 * len(planted_rows), (
        f"suspects hold {len(found)} of {len(planted_rows)} planted rows"
    )
    assert drift.approval_reasons and "suspects" in drift.approval_reasons[0], f"why it waits: {drift}"
    retrain = json.loads((tmp_path / "run" / "retrain" / "summary.json").read_text())
    assert retrain["status"] in ("awaiting_approval", "rejected"), (
        f"never promoted by itself: {retrain['status']}"
    )
    registry.configure_tracking(guardflow_home(), experiment="guardflow-adult")
    assert registry.champion_version("adult-drift-poisoned") is None, "the champion alias did not move"
