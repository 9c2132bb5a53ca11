"""Kill a real `guardflow train` at a chosen stage and look at what the next run repaired (tests and the sweep).

The stage is seen from the outside: the run marker names a stage before its lineage START goes out, so the
killer polls `<run folder>/run-marker.json`; `registered` waits for the model version to appear in the tracking
database instead (created, not yet settled). The whole process group is killed (SIGKILL), the ephemeral Prefect
server the run started included, as when a machine goes down.
"""

from __future__ import annotations

import contextlib
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
# Moments that are not a stage's START, seen in the tracking database: the budget reserved (the ledger charge
# exists, `reserved`), training started (the charge moved to `training`), the model version created (not settled).
RESERVED, TRAINING, REGISTERED = "reserved", "training", "registered"


@dataclass
class KilledRun:
    run_dir: Path
    stage_seen: str | None  # the marker's last stage when the kill went out (None: the run ended first)
    exit_code: int | None


def environment(home: Path, api_url: str | None = None) -> dict[str, str]:
    """A clean environment for a run against `home`; `api_url`: a Prefect server instead of the ephemeral API."""
    server = {"PREFECT_API_URL": api_url, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"} if api_url else {}
    return server | {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "GUARDFLOW_HOME": str(home),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
        # The ephemeral API can take minutes to start on a machine busy with other test workers.
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "600",
    }


def train_command(config: Path, data: Path, run_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "guardflow", "train", "--config", str(config), "--data", str(data),
        "--run-dir", str(run_dir), *extra,
    ]  # fmt: skip


def run_command(args: list[str], home: Path, api_url: str | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m guardflow ARGS` against `home`, to the end."""
    return subprocess.run(
        [sys.executable, "-m", "guardflow", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environment(home, api_url),
        timeout=1200,
    )


def _marker_stage(run_dir: Path) -> str | None:
    try:
        marker = json.loads((run_dir / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return marker.get("last_stage") if marker.get("open_stages") else None


_QUERIES = {
    RESERVED: "SELECT 1 FROM guardflow_privacy_ledger WHERE run_dir = ? AND state = 'reserved'",
    TRAINING: "SELECT 1 FROM guardflow_privacy_ledger WHERE run_dir = ? AND state = 'training'",
    REGISTERED: "SELECT 1 FROM model_version_tags WHERE key = 'guardflow.run_dir' AND value = ?",
}


def _in_database(home: Path, moment: str, run_dir: Path) -> bool:
    database = home / "mlflow" / "mlflow.db"
    if not database.exists():
        return False
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=1) as connection:
            row = connection.execute(_QUERIES[moment], (str(run_dir),)).fetchone()
    except sqlite3.Error:  # the table is not there yet, or the writer holds a lock
        return False
    return row is not None


def ledger_states(home: Path, run_dir: Path) -> list[str]:
    """The states of the ledger charges of the run in `run_dir`."""
    try:
        with sqlite3.connect(home / "mlflow" / "mlflow.db") as connection:
            rows = connection.execute(
                "SELECT state FROM guardflow_privacy_ledger WHERE run_dir = ?", (str(run_dir),)
            ).fetchall()
    except sqlite3.OperationalError:  # no ledger table yet: no run has reserved anything
        return []
    return [row[0] for row in rows]


def version_of_run(home: Path, run_dir: Path) -> tuple[str, dict[str, str], list[str]] | None:
    """The model version the run in `run_dir` created: (version, its tags, its aliases), or None."""
    if not (home / "mlflow" / "mlflow.db").exists():
        return None
    with sqlite3.connect(home / "mlflow" / "mlflow.db") as connection:
        found = connection.execute(
            "SELECT name, version FROM model_version_tags WHERE key = 'guardflow.run_dir' AND value = ?",
            (str(run_dir),),
        ).fetchone()
        if found is None:
            return None
        name, version = found
        tags = dict(
            connection.execute(
                "SELECT key, value FROM model_version_tags WHERE name = ? AND version = ?", (name, version)
            ).fetchall()
        )
        aliases = [
            row[0]
            for row in connection.execute(
                "SELECT alias FROM registered_model_aliases WHERE name = ? AND version = ?", (name, version)
            ).fetchall()
        ]
    return str(version), tags, aliases


def prefect_state(home: Path, flow_run_id: str) -> str | None:
    """The state type of a flow run in the home's Prefect database (the ephemeral API's store)."""
    with sqlite3.connect(home / "prefect" / "prefect.db") as connection:
        row = connection.execute("SELECT state_type FROM flow_run WHERE id = ?", (flow_run_id,)).fetchone()
    return None if row is None else str(row[0])


def kill_at(
    config: Path,
    data: Path,
    run_dir: Path,
    home: Path,
    stage: str,
    timeout: float = 1200,
    log: Path | None = None,
    api_url: str | None = None,
    extra: tuple[str, ...] = (),
) -> KilledRun:
    """Start `guardflow train` (with `extra` arguments, e.g. `--force`), SIGKILL its process group once it
    reaches `stage` (a lineage stage name, e.g. `train_private`, or one of `RESERVED`, `TRAINING`, `REGISTERED`),
    and return when it is dead. The run's stderr goes to `log` when given. `timeout` is generous: on a loaded
    machine the ephemeral API alone can take minutes to start."""
    reached: Callable[[], bool]
    if stage in _QUERIES:
        reached = lambda: _in_database(home, stage, run_dir)  # noqa: E731
    else:
        reached = lambda: _marker_stage(run_dir) == stage  # noqa: E731
    stderr = log.open("w") if log is not None else None
    process = subprocess.Popen(
        train_command(config, data, run_dir, *extra),
        cwd=ROOT,
        env=environment(home, api_url),
        stdout=subprocess.DEVNULL,
        stderr=stderr or subprocess.DEVNULL,
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
        if stderr is not None:
            stderr.close()
    return KilledRun(run_dir=run_dir, stage_seen=seen, exit_code=process.returncode)


def _kill_leftovers(group: int) -> None:
    """Anything left in the run's process group (the ephemeral API server) goes too."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signal.SIGKILL)


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
