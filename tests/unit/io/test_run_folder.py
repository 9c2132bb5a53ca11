"""The run folder: a fresh folder per run, one quarantine file for every stage, and summary.json."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from guardflow.data.table import SOURCE_ROW
from guardflow.io.run_folder import (
    QUARANTINE_FILE,
    SUMMARY_FILE,
    new_run_dir,
    prepare_run_dir,
    write_quarantine,
    write_summary,
)


def test_each_run_gets_its_own_folder_named_after_its_flow(tmp_path: Path) -> None:
    # given a home with no runs folder yet / when two runs of one flow start
    first, second = new_run_dir(tmp_path, "safety-train"), new_run_dir(tmp_path, "safety-train")
    # then each has its own existing folder under runs/, named by time and flow
    assert first != second, "two runs must never share a folder"
    assert first.parent == second.parent == tmp_path / "runs", f"{first}, {second}"
    assert first.is_dir() and second.is_dir(), "the folders are made when the run starts"
    assert first.name.endswith("Z-safety-train") and sorted([second.name, first.name])[0] == first.name, (
        f"names sort in start order: {first.name}, {second.name}"
    )


def test_a_given_run_folder_is_made_and_made_absolute(tmp_path: Path, monkeypatch) -> None:
    # given a relative path that does not exist yet
    monkeypatch.chdir(tmp_path)
    # when prepared
    path = prepare_run_dir(Path("out/run"))
    # then it is absolute and exists
    assert path == tmp_path / "out" / "run" and path.is_dir(), f"got {path}"


def test_the_quarantine_file_holds_every_stage_rows_with_their_stage(tmp_path: Path) -> None:
    # given rows quarantined by the contract (original text values) and by the scan
    index = pd.Index([3, 9], name=SOURCE_ROW)
    contract = pd.DataFrame(
        {"age": ["x", None], "reasons": [["age: not a number"], ["malformed"]]}, index=index
    )
    scan = pd.DataFrame({"age": ["38"], "reasons": [["outliers"]]}, index=pd.Index([20], name=SOURCE_ROW))
    empty = pd.DataFrame({"reasons": pd.Series(dtype="object")}, index=pd.Index([], name=SOURCE_ROW))
    # when written
    path = write_quarantine(tmp_path, {"contract": contract, "poisoning_scan": scan, "pii": empty})
    # then one parquet file holds all three rows, with the line they came from, the stage and the reasons
    quarantine = pq.read_table(path).to_pandas()
    assert path == tmp_path / QUARANTINE_FILE, path
    assert list(quarantine[SOURCE_ROW]) == [3, 9, 20], list(quarantine[SOURCE_ROW])
    assert list(quarantine["stage"]) == ["contract", "contract", "poisoning_scan"], list(quarantine["stage"])
    assert quarantine["reasons"].map(list).tolist() == [["age: not a number"], ["malformed"], ["outliers"]]
    assert quarantine.loc[0, "age"] == "x", "a quarantined row keeps its original text"


def test_a_run_that_quarantined_nothing_still_writes_an_empty_file_with_the_columns(tmp_path: Path) -> None:
    # given no quarantined rows / when written
    path = write_quarantine(tmp_path, {})
    # then the file exists with the row, stage and reasons columns and no row
    quarantine = pq.read_table(path).to_pandas()
    assert list(quarantine.columns) == [SOURCE_ROW, "stage", "reasons"], list(quarantine.columns)
    assert len(quarantine) == 0 and quarantine[SOURCE_ROW].dtype == "int64", quarantine.dtypes


def test_the_summary_is_written_as_json_in_the_given_order(tmp_path: Path) -> None:
    # given a summary whose keys are not sorted
    summary = {"flow": "safety-train", "status": "promoted", "data": {"rows_in": 3}}
    # when written
    path = write_summary(tmp_path, summary)
    # then summary.json reads back to the same record, keys in the order given, with a final newline
    text = path.read_text(encoding="utf-8")
    assert path == tmp_path / SUMMARY_FILE, path
    assert json.loads(text) == summary and list(json.loads(text)) == ["flow", "status", "data"], text
    assert text.endswith("}\n"), "the file ends with a newline"
