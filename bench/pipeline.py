"""Benchmark: what the safety pipeline costs over bare DP training, end to end, on the full Adult data.

Variants, each run as a subprocess so interpreter start and imports count for both:
- `train`: `guardflow train --config configs/adult.yaml`, each time in a fresh GUARDFLOW_HOME (Prefect and
  MLflow start from nothing, as on a new machine);
- `bare`: `bench/bare_dp.py`, the same DP model with no safety stages;
- `train_warm` (`--warm-repeats`, default 1): `guardflow train` again in the home a `train` run left
  (Prefect's and MLflow's databases exist: what a user's second and later runs cost);
- the commands that only read records (`budget`, `history`, `lineage show`), `--read-repeats` times each, in
  the first train run's home.
Every train run is cut into: startup (command to its first output line), the flow's start (to the flow's own
first line: imports and the Prefect API), each stage (from the previous stage's line to its own: stages log
when they end), the flow (as summary.json records it) and total wall. `train` and `bare` runs are interleaved
so drift in the machine's load hits both alike; each run records the load average before it. The machine is
shared and noisy: read medians. Figures go to bench/results/pipeline.json; a short table goes to stdout.

    .venv/bin/python bench/pipeline.py --repeats 3
    .venv/bin/python bench/pipeline.py --repeats 3 --source /tmp/old-checkout   # the same, for another tree
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO / "configs" / "adult.yaml"
DEFAULT_OUTPUT = REPO / "bench" / "results" / "pipeline.json"
BARE_SCRIPT = REPO / "bench" / "bare_dp.py"
# Settings a developer's shell may carry that would point a run at existing stores instead of fresh ones.
ISOLATED_PREFIXES = ("PREFECT_", "MLFLOW_", "OPENLINEAGE_", "GUARDFLOW_")
# A stage line of the CLI's console log: the stage name, then two or more spaces ("scan      574 rows ...").
STAGE_LINE = re.compile(r"^([a-z][\w-]*)\s{2,}")
OUTPUT_TAIL_LINES = 20
# The commands that only read records, timed in the home the train runs left.
READ_COMMANDS = {
    "budget": ["budget"],
    "history": ["history"],
    "lineage_show": ["lineage", "show"],
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each variant (default 3)")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="guardflow YAML config")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where to write the JSON")
    parser.add_argument(
        "--warm-repeats",
        type=int,
        default=1,
        help="train runs in the home a fresh run left, spread over the repeats (default 1; 0: none)",
    )
    parser.add_argument(
        "--bare",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time bench/bare_dp.py, interleaved (default: on)",
    )
    parser.add_argument(
        "--read-repeats", type=int, default=5, help="runs of each read-only command (default 5; 0: none)"
    )
    parser.add_argument(
        "--source",
        type=Path,
        default=REPO,
        help="the checkout whose guardflow is measured (default: this one), e.g. an older commit's tree",
    )
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds before a run is killed")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    args.source = args.source.resolve()
    return args


def isolated_environment(home: Path | None, source: Path = REPO) -> dict[str, str]:
    """This process's environment without Prefect/MLflow/lineage settings, pointed at `home` when given, running
    the guardflow of `source`.

    Unbuffered output, so the time a line is read is the time it was written.
    """
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith(ISOLATED_PREFIXES)
    }
    environment["PYTHONUNBUFFERED"] = "1"
    environment["PYTHONPATH"] = os.pathsep.join([str(source / "src"), str(source)])
    if home is not None:
        environment["GUARDFLOW_HOME"] = str(home)
    return environment


def run_timed(
    command: list[str], environment: dict[str, str], timeout: float, cwd: Path = REPO
) -> dict[str, Any]:
    """Run a command to the end and time it; keep its output lines with the second each one arrived.

    `cpu_seconds`: user + system CPU of the command and the processes it waited for (the Prefect API server
    included), a figure the machine's load barely moves, unlike wall time."""
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    lines: list[tuple[float, str]] = []
    with subprocess.Popen(
        command,
        cwd=cwd,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        watchdog = threading.Timer(timeout, process.kill)  # a hung run must not hang the benchmark
        watchdog.start()
        try:
            assert process.stdout is not None
            for line in process.stdout:
                lines.append((time.perf_counter() - started, line.rstrip("\n")))
            exit_code = process.wait()
        finally:
            watchdog.cancel()
    wall = time.perf_counter() - started
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (children_after.ru_utime - children_before.ru_utime) + (
        children_after.ru_stime - children_before.ru_stime
    )
    return {"wall_seconds": wall, "cpu_seconds": cpu, "exit_code": exit_code, "lines": lines}


def output_notes(timed: dict[str, Any]) -> dict[str, Any]:
    """What a run's output says about it: stage timeline, tracebacks seen, and its tail when it failed."""
    lines: list[tuple[float, str]] = timed["lines"]
    notes: dict[str, Any] = {
        # When each stage logged its line (stages log when they end): where the time went, run by run.
        "stage_seconds": [
            [round(offset, 2), match.group(1)] for offset, text in lines if (match := STAGE_LINE.match(text))
        ],
        "tracebacks_in_output": sum(text.startswith("Traceback") for _, text in lines),
    }
    if timed["exit_code"] != 0:
        notes["output_tail"] = [text for _, text in lines[-OUTPUT_TAIL_LINES:]]
    return notes


def stage_durations(timeline: list[list[Any]]) -> dict[str, float]:
    """Seconds per stage from the stage timeline: each stage's line minus the line before it (the flow's own
    first line opens the timeline), summed over a stage's repeats (load and pii run for train and test)."""
    durations: dict[str, float] = {}
    for (before, _), (after, name) in itertools.pairwise(timeline):
        durations[name] = round(durations.get(name, 0.0) + after - before, 2)
    return durations


def summary_figures(summary_path: Path) -> dict[str, Any]:
    """The figures of a run's summary.json this benchmark reports (None for sections the run never reached)."""
    if not summary_path.is_file():
        return {"status": None}
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    privacy = summary.get("privacy") or {}
    metrics = summary.get("metrics") or {}
    data = summary.get("data") or {}
    return {
        "status": summary.get("status"),
        "epsilon": privacy.get("epsilon"),
        "accuracy": metrics.get("accuracy"),
        "roc_auc": metrics.get("roc_auc"),
        "ece": metrics.get("ece"),
        "rows_quarantined": data.get("rows_quarantined"),
        "flow_seconds": summary.get("seconds"),
    }


def load_average() -> list[float]:
    return [round(load, 2) for load in os.getloadavg()]


def run_train(config: Path, home: Path, run_name: str, timeout: float, source: Path = REPO) -> dict[str, Any]:
    """One `guardflow train` in `home`, its run folder at `home/run_name`."""
    guardflow = Path(sys.executable).parent / "guardflow"
    run_dir = home / run_name
    command = [str(guardflow), "train", "--config", str(config), "--run-dir", str(run_dir), "--force"]
    load = load_average()
    timed = run_timed(command, isolated_environment(home, source), timeout, cwd=source)
    first_line = timed["lines"][0][0] if timed["lines"] else None
    notes = output_notes(timed)
    timeline = notes["stage_seconds"]
    return {
        "wall_seconds": round(timed["wall_seconds"], 2),
        "cpu_seconds": round(timed["cpu_seconds"], 2),
        "exit_code": timed["exit_code"],
        "load_average_before": load,
        # Spawn to the first console line: what a user waits in silence.
        "startup_seconds": round(first_line, 2) if first_line is not None else None,
        # Spawn to the flow's own first line (its run folder opened): imports, the Prefect API, the flow run.
        "flow_start_seconds": timeline[0][0] if timeline else None,
        "stages": stage_durations(timeline),
        **summary_figures(run_dir / "summary.json"),
        **notes,
    }


def run_read_command(
    config: Path, home: Path, name: str, timeout: float, source: Path = REPO
) -> dict[str, Any]:
    """One read-only command (`READ_COMMANDS[name]`) in `home`: wall seconds, first line, exit code."""
    guardflow = Path(sys.executable).parent / "guardflow"
    command = [str(guardflow), *READ_COMMANDS[name], "--config", str(config)]
    timed = run_timed(command, isolated_environment(home, source), timeout, cwd=source)
    return {
        "wall_seconds": round(timed["wall_seconds"], 2),
        "cpu_seconds": round(timed["cpu_seconds"], 2),
        "load_average_before": load_average(),
        "startup_seconds": round(timed["lines"][0][0], 2) if timed["lines"] else None,
        "exit_code": timed["exit_code"],
        "lines": len(timed["lines"]),
    }


def describe_reads(runs: list[dict[str, Any]]) -> dict[str, Any]:
    walls = [run["wall_seconds"] for run in runs]
    return {
        "repeats": len(runs),
        "wall_seconds": walls,
        "wall_median": statistics.median(walls),
        "cpu_median": median_of(runs, "cpu_seconds"),
        "all_exit_zero": all(run["exit_code"] == 0 for run in runs),
        "runs": runs,
    }


def run_bare(config: Path, timeout: float) -> dict[str, Any]:
    """One `bench/bare_dp.py`; its figures come from the JSON line it prints last."""
    command = [sys.executable, str(BARE_SCRIPT), "--config", str(config)]
    timed = run_timed(command, isolated_environment(None), timeout)
    printed = [text for _, text in timed["lines"] if text.startswith("{")]
    figures = json.loads(printed[-1]) if printed else {}
    return {
        "wall_seconds": round(timed["wall_seconds"], 2),
        "exit_code": timed["exit_code"],
        **figures,
        **output_notes(timed),
    }


def median_of(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [run[key] for run in runs if run.get(key) is not None]
    return statistics.median(values) if values else None


def describe_variant(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Every run's wall seconds with their median, min and max, plus medians of the model's figures and, for
    train runs, of startup, flow start, flow and each stage."""
    walls = [run["wall_seconds"] for run in runs]
    described: dict[str, Any] = {
        "repeats": len(runs),
        "wall_seconds": walls,
        "wall_median": statistics.median(walls),
        "wall_min": min(walls),
        "wall_max": max(walls),
        "accuracy_median": median_of(runs, "accuracy"),
        "epsilon_median": median_of(runs, "epsilon"),
        "all_exit_zero": all(run["exit_code"] == 0 for run in runs),
    }
    if any("stages" in run for run in runs):
        stage_names = list(dict.fromkeys(name for run in runs for name in run.get("stages", {})))
        described.update(
            {
                "startup_median": median_of(runs, "startup_seconds"),
                "flow_start_median": median_of(runs, "flow_start_seconds"),
                "flow_median": median_of(runs, "flow_seconds"),
                "cpu_median": median_of(runs, "cpu_seconds"),
                "stage_medians": {
                    name: statistics.median(run["stages"][name] for run in runs if name in run["stages"])
                    for name in stage_names
                },
            }
        )
    described["runs"] = runs
    return described


def git_commit(source: Path = REPO) -> dict[str, Any]:
    """The commit measured and whether the tree had local changes (read-only git calls)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain"], cwd=source, capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(status.strip())}


def package_version(name: str) -> str | None:
    """An installed package's version, read from its metadata (importing torch here would cost seconds)."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def machine_info(source: Path = REPO) -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": package_version("torch"),
        "prefect": package_version("prefect"),
        "mlflow": package_version("mlflow"),
        **git_commit(source),
    }


def run_benchmark(
    args: argparse.Namespace, save: Callable[[dict[str, Any]], object] = lambda _: None
) -> dict[str, Any]:
    """Train runs in fresh homes, interleaved with bare runs; after the first, the read-only commands in its home;
    after each, `--warm-repeats` warm trains spread over the repeats. `save` gets the figures so far after every
    run (on a loaded machine a run can take minutes: what finished is kept)."""
    config = args.config.resolve()
    source = args.source
    train_runs: list[dict[str, Any]] = []
    bare_runs: list[dict[str, Any]] = []
    warm_runs: list[dict[str, Any]] = []
    reads: dict[str, list[dict[str, Any]]] = {name: [] for name in READ_COMMANDS}

    def measured() -> dict[str, Any]:
        variants = {"train": describe_variant(train_runs)} if train_runs else {}
        if bare_runs:
            variants["bare"] = describe_variant(bare_runs)
        if warm_runs:
            variants["train_warm"] = describe_variant(warm_runs)
        figures: dict[str, Any] = {"variants": variants}
        if train_runs and bare_runs:
            figures["overhead_ratio"] = round(
                variants["train"]["wall_median"] / variants["bare"]["wall_median"], 3
            )
        if any(reads.values()):
            figures["read_commands"] = {name: describe_reads(runs) for name, runs in reads.items() if runs}
        return figures

    home: Path | None = None
    try:
        for repeat in range(1, args.repeats + 1):
            if home is not None:
                shutil.rmtree(home, ignore_errors=True)
            home = Path(tempfile.mkdtemp(prefix="guardflow-bench-"))
            print(f"[{repeat}/{args.repeats}] train (fresh home) ...", file=sys.stderr, flush=True)
            train_runs.append(run_train(config, home, "run", args.timeout, source))
            save(measured())
            if args.bare:
                print(f"[{repeat}/{args.repeats}] bare ...", file=sys.stderr, flush=True)
                bare_runs.append(run_bare(config, args.timeout))
                save(measured())
            for read in range(args.read_repeats if repeat == 1 else 0):
                for name in READ_COMMANDS:  # interleaved, like the trains
                    print(f"[read {read + 1}] {name} ...", file=sys.stderr, flush=True)
                    reads[name].append(run_read_command(config, home, name, args.timeout, source))
                save(measured())
            warm_here = len(range(repeat - 1, args.warm_repeats, args.repeats))
            for warm in range(warm_here):
                print(f"[{repeat}/{args.repeats}] train (warm home) ...", file=sys.stderr, flush=True)
                warm_runs.append(run_train(config, home, f"run-warm-{warm + 1}", args.timeout, source))
                save(measured())
    finally:
        if home is not None:
            shutil.rmtree(home, ignore_errors=True)
    return measured()


def format_table(results: dict[str, Any]) -> str:
    """A short human table: medians first, then every run's wall seconds."""

    def figure(value: float | None, digits: int) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    lines = [
        f"{'variant':<11} {'n':>2} {'median s':>9} {'min s':>7} {'max s':>7} {'accuracy':>9} {'epsilon':>8}"
        "  all runs (s)"
    ]
    for name, variant in results["variants"].items():
        runs = ", ".join(f"{wall:.1f}" for wall in variant["wall_seconds"])
        lines.append(
            f"{name:<11} {variant['repeats']:>2} {variant['wall_median']:>9.1f} {variant['wall_min']:>7.1f} "
            f"{variant['wall_max']:>7.1f} {figure(variant['accuracy_median'], 4):>9} "
            f"{figure(variant['epsilon_median'], 3):>8}  {runs}"
        )
    for name in ("train", "train_warm"):
        variant = results["variants"].get(name)
        if variant is None:
            continue
        stages = ", ".join(f"{stage} {seconds:.1f}" for stage, seconds in variant["stage_medians"].items())
        lines.append(
            f"{name} medians: first line {figure(variant['startup_median'], 2)}s, flow start "
            f"{figure(variant['flow_start_median'], 1)}s, flow {figure(variant['flow_median'], 1)}s, CPU "
            f"{figure(variant['cpu_median'], 1)}s; stages (s): "
            f"{stages}"
        )
    if "overhead_ratio" in results:
        lines.append(f"overhead median(train)/median(bare) = {results['overhead_ratio']:.2f}x")
    for name, reads in results.get("read_commands", {}).items():
        walls = ", ".join(f"{wall:.2f}" for wall in reads["wall_seconds"])
        lines.append(
            f"{name:<13} median {reads['wall_median']:.2f}s wall, {figure(reads['cpu_median'], 2)}s CPU  ({walls})"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, save the JSON (after every run, `complete` false until the end), print the table; exit 1 if any
    run failed (its figures are still saved)."""
    args = parse_args(argv)
    started_at = datetime.now(UTC)
    load_before = load_average()
    machine = machine_info(args.source)

    def save(measured: dict[str, Any], complete: bool = False) -> dict[str, Any]:
        results = {
            "benchmark": "pipeline",
            "timestamp_utc": started_at.isoformat(timespec="seconds"),
            "config": str(args.config.resolve()),
            "source": str(args.source),
            "complete": complete,
            "machine": {**machine, "load_average_before": load_before, "load_average_after": load_average()},
            **measured,
        }
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        return results

    results = save(run_benchmark(args, save), complete=True)
    print(format_table(results))
    print(f"saved {args.output}")
    all_ok = all(variant["all_exit_zero"] for variant in results["variants"].values()) and all(
        reads["all_exit_zero"] for reads in results.get("read_commands", {}).values()
    )
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
