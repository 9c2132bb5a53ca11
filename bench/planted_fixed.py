"""Fixed planted candidates as full `guardflow train` flows: the sound one must be promoted, every planted one rejected.

One fresh GUARDFLOW_HOME: the sound candidate trains first and becomes champion, then each planted candidate
runs `guardflow train` against it (so the no-regression lines are live). Each case changes one thing:

- regression: trained on 2,000 rows only (a weaker model than the champion);
- poisoned labels: 30% of training labels flipped, the poisoning scan's label-noise detector off;
- uncalibrated: no DP Platt scaling (DP-SGD leaves the model over-confident);
- privacy spend: trained at epsilon 4, above the policy's ceiling of 1;
- unfair: labels set by sex on 40% of rows (men positive, women negative).

Saves bench/results/planted_candidates.json with each case's status, exit code and failed gate lines.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from guardflow.io.datasets import read_split, write_table
from guardflow.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "adult.yaml"
GUARDFLOW = Path(sys.executable).parent / "guardflow"


def _config(folder: Path, name: str, **sections: dict) -> Path:
    """configs/adult.yaml with absolute paths and some sections overridden."""
    raw = yaml.safe_load(CONFIG.read_text())
    for split in ("train", "test"):
        raw["dataset"][split]["path"] = str((CONFIG.parent / raw["dataset"][split]["path"]).resolve())
    raw["contract"]["suite"] = str((CONFIG.parent / raw["contract"]["suite"]).resolve())
    for section, values in sections.items():
        raw[section] = {**raw[section], **values}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _data(folder: Path, name: str, change: Callable[[pd.DataFrame], pd.DataFrame]) -> Path:
    """adult.data with one change, in its own format."""
    dataset = load_settings(CONFIG).dataset
    rows = change(read_split(dataset, "train").rows.copy())
    path = folder / f"{name}.data.gz"
    write_table(rows, path, dataset)
    return path


def _flip_labels(rows: pd.DataFrame, share: float, seed: int = 0) -> pd.DataFrame:
    chosen = np.random.default_rng(seed).random(len(rows)) < share
    rows.loc[chosen, "income"] = np.where(rows.loc[chosen, "income"] == ">50K", "<=50K", ">50K")
    return rows


def _label_by_sex(rows: pd.DataFrame, share: float, seed: int = 1) -> pd.DataFrame:
    chosen = np.random.default_rng(seed).random(len(rows)) < share
    rows.loc[chosen, "income"] = np.where(rows.loc[chosen, "sex"] == "Male", ">50K", "<=50K")
    return rows


def cases(folder: Path) -> list[tuple[str, Path, Path | None]]:
    """(name, config, data file or None for the configured one), the sound candidate first."""
    return [
        ("sound", _config(folder, "sound"), None),
        ("regression", _config(folder, "regression"), _data(folder, "small", lambda rows: rows.head(2_000))),
        (
            "poisoned_labels",
            _config(folder, "poisoned", poisoning={"label_noise": False}),
            _data(folder, "poisoned", lambda rows: _flip_labels(rows, 0.30)),
        ),
        ("uncalibrated", _config(folder, "uncalibrated", privacy={"calibration_fraction": 0.0}), None),
        ("privacy_spend", _config(folder, "spend", privacy={"target_epsilon": 4.0}), None),
        ("unfair", _config(folder, "unfair"), _data(folder, "unfair", lambda rows: _label_by_sex(rows, 0.4))),
    ]


def run_case(name: str, config: Path, data: Path | None, home: Path) -> dict:
    command = [str(GUARDFLOW), "train", "--config", str(config), "--run-dir", str(home / "runs" / name)]
    if data is not None:
        command += ["--data", str(data)]
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PREFECT_", "MLFLOW_"))}
    env["GUARDFLOW_HOME"] = str(home)
    started = time.perf_counter()
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    summary_path = home / "runs" / name / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    gate = summary.get("gate") or {}
    return {
        "case": name,
        "exit_code": completed.returncode,
        "status": summary.get("status"),
        "seconds": round(time.perf_counter() - started, 1),
        "failed_lines": [line for line in gate.get("lines", []) if line.startswith("FAIL")],
        "compared_to": gate.get("compared_to"),
        "accuracy": (summary.get("metrics") or {}).get("accuracy"),
        "epsilon": (summary.get("privacy") or {}).get("epsilon"),
        "error": summary.get("error") or (completed.stderr.strip().splitlines() or [""])[-1],
    }


def run_fixed(output: Path) -> int:
    """Run every fixed case in one fresh GUARDFLOW_HOME and save the report to `output`."""
    with tempfile.TemporaryDirectory(prefix="guardflow-planted-") as scratch:
        folder = Path(scratch)
        home = folder / "home"
        results = []
        for name, config, data in cases(folder):
            print(f"{name} ...", flush=True)
            results.append(run_case(name, config, data, home))
    expected = {"sound": "promoted"}
    verdicts = {
        result["case"]: result["status"] == expected.get(result["case"], "rejected") for result in results
    }
    report = {
        "benchmark": "planted_candidates_fixed",
        "timestamp_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "results": results,
        "all_as_expected": all(verdicts.values()),
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    for result in results:
        lines = "; ".join(result["failed_lines"]) or result["error"] or "-"
        print(f"{result['case']:<16} {result['status'] or 'failed':<10} exit {result['exit_code']}  {lines}")
    print(f"all as expected: {report['all_as_expected']}  (saved {output})")
    return 0 if report["all_as_expected"] else 1
