"""Durable state of the scheduled flows, in one SQLite file under $GUARDFLOW_HOME/server/state.db.

Two tables, each written with atomic statements so that two flow runs (or a rerun after a crash) agree:
- `batches`: every inbox file claimed by its content sha256. A claim is an INSERT on the primary key; a batch
  that is finished is never taken again; one claimed but never finished (its run crashed) is taken again by the
  next run, which bumps `attempts`.
- `retrains`: every drift trigger a retrain flow received, with what it did about it (`started`, `cooldown` or
  `in_flight`). The decision and its row are written in one IMMEDIATE transaction, so two triggers at once
  cannot both start a retrain.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from guardflow.drift.guard_retrain import RetrainDecision, decide_retrain

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    dataset TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    path TEXT NOT NULL,
    owner TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 1,
    claimed_at TEXT NOT NULL,
    finished_at TEXT,
    outcome TEXT,
    run_dir TEXT,
    PRIMARY KEY (dataset, sha256)
);
CREATE TABLE IF NOT EXISTS retrains (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset TEXT NOT NULL,
    batch_sha256 TEXT NOT NULL,
    decision TEXT NOT NULL,
    owner TEXT NOT NULL,
    received_at TEXT NOT NULL,
    finished_at TEXT,
    outcome TEXT
);
"""


def state_path(home: Path) -> Path:
    return home / "server" / "state.db"


def _now() -> datetime:
    return datetime.now(UTC)


@contextmanager
def _connect(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection that waits for other writers (30 s) and commits, or rolls back, when the block ends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        connection.executescript(_SCHEMA)
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
    finally:
        connection.close()


@dataclass(frozen=True)
class BatchClaim:
    """One claimed inbox file; `attempts` > 1 means an earlier run took it and did not finish."""

    dataset: str
    sha256: str
    path: Path
    attempts: int


def claim_batch(path: Path, dataset: str, sha256: str, batch_path: Path, owner: str) -> BatchClaim | None:
    """Claim a batch for `owner`; None when it is finished already. An unfinished claim is taken over."""
    with _connect(path) as db:
        inserted = db.execute(
            "INSERT OR IGNORE INTO batches (dataset, sha256, path, owner, claimed_at) VALUES (?, ?, ?, ?, ?)",
            (dataset, sha256, str(batch_path), owner, _now().isoformat()),
        ).rowcount
        if inserted:
            return BatchClaim(dataset, sha256, batch_path, 1)
        taken = db.execute(
            "UPDATE batches SET owner = ?, path = ?, attempts = attempts + 1, claimed_at = ? "
            "WHERE dataset = ? AND sha256 = ? AND finished_at IS NULL RETURNING attempts",
            (owner, str(batch_path), _now().isoformat(), dataset, sha256),
        ).fetchone()
    return None if taken is None else BatchClaim(dataset, sha256, batch_path, int(taken[0]))


def finish_batch(path: Path, claim: BatchClaim, outcome: str, run_dir: str) -> None:
    """Mark a claimed batch finished: it is never taken again."""
    with _connect(path) as db:
        db.execute(
            "UPDATE batches SET finished_at = ?, outcome = ?, run_dir = ? WHERE dataset = ? AND sha256 = ?",
            (_now().isoformat(), outcome, run_dir, claim.dataset, claim.sha256),
        )


def batch_records(path: Path, dataset: str) -> list[dict[str, str | int | None]]:
    """Every batch claimed for a dataset, oldest first."""
    if not path.exists():
        return []
    with _connect(path) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute(
            "SELECT * FROM batches WHERE dataset = ? ORDER BY claimed_at", (dataset,)
        ).fetchall()
    return [dict(row) for row in rows]


def enter_retrain(
    path: Path, dataset: str, batch_sha256: str, owner: str, cooldown: timedelta
) -> tuple[int, RetrainDecision]:
    """Record a drift trigger and decide, atomically, whether it starts a retrain; returns the record id too."""
    now = _now()
    with _connect(path) as db:
        started = db.execute(
            "SELECT received_at, finished_at FROM retrains WHERE dataset = ? AND decision = 'started' "
            "ORDER BY id DESC LIMIT 1",
            (dataset,),
        ).fetchone()
        last_start = datetime.fromisoformat(started[0]) if started else None
        in_flight = started is not None and started[1] is None
        decision = decide_retrain(now, last_start, in_flight, cooldown)
        cursor = db.execute(
            "INSERT INTO retrains (dataset, batch_sha256, decision, owner, received_at) VALUES (?, ?, ?, ?, ?)",
            (dataset, batch_sha256, decision.action, owner, now.isoformat()),
        )
        record_id = int(cursor.lastrowid or 0)
    return record_id, decision


def finish_retrain(path: Path, record_id: int, outcome: str) -> None:
    """Close a trigger record: the retrain's status (or why it was not acted on)."""
    with _connect(path) as db:
        db.execute(
            "UPDATE retrains SET finished_at = ?, outcome = ? WHERE id = ?",
            (_now().isoformat(), outcome, record_id),
        )


def retrain_records(path: Path, dataset: str) -> list[dict[str, str | int | None]]:
    """Every drift trigger received for a dataset, oldest first."""
    if not path.exists():
        return []
    with _connect(path) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT * FROM retrains WHERE dataset = ? ORDER BY id", (dataset,)).fetchall()
    return [dict(row) for row in rows]
