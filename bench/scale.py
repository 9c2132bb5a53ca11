"""Benchmark: `guardflow train` at 1M and 10M rows, end to end, with the peak anonymous memory of the whole run.

The data is UCI Adult expanded with seeded noise, so rows are not exact copies: numeric values are jittered
inside their public bounds (age and hours by a few units, fnlwgt and non-zero capital figures by ~5%), and a
few categorical values (2% of workclass, occupation, native-country) are resampled from other rows. It is
written as one Parquet file or one headerless CSV (Adult's own layout) into a scratch folder (never the repo),
and deleted at the end unless `--keep-data`.

Each variant is one `guardflow train --data <file>` in a fresh GUARDFLOW_HOME, with a config derived from
configs/adult.yaml: delta 1e-8 (below 1 / rows at 10M) and `privacy.max_steps` (out-of-core DP-SGD runs a fixed
number of steps however many rows there are; the noise is calibrated to them). While it runs, RssAnon (from
/proc/<pid>/status: memory-mapped file pages do not count) is summed over the run's whole process tree (the
CLI, Prefect's server, Dask's scheduler, nannies and workers) every 0.2 s; the peak is reported. Stage times
come from the console lines each stage logs when it ends. Figures go to bench/results/scale.json.

    .venv/bin/python bench/scale.py --rows 1000000 10000000 --formats parquet --workers 0
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.pipeline import git_commit, isolated_environment, machine_info, output_notes, summary_figures  # noqa: E402

DEFAULT_CONFIG = REPO / "configs" / "adult.yaml"
DEFAULT_OUTPUT = REPO / "bench" / "results" / "scale.json"
CHUNK_ROWS = 250_000
SAMPLE_SECONDS = 0.2
RESAMPLED_SHARE = 0.02
RESAMPLED_COLUMNS = ("workclass", "occupation", "native-country")
PAGE_KB = 1024
OUTPUT_TAIL = 20


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--formats", nargs="+", choices=["parquet", "csv"], default=["parquet", "csv"])
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[0],
        help="LocalCluster workers per run: 0 lets guardflow decide (default), N sets compute.workers",
    )
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument(
        "--scratch", type=Path, default=None, help="where data and homes go (default: a temp dir)"
    )
    parser.add_argument("--max-steps", type=int, default=2000, help="privacy.max_steps of the derived config")
    parser.add_argument(
        "--batch-size", type=int, default=1024, help="privacy.batch_size of the derived config"
    )
    parser.add_argument(
        "--sample-rows",
        type=int,
        default=50_000,
        help="compute.sample_rows (the scan's row-comparing detectors)",
    )
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument(
        "--training-only",
        action="store_true",
        help="measure only out-of-core encoding and DP training (no Prefect, no Dask stages) on the whole file",
    )
    parser.add_argument("--keep-data", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--merge", type=Path, nargs="+", help="combine these result files' runs into --output (nothing is run)"
    )
    return parser.parse_args(argv)


def adult_rows(config: Path) -> pd.DataFrame:
    """Adult's training rows, numerics as numbers, categoricals as text (missing as None)."""
    from guardflow.data.table import typed_frame
    from guardflow.io.datasets import read_split
    from guardflow.settings import load_settings

    dataset = load_settings(config).dataset
    rows = typed_frame(read_split(dataset, "train").rows, dataset).reset_index(drop=True)
    numeric = [name for name, feature in dataset.features.items() if feature.type == "numeric"]
    rows[numeric] = rows[numeric].round()
    return rows[list(dataset.columns)]


def expanded_chunks(
    base: pd.DataFrame, rows: int, seed: int, bounds: dict[str, tuple[float, float]]
) -> Iterator[pd.DataFrame]:
    """`rows` rows drawn from `base` with seeded noise (see the module docstring), CHUNK_ROWS at a time."""
    generator = np.random.default_rng(seed)
    for start in range(0, rows, CHUNK_ROWS):
        size = min(CHUNK_ROWS, rows - start)
        chunk = base.iloc[generator.integers(0, len(base), size)].reset_index(drop=True)
        for column, spread in (("age", 2), ("hours-per-week", 2)):
            chunk[column] = chunk[column] + generator.integers(-spread, spread + 1, size)
        for column in ("fnlwgt", "capital-gain", "capital-loss"):
            chunk[column] = (chunk[column] * np.exp(generator.normal(0, 0.05, size))).round()
        for column, (lower, upper) in bounds.items():
            chunk[column] = chunk[column].clip(lower, upper).astype("Int64")
        for column in RESAMPLED_COLUMNS:
            resampled = generator.random(size) < RESAMPLED_SHARE
            donors = base[column].to_numpy()[generator.integers(0, len(base), int(resampled.sum()))]
            chunk.loc[resampled, column] = donors
        yield chunk


def generate(
    base: pd.DataFrame, rows: int, path: Path, seed: int, bounds: dict[str, tuple[float, float]]
) -> float:
    """Write the expanded rows to `path` (Parquet or headerless CSV by suffix); the seconds it took."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    started = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        writer = None
        for chunk in expanded_chunks(base, rows, seed, bounds):
            table = pa.Table.from_pandas(chunk, preserve_index=False)
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
        if writer is not None:
            writer.close()
    else:
        with path.open("w", encoding="utf-8") as stream:
            for chunk in expanded_chunks(base, rows, seed, bounds):
                chunk.to_csv(stream, header=False, index=False, na_rep="?", lineterminator="\n")
    return time.perf_counter() - started


def derived_config(config: Path, folder: Path, args: argparse.Namespace, workers: int) -> Path:
    """configs/adult.yaml with absolute paths, delta 1e-8, the out-of-core step cap and the worker count."""
    settings = yaml.safe_load(config.read_text(encoding="utf-8"))
    for split in ("train", "test"):
        settings["dataset"][split]["path"] = str(
            (config.parent / settings["dataset"][split]["path"]).resolve()
        )
    settings["contract"]["suite"] = str((config.parent / settings["contract"]["suite"]).resolve())
    settings["privacy"].update({"delta": 1.0e-8, "max_steps": args.max_steps, "batch_size": args.batch_size})
    settings["compute"] = {"sample_rows": args.sample_rows, **({"workers": workers} if workers else {})}
    path = folder / f"scale-{workers}.yaml"
    path.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
    return path


def process_tree(root: int) -> list[int]:
    """`root` and every process descended from it (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as stream:
                fields = stream.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    tree, pending = [], [root]
    while pending:
        pid = pending.pop()
        tree.append(pid)
        pending.extend(children.get(pid, []))
    return tree


def rss_anon_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as stream:
            for line in stream:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class MemorySampler(threading.Thread):
    """Sums RssAnon over a process tree every SAMPLE_SECONDS; keeps the peak and the process count then."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.peak_kb = 0
        self.peak_processes = 0
        self.samples = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            tree = process_tree(self.root)
            total = sum(rss_anon_kb(pid) for pid in tree)
            self.samples += 1
            if total > self.peak_kb:
                self.peak_kb, self.peak_processes = total, len(tree)
            self._halt.wait(SAMPLE_SECONDS)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def run_environment(home: Path) -> dict[str, str]:
    """A fresh home, telemetry off, and room for Prefect's ephemeral server to start on a loaded machine."""
    environment = isolated_environment(home)
    # This checkout's code, whichever checkout the venv was installed from.
    environment["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO)])
    environment.update(
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="600",
        GX_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
    )
    return environment


def run_train(config: Path, data: Path, home: Path, timeout: float) -> dict[str, Any]:
    """One `guardflow train --data`, timed, with its peak anonymous memory."""
    guardflow = Path(sys.executable).parent / "guardflow"
    run_dir = home / "run"
    command = [
        str(guardflow),
        "train",
        "--config",
        str(config),
        "--data",
        str(data),
        "--run-dir",
        str(run_dir),
    ]
    started = time.perf_counter()
    lines: list[tuple[float, str]] = []
    with subprocess.Popen(
        command,
        cwd=REPO,
        env=run_environment(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        sampler = MemorySampler(process.pid)
        sampler.start()
        watchdog = threading.Timer(timeout, process.kill)
        watchdog.start()
        try:
            assert process.stdout is not None
            for line in process.stdout:
                lines.append((time.perf_counter() - started, line.rstrip("\n")))
                print(f"  {lines[-1][0]:8.1f}s  {lines[-1][1]}", flush=True)
            exit_code = process.wait()
        finally:
            watchdog.cancel()
            sampler.stop()
    wall = time.perf_counter() - started
    timed = {"wall_seconds": wall, "exit_code": exit_code, "lines": lines}
    return {
        "wall_seconds": round(wall, 1),
        "exit_code": exit_code,
        "peak_rss_anon_mb": round(sampler.peak_kb / PAGE_KB, 1),
        "processes_at_peak": sampler.peak_processes,
        "memory_samples": sampler.samples,
        **summary_figures(run_dir / "summary.json"),
        **stage_figures(run_dir / "summary.json"),
        **output_notes(timed),
    }


def train_out_of_core(config: Path, data: Path, out_dir: Path) -> dict[str, Any]:
    """Encode `data` (as one accepted part, read in chunks) and train on it out of core; judge on the test split.
    Run in a child process by `run_training_only`, which measures its memory."""
    from guardflow.data.encode_features import encode_features
    from guardflow.data.table import label_vector, labelled_rows
    from guardflow.io.datasets import read_split
    from guardflow.privacy.network import predict_proba
    from guardflow.privacy.train_streaming import encode_parts, train_streaming
    from guardflow.settings import load_settings

    settings = load_settings(config)
    started = time.perf_counter()
    arrays = encode_parts([data], None, settings.dataset, settings.privacy, settings.model.seed, out_dir)
    encoded = time.perf_counter()
    trained = train_streaming(arrays, settings.privacy, settings.model)
    finished = time.perf_counter()
    test = labelled_rows(read_split(settings.dataset, "test").rows, settings.dataset)
    probabilities = predict_proba(trained.model, encode_features(test, settings.dataset)).numpy()
    labels = label_vector(test, settings.dataset).to_numpy()
    return {
        "encode_seconds": round(encoded - started, 1),
        "encode_rows_per_second": round(arrays.total / (encoded - started)),
        "train_seconds": round(finished - encoded, 1),
        "rows_by_role": arrays.rows,
        "accuracy": round(float(((probabilities >= 0.5) == labels).mean()), 4),
        "epsilon": trained.privacy.epsilon,
        "steps": trained.privacy.steps,
        "sample_rate": trained.privacy.sample_rate,
        "noise_multiplier": trained.privacy.noise_multiplier,
    }


def run_training_only(config: Path, data: Path, out_dir: Path, timeout: float) -> dict[str, Any]:
    """`train_out_of_core` in a fresh process, with its peak RssAnon sampled as for a whole run."""
    code = (
        "import json, sys; from pathlib import Path; from bench.scale import train_out_of_core; "
        "print(json.dumps(train_out_of_core(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))))"
    )
    started = time.perf_counter()
    with subprocess.Popen(
        [sys.executable, "-c", code, str(config), str(data), str(out_dir)],
        cwd=REPO,
        env=run_environment(out_dir.parent),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        sampler = MemorySampler(process.pid)
        sampler.start()
        try:
            output, _ = process.communicate(timeout=timeout)
        finally:
            sampler.stop()
    printed = [line for line in output.splitlines() if line.startswith("{")]
    figures = json.loads(printed[-1]) if printed else {"output_tail": output.splitlines()[-OUTPUT_TAIL:]}
    return {
        "wall_seconds": round(time.perf_counter() - started, 1),
        "exit_code": process.returncode,
        "peak_rss_anon_mb": round(sampler.peak_kb / PAGE_KB, 1),
        **figures,
    }


def stage_figures(summary_path: Path) -> dict[str, Any]:
    """Row accounting and the privacy figures of the run's summary.json."""
    if not summary_path.is_file():
        return {}
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    data = summary.get("data") or {}
    privacy = summary.get("privacy") or {}
    return {
        "rows_in": data.get("rows_in"),
        "rows_accepted": data.get("rows_accepted"),
        "quarantined_by_contract": data.get("quarantined_by_contract"),
        "quarantined_by_scan": data.get("quarantined_by_scan"),
        "training_rows": privacy.get("training_rows"),
        "steps": privacy.get("steps"),
        "sample_rate": privacy.get("sample_rate"),
        "noise_multiplier": privacy.get("noise_multiplier"),
    }


def stage_durations(stage_seconds: list[list[Any]]) -> dict[str, float]:
    """Seconds between one stage's line and the previous one's (stages log when they end)."""
    durations: dict[str, float] = {}
    previous = 0.0
    for offset, name in stage_seconds:
        durations[name] = round(durations.get(name, 0.0) + offset - previous, 1)
        previous = offset
    return durations


def contract_rate(run: dict[str, Any]) -> dict[str, int]:
    """Rows per second to the contract's line, which ends the large path's first stage: the rerun check (the
    source's checksum), the LocalCluster's start and the workers' imports are in it too."""
    seconds = run.get("stage_durations", {}).get("contract")
    return {"contract_rows_per_second": round(run["rows"] / seconds)} if seconds else {}


def merge(files: Sequence[Path], output: Path) -> dict[str, Any]:
    """The runs of several result files (say one per format) as one, its targets judged on them all."""
    loaded = [json.loads(path.read_text(encoding="utf-8")) for path in files]
    runs = [{**run, **contract_rate(run)} for result in loaded for run in result["runs"]]
    merged = {**loaded[-1], "merged_from": [result["when"] for result in loaded], "runs": runs}
    merged["targets"] = targets([run for run in runs if "workers" in run])
    output.write_text(json.dumps(merged, indent=2) + "\n", encoding="utf-8")
    return merged


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.merge:
        print(json.dumps(merge(args.merge, args.output)["targets"], indent=2))
        return 0
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="guardflow-scale-"))
    scratch.mkdir(parents=True, exist_ok=True)
    from guardflow.settings import load_settings

    features = load_settings(args.config).dataset.features
    bounds = {
        name: (feature.min, feature.max)
        for name, feature in features.items()
        if feature.type == "numeric"  # type: ignore[union-attr]
    }
    base = adult_rows(args.config)
    results: dict[str, Any] = {
        "benchmark": "scale",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "code": git_commit(),
        "settings": {
            "max_steps": args.max_steps,
            "batch_size": args.batch_size,
            "delta": 1.0e-8,
            "sample_rows": args.sample_rows,
        },
        "runs": [],
    }
    try:
        for rows in sorted(args.rows, reverse=True):  # the largest first: the run that matters most
            for data_format in args.formats:
                data = scratch / f"adult-{rows}.{data_format}"
                # A file left by an earlier run with --scratch and the same seed is the same data: reuse it.
                seconds = 0.0 if data.is_file() else generate(base, rows, data, args.seed, bounds)
                print(
                    f"generated {data.name}: {data.stat().st_size / 2**20:.0f} MiB in {seconds:.0f}s",
                    flush=True,
                )
                if args.training_only:
                    config = derived_config(args.config, scratch, args, 0)
                    print(f"out-of-core training on {rows:,} rows", flush=True)
                    run = run_training_only(config, data, scratch / f"encoded-{rows}", args.timeout)
                    run.update(rows=rows, format=data_format, variant="training_only")
                    print(json.dumps(run), flush=True)
                    results["runs"].append(run)
                    args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
                    shutil.rmtree(scratch / f"encoded-{rows}", ignore_errors=True)
                for workers in [] if args.training_only else args.workers:
                    home = scratch / f"home-{rows}-{data_format}-{workers}"
                    config = derived_config(args.config, scratch, args, workers)
                    print(f"run {rows:,} rows, {data_format}, workers {workers or 'auto'}", flush=True)
                    run = run_train(config, data, home, args.timeout)
                    run.update(rows=rows, format=data_format, workers=workers or "auto")
                    run["data_mib"] = round(data.stat().st_size / 2**20, 1)
                    run["stage_durations"] = stage_durations(run.get("stage_seconds", []))
                    run["rows_per_second"] = round(rows / run["wall_seconds"])
                    run.update(contract_rate(run))
                    results["runs"].append(run)
                    args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
                    shutil.rmtree(home, ignore_errors=True)
                if not args.keep_data:
                    data.unlink()
    finally:
        if not args.keep_data and args.scratch is None:
            shutil.rmtree(scratch, ignore_errors=True)
    results["targets"] = targets([run for run in results["runs"] if "workers" in run])
    args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results["targets"], indent=2))
    return 0


def targets(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's targets on the smallest and largest runs of the same format and workers."""
    found: dict[str, Any] = {}
    for run in runs:
        same = [
            other for other in runs if (other["format"], other["workers"]) == (run["format"], run["workers"])
        ]
        small, large = min(same, key=lambda r: r["rows"]), max(same, key=lambda r: r["rows"])
        if small is large or small["exit_code"] or large["exit_code"]:
            continue
        key = f"{run['format']}-workers-{run['workers']}"
        found[key] = {
            "rows": [small["rows"], large["rows"]],
            "contract_rows_per_second": large.get("contract_rows_per_second"),
            "contract_rows_per_second_target": 300_000,
            "memory_ratio": round(large["peak_rss_anon_mb"] / small["peak_rss_anon_mb"], 2),
            "memory_ratio_target": 1.5,
            "accuracy_difference": (
                round(abs(large["accuracy"] - small["accuracy"]), 4)
                if large.get("accuracy") is not None and small.get("accuracy") is not None
                else None
            ),
            "accuracy_difference_target": 0.01,
        }
    return found


if __name__ == "__main__":
    raise SystemExit(main())
