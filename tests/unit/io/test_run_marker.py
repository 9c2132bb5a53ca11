"""The run marker: which process runs a flow, and whether it is gone (dead, or its pid reused)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from guardflow.io import run_marker
from guardflow.io.run_marker import RunMarker


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def marker_for(run_dir: Path, **changes: object) -> RunMarker:
    run_dir.mkdir(parents=True, exist_ok=True)
    marker = run_marker.new_marker(
        flow="safety-train",
        dataset="adult",
        model_name="adult-model",
        config="config.yaml",
        config_sha256="c" * 64,
        run_dir=str(run_dir),
        lineage_namespace="guardflow",
        lineage_url=None,
        flow_job="safety-train.adult",
        lineage_run_id=str(uuid.uuid4()),
        orchestrator_run_id=None,
    )
    return marker.model_copy(update=changes)


def test_this_process_is_alive_and_a_dead_or_reused_pid_is_gone(tmp_path: Path) -> None:
    # given markers for this process, for a pid that exited, and for this pid with another start time
    alive = marker_for(tmp_path / "alive")
    dead = marker_for(tmp_path / "dead", pid=dead_pid())
    assert alive.process_start is not None, "Linux: the start time is read from /proc"
    reused = marker_for(tmp_path / "reused", process_start=alive.process_start - 1)
    # then only the running one is alive
    assert not run_marker.process_gone(alive), "this process is running"
    assert run_marker.process_gone(dead), "an exited process is gone"
    assert run_marker.process_gone(reused), "a pid now naming another process is gone"


def test_a_marker_from_another_host_or_boot_is_judged_only_by_its_own_host(tmp_path: Path) -> None:
    elsewhere = marker_for(tmp_path / "elsewhere", host="another-machine", pid=dead_pid())
    rebooted = marker_for(tmp_path / "rebooted", boot_id="not-this-boot")
    assert not run_marker.process_gone(elsewhere), "a run on another host cannot be judged from here"
    assert run_marker.process_gone(rebooted), "a run from before a reboot is gone, whatever its pid is now"


def test_a_crashed_run_is_claimed_once_and_a_running_one_never(tmp_path: Path) -> None:
    # given a home with one run whose process died and one running in this process
    home = tmp_path / "home"
    crashed = marker_for(tmp_path / "crashed", pid=dead_pid())
    running = marker_for(tmp_path / "running")
    for marker in (crashed, running):
        run_marker.write_marker(home, marker)
    # when two repairs look for crashed runs one after the other
    first = run_marker.claim_crashed(home)
    second = run_marker.claim_crashed(home)
    # then the first claims the dead run alone, and the second finds nothing left to claim
    assert [marker.run_dir for marker in first] == [crashed.run_dir], first
    assert second == [], "a claimed run is never repaired twice"
    run_marker.release_claim(home, first[0])
    assert not (Path(crashed.run_dir) / run_marker.MARKER_FILE).exists(), "the repaired run's marker is gone"
    assert (Path(running.run_dir) / run_marker.MARKER_FILE).exists(), "the running run keeps its marker"


def test_a_run_that_wrote_its_summary_leaves_no_marker(tmp_path: Path) -> None:
    home = tmp_path / "home"
    marker = marker_for(tmp_path / "done")
    run_marker.write_marker(home, marker)
    run_marker.remove_marker(home, marker)
    assert run_marker.claim_crashed(home) == [], "nothing to repair"
    assert list((home / "runs" / "open").iterdir()) == [], "its entry in the home is gone"
    assert os.listdir(marker.run_dir) == [], "no marker (nor scratch file) left in the run folder"


def test_a_claim_whose_repairing_process_died_is_taken_again(tmp_path: Path) -> None:
    # given a crashed run claimed by a repair that died before it finished
    home = tmp_path / "home"
    crashed = marker_for(tmp_path / "crashed", pid=dead_pid())
    run_marker.write_marker(home, crashed)
    entry = home / "runs" / "open" / crashed.lineage_run_id
    entry.rename(entry.with_name(f".{entry.name}.recovering-{dead_pid()}"))
    # when the next repair looks
    claimed = run_marker.claim_crashed(home)
    # then it takes the run over
    assert [marker.run_dir for marker in claimed] == [crashed.run_dir], claimed
