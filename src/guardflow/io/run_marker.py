"""The run marker: a small file a flow run keeps in its folder while it runs, so that a run that died can be found.

`<run folder>/run-marker.json` says which process runs the flow (pid, host, boot and the process's start time, so
a reused pid is not mistaken for it), its lineage run id and the stage runs it has open, and the last stage it
reached. It is rewritten as each stage starts and ends and removed once summary.json is written. An entry in
`<home>/runs/open/` (the flow's lineage run id, holding the run folder's path) lets the next run find it wherever
the run folder is.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict

MARKER_FILE = "run-marker.json"
_OPEN_FOLDER = ("runs", "open")
marker_lock = threading.RLock()  # stages of one run may start and end on several threads


class RunMarker(BaseModel):
    """What the next run needs to repair this one if its process dies."""

    model_config = ConfigDict(extra="forbid")

    flow: str
    dataset: str
    model_name: str
    config: str
    config_sha256: str
    run_dir: str
    lineage_namespace: str
    lineage_url: str | None
    flow_job: str
    lineage_run_id: str
    orchestrator_run_id: str | None  # the Prefect flow run
    pid: int
    host: str
    boot_id: str | None
    process_start: int | None  # clock ticks after boot (Linux); with boot_id, tells a reused pid apart
    started_at: str
    updated_at: str
    last_stage: str | None = None
    open_stages: dict[str, str] = {}  # lineage run id -> job name, for every stage START not yet ended
    flow_closed: bool = False  # the flow's own COMPLETE or FAIL was emitted


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _read_text(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="ascii").strip()
    except OSError:
        return None


def boot_id() -> str | None:
    return _read_text("/proc/sys/kernel/random/boot_id")


def process_start(pid: int) -> int | None:
    """When `pid` started, in clock ticks after boot (field 22 of /proc/<pid>/stat); None without /proc."""
    stat = _read_text(f"/proc/{pid}/stat")
    if stat is None:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its closing parenthesis.
    fields = stat.rpartition(")")[2].split()
    return int(fields[19])


def _is_zombie(pid: int) -> bool:
    stat = _read_text(f"/proc/{pid}/stat")
    return stat is not None and stat.rpartition(")")[2].split()[0] == "Z"


def new_marker(**fields: object) -> RunMarker:
    """A marker for a run starting now in this process."""
    pid = os.getpid()
    now = _now()
    return RunMarker.model_validate(
        {
            **fields,
            "pid": pid,
            "host": socket.gethostname(),
            "boot_id": boot_id(),
            "process_start": process_start(pid),
            "started_at": now,
            "updated_at": now,
        }
    )


def _open_entry(home: Path, lineage_run_id: str) -> Path:
    return home.joinpath(*_OPEN_FOLDER) / lineage_run_id


def write_marker(home: Path, marker: RunMarker) -> None:
    """Write (or rewrite) the marker atomically; the first write also records the run in `<home>/runs/open`."""
    path = Path(marker.run_dir) / MARKER_FILE
    with marker_lock:
        marker.updated_at = _now()
        scratch = path.with_name(f".{MARKER_FILE}.{os.getpid()}")
        scratch.write_text(marker.model_dump_json(indent=2), encoding="utf-8")
        os.replace(scratch, path)
    entry = _open_entry(home, marker.lineage_run_id)
    if not entry.exists():
        entry.parent.mkdir(parents=True, exist_ok=True)
        entry.write_text(marker.run_dir, encoding="utf-8")


def remove_marker(home: Path, marker: RunMarker) -> None:
    """The run has written its summary: it needs no repair."""
    (Path(marker.run_dir) / MARKER_FILE).unlink(missing_ok=True)
    _open_entry(home, marker.lineage_run_id).unlink(missing_ok=True)


def read_marker(run_dir: Path) -> RunMarker | None:
    try:
        return RunMarker.model_validate_json((run_dir / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def process_gone(marker: RunMarker) -> bool:
    """Whether the process that wrote `marker` is gone: dead, a zombie, or its pid now names another process.

    Only decidable on the host that ran it; a marker from another host is never judged gone."""
    if marker.host != socket.gethostname():
        return False
    if marker.boot_id is not None and boot_id() not in (None, marker.boot_id):
        return True  # the machine rebooted since
    try:
        os.kill(marker.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, another user's process: the start time decides
    if _is_zombie(marker.pid):
        return True
    started = process_start(marker.pid)
    return marker.process_start is not None and started is not None and started != marker.process_start


def claim_crashed(home: Path) -> list[RunMarker]:
    """The markers of this home's runs whose process is gone, each claimed by this process alone.

    A claim renames the run's entry in `<home>/runs/open` (atomic: two runs starting at once never repair the
    same run twice). Entries whose run already wrote its summary (its marker is gone) are cleared."""
    folder = home.joinpath(*_OPEN_FOLDER)
    if not folder.is_dir():
        return []
    _return_stale_claims(folder)
    claimed: list[RunMarker] = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        run_dir = _read_text(str(entry))
        marker = read_marker(Path(run_dir)) if run_dir else None
        if marker is not None and not process_gone(marker):
            continue
        claim = entry.with_name(f".{entry.name}.recovering-{os.getpid()}")
        try:
            entry.rename(claim)
        except FileNotFoundError:
            continue  # another run claimed it first
        if marker is None:
            claim.unlink(missing_ok=True)
            continue
        claimed.append(marker)
    return claimed


def _return_stale_claims(folder: Path) -> None:
    """A claim whose repairing process died too goes back to the list, for this repair to take."""
    for claim in folder.glob(".*.recovering-*"):
        name, _, pid = claim.name[1:].rpartition(".recovering-")
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            with contextlib.suppress(FileNotFoundError):
                claim.rename(folder / name)
        except (PermissionError, ValueError):
            continue


def return_claim(home: Path, marker: RunMarker) -> None:
    """The repair of a claimed run failed: list it again for the next run."""
    folder = home.joinpath(*_OPEN_FOLDER)
    with contextlib.suppress(FileNotFoundError):
        (folder / f".{marker.lineage_run_id}.recovering-{os.getpid()}").rename(folder / marker.lineage_run_id)


def release_claim(home: Path, marker: RunMarker) -> None:
    """The claimed run is repaired: drop its marker and its (claimed) entry."""
    (Path(marker.run_dir) / MARKER_FILE).unlink(missing_ok=True)
    home.joinpath(*_OPEN_FOLDER, f".{marker.lineage_run_id}.recovering-{os.getpid()}").unlink(missing_ok=True)
