"""A second real dataset, Fair's affairs data (shipped by statsmodels), through `guardflow train`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from guardflow.cli import main
from guardflow.settings import load_settings

FAIR_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "fair.yaml"


@pytest.fixture(scope="module")
def fair_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict]:
    # given the bundled Fair config, its drafted and reviewed suite, and its policy, unchanged
    run_dir = tmp_path_factory.mktemp("fair") / "run"
    # when `guardflow train --config configs/fair.yaml` runs through the CLI
    code = main(["train", "--config", str(FAIR_CONFIG), "--run-dir", str(run_dir)])
    return code, json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))


def test_fair_trains_through_every_stage_and_the_gate_decides_on_its_figures(fair_run) -> None:
    code, summary = fair_run
    gate = load_settings(FAIR_CONFIG).gate
    metrics = summary["metrics"]
    # then the run finishes with the exit code of its gate decision, and that decision follows from the figures
    assert code == (0 if summary["status"] == "promoted" else 3), f"exit code {code} for {summary['status']}"
    meets_thresholds = (
        metrics["accuracy"] >= gate.min_accuracy
        and metrics["roc_auc"] >= gate.min_roc_auc
        and metrics["ece"] <= gate.max_ece
        and metrics["mia_auc"] <= gate.max_mia_auc
        and all(
            group["demographic_parity_difference"] <= gate.max_demographic_parity_difference
            for group in metrics["fairness"].values()
        )
    )
    assert summary["gate"]["passed"] == meets_thresholds, f"gate {summary['gate']} against figures {metrics}"
    # and the bundled policy is one an honest DP model on Fair passes (figures measured in configs/fair.yaml)
    assert summary["status"] == "promoted", (
        f"the Fair candidate should pass its gate: {summary['gate']['reasons']}"
    )
    assert summary["privacy"]["epsilon"] <= 1.0 + 1e-6, "trained to epsilon 1"
    assert set(metrics["fairness"]) == {"age", "religious"}, "fairness per sensitive attribute of Fair"


def test_fair_contract_accounts_for_every_row_with_no_stop_failure(fair_run) -> None:
    _, summary = fair_run
    data = summary["data"]
    # then the drafted suite accepted the bundled training file: every row counted, none stopped the batch
    assert data["rows_in"] == 4_244, "fair.data.gz has 4,244 rows"
    assert data["rows_in"] == data["rows_accepted"] + data["rows_quarantined"], "no row may be lost"
    assert data["quarantined_by_contract"] == 0, "the bundled data meets its own contract"
