"""The run context: each stage bracketed by START and COMPLETE (or FAIL) events as a child of the flow's run."""

from __future__ import annotations

from pathlib import Path

import pytest

from guardflow.io.lineage import file_dataset
from guardflow.run.run_context import RunContext, open_run
from guardflow.settings import Settings, settings_hash
from tests.lineage_validation import event_problems, read_events

FLOW = "safety-train"


@pytest.fixture
def context(adult_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RunContext:
    """A run whose lineage goes to the JSON-lines file under its home (no endpoint from the environment)."""
    for name in ("OPENLINEAGE_URL", "OPENLINEAGE_DISABLED", "OPENLINEAGE_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    settings = adult_settings.model_copy(
        update={"lineage": adult_settings.lineage.model_copy(update={"url": None})}
    )
    run_dir = tmp_path / "runs" / "1"
    run_dir.mkdir(parents=True)
    return open_run(FLOW, settings, Path("configs/adult.yaml"), run_dir, tmp_path / "home")


def _events(context: RunContext) -> list[dict]:
    return read_events(context.home / "lineage" / "events.jsonl")


def test_a_stage_emits_start_and_complete_as_a_child_of_the_flow_run(
    context: RunContext, tmp_path: Path
) -> None:
    # given a flow run that has begun, and a stage that reads a file and writes the accepted rows
    source = file_dataset(tmp_path / "adult.data", row_count=100)
    context.begin([source])
    # when the stage runs and records its output
    with context.stage("validate_contract", [source]) as outputs:
        outputs.datasets.append(context.rows_dataset("accepted", 97))
    context.finish([source], outputs.datasets)
    # then the log holds START and COMPLETE for the flow and the stage, all valid OpenLineage events
    events = _events(context)
    kinds = [(event["eventType"], event["job"]["name"]) for event in events]
    stage_job = f"{FLOW}.adult.validate_contract"
    assert kinds == [
        ("START", f"{FLOW}.adult"),
        ("START", stage_job),
        ("COMPLETE", stage_job),
        ("COMPLETE", f"{FLOW}.adult"),
    ], f"events: {kinds}"
    assert all(event_problems(event) == [] for event in events), [event_problems(event) for event in events]
    # and the stage's events point at the flow run as their parent, and its output is the in-memory rows
    parent = events[2]["run"]["facets"]["parent"]
    assert parent["run"]["runId"] == context.run_id and parent["job"]["name"] == f"{FLOW}.adult", parent
    output = events[2]["outputs"][0]
    assert output["namespace"] == f"{context.settings.lineage.namespace}-rows", output["namespace"]
    assert output["name"] == f"{context.run_dir}/accepted", output["name"]
    assert output["outputFacets"]["outputStatistics"]["rowCount"] == 97, output["outputFacets"]


def test_a_failing_stage_emits_fail_with_the_message_and_reraises_the_same_error(context: RunContext) -> None:
    # given a stage that raises
    error = ValueError("contract broken: 41.0% of rows quarantined")
    # when it runs / then the very same error comes out
    with pytest.raises(ValueError) as raised, context.stage("validate_contract", []):
        raise error
    assert raised.value is error, "the stage bracket must re-raise the error unchanged"
    # and the stage's last event is a FAIL carrying the message
    last = _events(context)[-1]
    assert last["eventType"] == "FAIL", f"last event {last['eventType']}"
    assert last["run"]["facets"]["errorMessage"]["message"] == str(error), last["run"]["facets"]
    assert context.lineage.events_failed == 0, "the events themselves were written"


def test_a_stage_can_restate_its_inputs_with_what_it_learned(context: RunContext, tmp_path: Path) -> None:
    # given a stage that learns the row count of its input while it runs
    before = file_dataset(tmp_path / "batch.csv")
    with context.stage("load_data", [before]) as outputs:
        outputs.inputs = [file_dataset(tmp_path / "batch.csv", row_count=120, sha256="e" * 64)]
    # then its COMPLETE event carries the restated input, its START the original one
    start, complete = _events(context)
    assert "dataQualityMetrics" not in start["inputs"][0].get("inputFacets", {}), start["inputs"][0]
    assert complete["inputs"][0]["inputFacets"]["dataQualityMetrics"]["rowCount"] == 120, complete["inputs"][
        0
    ]
    assert complete["inputs"][0]["facets"]["version"]["datasetVersion"] == "e" * 64, complete["inputs"][0]


def test_an_aborted_flow_ends_with_fail_and_the_header_names_the_run(context: RunContext) -> None:
    # given a flow that began and then stopped with an error without a message
    context.begin([])
    context.abort(KeyboardInterrupt())
    # then its FAIL event names the error's type
    last = _events(context)[-1]
    assert (last["eventType"], last["job"]["name"]) == ("FAIL", f"{FLOW}.adult"), last["job"]
    assert last["run"]["facets"]["errorMessage"]["message"] == "KeyboardInterrupt", last["run"]["facets"]
    # and the summary header records the flow, the config, the settings' hash and the run folder
    header = context.header()
    assert header.flow == FLOW and header.config == "configs/adult.yaml", header
    assert header.config_sha256 == settings_hash(context.settings), "the hash of the settings actually used"
    assert header.run_dir == str(context.run_dir), header.run_dir
