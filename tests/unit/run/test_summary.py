"""The run summary: row accounting that refuses a lost row, the status each outcome gets, and the printed text."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pydantic
import pytest

from guardflow.contract.validate_contract import validate_table
from guardflow.io.datasets import read_table
from guardflow.io.registry import RegisteredVersion
from guardflow.run.format_summary import format_summary
from guardflow.run.summary import (
    DriftFigures,
    GateFigures,
    RunHeader,
    RunSummary,
    contract_summary,
    data_figures,
    drift_summary,
    failed_summary,
    with_model,
)
from guardflow.settings import Settings

HEADER = RunHeader(
    flow="safety-train", config="configs/adult.yaml", config_sha256="c" * 64, run_dir="/runs/1"
)
DRIFT = DriftFigures(
    batch_path="/inbox/batch.csv",
    batch_sha256="d" * 64,
    rows_reference=1000,
    rows_current=500,
    drifted_share=0.25,
    drifted_columns=["age", "hours-per-week"],
    drift_detected=True,
    report_path="/runs/2/drift.html",
)


def test_data_figures_add_up_and_split_the_quarantine_by_stage() -> None:
    # given 1,000 rows of which the contract quarantined 30 and the scan 12
    figures = data_figures("/data/a.csv", "a" * 64, 1000, 30, 12, "/runs/1/quarantine.parquet")
    # then every row is accepted or quarantined, and the stages' shares are kept apart
    assert (figures.rows_accepted, figures.rows_quarantined) == (958, 42), f"got {figures}"
    assert (figures.quarantined_by_contract, figures.quarantined_by_scan) == (30, 12), f"got {figures}"


def test_data_figures_refuse_more_quarantined_rows_than_came_in() -> None:
    # given quarantine counts larger than the batch / when the figures are built / then they are refused
    with pytest.raises(RuntimeError, match="row accounting broken"):
        data_figures("/data/a.csv", "a" * 64, 10, 8, 5, "/runs/1/quarantine.parquet")


def test_a_failed_run_keeps_the_first_line_of_its_error_or_the_error_type() -> None:
    # given errors with a two-line message and with none
    two_lines = failed_summary(HEADER, ValueError("contract broken: 41% quarantined\nsee the report"))
    silent = failed_summary(HEADER, KeyboardInterrupt())
    # then the status is failed, and the error is one line that says what happened
    assert two_lines.status == "failed" and two_lines.error == "contract broken: 41% quarantined", two_lines
    assert silent.error == "KeyboardInterrupt", f"an empty message is named by its type, got {silent.error!r}"
    assert (two_lines.data, two_lines.gate, two_lines.model) == (None, None, None), "no stage was reached"


@pytest.mark.parametrize(
    ("retrain_status", "requested", "status"),
    [
        (None, False, "no_drift"),
        ("promoted", False, "drift_retrained"),
        ("rejected", False, "drift_rejected"),
        (None, True, "drift_detected"),
    ],
)
def test_a_drift_check_is_named_by_what_its_retrain_did(
    retrain_status: str | None, requested: bool, status: str
) -> None:
    # given a drift check that started no retrain, one whose retrain passed or failed, or one that asked a server
    retrain = None
    if retrain_status is not None:
        retrain = RunSummary(
            **HEADER.model_copy(update={"run_dir": "/runs/3"}).model_dump(),
            status=retrain_status,
            seconds=40.0,
        )
    # when summarised
    summary = drift_summary(HEADER, DRIFT, retrain, requested=requested)
    # then the status names the outcome and the drift section points at the retrain
    assert summary.status == status, f"expected {status}, got {summary.status}"
    expected_dir = "/runs/3" if retrain is not None else None
    assert summary.drift is not None and summary.drift.retrain_run_dir == expected_dir, summary.drift
    expected_status = "requested" if requested else retrain_status
    assert summary.drift.retrain_status == expected_status, f"retrain status {summary.drift.retrain_status}"


def test_a_stand_alone_contract_check_accounts_for_every_row(
    adult_settings: Settings, tmp_path: Path
) -> None:
    # given the first 300 rows of adult.data with one row made unreadable
    lines = gzip.decompress(adult_settings.dataset.train.path.read_bytes()).split(b"\n")[:300]
    lines[7] += b", extra"
    path = tmp_path / "slice.csv"
    path.write_bytes(b"\n".join(lines) + b"\n")
    table = read_table(path, adult_settings.dataset)
    contract = validate_table(table, adult_settings.dataset, adult_settings.contract)
    # when the check is summarised
    summary = contract_summary(
        HEADER, (path, table.sha256, 300), contract, tmp_path / "q.parquet", "mlflow-run"
    )
    # then the status is validated, the bad row is quarantined by the contract, and the suite is counted
    assert summary.status == "validated", summary.status
    assert summary.data is not None and summary.contract is not None, "data and contract sections are filled"
    assert (summary.data.rows_in, summary.data.rows_quarantined) == (300, 1), f"got {summary.data}"
    assert summary.data.quarantined_by_contract == 1 and summary.data.quarantined_by_scan == 0, summary.data
    assert summary.contract.expectations == len(contract.outcomes) > 0, f"got {summary.contract}"
    assert summary.contract.tracking_run_id == "mlflow-run", "the MLflow run of the check is recorded"
    # and a result that saw another number of rows than the file holds is refused
    with pytest.raises(RuntimeError, match="contract saw 300 rows of 301"):
        contract_summary(HEADER, (path, table.sha256, 301), contract, tmp_path / "q.parquet", "mlflow-run")


def test_summary_json_round_trips_and_refuses_unknown_keys() -> None:
    # given a summary with a drift section and a registered model
    version = RegisteredVersion("guardflow-adult", "4", "run-4", "models:/guardflow-adult/4", ("champion",))
    summary = with_model(drift_summary(HEADER, DRIFT, None), version, "w" * 64)
    # when written as JSON and read back
    text = summary.model_dump_json()
    # then it is the same record, and a key the schema does not know is an error, not silently kept
    assert RunSummary.model_validate_json(text) == summary, "summary.json must read back to the same record"
    assert summary.model is not None and summary.model.aliases == ["champion"], summary.model
    with pytest.raises(pydantic.ValidationError, match="extra"):
        RunSummary.model_validate({**json.loads(text), "unexpected": 1})


def test_the_printed_summary_has_a_line_per_section_that_ran() -> None:
    # given a rejected training run with data, gate and lineage sections only
    summary = RunSummary(
        **HEADER.model_dump(),
        status="rejected",
        seconds=12.34,
        data=data_figures("/data/a.csv", "a" * 64, 1000, 30, 0, "/runs/1/quarantine.parquet"),
        gate=GateFigures(
            passed=False,
            reasons=["FAIL accuracy 0.7000 (must be >= 0.8)"],
            lines=["FAIL accuracy 0.7000 (must be >= 0.8)", "PASS ece 0.0300 (must be <= 0.05)"],
        ),
    )
    # when printed
    lines = format_summary(summary).splitlines()
    # then the head names the flow, status and time, and each section that ran has its line(s), in order
    assert lines[0] == "safety-train: REJECTED in 12.3s  (/runs/1)", lines[0]
    assert lines[1] == "  data       1,000 rows in, 970 accepted, 30 quarantined (contract 30)", lines[1]
    assert lines[2] == "  gate       failed (compared with no champion yet)", lines[2]
    assert lines[3:] == [
        "             FAIL accuracy 0.7000 (must be >= 0.8)",
        "             PASS ece 0.0300 (must be <= 0.05)",
    ], f"every gate line is printed: {lines[3:]}"


def test_the_run_key_changes_with_any_of_data_config_and_code() -> None:
    from guardflow.run.rerun_key import rerun_figures

    base = rerun_figures(["a" * 64, "b" * 64], "c" * 64, "0.1.0+gabc")
    assert rerun_figures(["b" * 64, "a" * 64], "c" * 64, "0.1.0+gabc").run_key == base.run_key, "order-free"
    for changed in (
        rerun_figures(["a" * 64, "d" * 64], "c" * 64, "0.1.0+gabc"),
        rerun_figures(["a" * 64, "b" * 64], "e" * 64, "0.1.0+gabc"),
        rerun_figures(["a" * 64, "b" * 64], "c" * 64, "0.1.0+gdef"),
    ):
        assert changed.run_key != base.run_key, f"a change must change the key: {changed}"


def test_a_family_of_many_gate_lines_prints_as_one_line_and_every_fail_in_full() -> None:
    from guardflow.run.format_summary import gate_lines

    # given 6 no_regression lines passing, 4 waived for one reason, one failing, and two single lines
    passing = [f"PASS no_regression[race=G{i}, tpr] 0.0000 (must be >= -0.05)" for i in range(6)]
    waived = [
        f"WAIVED no_regression[sex=S{i}, fpr, reference rows] (no champion to compare to)" for i in range(4)
    ]
    failing = "FAIL no_regression[sex=Female, tpr] -0.2000 (must be >= -0.05)"
    lines = [
        "PASS accuracy 0.85 (must be >= 0.84)",
        *passing,
        failing,
        *waived,
        "WAIVED differential (no champion)",
    ]
    # when shown / then a family counts as one line, in the place of its first line; the failure is whole
    assert gate_lines(lines) == [
        "PASS accuracy 0.85 (must be >= 0.84)",
        "PASS 6 no_regression lines",
        failing,
        "WAIVED 4 no_regression lines (no champion to compare to)",
        "WAIVED differential (no champion)",
    ]
