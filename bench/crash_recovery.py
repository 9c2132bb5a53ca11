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
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "src"), str(REPO)]

from pipeline import machine_info  # noqa: E402  bench/pipeline.py, next to this script

from tests import crash  # noqa: E402
from tests.conftest import write_adult_config  # noqa: E402
from tests.flows.conftest import LENIENT_GATE  # noqa: E402

# safety-train's stages in order (lineage names), with the moments seen in the tracking database
STAGES = [
    "match_registered",
    "load_train",
    "guard_pii_train",
    "validate_contract",
    "load_reference",
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
    config = write_adult_config(folder, registry={"model_name": "adult-crash-sweep"}, gate=LENIENT_GATE)
    data = _slice(folder, config, args.rows)
    home = folder / "home"
    # Each killed run is repaired by the next one (every run repairs on start); a `validate` repairs the last.
    killed_runs: list[tuple[str, crash.KilledRun, float, Path]] = []
    for stage in args.stages:
        started = time.monotonic()
        log = folder / f"killed-{stage}.log"
        killed = crash.kill_at(config, data, folder / f"killed-{stage}", home, stage, log=log)
        killed_runs.append((stage, killed, round(time.monotonic() - started, 1), log))
        print(f"{stage:<18} killed, stage seen {killed.stage_seen} after {killed_runs[-1][2]}s", flush=True)
    args_validate = [
        "validate",
        "--config",
        str(config),
        "--data",
        str(data),
        "--run-dir",
        str(folder / "last"),
    ]
    last = crash.run_command(args_validate, home)
    logs = [log.read_text() for _, _, _, log in killed_runs[1:]] + [last.stderr]
    results = [
        _outcome(stage, killed, home, repair_log, seconds)
        for (stage, killed, seconds, _), repair_log in zip(killed_runs, logs, strict=True)
    ]
    for result in results:
        print(
            f"{result['stage']:<18} status={result['status']} last={result['last_stage']} "
            f"aborted={result['lineage_runs_aborted']} ledger={result['ledger_states']} "
            f"prefect={result['prefect_state']} version={result['version']}",
            flush=True,
        )
    repaired = [result for result in results if result["reached"]]
    record = {
        "benchmark": "crash_recovery",
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **machine_info(),
        "rows": args.rows,
        "stages": len(results),
        "stages_reached": len(repaired),
        "repaired_crashed": sum(result["status"] == "crashed" for result in repaired),
        "prefect_crashed": sum(result["prefect_state"] == "CRASHED" for result in repaired),
        "open_lineage_runs_at_end": len(crash.open_lineage_runs(home)),
        "final_repair_exit": last.returncode,
        "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(record, indent=2) + "\n")
    print(f"{record['repaired_crashed']} of {len(repaired)} killed runs repaired as crashed -> {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
