"""drift-check under the session's Prefect harness: no drift on held-out data, a guarded retrain on a shift."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.drift_check import drift_check
from guardflow.data.table import typed_frame
from guardflow.io.datasets import read_split, write_table
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
