"""Crash sweep: kill a real `guardflow train` (SIGKILL, its whole process group) at every stage of safety-train,
let the next run of the home repair it, and record what the repair did. Figures go to
bench/results/crash_recovery.json.

Every kill and repair share one home, as runs on a team's machine do: each killed run is repaired by the next
killed run when it starts (any flow repairs on start), the last by a `guardflow validate`. Per stage: whether the
run reached it, the last stage the repair saw, the lineage runs it aborted, the ledger states after it, the Prefect
flow run's state and the version it withdrew; and at the end, whether every lineage run of the home is closed.

    .venv/bin/python bench/crash_recovery.py            # every stage, once
    .venv/bin/python bench/crash_recovery.py --stages train_private registered
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "src"), str(REPO)]

from pipeline import machine_info  # noqa: E402  bench/pipeline.py, next to this script

from tests import crash  # noqa: E402
from tests.conftest import write_adult_config  # noqa: E402
from tests.flows.conftest import LENIENT_GATE  # noqa: E402
from tests.net import free_port  # noqa: E402

# safety-train's stages in order (lineage names), with the moments seen in the tracking database
STAGES = [
    "match_registered",
    "load_train",
    "guard_pii_train",
    "validate_contract",
    "scan_poisoning",
    "write_quarantine",
    "reserve_budget",
    crash.RESERVED,
    "train_private",
    crash.TRAINING,
    "load_test",
    "guard_pii_test",
    "evaluate_safety",
    "compare_champion",
    "gate",
    "register_model",
    crash.REGISTERED,
]
OUTPUT = REPO / "bench" / "results" / "crash_recovery.json"


def _slice(folder: Path, config: Path, rows: int) -> Path:
    from guardflow.io.datasets import read_split, write_table
    from guardflow.settings import load_settings

    settings = load_settings(config)
    path = folder / "adult-slice.data.gz"
    write_table(read_split(settings.dataset, "train").rows.head(rows), path, settings.dataset)
    return path


def _outcome(
    stage: str, killed: crash.KilledRun, home: Path, repair_log: str, seconds: float
) -> dict[str, object]:
    """What the repair of the run killed at `stage` did, read from its summary, the stores and the event log."""
    summary_path = killed.run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    report = summary.get("crash") or {}
    version = crash.version_of_run(home, killed.run_dir) if (home / "mlflow" / "mlflow.db").exists() else None
    run_id = (summary.get("lineage") or {}).get("run_id", "")
    has_ledger = (home / "mlflow" / "mlflow.db").exists()
    return {
        "stage": stage,
        "reached": killed.stage_seen is not None,
        "stage_seen_at_kill": killed.stage_seen,
        "killed_after_seconds": seconds,
        "repair_lines": [line for line in repair_log.splitlines() if line.startswith("recovered ")],
        "status": summary.get("status"),
        "last_stage": report.get("last_stage"),
        "lineage_runs_aborted": report.get("lineage_runs_aborted"),
        "flow_run_events": crash.lineage_runs(home).get(run_id, []),
        "ledger_states": crash.ledger_states(home, killed.run_dir) if has_ledger else [],
        "ledger": report.get("ledger"),
        "prefect_state": crash.prefect_state(home, report["orchestrator_run_id"])
        if report.get("orchestrator_run_id")
        else None,
        "version": None
        if version is None
        else {
            "version": version[0],
            "registration": version[1].get("guardflow.registration"),
            "aliases": version[2],
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", nargs="*", default=STAGES, help="stages to kill at (default: every one)")
    parser.add_argument("--rows", type=int, default=6_000, help="rows of adult.data to train on")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="guardflow-crash-sweep-"))
    # Every killed run trains (`--force`: the same data and config would otherwise match the champion and stop),
    # and the lifetime budget has room for the runs the sweep kills after training began.
    config = write_adult_config(
        folder,
        registry={"model_name": "adult-crash-sweep"},
        gate=LENIENT_GATE,
        privacy={"lifetime_epsilon": 100.0},
    )
    data = _slice(folder, config, args.rows)
    home = folder / "home"
    server, api_url = _prefect_server(home)
    try:
        # A champion first, trained to the end: every killed run then loads it as its trusted reference and is
        # compared with it, so those stages can be killed too.
        champion = crash.run_command(
            ["train", "--config", str(config), "--data", str(data), "--run-dir", str(folder / "champion")],
            home,
            api_url,
        )
        if champion.returncode != 0:
            raise RuntimeError(f"the champion's training failed:\n{champion.stderr[-2000:]}")
        return _sweep(args, folder, config, data, home, api_url)
    finally:
        server.kill()
        server.wait()


def _prefect_server(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    """One Prefect server for every run of the sweep (SQLite in the home's Prefect folder, where an ephemeral API
    would keep it): a run killed with its process group then takes no API server down with it."""
    port = free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "PREFECT_HOME": str(home / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
    }
    (home / "prefect").mkdir(parents=True, exist_ok=True)
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    api_url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{api_url}/health", timeout=2)
            return server, api_url
        except OSError:
            time.sleep(1)
    server.kill()
    raise RuntimeError("the Prefect server did not start")


def _sweep(args: argparse.Namespace, folder: Path, config: Path, data: Path, home: Path, api_url: str) -> int:
    """Kill at each stage in turn; each killed run is repaired by the next one when it starts (every run repairs
    on start), the last by a `validate`. The figures are written after every stage, so a cut-short sweep keeps them."""
    results: list[dict[str, object]] = []
    previous: tuple[str, crash.KilledRun, float] | None = None
    for stage in [*args.stages, None]:
        started = time.monotonic()
        if stage is None:
            validate = [
                "validate",
                "--config",
                str(config),
                "--data",
                str(data),
                "--run-dir",
                str(folder / "last"),
            ]
            repair_log = crash.run_command(validate, home, api_url).stderr
            current = None
        else:
            log = folder / f"killed-{stage}.log"
            killed = crash.kill_at(
                config, data, folder / f"killed-{stage}", home, stage, log=log, api_url=api_url,
                extra=("--force",),
            )  # fmt: skip
            repair_log = log.read_text()
            current = (stage, killed, round(time.monotonic() - started, 1))
        if previous is not None:
            results.append(_outcome(*previous[:2], home, repair_log, previous[2]))
            _print(results[-1])
            _write(args, home, results)
        previous = current
    print(
        f"{sum(r['status'] == 'crashed' for r in results)} of {len(results)} killed runs repaired -> {args.output}"
    )
    return 0


def _print(result: dict[str, object]) -> None:
    print(
        f"{result['stage']:<18} reached={result['reached']} status={result['status']} last={result['last_stage']} "
        f"aborted={result['lineage_runs_aborted']} ledger={result['ledger_states']} "
        f"prefect={result['prefect_state']} version={result['version']} ({result['killed_after_seconds']}s)",
        flush=True,
    )


def _write(args: argparse.Namespace, home: Path, results: list[dict[str, object]]) -> None:
    reached = [result for result in results if result["reached"]]
    record = {
        "benchmark": "crash_recovery",
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **machine_info(),
        "rows": args.rows,
        "stages": len(results),
        "stages_reached": len(reached),
        "repaired_crashed": sum(result["status"] == "crashed" for result in reached),
        "prefect_crashed": sum(result["prefect_state"] == "CRASHED" for result in reached),
        "open_lineage_runs_in_home": len(crash.open_lineage_runs(home)),
        "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
