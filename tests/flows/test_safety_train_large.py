"""safety-train's large path (partitioned contract and scan, out-of-core DP training), forced on a small slice by a
zero-byte threshold, under the session's Prefect harness."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from opacus.accountants import PRVAccountant

from flows.safety_train import safety_train
from guardflow.io import registry
from guardflow.settings import guardflow_home
from tests.conftest import write_adult_config
from tests.flows.conftest import LENIENT_GATE

pytestmark = [
    pytest.mark.extended,
    pytest.mark.filterwarnings("ignore:Optimal order is the largest alpha:UserWarning"),
]


@pytest.fixture(scope="module")
def large_run(tmp_path_factory: pytest.TempPathFactory, adult_slice: Path) -> tuple[Path, dict]:
    # given a config whose threshold sends any file down the large path, on a one-worker LocalCluster
    folder = tmp_path_factory.mktemp("large")
    config = write_adult_config(
        folder,
        registry={"model_name": "adult-large-test"},
        gate=LENIENT_GATE,
        compute={"cluster_above_bytes": 0, "workers": 1},
        privacy={"batch_size": 256, "max_steps": 60},
    )
    run_dir = folder / "run"
    # when safety-train runs on the 6,000-row slice
    summary = safety_train(str(config), str(run_dir), str(adult_slice))
    return run_dir, summary.model_dump(mode="json")


def test_large_path_accounts_for_every_row(large_run) -> None:
    run_dir, summary = large_run
    data, privacy = summary["data"], summary["privacy"]
    # then every row is accepted or quarantined, and every row kept is trained on, calibrates or is audited
    # (the calibration rows also hold some of the scan's label-noise rows, counted apart)
    assert data["rows_in"] == 6_000, f"the slice has 6,000 rows, got {data['rows_in']}"
    assert data["rows_in"] == data["rows_accepted"] + data["rows_quarantined"], f"a row is lost: {data}"
    noisy = privacy["label_noise_calibration_rows"]
    assert 0 < noisy <= summary["poisoning"]["per_detector"]["label_noise"], f"label-noise calibration rows: {noisy}"
    kept = privacy["training_rows"] + privacy["calibration_rows"] - noisy + privacy["audit_rows"]
    assert kept == data["rows_accepted"], f"{kept} rows encoded, {data['rows_accepted']} kept"
    assert summary["poisoning"]["rows_flagged"] == data["quarantined_by_scan"], "scan flags are quarantined"
    # and the training rows live on disk as memory-mapped arrays in the run folder
    encoded = run_dir / "encoded" / "training.features.f32"
    assert encoded.stat().st_size == privacy["training_rows"] * 4 * _width(run_dir), "memmap size"


def _width(run_dir: Path) -> int:
    from guardflow.data.encode_features import feature_layout
    from guardflow.settings import load_settings

    return feature_layout(load_settings(run_dir.parent / "config.yaml").dataset).width


def test_large_path_reports_the_accountants_exact_epsilon(large_run) -> None:
    _, summary = large_run
    privacy = summary["privacy"]
    # then the steps are the configured cap, and the epsilon is Opacus' PRV accountant's for them at the rate
    assert 0 < privacy["steps"] <= 60, f"{privacy['steps']} steps past the cap of 60"
    accountant = PRVAccountant()
    accountant.history = [(privacy["noise_multiplier"], privacy["sample_rate"], privacy["steps"])]
    main = accountant.get_epsilon(privacy["delta"])
    assert privacy["epsilon"] == pytest.approx(max(main, privacy["calibration_epsilon"]), rel=1e-6), (
        f"reported {privacy['epsilon']}, accountant {main}"
    )
    assert privacy["epsilon"] <= 1.0 + 1e-6, "the privacy spend must not pass the target"


def test_large_path_registers_the_model_with_its_privacy_tags(large_run) -> None:
    _, summary = large_run
    # then the model is registered, tagged with the epsilon the summary reports, and the gate decided
    assert summary["status"] in {"promoted", "rejected"}, (
        f"the run must reach the gate: {summary.get('error')}"
    )
    registry.configure_tracking(guardflow_home(), experiment="guardflow-adult")
    version = MlflowClient().get_model_version("adult-large-test", summary["model"]["version"])
    assert version.tags["guardflow.epsilon"] == f"{summary['privacy']['epsilon']:.4f}", "epsilon tag"
    assert version.tags["guardflow.gate"] == ("passed" if summary["gate"]["passed"] else "rejected"), (
        "gate tag"
    )
    written = json.loads((Path(summary["run_dir"]) / "summary.json").read_text())
    assert written["metrics"]["rows"] > 10_000, "judged on the configured test split"
