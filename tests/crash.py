"""Kill a real `guardflow train` at a chosen stage and look at what the next run repaired (tests and the sweep).

The stage is seen from the outside: the run marker names a stage before its lineage START goes out, so the
killer polls `<run folder>/run-marker.json`; `registered` waits for the model version to appear in the tracking
database instead (created, not yet settled). The whole process group is killed (SIGKILL), the ephemeral Prefect
server the run started included, as when a machine goes down.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import ROOT

MARKER = "run-marker.json"
REGISTERED = "registered"  # not a stage: the moment the version exists in the registry, before it is settled


@dataclass
class KilledRun:
    run_dir: Path
    stage_seen: str | None  # the marker's last stage when the kill went out (None: the run ended first)
    exit_code: int | None


def environment(home: Path) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "GUARDFLOW_HOME": str(home),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    }


def train_command(config: Path, data: Path, run_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "guardflow", "train", "--config", str(config), "--data", str(data),
        "--run-dir", str(run_dir), *extra,
    ]  # fmt: skip


def run_train(config: Path, data: Path, run_dir: Path, home: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        train_command(config, data, run_dir, *extra),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environment(home),
        timeout=600,
    )


def _marker_stage(run_dir: Path) -> str | None:
    try:
        marker = json.loads((run_dir / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return marker.get("last_stage") if marker.get("open_stages") else None


def _version_created(home: Path, run_dir: Path) -> bool:
    database = home / "mlflow" / "mlflow.db"
    if not database.exists():
        return False
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=1) as connection:
            row = connection.execute(
                "SELECT 1 FROM model_version_tags WHERE key = 'guardflow.run_dir' AND value = ?", (str(run_dir),)
            ).fetchone()
    except sqlite3.Error:
        return False
    return row is not None


def kill_at(config: Path, data: Path, run_dir: Path, home: Path, stage: str, timeout: float = 300) -> KilledRun:
    """Start `guardflow train`, SIGKILL its process group once it reaches `stage` (a lineage stage name, e.g.
    `train_private`, or `REGISTERED`), and return when it is dead."""
    reached: Callable[[], bool]
    if stage == REGISTERED:
        reached = lambda: _version_created(home, run_dir)  # noqa: E731
    else:
        reached = lambda: _marker_stage(run_dir) == stage  # noqa: E731
    process = subprocess.Popen(
        train_command(config, data, run_dir),
        cwd=ROOT,
        env=environment(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    seen = None
    try:
        while process.poll() is None and time.monotonic() < deadline:
            if reached():
                seen = _marker_stage(run_dir) or stage
                os.killpg(process.pid, signal.SIGKILL)
                break
            time.sleep(0.005)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
        _kill_leftovers(process.pid)
    return KilledRun(run_dir=run_dir, stage_seen=seen, exit_code=process.returncode)


def _kill_leftovers(group: int) -> None:
    """Anything left in the run's process group (the ephemeral API server) goes too."""
    try:
        os.killpg(group, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def lineage_runs(home: Path) -> dict[str, list[str]]:
    """Every lineage run in the home's event log -> its event types, in order."""
    runs: dict[str, list[str]] = {}
    path = home / "lineage" / "events.jsonl"
    for line in path.read_text().splitlines() if path.exists() else []:
        event = json.loads(line)
        runs.setdefault(event["run"]["runId"], []).append(event["eventType"])
    return runs


def open_lineage_runs(home: Path) -> list[str]:
    """Runs with a START and no COMPLETE, FAIL or ABORT."""
    ended = {"COMPLETE", "FAIL", "ABORT"}
    return [run for run, kinds in lineage_runs(home).items() if "START" in kinds and not ended & set(kinds)]
