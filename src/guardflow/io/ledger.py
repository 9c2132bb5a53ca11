"""The privacy-budget ledger: one SQL table shared by every process and machine that trains on a dataset.

A reservation is one transaction: the writer takes the dataset's lock (`BEGIN IMMEDIATE` on SQLite, a
transaction-scoped advisory lock on PostgreSQL), sums what every source file has spent, refuses the run when one
would pass its lifetime budget, and writes its charge, all before anything else can read the sums. Each charge
then moves through its states: `reserved` (before training), `training` (DP-SGD has started: the budget is spent
whatever happens next), `spent` (the model exists), or `released` (the run ended before training started, so
provably nothing was learnt from the data). Only released charges stop counting; a crash leaves a charge
`reserved` or `training`, and it counts.

The table lives in the tracking store's own database (the MLflow SQLite file of the home, or the PostgreSQL
database in `MLFLOW_TRACKING_URI`); `GUARDFLOW_LEDGER_URL` names another database, and is required when MLflow
is reached over HTTP.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from guardflow.errors import ConfigError
from guardflow.privacy.privacy_budget import SourceBudget, Spend, check_budget, summarize_budget

LEDGER_URL_ENV = "GUARDFLOW_LEDGER_URL"
State = Literal["reserved", "training", "spent", "released"]
# Which state may follow which: a charge only moves forward, and only an untrained one may be released.
_NEXT: dict[str, tuple[str, ...]] = {"reserved": ("training", "released"), "training": ("spent",)}
# The experiment where earlier versions kept the ledger as MLflow runs (imported once, as spent).
LEGACY_EXPERIMENT = "guardflow-privacy-ledger"
_LEGACY_PREFIX = "guardflow.ledger."

_metadata = sa.MetaData()
_charges = sa.Table(
    "guardflow_privacy_ledger",
    _metadata,
    sa.Column("charge_id", sa.String(36), primary_key=True),
    sa.Column("reservation_id", sa.String(36), nullable=False, index=True),
    sa.Column("dataset", sa.String(200), nullable=False, index=True),
    sa.Column("source_sha256", sa.String(64), nullable=False),
    sa.Column("epsilon", sa.Float, nullable=False),
    sa.Column("delta", sa.Float, nullable=False),
    sa.Column("purpose", sa.String(50), nullable=False),
    sa.Column("run_dir", sa.Text, nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("recorded_at", sa.String(40), nullable=False),
    sa.Column("updated_at", sa.String(40), nullable=False),
)
_markers = sa.Table(
    "guardflow_privacy_ledger_markers",
    _metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("recorded_at", sa.String(40), nullable=False),
)


def ledger_url(home: Path) -> str:
    """Where the ledger lives: `GUARDFLOW_LEDGER_URL`, else the tracking store's database (see
    `registry.tracking_uri`: the PostgreSQL database in `MLFLOW_TRACKING_URI`, or the home's SQLite file).

    A tracking server (http) hides its database: then the ledger must be named, or each machine would keep a
    ledger of its own and the lifetime budget could be spent once per machine."""
    from guardflow.io.records import public_tracking_uri, tracking_uri

    explicit = os.environ.get(LEDGER_URL_ENV, "").strip()
    if explicit:
        return explicit
    tracking = tracking_uri(home)
    if tracking.startswith(("http:", "https:")):
        raise ConfigError(
            f"MLFLOW_TRACKING_URI is a tracking server ({public_tracking_uri(home)}); set {LEDGER_URL_ENV} to "
            "the database the privacy ledger shares with every writer (a postgresql:// URL)"
        )
    return tracking


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _lock_key(dataset_id: str) -> int:
    """A signed 64-bit key for PostgreSQL's advisory lock of one dataset."""
    return int.from_bytes(hashlib.sha256(dataset_id.encode()).digest()[:8], "big", signed=True)


# The advisory lock that serialises creating the tables (apart from every dataset's key).
_SCHEMA_LOCK = _lock_key("guardflow-ledger-schema")


class Ledger:
    """The ledger in one database; see the module docstring for the states and the locking."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._sqlite = url.startswith("sqlite")
        self.engine = self._engine(url)
        self._create_tables()

    def _create_tables(self) -> None:
        """Create the ledger's tables unless they exist, one process at a time: PostgreSQL's check-then-create is
        not atomic (two processes opening a new ledger at once both see no table, and one fails with
        DuplicateTable), so the check and the create run in one transaction under an advisory lock; on SQLite
        the transaction's BEGIN IMMEDIATE serialises them."""
        with self.engine.begin() as connection:
            if not self._sqlite:
                connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
            _metadata.create_all(connection)

    def _engine(self, url: str) -> Engine:
        if not self._sqlite:
            return sa.create_engine(url, pool_pre_ping=True)
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 120})

        @sa.event.listens_for(engine, "connect")
        def _autocommit_driver(dbapi_connection, _record):
            # pysqlite's own transaction handling would defer BEGIN; SQLAlchemy's begin event issues it instead.
            dbapi_connection.isolation_level = None

        @sa.event.listens_for(engine, "begin")
        def _begin_immediate(connection):
            # The write lock is taken at BEGIN, so no other writer can read the sums until this one commits.
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine

    @contextmanager
    def _locked(self, dataset_id: str) -> Iterator[Connection]:
        """One transaction holding the dataset's lock until it commits or rolls back."""
        with self.engine.begin() as connection:
            if not self._sqlite:
                connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_lock_key(dataset_id))))
            yield connection

    def reserve(
        self,
        dataset_id: str,
        sources: Sequence[str],
        epsilon: float,
        delta: float,
        lifetime: float,
        purpose: str,
        run_dir: str,
    ) -> list[SourceBudget]:
        """Charge `epsilon` to every source, atomically, or raise BudgetError and charge nothing.

        Returns each source's budget after the charge."""
        reservation_id = str(uuid.uuid4())
        with self._locked(dataset_id) as connection:
            spends = self._spends(connection, dataset_id)
            check_budget(
                [summarize_budget(dataset_id, source, spends, lifetime) for source in sources], epsilon
            )
            now = _now()
            connection.execute(
                _charges.insert(),
                [
                    {
                        "charge_id": str(uuid.uuid4()),
                        "reservation_id": reservation_id,
                        "dataset": dataset_id,
                        "source_sha256": source,
                        "epsilon": epsilon,
                        "delta": delta,
                        "purpose": purpose,
                        "run_dir": run_dir,
                        "state": "reserved",
                        "recorded_at": now,
                        "updated_at": now,
                    }
                    for source in dict.fromkeys(sources)
                ],
            )
            spends = self._spends(connection, dataset_id)
        return [summarize_budget(dataset_id, source, spends, lifetime) for source in dict.fromkeys(sources)]

    def advance(self, run_dir: str, state: State) -> int:
        """Move the charges of the run in `run_dir` to `state` (only forward, see `_NEXT`); the count moved."""
        allowed_from = [before for before, after in _NEXT.items() if state in after]
        with self.engine.begin() as connection:
            moved = connection.execute(
                _charges.update()
                .where(_charges.c.run_dir == run_dir, _charges.c.state.in_(allowed_from))
                .values(state=state, updated_at=_now())
            )
        return int(moved.rowcount or 0)

    def release(self, run_dir: str) -> int:
        """Give back the charges of a run that never started training; the count released."""
        return self.advance(run_dir, "released")

    def charge(
        self,
        dataset_id: str,
        sources: Sequence[str],
        epsilon: float,
        delta: float,
        purpose: str,
        run_dir: str,
    ) -> None:
        """Record a spend without a budget check (an import of spends made elsewhere), as `spent`."""
        self.reserve(dataset_id, sources, epsilon, delta, float("inf"), purpose, run_dir)
        self.advance(run_dir, "training")
        self.advance(run_dir, "spent")

    def spends(self, dataset_id: str) -> list[Spend]:
        """Every charge of a dataset, oldest first, released ones included (they carry their state)."""
        with self.engine.connect() as connection:
            return self._spends(connection, dataset_id)

    def legacy_imported(self) -> bool:
        """Whether the MLflow-run ledger of earlier versions was already copied into this database."""
        with self.engine.connect() as connection:
            found = connection.execute(sa.select(_markers.c.name).where(_markers.c.name == LEGACY_EXPERIMENT))
            return found.first() is not None

    def import_legacy(self, records: list[dict[str, str]]) -> int:
        """Copy the spends an earlier version kept as MLflow runs, once per database; the count copied."""
        with self._locked(LEGACY_EXPERIMENT) as connection:
            done = connection.execute(sa.select(_markers.c.name).where(_markers.c.name == LEGACY_EXPERIMENT))
            if done.first() is not None:
                return 0
            rows = [
                {
                    "charge_id": str(uuid.uuid4()),
                    "reservation_id": str(uuid.uuid4()),
                    "dataset": record["dataset"],
                    "source_sha256": record["source_sha256"],
                    "epsilon": float(record["epsilon"]),
                    "delta": float(record["delta"]),
                    "purpose": record["purpose"],
                    "run_dir": record.get("run_dir", ""),
                    "state": "spent",
                    "recorded_at": record["recorded_at"],
                    "updated_at": _now(),
                }
                for record in records
            ]
            if rows:
                connection.execute(_charges.insert(), rows)
            connection.execute(_markers.insert().values(name=LEGACY_EXPERIMENT, recorded_at=_now()))
        return len(rows)

    @staticmethod
    def _spends(connection: Connection, dataset_id: str) -> list[Spend]:
        rows = connection.execute(
            sa.select(_charges)
            .where(_charges.c.dataset == dataset_id)
            .order_by(_charges.c.recorded_at, _charges.c.charge_id)
        )
        return [
            Spend(
                dataset_id=row.dataset,
                source_sha256=row.source_sha256,
                epsilon=row.epsilon,
                delta=row.delta,
                purpose=row.purpose,
                recorded_at=row.recorded_at,
                run_dir=row.run_dir,
                state=row.state,
            )
            for row in rows
        ]


def open_ledger(home: Path) -> Ledger:
    """The ledger this home's runs share (see `ledger_url`), with any legacy MLflow-run ledger imported once.

    The legacy import reads the tracking store MLflow is pointed at: call `registry.configure_tracking` first."""
    from guardflow.io.records import read_records

    ledger = Ledger(ledger_url(home))
    if not ledger.legacy_imported():
        ledger.import_legacy(read_records(LEGACY_EXPERIMENT, _LEGACY_PREFIX, {}))
    return ledger
