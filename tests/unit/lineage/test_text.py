"""The terminal listing of a lineage graph: the trace as a tree, then every run by flow run."""

from __future__ import annotations

from guardflow.lineage.graph import (
    LineageGraph,
    trace_dataset,
    trace_model_version,
)
from guardflow.lineage.text import render_text
from tests.unit.lineage.sample import (
    FAILED_MESSAGE,
    MODEL,
    TRAIN_FILE,
    TRAIN_SHA256,
)


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
