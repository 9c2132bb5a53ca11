"""The lineage graph: tracing a model version back to its data, a file forward to its models; bad traces and logs."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from guardflow.errors import DataError, GuardflowError
from guardflow.lineage.graph import (
    DatasetKey,
    LineageGraph,
    load_events,
    trace_dataset,
    trace_model_version,
)
from tests.unit.lineage.sample import (
    FAILED_CONTRACT,
    FAILED_FLOW,
    FAILED_MESSAGE,
    MODEL,
    MODEL_VERSION_1,
    QUARANTINE,
    TRAIN_FILE,
    TRAIN_SHA256,
    runs_of_job,
)


def test_tracing_a_model_version_reaches_the_training_file_its_sha256_and_the_contract_run(
    graph: LineageGraph,
) -> None:
    # given the graph of one promoted run and one later failed run
    # when model version 1 is traced back
    traced = trace_model_version(graph, MODEL, "1")
    # then the training file is in it with the sha256 the contract run saw
    train_file = DatasetKey("file", TRAIN_FILE)
    assert train_file in traced.datasets, f"the training file is missing from {sorted(traced.datasets)}"
    assert traced.versions(train_file) == [TRAIN_SHA256], f"wrong sha256: {traced.versions(train_file)}"
    # and the validate_contract run of that flow, with the quarantine output of its flow
    contracts = runs_of_job(traced, "validate_contract")
    assert len(contracts) == 1, f"expected one contract run, got {contracts}"
    assert traced.runs[contracts[0]].state == "COMPLETE", (
        f"contract run state {traced.runs[contracts[0]].state}"
    )
    assert DatasetKey("file", QUARANTINE) in traced.datasets, "the quarantine parquet of the flow is missing"
    # and the failed later run on the same file is not part of version 1's lineage
    assert FAILED_CONTRACT not in traced.runs, "a run of another flow leaked into the model's lineage"
    assert traced.focus == (MODEL_VERSION_1,), f"focus should be the model version, got {traced.focus}"


def test_tracing_the_training_file_reaches_the_model_version_and_the_failed_run(graph: LineageGraph) -> None:
    # given the graph of one promoted run and one later failed run
    # when the training file is traced forward
    traced = trace_dataset(graph, TRAIN_FILE)
    # then it reaches the registered model version through the training run
    assert MODEL_VERSION_1 in traced.datasets, f"model version missing from {sorted(traced.datasets)}"
    assert runs_of_job(traced, "train_private"), "the train_private run is missing"
    # and the failed contract run on the same file is there, marked failed with its message
    assert FAILED_CONTRACT in traced.runs, "the failed contract run is missing"
    failed = traced.runs[FAILED_CONTRACT]
    assert failed.failed and failed.state == "FAIL", f"failed run has state {failed.state}"
    assert failed.error == FAILED_MESSAGE, f"failed run error is {failed.error!r}"


def test_an_unknown_model_version_is_a_one_line_error_naming_the_versions_there_are(
    graph: LineageGraph,
) -> None:
    # given a log in which only version 1 of the model was registered
    # when version 7 is traced
    with pytest.raises(GuardflowError) as raised:
        trace_model_version(graph, MODEL, "7")
    # then the error names the version asked for and the ones the log has, on one line
    message = str(raised.value)
    assert "version 7" in message and "versions 1" in message, f"unhelpful message: {message!r}"
    assert "\n" not in message, f"message spans lines: {message!r}"


def test_an_unknown_file_is_an_error(graph: LineageGraph) -> None:
    # given the graph
    # when a file no run read or wrote is traced
    with pytest.raises(GuardflowError, match="no lineage event reads or writes") as raised:
        trace_dataset(graph, "/nowhere/never-read.csv")
    # then the error names the file
    assert "never-read.csv" in str(raised.value), f"file not named in {raised.value}"


def test_load_events_skips_a_torn_line_and_a_missing_log_is_a_data_error(
    tmp_path: Path, sample_events: list[dict[str, Any]]
) -> None:
    # given a log whose last line was torn by a crash, and a path with no log
    log_path = tmp_path / "events.jsonl"
    lines = [json.dumps(event) for event in copy.deepcopy(sample_events[:3])]
    log_path.write_text("\n".join([*lines, lines[-1][:40]]) + "\n", encoding="utf-8")
    # when both are loaded
    events = load_events(log_path)
    # then the whole lines are kept and the torn one dropped; the missing log raises a DataError
    assert len(events) == 3, f"expected 3 events, got {len(events)}"
    with pytest.raises(DataError, match="no lineage event log"):
        load_events(tmp_path / "missing.jsonl")


def test_edges_come_from_end_events_and_a_flow_run_is_the_parent_of_its_stages(graph: LineageGraph) -> None:
    # given the sample graph
    # when the failed flow run and its stage are looked at
    stage = graph.runs[FAILED_CONTRACT]
    # then the stage points at its flow run, and the flow run is recognised as a flow
    assert stage.parent == FAILED_FLOW, f"parent is {stage.parent}"
    assert graph.is_flow(FAILED_FLOW), "the failed flow run is not recognised as the parent of a stage"
    assert graph.children(FAILED_FLOW) == [FAILED_CONTRACT], f"children: {graph.children(FAILED_FLOW)}"
    # and each (dataset, run) pair is one edge even though START and FAIL both named the file
    pairs = [(edge.source, edge.target) for edge in graph.edges]
    assert len(pairs) == len(set(pairs)), "duplicate edges in the graph"
    assert (DatasetKey("file", TRAIN_FILE), FAILED_CONTRACT) in pairs, "the FAIL event's input is not an edge"
