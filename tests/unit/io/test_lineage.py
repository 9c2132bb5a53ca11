"""The lineage emitter: events that the OpenLineage spec accepts, a file of JSON lines, no crash when down."""

from __future__ import annotations

import copy
import logging
import os
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from openlineage.client.facet_v2 import documentation_dataset, nominal_time_run

from guardflow.io.lineage import LineageDataset, LineageEmitter, file_dataset, new_run_id
from tests.lineage_validation import event_problems, facet_problems, read_events
from tests.net import free_port

NAMESPACE = "guardflow-test"
FLOW_JOB = "train_pipeline"
TASK_JOB = "train_pipeline.validate_contract"


@pytest.fixture(autouse=True)
def isolated_openlineage_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No OPENLINEAGE_* variable or openlineage.yml of the developer's leaks in, and none set here leaks out.

    The client itself writes OPENLINEAGE__* variables when OPENLINEAGE_URL is set, so clean up after it too.
    """
    before = {key: value for key, value in os.environ.items() if key.startswith("OPENLINEAGE")}
    for key in before:
        monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    yield
    for key in [key for key in os.environ if key.startswith("OPENLINEAGE")]:
        del os.environ[key]


@pytest.fixture
def closed_port_url() -> str:
    """A loopback URL where nothing listens: bind a port, then release it."""
    return f"http://127.0.0.1:{free_port()}"


def _emit_parent_and_child(emitter: LineageEmitter, data_dir: Path) -> tuple[str, str]:
    """A flow run that wraps one task run reading a CSV and writing a parquet file."""
    flow_run, task_run = new_run_id(), new_run_id()
    batch = file_dataset(
        data_dir / "batch.csv", columns=[("age", "int"), ("income", "string")], row_count=120
    )
    clean = file_dataset(data_dir / "clean.parquet", columns=[("age", "int")], row_count=117)
    emitter.start(FLOW_JOB, flow_run)
    emitter.start(TASK_JOB, task_run, inputs=[batch], parent=(FLOW_JOB, flow_run))
    emitter.complete(TASK_JOB, task_run, inputs=[batch], outputs=[clean], parent=(FLOW_JOB, flow_run))
    emitter.complete(FLOW_JOB, flow_run, inputs=[batch], outputs=[clean])
    return flow_run, task_run


def _assert_all_valid(events: list[dict[str, Any]]) -> None:
    for index, event in enumerate(events):
        problems = event_problems(event)
        assert problems == [], (
            f"event {index} ({event.get('eventType')} {event.get('job', {}).get('name')}):\n"
            + ("\n".join(problems))
        )


def test_parent_and_child_events_validate_against_the_spec(tmp_path: Path) -> None:
    # given an emitter with no URL, writing to a file in a folder that does not exist yet
    log_path = tmp_path / "run" / "lineage.jsonl"
    emitter = LineageEmitter(NAMESPACE, log_path)
    assert not log_path.parent.exists(), "constructing the emitter must not create its folder"

    # when a flow and its task each emit START and COMPLETE
    _emit_parent_and_child(emitter, tmp_path / "data")

    # then the file holds four JSON lines that the spec accepts, event and facets alike
    events = read_events(log_path)
    assert len(events) == 4, f"expected 4 events, found {len(events)}"
    assert emitter.events_emitted == 4, f"events_emitted should count 4, got {emitter.events_emitted}"
    assert emitter.events_failed == 0, f"no event should fail, got {emitter.events_failed}"
    _assert_all_valid(events)
    kinds = [(event["job"]["name"], event["eventType"]) for event in events]
    assert kinds == [
        (FLOW_JOB, "START"),
        (TASK_JOB, "START"),
        (TASK_JOB, "COMPLETE"),
        (FLOW_JOB, "COMPLETE"),
    ], f"events out of order: {kinds}"
    assert str(log_path) in emitter.describe(), f"describe() should name the file: {emitter.describe()}"


def test_events_carry_identity_time_parent_and_dataset_facets(tmp_path: Path) -> None:
    # given a flow and its task that emitted their events to a file
    log_path = tmp_path / "lineage.jsonl"
    flow_run, task_run = _emit_parent_and_child(LineageEmitter(NAMESPACE, log_path), tmp_path / "data")
    events = read_events(log_path)
    task_complete = events[2]

    # when we look at the child's COMPLETE event
    parent = task_complete["run"]["facets"].get("parent")
    batch = task_complete["inputs"][0]
    clean = task_complete["outputs"][0]

    # then it names guardflow, a UTC time, its run and its parent run in the same namespace
    assert task_complete["producer"].startswith("https://github.com/guardflow/guardflow"), (
        f"producer should be guardflow, got {task_complete['producer']}"
    )
    assert task_complete["schemaURL"].endswith("OpenLineage.json#/$defs/RunEvent"), (
        f"schemaURL should point at RunEvent, got {task_complete['schemaURL']}"
    )
    offset = datetime.fromisoformat(task_complete["eventTime"]).utcoffset()
    assert offset == timedelta(0), f"eventTime should be UTC, got {task_complete['eventTime']}"
    assert task_complete["run"]["runId"] == task_run, "the child event should carry the child run id"
    assert parent is not None, "the child run should have a parent facet"
    assert parent["run"]["runId"] == flow_run, f"parent run id should be {flow_run}, got {parent['run']}"
    parent_job = (parent["job"]["namespace"], parent["job"]["name"])
    assert parent_job == (NAMESPACE, FLOW_JOB), (
        f"parent job should be {NAMESPACE}/{FLOW_JOB}, got {parent_job}"
    )
    assert "parent" not in events[0]["run"]["facets"], "the flow run has no parent"
    # and its datasets follow OpenLineage file naming with schema, source and row counts
    assert batch["namespace"] == "file", f"file datasets live in namespace 'file', got {batch['namespace']}"
    assert batch["name"] == str((tmp_path / "data" / "batch.csv").resolve()), (
        f"name should be the path: {batch}"
    )
    fields = [(field["name"], field["type"]) for field in batch["facets"]["schema"]["fields"]]
    assert fields == [("age", "int"), ("income", "string")], f"schema facet fields wrong: {fields}"
    assert batch["facets"]["dataSource"]["uri"] == "file://", f"dataSource uri wrong: {batch['facets']}"
    assert batch["inputFacets"]["dataQualityMetrics"]["rowCount"] == 120, f"input rowCount: {batch}"
    assert clean["outputFacets"]["outputStatistics"]["rowCount"] == 117, f"output rowCount: {clean}"


def test_fail_event_carries_the_error_message_and_validates(tmp_path: Path) -> None:
    # given an emitter writing to a file
    log_path = tmp_path / "lineage.jsonl"
    emitter = LineageEmitter(NAMESPACE, log_path)
    run_id = new_run_id()

    # when a run starts, then fails
    emitter.start(FLOW_JOB, run_id)
    emitter.fail(FLOW_JOB, run_id, "contract broken: 12% of rows quarantined")

    # then the FAIL event names the error and the language, and the spec accepts it
    events = read_events(log_path)
    _assert_all_valid(events)
    assert events[-1]["eventType"] == "FAIL", f"last event should be FAIL, got {events[-1]['eventType']}"
    error = events[-1]["run"]["facets"].get("errorMessage", {})
    assert error.get("message") == "contract broken: 12% of rows quarantined", f"error message lost: {error}"
    assert error.get("programmingLanguage") == "python", f"programmingLanguage should be python: {error}"


@pytest.mark.parametrize(
    ("breakage", "expected_fragment"),
    [
        (lambda event: event.pop("eventTime"), "eventTime"),
        (lambda event: event.update(eventType="BOGUS"), "BOGUS"),
        (lambda event: event["run"].update(runId="not-a-uuid"), "not-a-uuid"),
        (lambda event: event["job"].pop("namespace"), "namespace"),
    ],
    ids=["no-eventTime", "bogus-eventType", "bad-runId", "job-without-namespace"],
)
def test_validator_rejects_a_broken_event(tmp_path: Path, breakage: Any, expected_fragment: str) -> None:
    # given a valid event from the emitter
    log_path = tmp_path / "lineage.jsonl"
    LineageEmitter(NAMESPACE, log_path).start(FLOW_JOB, new_run_id())
    event = read_events(log_path)[0]
    assert event_problems(event) == [], "the unbroken event should be valid to begin with"

    # when we break it on purpose
    broken = copy.deepcopy(event)
    breakage(broken)

    # then the validator rejects it and says why
    problems = event_problems(broken)
    assert problems, "the broken event should be rejected"
    assert any(expected_fragment in problem for problem in problems), f"no problem mentions it: {problems}"


def test_validator_rejects_broken_and_misnamed_facets(tmp_path: Path) -> None:
    # given the FAIL event of a run, with its errorMessage facet
    log_path = tmp_path / "lineage.jsonl"
    LineageEmitter(NAMESPACE, log_path).fail(FLOW_JOB, new_run_id(), "boom")
    error_facet = read_events(log_path)[0]["run"]["facets"]["errorMessage"]
    assert facet_problems("errorMessage", error_facet) == [], "the facet should be valid as emitted"

    # when the facet loses a required field, or sits under a key its schema does not declare
    missing_language = {key: value for key, value in error_facet.items() if key != "programmingLanguage"}
    missing_problems = facet_problems("errorMessage", missing_language)
    misnamed_problems = facet_problems("error", error_facet)

    # then both are rejected
    assert any("programmingLanguage" in problem for problem in missing_problems), (
        f"a facet without programmingLanguage should be rejected: {missing_problems}"
    )
    assert any("errorMessage" in problem for problem in misnamed_problems), (
        f"a facet under the wrong key should be rejected: {misnamed_problems}"
    )


def test_file_transport_prints_nothing(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    # given an emitter writing to a file
    emitter = LineageEmitter(NAMESPACE, tmp_path / "lineage.jsonl")

    # when it emits a START and a COMPLETE
    run_id = new_run_id()
    emitter.start(FLOW_JOB, run_id)
    emitter.complete(FLOW_JOB, run_id)

    # then nothing reaches stdout or stderr
    captured = capfd.readouterr()
    assert captured.out == "", f"file transport printed to stdout: {captured.out[:200]}"
    assert captured.err == "", f"file transport printed to stderr: {captured.err[:200]}"


def test_down_http_endpoint_is_logged_and_counted_not_raised(
    tmp_path: Path, closed_port_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # given an emitter pointed at a loopback port where nothing listens
    log_path = tmp_path / "lineage.jsonl"
    emitter = LineageEmitter(NAMESPACE, log_path, url=closed_port_url)

    # when it emits START and COMPLETE
    run_id = new_run_id()
    with caplog.at_level(logging.WARNING, logger="guardflow.io.lineage"):
        emitter.start(FLOW_JOB, run_id)
        emitter.complete(FLOW_JOB, run_id)

    # then nothing raised: both failures are counted and logged, and no file was written instead
    assert emitter.events_failed == 2, f"both events should count as failed, got {emitter.events_failed}"
    assert emitter.events_emitted == 0, f"no event was delivered, got {emitter.events_emitted}"
    warnings = [record for record in caplog.records if record.name == "guardflow.io.lineage"]
    assert len(warnings) == 2, f"expected one warning per failed event, got {[r.message for r in warnings]}"
    assert not log_path.exists(), "the http transport must not fall back to the file silently"
    assert closed_port_url in emitter.describe(), f"describe() should name the URL: {emitter.describe()}"
    assert "2 failed" in emitter.describe(), f"describe() should report failures: {emitter.describe()}"


def test_openlineage_url_from_environment_selects_http(
    tmp_path: Path, closed_port_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given OPENLINEAGE_URL set and no url argument
    monkeypatch.setenv("OPENLINEAGE_URL", closed_port_url)
    log_path = tmp_path / "lineage.jsonl"
    emitter = LineageEmitter(NAMESPACE, log_path)

    # when it emits an event
    emitter.start(FLOW_JOB, new_run_id())

    # then it went for the URL (down here, so it failed quietly) and not for the file
    assert f"{closed_port_url}/api/v1/lineage" in emitter.describe(), f"wrong target: {emitter.describe()}"
    assert emitter.events_failed == 1, f"the event should have gone to the URL, got {emitter.events_failed}"
    assert not log_path.exists(), "with OPENLINEAGE_URL set no file should be written"


def test_openlineage_disabled_emits_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # given OPENLINEAGE_DISABLED=true
    monkeypatch.setenv("OPENLINEAGE_DISABLED", "true")
    log_path = tmp_path / "run" / "lineage.jsonl"
    emitter = LineageEmitter(NAMESPACE, log_path)

    # when a run starts and completes
    run_id = new_run_id()
    emitter.start(FLOW_JOB, run_id)
    emitter.complete(FLOW_JOB, run_id)

    # then no file or folder appears, nothing is counted, and describe() says why
    assert not log_path.parent.exists(), "a disabled emitter must not create its folder"
    assert emitter.events_emitted == 0, f"nothing should be emitted, got {emitter.events_emitted}"
    assert "disabled" in emitter.describe(), f"describe() should say disabled: {emitter.describe()}"


def test_new_run_ids_are_distinct_time_ordered_uuids() -> None:
    # given two run ids made one after the other
    first, second = new_run_id(), new_run_id()

    # when we read them as UUIDs
    parsed = uuid.UUID(first), uuid.UUID(second)

    # then they differ, and the client's UUIDv7 keeps them in creation order (to the millisecond)
    assert first != second, "run ids must be unique"
    assert parsed[0].version in (4, 7), f"run id should be UUIDv4 or v7, got version {parsed[0].version}"
    if parsed[0].version == 7:
        assert first[:8] <= second[:8], f"UUIDv7 ids should sort by time: {first} then {second}"


def test_caller_facets_are_emitted_valid_and_stamped_with_guardflow(tmp_path: Path) -> None:
    # given a dataset with an extra documentation facet and a run facet, both built with the client's producer
    log_path = tmp_path / "lineage.jsonl"
    model = LineageDataset(
        namespace="mlflow://localhost:5000",
        name="models/adult-mlp/3",
        extra_facets={"documentation": documentation_dataset.DocumentationDatasetFacet(description="DP-MLP")},
    )
    nominal = nominal_time_run.NominalTimeRunFacet(nominalStartTime="2026-01-01T00:00:00+00:00")

    # when a run completes with them
    LineageEmitter(NAMESPACE, log_path).complete(
        FLOW_JOB, new_run_id(), outputs=[model], run_facets={"nominalTime": nominal}
    )

    # then they validate, and name guardflow as their producer
    event = read_events(log_path)[0]
    _assert_all_valid([event])
    documentation = event["outputs"][0]["facets"]["documentation"]
    data_source = event["outputs"][0]["facets"]["dataSource"]
    assert documentation["description"] == "DP-MLP", f"extra facet lost: {documentation}"
    assert documentation["_producer"].startswith("https://github.com/guardflow/"), (
        f"producer: {documentation}"
    )
    assert event["run"]["facets"]["nominalTime"]["_producer"].startswith("https://github.com/guardflow/"), (
        f"run facet producer should be guardflow: {event['run']['facets']['nominalTime']}"
    )
    assert data_source == {
        **data_source,
        "name": "mlflow://localhost:5000",
        "uri": "mlflow://localhost:5000",
    }, f"a URI namespace should be the dataSource uri: {data_source}"
