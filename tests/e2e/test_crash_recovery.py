"""A real `guardflow train` killed (SIGKILL) at a stage; the next run of the same home repairs what it left.

Each case costs one training cut short and one `guardflow validate` (the cheapest flow: every flow repairs on
start). `bench/crash_recovery.py` kills at every stage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from guardflow.io.datasets import read_split, write_table
from tests import crash
from tests.conftest import write_adult_config
from tests.flows.conftest import LENIENT_GATE

pytestmark = [pytest.mark.e2e, pytest.mark.extended]

# moment killed at -> the stages the marker may name as the last one reached then
CASES = {
    crash.RESERVED: {"reserve_budget", "train_private"},
    crash.TRAINING: {"train_private"},
    crash.REGISTERED: {"register_model"},
}


@pytest.fixture(scope="module")
def adult_slice(tmp_path_factory: pytest.TempPathFactory, adult_settings) -> Path:
    """The first 6,000 rows of adult.data (as the flow tests train on), without their in-process Prefect harness:
    every run here is a process of its own."""
    path = tmp_path_factory.mktemp("data") / "adult-slice.data.gz"
    write_table(read_split(adult_settings.dataset, "train").rows.head(6_000), path, adult_settings.dataset)
    return path


@pytest.fixture(scope="module")
def crash_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One home for the module's killed runs (the stores are made once), and its config."""
    folder = tmp_path_factory.mktemp("crash")
    config = write_adult_config(folder, registry={"model_name": "adult-crash-test"}, gate=LENIENT_GATE)
    return folder / "home", config


@pytest.mark.parametrize("moment", list(CASES))
def test_a_run_killed_at_a_stage_is_repaired_by_the_next_run(
    moment: str, crash_home: tuple[Path, Path], adult_slice: Path, tmp_path: Path
) -> None:
    home, config = crash_home
    # given a train killed with SIGKILL (its whole process group) at that moment
    killed = crash.kill_at(config, adult_slice, tmp_path / "killed", home, moment)
    assert killed.stage_seen is not None, f"the run ended (exit {killed.exit_code}) before reaching {moment}"
    assert not (killed.run_dir / "summary.json").exists(), "a killed run writes no summary itself"
    # when the next run of the home starts (any flow)
    result = crash.run_command(
        [
            "validate",
            "--config",
            str(config),
            "--data",
            str(adult_slice),
            "--run-dir",
            str(tmp_path / "next"),
        ],
        home,
    )
    assert result.returncode == 0, f"the next run must work: {result.stderr[-2000:]}"
    # then it logged one line for the repair, and the killed run's summary says crashed, with the last stage
    repairs = [line for line in result.stderr.splitlines() if line.startswith("recovered ")]
    assert len(repairs) == 1 and str(killed.run_dir) in repairs[0], f"one repair line: {repairs}"
    summary = json.loads((killed.run_dir / "summary.json").read_text())
    report = summary["crash"]
    assert summary["status"] == "crashed", summary["status"]
    assert report["last_stage"] in CASES[moment], f"killed at {moment}, last stage {report['last_stage']}"
    assert not (killed.run_dir / crash.MARKER).exists(), "the repaired run's marker is gone"
    # and every lineage run of the home is closed: the killed flow run and its open stage run were ABORTed
    assert crash.open_lineage_runs(home) == [], "every START must end"
    kinds = crash.lineage_runs(home)[summary["lineage"]["run_id"]]
    assert kinds == ["START", "ABORT"], f"the killed flow run: {kinds}"
    assert report["lineage_runs_aborted"] >= 1, "the flow run, and the stage it was in if one was open"
    # and its Prefect flow run is Crashed
    assert crash.prefect_state(home, report["orchestrator_run_id"]) == "CRASHED", report["orchestrator"]
    # and the ledger is consistent: a reservation training never used is released, one training used is spent
    states = crash.ledger_states(home, killed.run_dir)
    expected = "released" if moment == crash.RESERVED else "spent"
    assert states and set(states) == {expected}, f"ledger after a kill at {moment}: {states}"
    if moment == crash.TRAINING:  # (once registering, the charge is already spent: nothing left to settle)
        assert "may have been learnt from" in report["ledger"], report["ledger"]
    # and a version it left half-registered is tagged crashed and has no alias
    version = crash.version_of_run(home, killed.run_dir)
    if moment == crash.REGISTERED:
        assert version is not None, "the kill came after the version was created"
        number, tags, aliases = version
        assert tags["guardflow.registration"] == "crashed", tags.get("guardflow.registration")
        assert aliases == [], f"a crashed version is never aliased: {aliases}"
        assert report["versions_withdrawn"] == [number], report["versions_withdrawn"]
    else:
        assert version is None, "no version before registration"
