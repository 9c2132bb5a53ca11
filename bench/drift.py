"""Benchmark: can the drift verdict be trusted, and what does a check on a large batch cost?

Reference: the Adult training split (32,561 rows), as the champion's reference data. Scores: a logistic
regression on `encode_features` of the training split (a quick stand-in for the champion; its predict_proba
is what the caller passes as `reference_scores` / `current_scores`). Every batch goes through `detect_drift`
with the config's drift settings (the family-wise rule). Without an HTML path it runs Evidently's column drift
tests without building the report's widgets; the first REPORT_CROSS_CHECKS batches of each condition are also
checked with the HTML report, as `drift-check` runs it, and must give the same p-values.

- False alarms: batches drawn from adult.test without replacement (1k and 10k rows). adult.test is a random
  third of the census rows, and a simple random sample of it is an i.i.d. sample of the same population as
  the reference, which is what an undrifted batch is. (Drawing with replacement would instead add
  adult.test's own sampling error to every batch.) The batches share rows, so the rate's spread is
  somewhat wider than the binomial interval printed next to it.
- Detection at 10k rows, each batch from adult.test again, shifted one way (magnitudes fixed in SHIFTS
  before measuring): a subpopulation over-represented by 5 points of share (age >= 50, women, a bachelor's
  degree or higher), a covariate shift (every row works one more hour a week), a new category (1% of rows with
  a workclass the reference never has), and a label-prior shift (positives +5 points) in label-free batches,
  which only the champion's scores and the features that go with the label can show.
- Cost of one check on a 1M-row batch against a 0.5M-row reference (both drawn with replacement from
  adult.data and adult.test together), read from Parquet, with scores and the HTML report, each run in a
  fresh subprocess: wall time (Evidently's import, paid once per process, timed apart) and peak RSS
  (VmHWM), median of --repeats runs. `--baseline` also times Evidently's DataDriftPreset on the same
  full frames, once.

    .venv/bin/python bench/drift.py [--batches 100] [--workers 2] [--repeats 3] [--baseline]

Writes bench/results/drift.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pipeline import machine_info, package_version  # bench/pipeline.py, next to this script
from sklearn.linear_model import LogisticRegression

from guardflow.data.encode_features import encode_features
from guardflow.data.table import label_vector, labelled_rows, typed_frame
from guardflow.drift.detect_drift import PREDICTION_COLUMN, detect_drift
from guardflow.io.datasets import read_split
from guardflow.settings import Settings, load_settings

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO / "configs" / "adult.yaml"
DEFAULT_OUTPUT = REPO / "bench" / "results" / "drift.json"
LARGE_BATCH_ROWS = 1_000_000
LARGE_REFERENCE_ROWS = 500_000
SHARE_SHIFT = 0.05  # subpopulation and label-prior shifts: the group's share in the batch, + 5 points
NEW_CATEGORY = ("workclass", "Gig-economy", 0.01)  # column, a value the reference never has, share of rows
HOURS_SHIFT = 1.0  # hours a week added to every row (capped at the public maximum, 99)
DEGREES = ("Bachelors", "Masters", "Prof-school", "Doctorate")
REPORT_CROSS_CHECKS = 5  # batches per condition also run with the HTML report


@dataclass(frozen=True)
class Condition:
    """One kind of batch: its size, whether it keeps the label, and how it is drawn."""

    name: str
    rows: int
    shifted: bool
    description: str


CONDITIONS = (
    Condition("iid-1k", 1_000, False, "simple random sample of adult.test"),
    Condition("iid-10k", 10_000, False, "simple random sample of adult.test"),
    Condition("age-50-plus", 10_000, True, "share of age >= 50 +5 points"),
    Condition("women", 10_000, True, "share of sex = Female +5 points"),
    Condition("degree", 10_000, True, "share of Bachelors/Masters/Prof-school/Doctorate +5 points"),
    Condition("hours-plus-one", 10_000, True, "hours-per-week + 1 on every row"),
    Condition("new-category", 10_000, True, "1% of rows: workclass = Gig-economy (unseen in reference)"),
    Condition("label-prior", 10_000, True, "share of income >50K +5 points; label column dropped"),
)

# Per-process state for the pool workers (set once by _init_worker).
_STATE: dict[str, Any] = {}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="guardflow YAML config")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where to write the JSON")
    parser.add_argument("--batches", type=int, default=100, help="batches per condition")
    parser.add_argument("--workers", type=int, default=2, help="processes checking batches")
    parser.add_argument("--repeats", type=int, default=3, help="runs of the 1M-row check")
    parser.add_argument("--baseline", action="store_true", help="also time Evidently's DataDriftPreset once")
    parser.add_argument("--only", nargs="*", help="run only these conditions (default: all)")
    parser.add_argument("--timed-check", nargs=2, metavar=("REFERENCE", "BATCH"), help=argparse.SUPPRESS)
    parser.add_argument("--timed-preset", nargs=2, metavar=("REFERENCE", "BATCH"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def wilson_interval(hits: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a rate."""
    rate = hits / trials
    centre = (rate + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(rate * (1 - rate) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


def load_frames(settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Typed reference (adult.data) and the labelled rows of adult.test."""
    dataset = settings.dataset
    reference = typed_frame(read_split(dataset, "train").rows, dataset)
    test = labelled_rows(read_split(dataset, "test").rows, dataset).reset_index(drop=True)
    return reference, test


def fit_scorer(settings: Settings, reference: pd.DataFrame) -> LogisticRegression:
    """A quick champion stand-in: logistic regression on the encoded training rows."""
    dataset = settings.dataset
    labelled = reference[
        reference[dataset.label.column].isin([dataset.label.positive, dataset.label.negative])
    ]
    return LogisticRegression(max_iter=1000).fit(
        encode_features(labelled, dataset), label_vector(labelled, dataset)
    )


def score(model: LogisticRegression, frame: pd.DataFrame, settings: Settings) -> np.ndarray:
    return np.asarray(model.predict_proba(encode_features(frame, settings.dataset))[:, 1], dtype="float64")


def _group_draw(test: pd.DataFrame, in_group: pd.Series, rows: int, rng: np.random.Generator) -> pd.DataFrame:
    """A batch whose share of the group is its share in adult.test plus SHARE_SHIFT, otherwise random."""
    group = np.flatnonzero(in_group.to_numpy())
    others = np.flatnonzero(~in_group.to_numpy())
    from_group = round(rows * (len(group) / len(test) + SHARE_SHIFT))
    picked = np.concatenate(
        [rng.choice(group, from_group, replace=False), rng.choice(others, rows - from_group, replace=False)]
    )
    return test.iloc[rng.permutation(picked)].reset_index(drop=True)


def draw_batch(condition: Condition, test: pd.DataFrame, settings: Settings, seed: int) -> pd.DataFrame:
    """One batch of the condition, drawn from adult.test with its own seed."""
    rng = np.random.default_rng(seed)
    label = settings.dataset.label.column
    draws: dict[str, Callable[[], pd.DataFrame]] = {
        "age-50-plus": lambda: _group_draw(test, test["age"] >= 50, condition.rows, rng),
        "women": lambda: _group_draw(test, test["sex"] == "Female", condition.rows, rng),
        "degree": lambda: _group_draw(test, test["education"].isin(DEGREES), condition.rows, rng),
        "label-prior": lambda: _group_draw(
            test, test[label] == settings.dataset.label.positive, condition.rows, rng
        ).drop(columns=[label]),
    }
    if condition.name in draws:
        return draws[condition.name]()
    batch = test.iloc[rng.choice(len(test), condition.rows, replace=False)].reset_index(drop=True)
    if condition.name == "hours-plus-one":
        batch["hours-per-week"] = (batch["hours-per-week"] + HOURS_SHIFT).clip(upper=99)
    elif condition.name == "new-category":
        column, value, share = NEW_CATEGORY
        changed = rng.choice(len(batch), round(share * len(batch)), replace=False)
        batch.loc[changed, column] = value
    return batch


def _init_worker(config: Path) -> None:
    os.environ.setdefault("DO_NOT_TRACK", "1")
    settings = load_settings(config)
    reference, test = load_frames(settings)
    model = fit_scorer(settings, reference)
    _STATE.update(
        settings=settings,
        reference=reference,
        test=test,
        model=model,
        reference_scores=score(model, reference, settings),
    )


def check_batch(task: tuple[int, int]) -> dict[str, Any]:
    """Draw batch `index` of condition number `which` and run detect_drift on it, with the scores."""
    which, index = task
    condition = CONDITIONS[which]
    settings: Settings = _STATE["settings"]
    batch = draw_batch(condition, _STATE["test"], settings, seed=1_000 * which + index)
    current_scores = score(_STATE["model"], batch, settings)
    started = time.perf_counter()
    result = detect_drift(
        _STATE["reference"],
        batch,
        settings.dataset,
        settings.drift,
        reference_scores=_STATE["reference_scores"],
        current_scores=current_scores,
    )
    seconds = time.perf_counter() - started
    report_agrees = None
    if index < REPORT_CROSS_CHECKS:
        with tempfile.TemporaryDirectory() as folder:
            with_report = detect_drift(
                _STATE["reference"],
                batch,
                settings.dataset,
                settings.drift,
                html_path=Path(folder) / "drift_report.html",
                reference_scores=_STATE["reference_scores"],
                current_scores=current_scores,
            )
        report_agrees = with_report.column_scores == result.column_scores and with_report.drift_detected == (
            result.drift_detected
        )
    return {
        "report_agrees": report_agrees,
        "condition": condition.name,
        "index": index,
        "seconds": seconds,
        "drift_detected": result.drift_detected,
        "prediction_drift": result.prediction_drift,
        "drifted_columns": list(result.drifted_columns),
        "columns_compared": len(result.column_scores),
        "column_alpha": result.column_alpha,
        "detectable_effects": result.detectable_effects,
    }


def summarise(condition: Condition, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Rates over a condition's batches: the verdict, prediction drift alone, and how often each column fired."""
    trials = len(records)
    hits = sum(record["drift_detected"] for record in records)
    prediction_hits = sum(bool(record["prediction_drift"]) for record in records)
    columns: dict[str, int] = {}
    for record in records:
        for name in record["drifted_columns"]:
            columns[name] = columns.get(name, 0) + 1
    low, high = wilson_interval(hits, trials)
    return {
        "rows": condition.rows,
        "shifted": condition.shifted,
        "description": condition.description,
        "batches": trials,
        "flagged": hits,
        "rate": hits / trials,
        "rate_interval_95": [low, high],
        "prediction_drift_rate": prediction_hits / trials,
        "column_flag_counts": dict(sorted(columns.items(), key=lambda item: -item[1])),
        "columns_compared": records[0]["columns_compared"],
        "column_alpha": records[0]["column_alpha"],
        "detectable_effects_at_95_power": records[0]["detectable_effects"],
        "median_check_seconds": statistics.median(record["seconds"] for record in records),
        "report_cross_checks": sum(record["report_agrees"] is not None for record in records),
        "report_cross_checks_agreeing": sum(record["report_agrees"] is True for record in records),
    }


def run_batches(config: Path, batches: int, workers: int, only: Sequence[str] | None) -> dict[str, Any]:
    chosen = [index for index, condition in enumerate(CONDITIONS) if not only or condition.name in only]
    tasks = [(which, index) for which in chosen for index in range(batches)]
    records: dict[str, list[dict[str, Any]]] = {CONDITIONS[which].name: [] for which in chosen}
    with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(config,)) as pool:
        for record in pool.map(check_batch, tasks, chunksize=4):
            records[record["condition"]].append(record)
    return {
        CONDITIONS[which].name: summarise(CONDITIONS[which], records[CONDITIONS[which].name])
        for which in chosen
    }


def write_large_frames(settings: Settings, folder: Path) -> tuple[Path, Path]:
    """A 0.5M-row reference and a 1M-row batch as Parquet, with scores, both drawn with replacement from
    adult.data and adult.test together: one distribution, so the right verdict is no drift."""
    reference, test = load_frames(settings)
    model = fit_scorer(settings, reference)
    pool = pd.concat([reference, test], ignore_index=True)
    rng = np.random.default_rng(7)
    paths = []
    for name, rows in (("reference", LARGE_REFERENCE_ROWS), ("batch", LARGE_BATCH_ROWS)):
        frame = pool.iloc[rng.choice(len(pool), rows, replace=True)].reset_index(drop=True)
        frame[PREDICTION_COLUMN] = score(model, frame, settings)
        for column, feature in settings.dataset.features.items():
            if feature.type == "categorical":
                frame[column] = frame[column].astype("category")
        frame[settings.dataset.label.column] = frame[settings.dataset.label.column].astype("category")
        path = folder / f"{name}.parquet"
        frame.to_parquet(path, index=False)
        paths.append(path)
    return paths[0], paths[1]


def timed_check(config: Path, reference_path: Path, batch_path: Path) -> dict[str, Any]:
    """(Child process.) Read both Parquet files and run detect_drift with scores and the HTML report."""
    settings = load_settings(config)
    importing = time.perf_counter()
    import evidently.metrics  # noqa: F401  (imported once per process: timed apart from the check)

    started = time.perf_counter()
    reference = pd.read_parquet(reference_path)
    batch = pd.read_parquet(batch_path)
    read = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        result = detect_drift(
            reference,
            batch,
            settings.dataset,
            settings.drift,
            html_path=Path(folder) / "drift_report.html",
            reference_scores=reference[PREDICTION_COLUMN].to_numpy(),
            current_scores=batch[PREDICTION_COLUMN].to_numpy(),
        )
    done = time.perf_counter()
    return {
        "import_seconds": started - importing,
        "peak_rss_mb": peak_rss_mb(),
        "read_seconds": read - started,
        "check_seconds": done - read,
        "seconds": done - started,
        "rows_reference": result.rows_reference,
        "rows_current": result.rows_current,
        "rows_compared_reference": result.rows_compared_reference,
        "rows_compared_current": result.rows_compared_current,
        "drift_detected": result.drift_detected,
        "drifted_columns": list(result.drifted_columns),
        "column_alpha": result.column_alpha,
        "detectable_effects": result.detectable_effects,
    }


def timed_preset(config: Path, reference_path: Path, batch_path: Path) -> dict[str, Any]:
    """(Child process.) Evidently's DataDriftPreset on the full frames, for comparison."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    settings = load_settings(config)
    numeric = [name for name, feature in settings.dataset.features.items() if feature.type == "numeric"]
    categorical = [
        name for name, feature in settings.dataset.features.items() if feature.type == "categorical"
    ]
    started = time.perf_counter()
    reference = pd.read_parquet(reference_path)
    batch = pd.read_parquet(batch_path)
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    columns = [*numeric, *categorical]
    snapshot = Report([DataDriftPreset()]).run(
        current_data=Dataset.from_pandas(batch[columns], data_definition=definition),
        reference_data=Dataset.from_pandas(reference[columns], data_definition=definition),
    )
    snapshot.json()
    return {"seconds": time.perf_counter() - started, "peak_rss_mb": peak_rss_mb()}


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: the address space since exec, not the forking parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def run_child(flag: str, config: Path, reference: Path, batch: Path) -> dict[str, Any]:
    """Run this script as a fresh subprocess: its answer (with its own peak RSS) and the whole process's time."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--config",
        str(config),
        flag,
        str(reference),
        str(batch),
    ]
    load = Path("/proc/loadavg").read_text().split()[:3]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, env={**os.environ, "DO_NOT_TRACK": "1"})
    output, _ = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{flag} child failed with exit code {process.returncode}")
    answer: dict[str, Any] = json.loads(output.decode().strip().splitlines()[-1])
    return {
        **answer,
        "process_seconds": time.perf_counter() - started,
        "loadavg_before": [float(value) for value in load],
    }


def run_large(config: Path, settings: Settings, repeats: int, baseline: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        reference, batch = write_large_frames(settings, Path(folder))
        runs = [run_child("--timed-check", config, reference, batch) for _ in range(repeats)]
        preset = run_child("--timed-preset", config, reference, batch) if baseline else None
    figures = {
        "rows_reference": LARGE_REFERENCE_ROWS,
        "rows_current": LARGE_BATCH_ROWS,
        "runs": runs,
        "median_seconds": statistics.median(run["seconds"] for run in runs),
        "median_check_seconds": statistics.median(run["check_seconds"] for run in runs),
        "median_read_seconds": statistics.median(run["read_seconds"] for run in runs),
        "median_import_seconds": statistics.median(run["import_seconds"] for run in runs),
        "median_process_seconds": statistics.median(run["process_seconds"] for run in runs),
        "median_peak_rss_mb": statistics.median(run["peak_rss_mb"] for run in runs),
    }
    if preset is not None:
        figures["evidently_data_drift_preset"] = preset
    return figures


def print_table(report: dict[str, Any]) -> None:
    header = f"{'condition':<16}{'rows':>8}{'batches':>9}{'flagged':>9}{'rate':>8}  {'95% interval':<15}"
    print(f"{header}{'pred.':>7}  top columns")
    for name, figures in report["conditions"].items():
        low, high = figures["rate_interval_95"]
        top = ", ".join(
            f"{column} {count}" for column, count in list(figures["column_flag_counts"].items())[:3]
        )
        print(
            f"{name:<16}{figures['rows']:>8,}{figures['batches']:>9}{figures['flagged']:>9}{figures['rate']:>8.1%}"
            f"  [{low:.3f}, {high:.3f}]{figures['prediction_drift_rate']:>8.1%}  {top}"
        )
    large = report.get("large_batch")
    if large:
        print(
            f"1M-row check vs 0.5M reference: {large['median_seconds']:.2f} s"
            f" (read {large['median_read_seconds']:.2f} s"
            f" + check {large['median_check_seconds']:.2f} s; Evidently import {large['median_import_seconds']:.1f} s;"
            f" whole process {large['median_process_seconds']:.1f} s),"
            f" peak RSS {large['median_peak_rss_mb']:.0f} MB (medians of {len(large['runs'])})"
        )
        if "evidently_data_drift_preset" in large:
            preset = large["evidently_data_drift_preset"]
            seconds, peak = preset["seconds"], preset["peak_rss_mb"]
            print(f"Evidently DataDriftPreset, same frames: {seconds:.1f} s, peak RSS {peak:.0f} MB")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    config = args.config.resolve()
    os.environ.setdefault("DO_NOT_TRACK", "1")
    if args.timed_check or args.timed_preset:
        run = timed_check if args.timed_check else timed_preset
        reference, batch = args.timed_check or args.timed_preset
        print(json.dumps(run(config, Path(reference), Path(batch))))
        return 0
    settings = load_settings(config)
    started = time.perf_counter()
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    large = run_large(config, settings, args.repeats, args.baseline) if args.repeats > 0 else None
    conditions = run_batches(config, args.batches, args.workers, args.only) if args.batches > 0 else {}
    report = {
        "benchmark": "drift",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {**machine_info(), "evidently": package_version("evidently")},
        "settings": settings.drift.model_dump(),
        "scorer": "sklearn LogisticRegression on encode_features(adult.data)",
        "shifts": {
            "share_shift_points": 100 * SHARE_SHIFT,
            "hours_shift": HOURS_SHIFT,
            "new_category": {"column": NEW_CATEGORY[0], "value": NEW_CATEGORY[1], "share": NEW_CATEGORY[2]},
            "degrees": list(DEGREES),
        },
        "conditions": conditions,
        "large_batch": large,
        "wall_seconds": time.perf_counter() - started,
        "loadavg_before": [float(value) for value in load_before],
        "loadavg_after": [float(value) for value in Path("/proc/loadavg").read_text().split()[:3]],
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print_table(report)
    after = report["loadavg_after"]
    print(f"wall {report['wall_seconds']:.0f} s, load average before {load_before}, after {after}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
