"""safety-train end to end on a slice of Adult, under the session's Prefect harness."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from flows.safety_train import safety_train
from guardflow.cli import main
from guardflow.io import registry
from guardflow.settings import guardflow_home
from tests.conftest import WIRING_POISONING, write_adult_config
from tests.flows.conftest import LENIENT_GATE
from tests.lineage_validation import event_problems, read_events


def _events_of(run_dir: Path) -> list[dict]:
    """The lineage events of the flow run that wrote `run_dir`, and of its stages (the log is shared)."""
    summary = json.loads((run_dir / "summary.json").read_text())
    events = read_events(Path(summary["lineage"]["path"]))
    flow_ids = {summary["lineage"]["run_id"]}
    return [
        event
        for event in events
        if event["run"]["runId"] in flow_ids
        or event["run"].get("facets", {}).get("parent", {}).get("run", {}).get("runId") in flow_ids
    ]


@pytest.fixture(scope="module")
def promoted_run(tmp_path_factory: pytest.TempPathFactory, adult_slice: Path) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("promoted")
    config = write_adult_config(folder, registry={"model_name": "adult-flow-test"}, gate=LENIENT_GATE)
    run_dir = folder / "run"
    summary = safety_train(str(config), str(run_dir), str(adult_slice))
    return run_dir, summary.model_dump(mode="json")


def test_summary_has_every_section_and_accounts_for_every_row(promoted_run) -> None:
    run_dir, summary = promoted_run
    written = json.loads((run_dir / "summary.json").read_text())
    # then summary.json holds what the flow returned, with every required section
    assert written["status"] == summary["status"] == "promoted", (
        f"lenient gate must promote: {written['gate']}"
    )
    for section in ("data", "poisoning", "privacy", "metrics", "gate", "model", "lineage"):
        assert written[section] is not None, f"summary.json must have a {section} section"
    data = written["data"]
    assert data["rows_in"] == 6_000, "the slice has 6,000 rows"
    assert data["rows_in"] == data["rows_accepted"] + data["rows_quarantined"], "no row may be lost"
    assert written["poisoning"]["rows_flagged"] == data["quarantined_by_scan"], "scan flags are quarantined"
    assert written["privacy"]["epsilon"] <= 1.0 + 1e-6, "the privacy spend must not pass the target"
    assert set(written["metrics"]["fairness"]) == {"sex", "race"}, "fairness per sensitive attribute"
    # and every accepted row (the scan's flags are quarantined) is trained on, calibrates or is audited; of the
    # rows flagged for label noise alone, those on the calibration side calibrate, and no other flagged row is used
    privacy = written["privacy"]
    noisy = privacy["label_noise_calibration_rows"]
    assert 0 < noisy < written["poisoning"]["per_detector"]["label_noise"], f"label-noise calibration rows {noisy}"
    used = privacy["training_rows"] + privacy["calibration_rows"] - noisy + privacy["audit_rows"]
    assert used == data["rows_accepted"], f"{used} rows used: {privacy}, {data}"


def test_quarantine_keeps_original_rows_with_reasons(promoted_run) -> None:
    run_dir, summary = promoted_run
    quarantine = pd.read_parquet(run_dir / "quarantine.parquet")
    assert len(quarantine) == summary["data"]["rows_quarantined"], "every quarantined row is in the file"
    assert {"source_row", "stage", "reasons", "age", "income"} <= set(quarantine.columns), (
        "rows keep their values"
    )
    assert quarantine["source_row"].is_unique, "one verdict per row"
    assert quarantine["reasons"].map(len).min() >= 1, "every quarantined row says why"


def test_model_is_registered_with_tags_and_champion_alias(promoted_run) -> None:
    _, summary = promoted_run
    registry.configure_tracking(guardflow_home(), experiment="guardflow-adult")
    version = MlflowClient().get_model_version("adult-flow-test", summary["model"]["version"])
    assert "champion" in version.aliases, "a passing candidate becomes champion"
    for tag in ("guardflow.epsilon", "guardflow.delta", "guardflow.data_sha256", "guardflow.gate"):
        assert tag in version.tags, f"model version must carry {tag}"
    assert version.tags["guardflow.gate"] == "passed", "the gate decision is tagged"
    artifacts = [item.path for item in MlflowClient().list_artifacts(summary["model"]["run_id"])]
    assert "model_card.md" in artifacts, f"the model card is logged with the run, got {artifacts}"


def test_registered_model_loads_without_pickle_and_predicts(promoted_run, adult_settings) -> None:
    _, summary = promoted_run
    registry.configure_tracking(guardflow_home(), experiment="guardflow-adult")
    model = registry.load_model(f"models:/adult-flow-test/{summary['model']['version']}")
    from guardflow.data.table import typed_frame
    from guardflow.io.datasets import read_split

    rows = typed_frame(read_split(adult_settings.dataset, "test").rows.head(50), adult_settings.dataset)
    predictions = model.predict(rows[list(adult_settings.dataset.features)])
    values = pd.DataFrame(predictions).to_numpy().ravel()
    assert len(values) == 50 and ((values >= 0) & (values <= 1)).all(), "probabilities for every row"
    assert mlflow.get_tracking_uri().startswith("sqlite:"), "embedded store is SQLite"


def test_every_stage_emits_valid_start_and_complete_events(promoted_run) -> None:
    run_dir, _ = promoted_run
    events = _events_of(run_dir)
    stages = {event["job"]["name"].rsplit(".", 1)[-1] for event in events}
    for stage in (
        "load_train",
        "validate_contract",
        "scan_poisoning",
        "train_private",
        "evaluate_safety",
        "gate",
        "register_model",
    ):
        assert stage in stages, f"stage {stage} must emit lineage, got {sorted(stages)}"
    by_run: dict[str, list[str]] = {}
    for event in events:
        by_run.setdefault(event["run"]["runId"], []).append(event["eventType"])
        assert not event_problems(event), f"event must follow the OpenLineage spec: {event_problems(event)}"
    assert all(types == ["START", "COMPLETE"] for types in by_run.values()), f"START then COMPLETE: {by_run}"


def test_strict_gate_rejects_registers_and_does_not_promote(tmp_path: Path, adult_slice: Path) -> None:
    # given an impossible accuracy threshold
    config = write_adult_config(
        tmp_path,
        poisoning=WIRING_POISONING,
        registry={"model_name": "adult-rejected"},
        gate={"min_accuracy": 0.99},
    )
    # when the flow runs
    summary = safety_train(str(config), str(tmp_path / "run"), str(adult_slice))
    # then the candidate is registered, tagged rejected, and no champion exists
    assert summary.status == "rejected", "the gate must reject a candidate below the threshold"
    assert summary.gate is not None and any("FAIL accuracy" in line for line in summary.gate.reasons)
    assert summary.model is not None and summary.model.aliases == [], "a rejected candidate gets no alias"
    assert registry.champion_version("adult-rejected") is None, "no champion after a rejection"


def test_missing_column_is_one_line_exit_2_and_registers_nothing(
    tmp_path: Path, adult_settings, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a headerless file whose rows lack the last column (income)
    lines = gzip.decompress(adult_settings.dataset.train.path.read_bytes()).decode().splitlines()[:300]
    broken = tmp_path / "broken.csv"
    broken.write_text("\n".join(line.rsplit(",", 1)[0] for line in lines if line) + "\n")
    config = write_adult_config(tmp_path, registry={"model_name": "adult-broken"})
    # when the CLI trains on it
    code = main(["train", "--config", str(config), "--data", str(broken), "--run-dir", str(tmp_path / "run")])
    # then the contract stops the run: exit 2, one line naming the column, a failed summary, nothing registered
    errors = capsys.readouterr().err.strip().splitlines()
    assert code == 2, f"bad input must exit 2, got {code}"
    assert len(errors) == 1 and "income" in errors[0], f"one line naming the missing column, got {errors}"
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["error"], "a failed run still writes its summary"
    registry.configure_tracking(guardflow_home(), experiment="guardflow-adult")
    assert registry.champion_version("adult-broken") is None, "nothing is registered"
    assert not MlflowClient().search_model_versions("name='adult-broken'"), "no version at all"


def test_empty_csv_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    config = write_adult_config(tmp_path, registry={"model_name": "adult-empty"})
    code = main(["train", "--config", str(config), "--data", str(empty), "--run-dir", str(tmp_path / "run")])
    errors = capsys.readouterr().err.strip().splitlines()
    assert code == 2, f"an empty CSV must exit 2, got {code}"
    assert errors == [f"guardflow: data file is empty: {empty}"], f"one line naming the problem, got {errors}"


def test_exhausted_budget_is_refused_before_training(
    tmp_path: Path, adult_slice: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a dataset whose slice already spent 9.5 of its lifetime 10
    from guardflow.io.datasets import content_sha256
    from guardflow.io.ledger import open_ledger

    config = write_adult_config(
        tmp_path,
        poisoning=WIRING_POISONING,
        registry={"model_name": "adult-budget"},
        dataset={"id": "adult-budget"},
    )
    registry.configure_tracking(guardflow_home(), experiment="guardflow-adult-budget")
    ledger = open_ledger(guardflow_home())
    ledger.charge("adult-budget", [content_sha256(adult_slice)], 9.5, 1e-5, "train", "earlier")
    # when a run of epsilon 1 is asked for
    run_dir = tmp_path / "run"
    code = main(["train", "--config", str(config), "--data", str(adult_slice), "--run-dir", str(run_dir)])
    # then it is refused with one line and exit 2, before any training
    errors = capsys.readouterr().err.strip().splitlines()
    assert code == 2, f"an exhausted budget must exit 2, got {code}"
    assert len(errors) == 1 and "privacy budget exhausted" in errors[0], f"one clear line, got {errors}"
    assert not (run_dir / "model").exists(), "nothing may be trained"
    assert len(ledger.spends("adult-budget")) == 1, "a refused run spends nothing"


def test_lineage_carries_the_ml_facets_and_the_prefect_run(promoted_run) -> None:
    run_dir, summary = promoted_run
    completes = {
        e["job"]["name"].rsplit(".", 1)[-1]: e for e in _events_of(run_dir) if e["eventType"] == "COMPLETE"
    }
    training = completes["train_private"]["run"]["facets"]["guardflow_training"]
    assert training["epsilon"] == pytest.approx(summary["privacy"]["epsilon"]), (
        "training facet holds the epsilon"
    )
    assert training["noiseMultiplier"] > 0 and training["steps"] > 0, "and the DP-SGD mechanism"
    scan = completes["scan_poisoning"]["run"]["facets"]["guardflow_poisoning_scan"]
    assert scan["rowsFlagged"] == summary["poisoning"]["rows_flagged"], "scan facet holds the flagged count"
    gate = completes["gate"]["run"]["facets"]["guardflow_gate"]
    assert gate["passed"] is True and len(gate["lines"]) == len(summary["gate"]["lines"]), (
        "gate facet: every line"
    )
    (model,) = completes["register_model"]["outputs"]
    assert model["facets"]["guardflow_model"]["weightsSha256"] == summary["model"]["weights_sha256"], (
        "model facet"
    )
    assert model["name"] == f"models/adult-flow-test/{summary['model']['version']}", (
        "the model version is a dataset"
    )
    starts = [
        e
        for e in _events_of(run_dir)
        if e["eventType"] == "START" and e["job"]["name"] == "safety-train.adult"
    ]
    assert starts and "guardflow_prefect" in starts[0]["run"]["facets"], (
        "the flow run is joined to Prefect's run"
    )


def test_approval_required_waits_as_challenger_until_approved_then_rolls_back(
    tmp_path: Path, adult_slice: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a policy that requires a person's approval, and a candidate that passes the gate
    config = write_adult_config(
        tmp_path,
        poisoning=WIRING_POISONING,
        registry={"model_name": "adult-approval", "approval": "required"},
        gate=LENIENT_GATE,
    )
    summary = safety_train(str(config), str(tmp_path / "run"), str(adult_slice))
    # then it waits as challenger, with no champion, and the CLI says it completed
    assert summary.status == "awaiting_approval", f"a passing candidate waits for approval: {summary.status}"
    assert summary.model is not None and summary.model.aliases == ["challenger"], summary.model
    assert registry.champion_version("adult-approval") is None, "no champion before approval"
    version = summary.model.version
    # when approved by a named person through the CLI
    assert main(["approve", "--config", str(config), "--version", version, "--by", "carol"]) == 0
    assert registry.champion_version("adult-approval").version == version, "approval makes it champion"
    # and rolling back with nothing before it is refused with one line, exit 2
    capsys.readouterr()
    code = main(["rollback", "--config", str(config), "--reason", "test", "--by", "carol"])
    errors = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(errors) == 1 and "no previous champion" in errors[0], errors
    assert main(["history", "--config", str(config)]) == 0
    assert "approve" in capsys.readouterr().out, "the history lists the approval"


def test_drift_check_scores_reference_and_batch_with_the_champion(
    promoted_run, tmp_path: Path, adult_settings
) -> None:
    # given the promoted champion (trained on the slice) and an i.i.d. batch from adult.test
    from flows.drift_check import drift_check
    from guardflow.io.datasets import read_split, write_table

    _, summary = promoted_run
    batch = tmp_path / "batch.csv"
    write_table(read_split(adult_settings.dataset, "test").rows.head(2_000), batch, adult_settings.dataset)
    # when drift-check compares the batch with the champion's data
    checked = drift_check(summary["config"], str(batch), str(tmp_path / "drift"))
    # then the champion's mean score on both sides is recorded for prediction drift, and is a probability
    drift = checked.drift
    assert drift is not None and drift.champion_version == summary["model"]["version"], f"champion: {drift}"
    reference, current = drift.mean_score_reference, drift.mean_score_current
    assert reference is not None and current is not None, "both sides are scored"
    assert 0.05 < reference < 0.6 and 0.05 < current < 0.6, f"mean scores {reference}, {current}"
    assert abs(current - reference) < 0.05, (
        f"an i.i.d. batch barely moves the mean score: {reference} -> {current}"
    )
