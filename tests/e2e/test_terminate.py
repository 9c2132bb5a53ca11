"""A real `guardflow train` stopped with SIGTERM (what a scheduler, `timeout` or `kill` sends): it ends as on
Ctrl-C, with one line and exit code 143, and leaves no process behind (the ephemeral Prefect server it started
is stopped); the next run of the home repairs the run it cut short."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from guardflow.io.datasets import read_split, write_table
from tests import crash
from tests.conftest import ROOT, write_adult_config

pytestmark = pytest.mark.e2e


def _session_processes(session: int) -> list[int]:
    """Processes of a session (the run and everything it started), read from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getsid(int(entry)) == session:
                    found.append(int(entry))
            except ProcessLookupError:
                continue
    return found


def test_sigterm_stops_a_run_and_the_prefect_server_it_started(tmp_path: Path, adult_settings) -> None:
    # given a train on 6,000 Adult rows, in a session of its own, stopped with SIGTERM once a stage is open
    data = tmp_path / "adult-slice.data.gz"
    write_table(read_split(adult_settings.dataset, "train").rows.head(6_000), data, adult_settings.dataset)
    config = write_adult_config(tmp_path, registry={"model_name": "adult-terminate-test"})
    home, run_dir = tmp_path / "home", tmp_path / "run"
    process = subprocess.Popen(
        crash.train_command(config, data, run_dir),
        cwd=ROOT,
        env=crash.environment(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 600
        while process.poll() is None and time.monotonic() < deadline:
            if crash._marker_stage(run_dir) is not None:
                break
            time.sleep(0.05)
        assert process.poll() is None, "the run ended before a stage opened"
        # when it gets SIGTERM
        process.send_signal(signal.SIGTERM)
        try:
            _, stderr = process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            # where it waits: every thread's stack (faulthandler on SIGUSR1), then it is killed below
            process.send_signal(signal.SIGUSR1)
            time.sleep(2)
            os.killpg(process.pid, signal.SIGKILL)
            _, stderr = process.communicate(timeout=60)
            pytest.fail(f"SIGTERM did not stop the run within 120 s; its stacks:\n{stderr[-6000:]}")
        # then it stops with one line and the conventional exit code, and nothing it started is left running
        assert process.returncode == 143, f"SIGTERM exits 143, got {process.returncode}: {stderr[-2000:]}"
        assert stderr.strip().splitlines()[-1] == "guardflow: terminated (SIGTERM)", stderr[-2000:]
        assert "Traceback" not in stderr, stderr[-2000:]
        leftovers = _session_processes(process.pid)
        for _ in range(100):
            if not leftovers:
                break
            time.sleep(0.1)
            leftovers = _session_processes(process.pid)
        assert leftovers == [], f"processes the run started are still running: {leftovers}"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=60)
        for pid in _session_processes(process.pid):
            os.kill(pid, signal.SIGKILL)
    # and the next run of the home repairs the run it cut short
    result = crash.run_command(["recover"], home)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"recovered safety-train run {run_dir}" in result.stderr, result.stderr[-2000:]
