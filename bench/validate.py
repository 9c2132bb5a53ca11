"""Benchmark: the data contract on Adult expanded to 1M and 10M rows, validated partition by partition on Dask.

The expanded files are written once to a temp folder (`--data-dir`, reused when present): adult.data repeated,
each copy with seeded noise on `fnlwgt` (so rows are not exact copies) and one row in 1,000 given an impossible
age (so the quarantine path runs: 0.1% of rows, under the 5% limit). Each run is a fresh subprocess (`--run`)
that starts a LocalCluster of `--workers` single-threaded worker processes (0: in this process), then calls
`validate_file` with the accepted rows written as Parquet parts, as the large training path does; the parent
samples the process tree's memory (resident set summed over the workers every 50 ms, PSS once a second: a PSS
read walks every page table, about 56 ms at 10M rows, CPU taken from the run on 2 cores). rows/s is over the
`validate_file` call (imports and the cluster's start excluded, reported apart). The `whole-frame` variant at 1M
reads the file into one frame and runs `validate_contract` on it, for reference. The machine is shared: read the
load averages beside the figures, and medians. `contract_throughput` is the measure for other benchmarks
(bench/scale.py).

    .venv/bin/python bench/validate.py --repeats 3 --repeats-10m 1
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO / "configs" / "adult.yaml"
DEFAULT_OUTPUT = REPO / "bench" / "results" / "validate.json"
SIZES = {"1M": 1_000_000, "10M": 10_000_000}
PLANTED_EVERY = 1_000
NOISE_SEED = 15
SAMPLE_SECONDS = 0.05
PSS_EVERY = 20


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="chunked runs at 1M rows (default 3)")
    parser.add_argument("--repeats-10m", type=int, default=1, help="chunked runs at 10M rows (default 1)")
    parser.add_argument("--workers", type=int, default=2, help="Dask worker processes (default 2; 0: none)")
    parser.add_argument("--chunk-mb", type=int, default=0, help="chunk size in MB (default: the library's)")
    parser.add_argument("--whole-frame", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument(
        "--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "guardflow-bench-validate"
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--run", nargs=2, metavar=("MODE", "FILE"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def expanded_file(config: Path, rows: int, folder: Path) -> Path:
    """adult.data repeated to `rows` rows with small perturbations, written once as plain CSV."""
    from guardflow.io.datasets import read_split
    from guardflow.settings import load_settings

    path = folder / f"adult-{rows}.csv"
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    dataset = load_settings(config).dataset
    base = read_split(dataset, "train").rows.reset_index(drop=True)
    fnlwgt = base["fnlwgt"].astype("int64")
    rng = np.random.default_rng(NOISE_SEED)
    partial = path.with_suffix(".partial")
    written = 0
    with partial.open("w", encoding="utf-8", newline="") as handle:
        while written < rows:
            part = base.head(rows - written).copy()
            noise = rng.integers(-2000, 2001, size=len(part))
            part["fnlwgt"] = (fnlwgt.head(len(part)) + noise).clip(lower=1).astype(str)
            planted = part.index[(part.index + written) % PLANTED_EVERY == PLANTED_EVERY - 1]
            part.loc[planted, "age"] = "300"
            part.to_csv(handle, header=False, index=False, na_rep="?", lineterminator="\n")
            written += len(part)
    partial.rename(path)
    return path


def run_inside(mode: str, path: Path, config: Path, workers: int, chunk_mb: int) -> dict[str, Any]:
    """The measured call, in this (child) process: prints its figures as JSON."""
    started = time.perf_counter()
    from guardflow.contract.suite import load_suite
    from guardflow.contract.validate_contract import validate_contract
    from guardflow.io.datasets import read_table
    from guardflow.io.validate_file import CHUNK_BYTES, validate_file
    from guardflow.settings import load_settings

    settings = load_settings(config)
    load_suite(settings.contract.suite)  # imports GX before the clock starts
    imported = time.perf_counter() - started
    cluster_seconds = 0.0
    if mode == "chunked":
        chunk_bytes = chunk_mb * 2**20 if chunk_mb else CHUNK_BYTES
        begun = time.perf_counter()
        with _client(workers) as client, tempfile.TemporaryDirectory() as folder:
            if client is not None:
                client.run(load_suite, settings.contract.suite)  # each worker imports GX before the clock too
            cluster_seconds = time.perf_counter() - begun
            cpu_before = _cpu_seconds() + _workers_cpu_seconds(client)
            start = time.perf_counter()
            result = validate_file(
                path,
                settings.dataset,
                settings.contract,
                Path(folder) / "quarantine.parquet",
                chunk_bytes=chunk_bytes,
                client=client,
                accepted_dir=Path(folder) / "accepted",
            )
            seconds = time.perf_counter() - start
            cpu = _cpu_seconds() + _workers_cpu_seconds(client) - cpu_before
        figures = {
            "rows_in": result.rows_in,
            "rows_accepted": result.rows_accepted,
            "rows_quarantined": result.rows_quarantined,
            "chunks": result.chunks,
            "chunk_mb": chunk_bytes / 2**20,
            "workers": workers,
        }
    else:
        cpu_before = _cpu_seconds()
        start = time.perf_counter()
        table = read_table(path, settings.dataset)
        whole = validate_contract(table.rows, settings.dataset, settings.contract, malformed=table.malformed)
        seconds = time.perf_counter() - start
        cpu = _cpu_seconds() - cpu_before
        figures = {
            "rows_in": whole.rows_in,
            "rows_accepted": whole.rows_accepted,
            "rows_quarantined": whole.rows_quarantined,
            "chunks": 1,
            "workers": 1,
        }
    # CPU time of this process and of the workers over the call (their start and imports excluded).
    return {
        **figures,
        "seconds": seconds,
        "rows_per_second": figures["rows_in"] / seconds,
        "cpu_seconds": cpu,
        "rows_per_cpu_second": figures["rows_in"] / cpu,
        "import_seconds": imported,
        "cluster_start_seconds": cluster_seconds,
    }


def _workers_cpu_seconds(client: Any) -> float:
    """User + system CPU time of every Dask worker process so far (0 without a cluster)."""
    if client is None:
        return 0.0
    return float(sum(client.run(_own_cpu_seconds).values()))


def _own_cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def _client(workers: int) -> Any:
    """A LocalCluster client of `workers` single-threaded processes, or no client (validate in this process)."""
    if workers <= 0:
        return nullcontext(None)
    import logging

    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )

    class _Both:
        def __enter__(self) -> Any:
            self.client = Client(cluster)
            return self.client

        def __exit__(self, *exc: object) -> None:
            self.client.close()
            cluster.close()

    return _Both()


def contract_throughput(
    path: Path, config: Path = DEFAULT_CONFIG, workers: int = 2, chunk_mb: int = 0
) -> dict[str, Any]:
    """The contract's figures on `path` (rows/s, CPU, peak memory) in a fresh process with a LocalCluster of
    `workers`: the measure bench/scale.py takes for its contract stage."""
    args = argparse.Namespace(config=config, workers=workers, chunk_mb=chunk_mb)
    return run_measured("chunked", path, args)


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its reaped children (the pool's workers, once shut down)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def tree_pids(root: int) -> list[int]:
    """A process and its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, stack = [], [root]
    while stack:
        pid = stack.pop()
        tree.append(pid)
        stack.extend(children.get(pid, []))
    return tree


def tree_memory(root: int, with_pss: bool = True) -> tuple[int, int]:
    """Resident set and PSS (bytes; PSS 0 unless `with_pss`) summed over a process and its descendants.

    The resident set comes from /proc/PID/status (cheap); PSS from smaps_rollup, which walks every page table:
    about 56 ms for this benchmark's three processes at 10M rows, so it is sampled less often."""
    rss = pss = 0
    for pid in tree_pids(root):
        try:
            if with_pss:
                for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1]) * 1024
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1]) * 1024
        except OSError:
            continue
    return rss, pss


def run_measured(mode: str, path: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One run in a fresh subprocess, its process tree's peak memory sampled from outside."""
    command = [sys.executable, __file__, "--run", mode, str(path), "--config", str(args.config)]
    command += ["--workers", str(args.workers), "--chunk-mb", str(args.chunk_mb)]
    load_before = os.getloadavg()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0, 0]
    done = threading.Event()

    def sample() -> None:
        samples = 0
        while not done.is_set():
            rss, pss = tree_memory(process.pid, with_pss=samples % PSS_EVERY == 0)
            peak[0], peak[1] = max(peak[0], rss), max(peak[1], pss)
            samples += 1
            done.wait(SAMPLE_SECONDS)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = process.communicate()
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise RuntimeError(f"{mode} run on {path} failed ({process.returncode}): {stderr.strip()[-2000:]}")
    figures = json.loads(stdout.strip().splitlines()[-1])
    return {
        **figures,
        "peak_rss_mb": peak[0] / 2**20,
        "peak_pss_mb": peak[1] / 2**20,
        "load_average_before": [round(load, 2) for load in load_before],
        "load_average_after": [round(load, 2) for load in os.getloadavg()],
    }


def describe(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("rows_per_second", "seconds", "cpu_seconds", "rows_per_cpu_second", "peak_rss_mb", "peak_pss_mb")
    return {"runs": runs, **{f"median_{key}": statistics.median(run[key] for run in runs) for key in keys}}


def format_table(results: dict[str, Any]) -> str:
    lines = [
        f"{'variant':<16}{'runs':>5}{'rows/s':>11}{'seconds':>9}{'CPU s':>8}{'rows/CPU s':>12}"
        f"{'peak RSS MB':>13}{'peak PSS MB':>13}  load avg (1 min, per run)",
    ]
    for name, variant in results["variants"].items():
        loads = " / ".join(f"{run['load_average_before'][0]:.1f}" for run in variant["runs"])
        lines.append(
            f"{name:<16}{len(variant['runs']):>5}{variant['median_rows_per_second']:>11,.0f}"
            f"{variant['median_seconds']:>9.1f}{variant['median_cpu_seconds']:>8.1f}"
            f"{variant['median_rows_per_cpu_second']:>12,.0f}{variant['median_peak_rss_mb']:>13,.0f}"
            f"{variant['median_peak_pss_mb']:>13,.0f}  {loads}"
        )
    ratio = results.get("rss_ratio_10m_to_1m")
    if ratio is not None:
        lines.append(f"peak RSS 10M / 1M (chunked): {ratio:.2f} (target at most 1.5)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.run:
        mode, file = args.run
        print(json.dumps(run_inside(mode, Path(file), args.config, args.workers, args.chunk_mb)))
        return 0
    wanted = {"1M": args.repeats > 0 or args.whole_frame, "10M": args.repeats_10m > 0}
    files = {
        name: expanded_file(args.config, rows, args.data_dir) for name, rows in SIZES.items() if wanted[name]
    }
    variants: dict[str, list[dict[str, Any]]] = {"chunked 1M": [], "chunked 10M": []}
    for _ in range(args.repeats):
        variants["chunked 1M"].append(run_measured("chunked", files["1M"], args))
    for _ in range(args.repeats_10m):
        variants["chunked 10M"].append(run_measured("chunked", files["10M"], args))
    if args.whole_frame:
        variants["whole-frame 1M"] = [run_measured("whole", files["1M"], args)]
    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "files": {name: {"path": str(path), "bytes": path.stat().st_size} for name, path in files.items()},
        "variants": {name: describe(runs) for name, runs in variants.items() if runs},
    }
    results["load_average_end"] = [round(load, 2) for load in os.getloadavg()]
    if variants["chunked 1M"] and variants["chunked 10M"]:
        results["rss_ratio_10m_to_1m"] = (
            results["variants"]["chunked 10M"]["median_peak_rss_mb"]
            / results["variants"]["chunked 1M"]["median_peak_rss_mb"]
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(format_table(results))
    print(f"saved {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
