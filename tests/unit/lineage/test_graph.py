"""The lineage view: tracing a model version back to its data, a file forward to its models, and drawing both.

`sample_events.jsonl` is the event log of one real `guardflow train` run on adult (paths rewritten to
/home/user/...); a failed run is added by hand where a test needs one.
"""

from __future__ import annotations

import copy
import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from guardflow.errors import DataError, GuardflowError
from guardflow.lineage.view import (
    DatasetKey,
    LineageGraph,
    RunKey,
    build_graph,
    load_events,
    node_label,
    render_html,
    render_text,
    trace_dataset,
    trace_model_version,
)

SAMPLE = Path(__file__).parents[2] / "data" / "lineage" / "sample_events.jsonl"
MODEL = "guardflow-adult"
TRAIN_FILE = "/home/user/guardflow/data/adult/adult.data.gz"
TRAIN_SHA256 = "5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d"
QUARANTINE = "/home/user/.guardflow/runs/20261127T003333695565Z-safety-train/quarantine.parquet"
MODEL_VERSION_1 = DatasetKey("sqlite:////home/user/.guardflow/mlflow/mlflow.db", "models/guardflow-adult/1")
FAILED_FLOW = RunKey("safety-train.adult", "01a21a70-0000-7000-8000-000000000001")
FAILED_CONTRACT = RunKey("safety-train.adult.validate_contract", "01a21a70-0000-7000-8000-000000000002")
FAILED_MESSAGE = "contract broken: 41.0% of rows quarantined, more than the 5.0% allowed"
VOID_TAGS = {"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "wbr"}


def _event(
    event_type: str, run: RunKey, time: str, inputs: list[dict[str, Any]], parent: RunKey | None = None
) -> dict[str, Any]:
    facets: dict[str, Any] = {}
    if parent is not None:
        facets["parent"] = {
            "job": {"namespace": "guardflow", "name": parent.job},
            "run": {"runId": parent.run_id},
        }
    if event_type == "FAIL":
        facets["errorMessage"] = {"message": FAILED_MESSAGE, "programmingLanguage": "python"}
    return {
        "eventType": event_type,
        "eventTime": time,
        "job": {"namespace": "guardflow", "name": run.job},
        "run": {"runId": run.run_id, "facets": facets},
        "inputs": inputs,
        "outputs": [],
    }


def _failed_contract_run() -> list[dict[str, Any]]:
    """A later flow run on the same file whose contract failed: START and FAIL for the flow and the stage."""
    source = {
        "namespace": "file",
        "name": TRAIN_FILE,
        "facets": {"version": {"datasetVersion": TRAIN_SHA256}},
        "inputFacets": {"dataQualityMetrics": {"rowCount": 32561, "columnMetrics": {}}},
    }
    return [
        _event("START", FAILED_FLOW, "2026-11-28T09:00:00.000000+00:00", []),
        _event("START", FAILED_CONTRACT, "2026-11-28T09:00:01.000000+00:00", [source], FAILED_FLOW),
        _event("FAIL", FAILED_CONTRACT, "2026-11-28T09:00:03.000000+00:00", [source], FAILED_FLOW),
        _event("FAIL", FAILED_FLOW, "2026-11-28T09:00:04.000000+00:00", []),
    ]


@pytest.fixture(scope="module")
def sample_events() -> list[dict[str, Any]]:
    return load_events(SAMPLE)


@pytest.fixture(scope="module")
def graph(sample_events: list[dict[str, Any]]) -> LineageGraph:
    return build_graph(sample_events + _failed_contract_run())


def _runs_of_job(graph: LineageGraph, stage: str) -> list[RunKey]:
    return [key for key in graph.runs if key.job.endswith("." + stage)]


class _BalanceChecker(HTMLParser):
    """Collects the page's text and every tag-nesting problem it finds."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.problems: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in VOID_TAGS:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.open[-1] if self.open else 'nothing'}")
        else:
            self.open.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


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
    contracts = _runs_of_job(traced, "validate_contract")
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
    assert _runs_of_job(traced, "train_private"), "the train_private run is missing"
    # and the failed contract run on the same file is there, marked failed with its message
    assert FAILED_CONTRACT in traced.runs, "the failed contract run is missing"
    failed = traced.runs[FAILED_CONTRACT]
    assert failed.failed and failed.state == "FAIL", f"failed run has state {failed.state}"
    assert failed.error == FAILED_MESSAGE, f"failed run error is {failed.error!r}"


def test_the_text_view_traces_back_from_the_model_to_the_file_with_sha256_rows_and_contract_figures(
    graph: LineageGraph,
) -> None:
    # given model version 1 traced back
    traced = trace_model_version(graph, MODEL, "1")
    # when it is rendered for the terminal
    text = render_text(traced)
    # then the tree goes model version -> register_model -> weights -> train_private -> ... -> training file
    steps = ["models/guardflow-adult/1", "register_model", "weights.safetensors", "train_private", TRAIN_FILE]
    positions = [text.find(step) for step in steps]
    assert -1 not in positions, f"missing step in the text: {dict(zip(steps, positions, strict=True))}"
    assert positions == sorted(positions), f"steps out of order: {dict(zip(steps, positions, strict=True))}"
    # and the file's line carries its sha256 and row count; the contract its figures
    file_line = next(
        line for line in text.splitlines() if line.rstrip().endswith("32,561 rows") and TRAIN_FILE in line
    )
    assert f"sha256 {TRAIN_SHA256}" in file_line, f"no full sha256 on the file line: {file_line!r}"
    assert "32,561 rows in, 32,561 accepted, 0 quarantined" in text, "contract figures missing from the text"
    assert "quarantine.parquet (574 rows)" in text, "the quarantine output is missing from the text"


def test_the_text_view_of_the_file_shows_the_failed_contract_run_and_its_message(graph: LineageGraph) -> None:
    # given the training file traced forward
    traced = trace_dataset(graph, TRAIN_FILE)
    # when it is rendered for the terminal
    text = render_text(traced)
    # then the failed run shows as FAIL with the error users saw, and the model version is reached
    assert f"error: {FAILED_MESSAGE}" in text, "the failed contract's message is missing"
    assert "FAIL" in text, "the failed state is missing"
    assert "models/guardflow-adult/1" in text, "the model version is missing from the forward trace"


def test_the_html_page_is_self_contained_balanced_and_labels_every_node(graph: LineageGraph) -> None:
    # given the forward trace of the training file (one promoted and one failed flow run)
    traced = trace_dataset(graph, TRAIN_FILE)
    # when it is rendered as a page
    page = render_html(traced, "lineage of adult.data.gz")
    # then it is an HTML document with an inline picture and nothing fetched from elsewhere
    assert page.startswith("<!doctype html>"), f"page starts with {page[:30]!r}"
    assert "<svg" in page and "</svg>" in page, "no inline SVG in the page"
    for external in ("<script", " src=", " href=", "url(http"):
        assert external not in page, f"the page refers outside itself: {external!r}"
    # and its tags balance
    checker = _BalanceChecker()
    checker.feed(page)
    checker.close()
    assert not checker.problems, f"unbalanced tags: {checker.problems[:5]}"
    assert not checker.open, f"tags left open: {checker.open}"
    # and every node's label, the file's sha256 and the failed run's message appear in its text
    text = "".join(checker.text)
    missing = [node_label(traced, key) for key in traced.nodes if node_label(traced, key) not in text]
    assert not missing, f"labels missing from the page: {missing}"
    assert f"sha256 {TRAIN_SHA256[:12]}…" in text, "the file's short sha256 is not in the picture"
    assert f"sha256 {TRAIN_SHA256}" in text, "the file's full sha256 is not in the table"
    assert FAILED_MESSAGE in text, "the failed run's message is not on the page"
    assert 'class="node failed' in page, "the failed run is not drawn as failed"


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
