"""`guardflow validate`: the contract stage alone, with every row accounted for in summary.json, MLflow and
lineage, a Data Docs page, and bad batches stopped with one line and exit 2."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from guardflow.cli import main
from guardflow.io import registry
from guardflow.settings import guardflow_home
from tests.conftest import write_adult_config
from tests.lineage_validation import event_problems, read_events

PLANTED = {3: "age", 10: "hours-per-week", 25: "workclass"}  # line index -> column made invalid


def _adult_lines(adult_settings, count: int) -> list[str]:
    text = gzip.decompress(adult_settings.dataset.train.path.read_bytes()).decode()
    return [line for line in text.splitlines() if line][:count]


def _break(line: str, column: str, columns: list[str]) -> str:
    values = line.split(", ")
    values[columns.index(column)] = {"age": "170", "hours-per-week": "-5", "workclass": "Astronaut"}[column]
    return ", ".join(values)


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory, adult_settings) -> tuple[Path, int, dict]:
    # given 400 Adult rows, 3 of them made to break row-level expectations
    folder = tmp_path_factory.mktemp("validate")
    columns = adult_settings.dataset.expected_columns
    lines = _adult_lines(adult_settings, 400)
    for index, column in PLANTED.items():
        lines[index] = _break(lines[index], column, columns)
    data = folder / "batch.csv"
    data.write_text("\n".join(lines) + "\n")
    config = write_adult_config(folder)
    # when the contract runs alone through the CLI
    code = main(["validate", "--config", str(config), "--data", str(data), "--run-dir", str(folder / "run")])
    summary = json.loads((folder / "run" / "summary.json").read_text())
    return folder / "run", code, summary


def test_validate_quarantines_bad_rows_and_accounts_for_every_row(checked) -> None:
    run_dir, code, summary = checked
    # then the batch passes (exit 0) with the 3 bad rows set aside and the rest accepted
    assert code == 0 and summary["status"] == "validated", f"a mostly good batch passes: {summary['error']}"
    data = summary["data"]
    assert (data["rows_in"], data["rows_accepted"], data["rows_quarantined"]) == (400, 397, 3), data
    quarantine = pd.read_parquet(run_dir / "quarantine.parquet")
    assert sorted(quarantine["source_row"]) == sorted(PLANTED), "the planted rows, by their line in the file"
    for _, row in quarantine.iterrows():
        column = PLANTED[row["source_row"]]
        assert any(reason.startswith(f"{column}: ") for reason in row["reasons"]), (
            f"row {row['source_row']} must name the column it broke ({column}): {row['reasons']}"
        )
    assert quarantine.loc[quarantine["source_row"] == 3, "age"].item() == "170", "original values are kept"


def test_validate_writes_data_docs_and_logs_the_check_to_mlflow(checked) -> None:
    run_dir, _, summary = checked
    page = run_dir / "contract" / "data_docs.html"
    assert summary["contract"]["report_path"] == str(page) and page.is_file(), "Data Docs in the run folder"
    html = page.read_text()
    assert "expect_column_values_to_be_between" in html or "values must be" in html.lower(), (
        "the page is GX's rendering of the suite's results"
    )
    registry.configure_tracking(guardflow_home(), experiment="guardflow-adult-contract")
    run = MlflowClient().get_run(summary["contract"]["tracking_run_id"])
    assert run.data.metrics["rows_in"] == 400 and run.data.metrics["rows_quarantined"] == 3, run.data.metrics
    assert run.data.tags["guardflow.rows_balanced"] == "True", "the balance is checked and recorded"
    logged = {item.path for item in MlflowClient().list_artifacts(run.info.run_id, "contract")}
    assert "contract/data_docs.html" in logged, f"Data Docs logged to MLflow: {logged}"
    assert mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="quarantine.parquet")


def test_validate_lineage_carries_quality_metrics_and_the_row_balance(checked) -> None:
    _, _, summary = checked
    events = read_events(Path(summary["lineage"]["path"]))
    complete = [
        event for event in events
        if event["eventType"] == "COMPLETE" and event["job"]["name"].endswith(".validate_contract")
        and event["run"]["facets"]["parent"]["run"]["runId"] == summary["lineage"]["run_id"]
    ]  # fmt: skip
    assert len(complete) == 1, "one contract stage in the run"
    event = complete[0]
    assert not event_problems(event), f"the event follows the spec: {event_problems(event)}"
    accounting = event["run"]["facets"]["guardflow_contract"]
    assert (accounting["rowsIn"], accounting["rowsAccepted"], accounting["rowsQuarantined"]) == (400, 397, 3)
    assert accounting["balanced"] is True
    metrics = event["inputs"][0]["inputFacets"]["dataQualityMetrics"]
    assert metrics["rowCount"] == 400 and "age" in metrics["columnMetrics"], metrics


def test_validate_stops_a_batch_with_an_unknown_label_in_one_line(
    tmp_path: Path, adult_settings, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a batch whose label column holds a value outside the label set
    lines = _adult_lines(adult_settings, 200)
    lines[7] = lines[7].rsplit(", ", 1)[0] + ", maybe"
    data = tmp_path / "batch.csv"
    data.write_text("\n".join(lines) + "\n")
    config = write_adult_config(tmp_path)
    # when it is validated
    code = main(
        ["validate", "--config", str(config), "--data", str(data), "--run-dir", str(tmp_path / "run")]
    )
    # then the batch stops: exit 2, one line naming the label column, a failed summary, and still a report
    errors = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(errors) == 1, f"exit 2 and one line, got {code}: {errors}"
    assert "income" in errors[0], f"the line names the label column: {errors[0]}"
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "failed" and "income" in summary["error"]
    assert (tmp_path / "run" / "contract" / "data_docs.html").is_file(), (
        "a stopped batch still has its report"
    )


def test_chunked_validate_accounts_for_the_same_rows_as_in_memory(
    checked, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given the same batch as the in-memory check (3 planted bad rows)
    run_dir, _, in_memory = checked
    data = Path(in_memory["data"]["path"])
    config = run_dir.parent / "config.yaml"
    # when it is validated chunk by chunk
    code = main(
        [
            "validate",
            "--config",
            str(config),
            "--data",
            str(data),
            "--chunked",
            "--run-dir",
            str(tmp_path / "run"),
        ]
    )
    # then the verdict and the accounting are those of the in-memory check, and the quarantine was streamed
    assert code == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "validated"
    for key in ("rows_in", "rows_accepted", "rows_quarantined", "sha256"):
        assert summary["data"][key] == in_memory["data"][key], (
            f"{key}: {summary['data']} vs {in_memory['data']}"
        )
    quarantine = pd.read_parquet(tmp_path / "run" / "quarantine.parquet")
    assert sorted(quarantine["source_row"]) == sorted(PLANTED), "the same rows, by their line in the file"
