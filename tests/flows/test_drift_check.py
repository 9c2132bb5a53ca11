"""drift-check under the session's Prefect harness: no drift on held-out data, a guarded retrain on a shift."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flows.drift_check import drift_check
from guardflow.data.table import typed_frame
from guardflow.io.datasets import read_split, write_table
from guardflow.settings import guardflow_home
from tests.conftest import write_adult_config


@pytest.fixture(scope="module")
def test_rows(adult_settings):
    return read_split(adult_settings.dataset, "test").rows


def test_held_out_batch_shows_no_drift(tmp_path: Path, adult_settings, test_rows) -> None:
    # given 5,000 rows of adult.test as a new batch and no champion yet (reference: the configured train file)
    batch = tmp_path / "batch.csv"
    write_table(test_rows.head(5_000), batch, adult_settings.dataset)
    config = write_adult_config(tmp_path, registry={"model_name": "adult-drift-none"})
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
    config = write_adult_config(tmp_path, registry={"model_name": "adult-drift-shift"})
    # when drift-check runs
    summary = drift_check(str(config), str(batch), str(tmp_path / "run"))
    # then drift is detected on age and safety-train ran on reference plus batch, through the gate
    assert summary.drift is not None and summary.drift.drift_detected, "an over-50 batch must drift"
    assert "age" in summary.drift.drifted_columns, f"age must be among drifted columns: {summary.drift}"
    assert summary.status in ("drift_retrained", "drift_rejected"), (
        f"a retrain must have run: {summary.status}"
    )
    retrain = json.loads((tmp_path / "run" / "retrain" / "summary.json").read_text())
    assert retrain["data"]["rows_in"] == 32_561 + len(typed[typed["age"] > 50]), "reference plus batch rows"
    assert retrain["gate"] is not None, "the retrained candidate goes through the gate"


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
    config = write_adult_config(tmp_path, registry={"model_name": "adult-drift-poisoned"})
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
    assert len(found) >= 0.9 * len(planted_rows), f"suspects hold {len(found)} of {len(planted_rows)} planted rows"
    assert drift.approval_reasons and "suspects" in drift.approval_reasons[0], f"why it waits: {drift}"
    retrain = json.loads((tmp_path / "run" / "retrain" / "summary.json").read_text())
    assert retrain["status"] in ("awaiting_approval", "rejected"), f"never promoted by itself: {retrain['status']}"
    registry.configure_tracking(guardflow_home(), experiment="guardflow-adult")
    assert registry.champion_version("adult-drift-poisoned") is None, "the champion alias did not move"
