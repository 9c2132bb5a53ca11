"""The lineage spool: events the endpoint did not take yet, one file each, delivered oldest first.

A folder of JSON files whose names sort in emission order; one process delivers at a time (a file lock), and
delivery stops at the first failure so that no event overtakes an older one.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from guardflow.io.lineage_receiver import DEFAULT_ENDPOINT, HttpReceiver, Outcome

log = logging.getLogger(__name__)


class _Stamps:
    """Strictly increasing nanosecond stamps, shared by every spool in the process, so names sort in order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0

    def next(self, floor: int = 0) -> int:
        with self._lock:
            self._last = max(time.time_ns(), self._last + 1, floor + 1)
            return self._last


_stamps = _Stamps()


class Spool:
    """Events waiting for the endpoint: one JSON file each, named `<stamp>-<pid>-<runId>-<eventType>.json`.

    The stamp is wall-clock nanoseconds, forced above every stamp already in the folder and every stamp this
    process gave out, so name order is emission order, across runs too. A file is written to a hidden temp
    name and renamed into place: a crash leaves a whole event or none.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def pending(self) -> list[Path]:
        """Waiting events, oldest first (temp files and the `rejected/` folder are not events)."""
        if not self.folder.is_dir():
            return []
        return sorted(path for path in self.folder.glob("*.json") if not path.name.startswith("."))

    def append(self, body: bytes, run_id: str, event_type: str) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        newest = self.pending()[-1:]
        floor = _stamp_of(newest[0]) if newest else 0
        path = self.folder / f"{_stamps.next(floor):020d}-{os.getpid()}-{run_id}-{event_type}.json"
        temporary = self.folder / f".{path.name}.tmp"
        with temporary.open("wb") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        return path

    def set_aside(self, path: Path) -> Path:
        """Move an event the receiver refused out of the queue, kept for a human to look at."""
        target = self.folder / "rejected" / path.name
        target.parent.mkdir(exist_ok=True)
        os.replace(path, target)
        return target

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[bool]:
        """Whether this process may deliver now: one deliverer at a time, or events would go out twice.

        Never waits: a run that finds another process delivering leaves its event in the spool, where that
        process (which lists the folder until it is empty) or the next emit picks it up.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        with (self.folder / ".lock").open("a") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _stamp_of(path: Path) -> int:
    head = path.name.split("-", 1)[0]
    return int(head) if head.isdigit() else 0


@dataclass
class Drain:
    """What one pass over the spool did; `failure` says why it stopped with events still waiting."""

    delivered: list[Path] = field(default_factory=list)
    rejected: int = 0
    remaining: int = 0
    failure: str | None = None
    busy: bool = False


def drain_spool(
    spool: Spool,
    receiver: HttpReceiver,
    deadline: float = math.inf,
    clock: Callable[[], float] = time.monotonic,
) -> Drain:
    """Send spooled events oldest first, each removed once the receiver acknowledged it.

    Stops at the first failure, so no event overtakes an older one, and once `clock()` passes `deadline`.
    """
    result = Drain()
    if not spool.pending():
        return result
    with spool.exclusive() as owned:
        if not owned:
            result.busy = True
            result.remaining = len(spool.pending())
            return result
        # List again after each pass: another emitter may have appended while we were sending.
        while batch := spool.pending():
            for path in batch:
                if clock() >= deadline:
                    result.remaining = len(spool.pending())
                    return result
                try:
                    body = path.read_bytes()
                except FileNotFoundError:  # removed by hand while we were sending
                    continue
                attempt = receiver.post(body)
                if attempt.outcome is Outcome.DELIVERED:
                    # Removed right after the 2xx, so a down/up endpoint gets each event once. The
                    # at-least-once edges: a crash between the 2xx and this unlink, or a read timeout after
                    # the receiver stored the event, sends it again later. Receivers that upsert runs by
                    # runId (Marquez) absorb that; others can dedupe on (runId, eventType, eventTime).
                    path.unlink()
                    result.delivered.append(path)
                elif attempt.outcome is Outcome.REJECTED:
                    kept = spool.set_aside(path)
                    result.rejected += 1
                    log.warning(
                        "OpenLineage receiver refused %s (%s); kept at %s", path.name, attempt.detail, kept
                    )
                else:
                    result.failure = f"{receiver.target}: {attempt.detail}"
                    result.remaining = len(spool.pending())
                    return result
    return result


def flush_spool(
    spool_dir: Path, url: str, endpoint: str = DEFAULT_ENDPOINT, timeout: float = 5.0
) -> tuple[int, int]:
    """Deliver the events waiting in `spool_dir`, oldest first, and return (delivered, still waiting).

    Stops at the first failure, keeping that event and every later one for next time. Needs no emitter:
    this is what `guardflow lineage flush` runs. A missing folder is an empty spool.
    """
    receiver = HttpReceiver(url, endpoint, timeout)
    try:
        result = drain_spool(Spool(Path(spool_dir)), receiver)
    finally:
        receiver.close()
    if result.failure:
        log.warning("OpenLineage spool flush stopped (%s); %d events wait", result.failure, result.remaining)
    elif result.busy:
        log.warning("OpenLineage spool %s is being delivered by another process", spool_dir)
    return len(result.delivered), result.remaining
