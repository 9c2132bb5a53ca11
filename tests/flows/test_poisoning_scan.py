"""poisoning-scan end to end on a slice of Adult with a planted backdoor, under the session's Prefect harness."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.plant_attacks import plant_backdoor
from flows.poisoning_scan import poisoning_scan
from guardflow.cli import main
from guardflow.io.datasets import read_table, write_table
from guardflow.poisoning.scan_result import BACKDOOR
from tests.conftest import write_adult_config
from tests.lineage_validation import event_problems, read_events

TRIGGER = {"marital-status": "Separated", "occupation": "Tech-support", "hours-per-week": "44"}


@pytest.fixture(scope="module")
def backdoored_slice(
    tmp_path_factory: pytest.TempPathFactory, adult_slice: Path, adult_settings
) -> tuple[Path, pd.Index]:
    """The 6,000-row slice with a trigger set on 1% of its negative rows, relabelled positive."""
    dataset = adult_settings.dataset
    rows = read_table(adult_slice, dataset).rows
    poisoned, planted = plant_backdoor(rows, dataset, TRIGGER, 0.01, np.random.default_rng(0))
    path = tmp_path_factory.mktemp("backdoor") / "adult-backdoor.data"
    write_table(poisoned, path, dataset)
    return path, planted


@pytest.fixture(scope="module")
def scanned_run(tmp_path_factory: pytest.TempPathFactory, backdoored_slice) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("scan")
    config = write_adult_config(folder)
    run_dir = folder / "run"
    summary = poisoning_scan(str(config), str(run_dir), str(backdoored_slice[0]))
    return run_dir, summary.model_dump(mode="json")


def test_scan_run_writes_summary_with_per_detector_counts(scanned_run) -> None:
    run_dir, summary = scanned_run
    written = json.loads((run_dir / "summary.json").read_text())
    # then summary.json holds the scan's figures, every row accounted for, and no training section
    assert written["status"] == summary["status"] == "scanned", f"a scan run ends scanned: {written['error']}"
    data, poisoning = written["data"], written["poisoning"]
    assert data["rows_in"] == 6_000 and data["rows_in"] == data["rows_accepted"] + data["rows_quarantined"], (
        "no row may be lost"
    )
    assert poisoning["rows_flagged"] == data["quarantined_by_scan"], "flagged rows are quarantined"
    assert poisoning["per_detector"][BACKDOOR] >= 54, f"the 60 backdoored rows are found: {poisoning}"
    assert set(poisoning["detector_seconds"]) == set(poisoning["per_detector"]), "seconds per detector"
    assert written["privacy"] is None and written["model"] is None, "a scan trains nothing"


def test_quarantine_names_source_row_detector_and_score(scanned_run, backdoored_slice) -> None:
    run_dir, summary = scanned_run
    quarantine = pd.read_parquet(run_dir / "quarantine.parquet")
    assert len(quarantine) == summary["data"]["rows_quarantined"], "every quarantined row is in the file"
    assert {"source_row", "stage", "reasons", "detector", "score"} <= set(quarantine.columns), (
        f"source_row, detector and score per row, got {list(quarantine.columns)}"
    )
    assert quarantine["source_row"].is_unique, "one verdict per row"
    by_scan = quarantine[quarantine["stage"] == "poisoning_scan"]
    backdoored = by_scan[by_scan["detector"].str.contains(BACKDOOR)]
    planted = set(backdoored_slice[1])
    assert set(backdoored["source_row"]) <= planted | set(by_scan["source_row"]), "rows keep their source_row"
    assert len(planted & set(backdoored["source_row"])) >= 0.9 * len(planted), (
        "the planted rows are quarantined"
    )
    assert by_scan["score"].notna().all(), "each scan verdict carries a score"


def test_scan_emits_valid_lineage_with_per_detector_counts(scanned_run) -> None:
    _, summary = scanned_run
    flow_id = summary["lineage"]["run_id"]
    events = [
        event
        for event in read_events(Path(summary["lineage"]["path"]))
        if event["run"]["runId"] == flow_id
        or event["run"].get("facets", {}).get("parent", {}).get("run", {}).get("runId") == flow_id
    ]
    for event in events:
        assert not event_problems(event), f"event must follow the OpenLineage spec: {event_problems(event)}"
    completes = {e["job"]["name"].rsplit(".", 1)[-1]: e for e in events if e["eventType"] == "COMPLETE"}
    assert {"load_train", "validate_contract", "scan_poisoning"} <= set(completes), (
        f"stages: {sorted(completes)}"
    )
    facet = completes["scan_poisoning"]["run"]["facets"]["guardflow_poisoning_scan"]
    assert facet["perDetector"] == summary["poisoning"]["per_detector"], (
        "the facet holds the per-detector counts"
    )
    assert facet["seconds"] == pytest.approx(summary["poisoning"]["seconds"], abs=0.006), (
        "and the scan's seconds, as the summary has them (to 3 decimals there, 2 here)"
    )


def test_scan_cli_policy_failure_is_one_line_and_exit_2(
    tmp_path: Path, backdoored_slice, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a policy that tolerates no flagged row at all
    config = write_adult_config(tmp_path, poisoning={"max_flagged_share": 0.0})
    # when the CLI scans the backdoored slice
    code = main(
        [
            "scan",
            "--config",
            str(config),
            "--data",
            str(backdoored_slice[0]),
            "--run-dir",
            str(tmp_path / "run"),
        ]
    )
    # then the run fails with one readable line and exit 2, and the failed run still writes its summary
    errors = capsys.readouterr().err.strip().splitlines()
    assert code == 2, f"a policy failure must exit 2, got {code}"
    assert len(errors) == 1 and "above the policy's limit" in errors[0], f"one clear line, got {errors}"
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["flow"] == "poisoning-scan", "failed run recorded"


def test_scan_of_an_empty_file_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    config = write_adult_config(tmp_path)
    code = main(["scan", "--config", str(config), "--data", str(empty), "--run-dir", str(tmp_path / "run")])
    errors = capsys.readouterr().err.strip().splitlines()
    assert code == 2, f"an empty CSV must exit 2, got {code}"
    assert errors == [f"guardflow: data file is empty: {empty}"], f"one line naming the problem, got {errors}"
