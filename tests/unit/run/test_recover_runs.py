"""Repairing a run whose process died: lineage ABORTs, a crashed summary, the ledger settled, the registry cleaned."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from guardflow.io import promotion, registry, run_marker
from guardflow.io.ledger import Ledger, ledger_url
from guardflow.io.lineage import LineageEmitter
from guardflow.run.recover_runs import describe_repair, recover_crashed_runs
from tests.crash import lineage_runs, open_lineage_runs
from tests.unit.io.test_run_marker import dead_pid, marker_for

MODEL = "adult-recover-test"
SOURCE = "a" * 64


def _crashed_run(home: Path, run_dir: Path, ledger: Ledger, training: bool) -> run_marker.RunMarker:
    """A run that started, reserved budget (and started training, if `training`), then died inside a stage."""
    marker = marker_for(
        run_dir, pid=dead_pid(), model_name=MODEL, orchestrator_run_id=f"prefect-{run_dir.name}"
    )
    emitter = LineageEmitter(namespace="guardflow", log_path=home / "lineage" / "events.jsonl")
    emitter.start(marker.flow_job, marker.lineage_run_id)
    stage_run = str(uuid.uuid4())
    stage = "train_private" if training else "reserve_budget"
    emitter.start(f"{marker.flow_job}.{stage}", stage_run, parent=(marker.flow_job, marker.lineage_run_id))
    marker = marker.model_copy(
        update={"open_stages": {stage_run: f"{marker.flow_job}.{stage}"}, "last_stage": stage}
    )
    run_marker.write_marker(home, marker)
    ledger.reserve("adult", [SOURCE], 1.0, 1e-5, 100.0, "train", str(run_dir))
    if training:
        ledger.advance(str(run_dir), "training")
    return marker


def _version(client: MlflowClient, run_dir: Path, registration: str) -> str:
    tags = {
        registry.RUN_DIR_TAG: str(run_dir),
        registry.REGISTRATION_TAG: registration,
        "guardflow.gate": "passed",
    }
    return str(client.create_model_version(MODEL, source="file:///nowhere", tags=tags).version)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("OPENLINEAGE_URL", "OPENLINEAGE_DISABLED", "MLFLOW_TRACKING_URI", "GUARDFLOW_LEDGER_URL"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    registry.track_dataset(home, "adult")
    return home


def test_dead_runs_are_repaired_once_and_everything_they_left_open_is_closed(
    home: Path, tmp_path: Path
) -> None:
    # given a champion (version 1), then two runs that died: one before training, one while registering version 2
    ledger = Ledger(ledger_url(home))
    client = MlflowClient()
    client.create_registered_model(MODEL)
    champion = _version(client, tmp_path / "earlier", "complete")
    promotion.accept_candidate(MODEL, champion, approval_required=False)
    before = _crashed_run(home, tmp_path / "before-training", ledger, training=False)
    registering = _crashed_run(home, tmp_path / "registering", ledger, training=True)
    half = _version(client, Path(registering.run_dir), "pending")
    promotion.accept_candidate(MODEL, half, approval_required=False)
    marked: list[str] = []
    # when the next run repairs the home
    repaired = recover_crashed_runs(
        home, "next-run", lambda run_id, message: marked.append(run_id) or f"{run_id} set Crashed"
    )
    # then both runs are repaired, their orchestrator runs marked, each with a crashed summary and its last stage
    assert sorted(summary.run_dir for summary in repaired) == sorted([before.run_dir, registering.run_dir])
    assert sorted(marked) == ["prefect-before-training", "prefect-registering"], marked
    for marker in (before, registering):
        written = json.loads((Path(marker.run_dir) / "summary.json").read_text())
        assert written["status"] == "crashed", written["status"]
        assert written["crash"]["last_stage"] == marker.last_stage, written["crash"]
        assert str(marker.pid) in written["error"], "the error names the process that died"
    # and every lineage run is closed by an ABORT (flow and stage)
    assert open_lineage_runs(home) == [], "every START must end"
    assert lineage_runs(home)[before.lineage_run_id] == ["START", "ABORT"], "the flow run is aborted"
    # and the reservation training never used is released, the one training used is kept as spent
    states = {spend.run_dir: spend.state for spend in ledger.spends("adult")}
    assert states == {before.run_dir: "released", registering.run_dir: "spent"}, states
    # and the half-registered version is tagged crashed, has no alias, and the champion is back on version 1
    assert client.get_model_version(MODEL, half).tags[registry.REGISTRATION_TAG] == "crashed"
    assert registry.aliases(MODEL) == {"champion": champion}, registry.aliases(MODEL)
    assert promotion.champion_history(MODEL)[-1].action == "recover", "the move back is in the history"
    by_dir = {summary.run_dir: summary for summary in repaired}
    assert by_dir[registering.run_dir].crash.versions_withdrawn == [half]  # type: ignore[union-attr]
    assert "withdrawn" in describe_repair(by_dir[registering.run_dir]), "the log line says what was done"
    # and a second repair finds nothing left to do
    assert recover_crashed_runs(home, "again") == [], "a repaired run is never repaired twice"


def test_a_crashed_version_cannot_be_promoted_by_hand(home: Path, tmp_path: Path) -> None:
    client = MlflowClient()
    client.create_registered_model(MODEL)
    crashed = _version(client, tmp_path / "crashed", "crashed")
    with pytest.raises(Exception, match="crashed"):
        promotion.promote(MODEL, crashed, "try", "someone")
    assert registry.aliases(MODEL) == {}, "no alias on a crashed version"


def test_a_rerun_matches_only_a_fully_registered_version(home: Path, tmp_path: Path) -> None:
    # given two versions trained on the same data, config and code: one settled, a later one whose run crashed
    client = MlflowClient()
    client.create_registered_model(MODEL)
    settled = _version(client, tmp_path / "settled", "complete")
    crashed = _version(client, tmp_path / "crashed", "crashed")
    for version in (settled, crashed):
        client.set_model_version_tag(MODEL, version, registry.RUN_KEY_TAG, "k" * 64)
    # then a rerun with those keys matches the settled one, never the crashed one
    matched = registry.matching_version(MODEL, "k" * 64)
    assert matched is not None and matched[0].version == settled, f"matched {matched}"
    assert registry.matching_version(MODEL, "x" * 64) is None, "other keys match nothing"
