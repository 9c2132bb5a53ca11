"""Idempotent reruns: a train whose data, config and code match a registered version trains nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from flows.safety_train import safety_train
from guardflow.cli import main
from guardflow.io import registry
from guardflow.io.ledger import open_ledger
from guardflow.run.summary import RunSummary
from guardflow.settings import guardflow_home
from tests.conftest import WIRING_POISONING, write_adult_config
from tests.flows.conftest import LENIENT_GATE
from tests.lineage_validation import read_events

MODEL = "adult-rerun-test"


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory, adult_slice: Path) -> tuple[Path, Path, RunSummary]:
    folder = tmp_path_factory.mktemp("rerun")
    config = write_adult_config(
        folder, poisoning=WIRING_POISONING, registry={"model_name": MODEL}, gate=LENIENT_GATE
    )
    summary = safety_train(str(config), str(folder / "first"), str(adult_slice))
    assert summary.model is not None, f"the first run registers a version: {summary.status} {summary.error}"
    return folder, config, summary


def _versions() -> list[str]:
    registry.track_dataset(guardflow_home(), "adult")
    return sorted(
        str(version.version) for version in MlflowClient().search_model_versions(f"name = '{MODEL}'")
    )


def _charges(run_dir: Path) -> list[str]:
    return [
        spend.state
        for spend in open_ledger(guardflow_home()).spends("adult")
        if spend.run_dir == str(run_dir)
    ]


def test_the_registered_version_carries_the_three_keys(first_run) -> None:
    _, _, first = first_run
    tags = MlflowClient().get_model_version(MODEL, first.model.version).tags
    rerun = first.rerun
    assert rerun is not None and rerun.matched_version is None, f"nothing matched the first run: {rerun}"
    assert tags[registry.RUN_KEY_TAG] == rerun.run_key, "the run key is a tag: a match is a registry search"
    assert tags["guardflow.config_sha256"] == rerun.config_sha256 == first.config_sha256, "the config hash"
    assert tags["guardflow.code_version"] == rerun.code_version, "the code version"
    assert tags["guardflow.data_sources"].split(",") == rerun.data_sources, "the sha256 of every source"
    assert tags[registry.REGISTRATION_TAG] == "complete", "a settled version"


def test_an_identical_rerun_reports_the_version_and_spends_nothing(first_run, adult_slice: Path) -> None:
    folder, config, first = first_run
    versions = _versions()
    # when the same config trains on the same data with the same code
    second = safety_train(str(config), str(folder / "second"), str(adult_slice))
    # then it reports the first run's version as unchanged, trains nothing and charges nothing
    assert second.status == "unchanged", f"{second.status}: {second.error}"
    assert second.model is not None and second.model.version == first.model.version, second.model
    assert second.rerun is not None and second.rerun.matched_version == first.model.version, second.rerun
    assert _versions() == versions, "no version registered"
    assert _charges(folder / "second") == [], "no epsilon reserved or spent"
    written = json.loads((folder / "second" / "summary.json").read_text())
    assert written["status"] == "unchanged" and written["rerun"]["matched_version"] == first.model.version
    jobs = {event["job"]["name"] for event in read_events(Path(written["lineage"]["path"]))
            if event["run"].get("facets", {}).get("parent", {}).get("run", {}).get("runId")
            == written["lineage"]["run_id"]}  # fmt: skip
    assert jobs == {"safety-train.adult.match_registered"}, f"no stage past the match ran: {jobs}"


def test_a_changed_config_is_no_match(first_run, adult_slice: Path, tmp_path: Path) -> None:
    # given the same data under a config that differs only in its lifetime budget, set to what is already spent
    _, _, first = first_run
    config = write_adult_config(
        tmp_path,
        poisoning=WIRING_POISONING,
        registry={"model_name": MODEL},
        gate=LENIENT_GATE,
        privacy={"lifetime_epsilon": 1.0},
    )
    # when it trains: no version matches its config hash, so it goes on to reserve budget, which is refused
    code = main(
        ["train", "--config", str(config), "--data", str(adult_slice), "--run-dir", str(tmp_path / "run")]
    )
    written = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert code == 2 and written["status"] == "failed", f"{code}: {written['status']} {written['error']}"
    assert "budget" in written["error"], f"it went on to the budget stage: {written['error']}"
    assert written["rerun"]["matched_version"] is None, "a changed config matches nothing"
    assert written["rerun"]["config_sha256"] != first.config_sha256, "the config hash differs"


def test_force_trains_again(first_run, adult_slice: Path) -> None:
    folder, config, first = first_run
    versions = _versions()
    # when the same training is asked for with --force
    code = main(
        [
            "train",
            "--config",
            str(config),
            "--data",
            str(adult_slice),
            "--run-dir",
            str(folder / "forced"),
            "--force",
        ]
    )
    # then it trains and registers a new version, and says which version it matched
    written = json.loads((folder / "forced" / "summary.json").read_text())
    assert code in (0, 3) and written["status"] in ("promoted", "rejected"), f"{code}: {written['status']}"
    assert written["rerun"] == {**written["rerun"], "forced": True, "matched_version": first.model.version}
    assert len(_versions()) == len(versions) + 1, "a new version is registered"
    assert _charges(folder / "forced") == ["spent"], "its epsilon is spent"
