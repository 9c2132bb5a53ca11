"""Benchmark: does the drift loop close? A retrain through the whole `drift-check` flow, per drift kind.

Stable test set, reference and batches never share a row: the configured test set stays adult.test (the
population the gate's absolute thresholds were set for), and a seeded POOL_ROWS of adult.data are set aside as the
pool batches are drawn from (without replacement); the champion is trained once, through `safety-train`, on the
rest of adult.data, which is then the drift reference.
Then, per drift kind and seed, a batch of BATCH_ROWS rows is drawn from the pool with the kind's
shift, written to a file and run through `drift-check` in-process: contract, drift, and on drift the seeded
window split and a guarded retrain on reference plus the rest of the batch, judged by the one rule (absolute
lines on the test set, no-regression lines on the test set and on the window, the audit on the audit split).

Kinds (the ones bench/drift.py generates; magnitudes larger here, so that each is a genuine shift):
- subpopulation: the share of people aged 50 and over + SUBPOPULATION_SHIFT;
- covariate: every row works HOURS_SHIFT more hours a week (capped at 99);
- new-category: NEW_CATEGORY_SHARE of rows get a workclass the config's categories lack (the contract
  quarantines them; the rest of the batch is i.i.d.);
- new-category-listed: LISTED_CATEGORY_SHARE of rows get a workclass the config lists but the reference all
  but lacks (Never-worked), which the contract admits;
- label-prior: the share of incomes >50K + LABEL_PRIOR_SHIFT (the label is kept: a retrain needs it).

The registry asks for approval in the retrain config, so a candidate that passes the gate waits as challenger
and every retrain faces the same champion (`awaiting_approval` is a passed gate). The lifetime budget is
raised for the bench (each retrain charges adult.data once). Records per run: drift verdict, decision, the
champion's and the candidate's accuracy on the window and on the test set, the audit's AUC and epsilon bound,
the failed lines; medians per kind.

    .venv/bin/python bench/drift_retrain.py [--seeds 3] [--only subpopulation covariate]

Writes bench/results/drift_retrain.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO / "configs" / "adult.yaml"
DEFAULT_OUTPUT = REPO / "bench" / "results" / "drift_retrain.json"
BATCH_ROWS = 4_000
SPLIT_SEED = 2026  # sets POOL_ROWS of adult.data aside as the batch pool
POOL_ROWS = 8_000
SUBPOPULATION_SHIFT = 0.20  # share of age >= 50, + 20 points
HOURS_SHIFT = 3.0
NEW_CATEGORY = ("workclass", "Gig-economy")  # outside the config's categories: the contract quarantines it
NEW_CATEGORY_SHARE = 0.02
# Listed in the config's public categories but all but absent from adult.data (7 of 32,561 rows).
LISTED_CATEGORY = ("workclass", "Never-worked")
LISTED_CATEGORY_SHARE = 0.05
LABEL_PRIOR_SHIFT = 0.10  # share of >50K, + 10 points
KINDS = ("subpopulation", "covariate", "new-category", "new-category-listed", "label-prior")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="guardflow YAML config")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where to write the JSON")
    parser.add_argument("--seeds", type=int, default=3, help="batches per kind")
    parser.add_argument("--only", nargs="*", choices=KINDS, help="run only these kinds (default: all)")
    return parser.parse_args(argv)


def write_config(base: Path, folder: Path, train_path: Path, train_sha256: str, approval: str) -> Path:
    """The base config with absolute paths, adult.data minus the pool as training file, a bench budget."""
    raw = yaml.safe_load(base.read_text())
    for split in ("train", "test"):
        raw["dataset"][split]["path"] = str((base.parent / raw["dataset"][split]["path"]).resolve())
    raw["dataset"]["train"] = {"path": str(train_path), "sha256": train_sha256}
    raw["contract"]["suite"] = str((base.parent / raw["contract"]["suite"]).resolve())
    raw["privacy"]["lifetime_epsilon"] = 1_000.0
    raw["registry"] = {"model_name": "bench-drift-retrain", "approval": approval}
    raw["drift"].pop("inbox", None)
    path = folder / f"config-{approval}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _group_draw(
    pool: pd.DataFrame, in_group: np.ndarray, share: float, rng: np.random.Generator
) -> pd.DataFrame:
    """BATCH_ROWS rows whose share of the group is `share`, drawn without replacement."""
    group, others = np.flatnonzero(in_group), np.flatnonzero(~in_group)
    from_group = round(BATCH_ROWS * share)
    picked = np.concatenate(
        [
            rng.choice(group, from_group, replace=False),
            rng.choice(others, BATCH_ROWS - from_group, replace=False),
        ]
    )
    return pool.iloc[rng.permutation(picked)]


def draw_batch(kind: str, pool: pd.DataFrame, typed: pd.DataFrame, label: str, seed: int) -> pd.DataFrame:
    """One batch of raw (text) rows of the kind, from the pool, with its own seed."""
    rng = np.random.default_rng(seed)
    if kind == "subpopulation":
        older = (typed["age"] >= 50).to_numpy()
        return _group_draw(pool, older, older.mean() + SUBPOPULATION_SHIFT, rng)
    if kind == "label-prior":
        positive = typed[label].astype(str).str.startswith(">50K").to_numpy()
        return _group_draw(pool, positive, positive.mean() + LABEL_PRIOR_SHIFT, rng)
    batch = pool.iloc[rng.choice(len(pool), BATCH_ROWS, replace=False)].copy()
    if kind == "covariate":
        hours = pd.to_numeric(batch["hours-per-week"]) + HOURS_SHIFT
        batch["hours-per-week"] = hours.clip(upper=99).round().astype(int).astype(str)
    elif kind in ("new-category", "new-category-listed"):
        (column, value), share = (
            (NEW_CATEGORY, NEW_CATEGORY_SHARE)
            if kind == "new-category"
            else (LISTED_CATEGORY, LISTED_CATEGORY_SHARE)
        )
        changed = rng.choice(len(batch), round(share * len(batch)), replace=False)
        batch.iloc[changed, batch.columns.get_loc(column)] = value
    return batch


def _line_value(lines: list[str], name: str) -> str | None:
    return next((line for line in lines if line.split()[1] == name), None)


def run_one(
    config: Path, kind: str, seed: int, batch: pd.DataFrame, folder: Path, dataset: Any
) -> dict[str, Any]:
    """drift-check in-process on one batch; the retrain's decision and figures from its summary.json."""
    from flows.drift_check import drift_check
    from guardflow.io.datasets import write_table

    batch_path = folder / f"{kind}-{seed}.csv"
    write_table(batch, batch_path, dataset)
    run_dir = folder / f"run-{kind}-{seed}"
    started, cpu = time.perf_counter(), time.process_time()
    summary = drift_check(str(config), str(batch_path), str(run_dir))
    record: dict[str, Any] = {
        "kind": kind,
        "seed": seed,
        "batch_rows": len(batch),
        "seconds": round(time.perf_counter() - started, 1),
        "cpu_seconds": round(time.process_time() - cpu, 1),
        "status": summary.status,
        "drift_detected": bool(summary.drift and summary.drift.drift_detected),
        "drifted_columns": list(summary.drift.drifted_columns) if summary.drift else [],
    }
    retrain_path = run_dir / "retrain" / "summary.json"
    if not retrain_path.exists():
        return record | {"decision": "no retrain"}
    retrain = json.loads(retrain_path.read_text())
    window, gate, metrics = (
        retrain.get("window") or {},
        retrain.get("gate") or {},
        retrain.get("metrics") or {},
    )
    passed = bool(gate.get("passed"))
    return record | {
        "decision": "promoted" if passed else "rejected",
        "retrain_status": retrain["status"],
        "window_rows": window.get("rows"),
        "window_accuracy_candidate": (window.get("candidate") or {}).get("accuracy"),
        "window_accuracy_champion": (window.get("champion") or {}).get("accuracy"),
        "test_accuracy_candidate": metrics.get("accuracy"),
        "test_ece_candidate": metrics.get("ece"),
        "mia_auc": metrics.get("mia_auc"),
        "mia_epsilon_lower_bound": metrics.get("mia_epsilon_lower_bound"),
        "mia_one_run_epsilon_lower_bound": metrics.get("mia_one_run_epsilon_lower_bound"),
        "epsilon": (retrain.get("privacy") or {}).get("epsilon"),
        "audit_rows": (retrain.get("privacy") or {}).get("audit_rows"),
        "failed_lines": [line for line in gate.get("lines", []) if line.startswith("FAIL")],
        "lines": gate.get("lines", []),
    }


def _median(records: list[dict[str, Any]], key: str) -> float | None:
    values = [record[key] for record in records if record.get(key) is not None]
    return round(statistics.median(values), 4) if values else None


def summarise(kind: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    decisions = [record["decision"] for record in records]
    return {
        "kind": kind,
        "runs": len(records),
        "decisions": {decision: decisions.count(decision) for decision in sorted(set(decisions))},
        **{
            f"median_{key}": _median(records, key)
            for key in (
                "window_accuracy_champion",
                "window_accuracy_candidate",
                "test_accuracy_candidate",
                "test_ece_candidate",
                "mia_auc",
                "mia_epsilon_lower_bound",
                "mia_one_run_epsilon_lower_bound",
                "epsilon",
                "seconds",
                "cpu_seconds",
            )
        },
    }


def print_table(report: dict[str, Any]) -> None:
    print(f"champion test accuracy {report['champion']['test_accuracy']:.4f} on {report['test_rows']:,} rows")
    header = f"{'kind':<14} {'runs':>4} {'decisions':<26} {'win champ':>9} {'win cand':>9} {'mia auc':>8} {'eps lb':>7}"
    print(header)
    for row in report["kinds"]:
        decisions = ", ".join(f"{name} {count}" for name, count in row["decisions"].items())

        def cell(value: float | None) -> str:
            return f"{value:.4f}" if value is not None else "-"

        print(
            f"{row['kind']:<14} {row['runs']:>4} {decisions:<26} {cell(row['median_window_accuracy_champion']):>9}"
            f" {cell(row['median_window_accuracy_candidate']):>9} {cell(row['median_mia_auc']):>8}"
            f" {cell(row['median_mia_epsilon_lower_bound']):>7}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="guardflow-drift-retrain-"))
    os.environ["GUARDFLOW_HOME"] = str(folder / "home")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    from threadpoolctl import threadpool_limits

    from guardflow.data.table import typed_frame
    from guardflow.io.datasets import read_split, read_table, write_table
    from guardflow.runtime import prepare_environment
    from guardflow.settings import load_settings

    prepare_environment(folder / "home")
    settings = load_settings(args.config)
    dataset = settings.dataset
    train = read_split(dataset, "train").rows
    order = np.random.default_rng(SPLIT_SEED).permutation(len(train))
    pool = train.iloc[np.sort(order[:POOL_ROWS])].reset_index(drop=True)
    reference = train.iloc[np.sort(order[POOL_ROWS:])]
    reference_path = folder / "reference.data.gz"
    write_table(reference, reference_path, dataset)
    reference_sha256 = read_table(reference_path, dataset).sha256
    champion_config = write_config(args.config, folder, reference_path, reference_sha256, "none")
    retrain_config = write_config(args.config, folder, reference_path, reference_sha256, "required")
    test_rows = read_split(dataset, "test").row_count
    typed_pool = typed_frame(pool, dataset)

    from flows.safety_train import safety_train

    records: list[dict[str, Any]] = []
    with threadpool_limits(1):
        started = time.perf_counter()
        champion = safety_train(str(champion_config), str(folder / "champion"))
        champion_seconds = time.perf_counter() - started
        if champion.status != "promoted":
            print(f"the champion was not promoted: {champion.gate}", file=sys.stderr)
            return 1
        for kind in args.only or KINDS:
            for seed in range(args.seeds):
                batch = draw_batch(
                    kind, pool, typed_pool, dataset.label.column, seed=1_000 * KINDS.index(kind) + seed
                )
                record = run_one(retrain_config, kind, seed, batch, folder, dataset)
                print(
                    f"{kind} seed {seed}: {record['status']}, {record['decision']}, "
                    f"window {record.get('window_accuracy_champion')} -> {record.get('window_accuracy_candidate')}, "
                    f"failed {record.get('failed_lines')}",
                    flush=True,
                )
                records.append(record)
    report = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": str(args.config.relative_to(REPO) if args.config.is_relative_to(REPO) else args.config),
        "split_seed": SPLIT_SEED,
        "test_rows": test_rows,
        "reference_rows": len(reference),
        "pool_rows": len(pool),
        "batch_rows": BATCH_ROWS,
        "window_fraction": settings.drift.window_fraction,
        "audit_fraction": settings.privacy.audit_fraction,
        "magnitudes": {
            "subpopulation": f"share of age >= 50 + {SUBPOPULATION_SHIFT}",
            "covariate": f"hours-per-week + {HOURS_SHIFT}",
            "new-category": f"{NEW_CATEGORY_SHARE:.0%} of rows {NEW_CATEGORY[0]} = {NEW_CATEGORY[1]}",
            "new-category-listed": f"{LISTED_CATEGORY_SHARE:.0%} of rows {LISTED_CATEGORY[0]} = {LISTED_CATEGORY[1]}",
            "label-prior": f"share of >50K + {LABEL_PRIOR_SHIFT}",
        },
        "seeds": args.seeds,
        "batch_seeds": "1000 * kind index + seed",
        "champion": {
            "status": champion.status,
            "test_accuracy": champion.metrics.accuracy if champion.metrics else None,
            "test_ece": champion.metrics.ece if champion.metrics else None,
            "mia_auc": champion.metrics.mia_auc if champion.metrics else None,
            "mia_epsilon_lower_bound": champion.metrics.mia_epsilon_lower_bound if champion.metrics else None,
            "seconds": round(champion_seconds, 1),
        },
        "kinds": [
            summarise(kind, [record for record in records if record["kind"] == kind])
            for kind in args.only or KINDS
        ],
        "runs": records,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2))
    print_table(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
