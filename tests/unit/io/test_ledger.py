"""The privacy ledger as a transaction: concurrent reservations never overspend, and charges keep their state."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from guardflow.errors import BudgetError, ConfigError
from guardflow.io import registry
from guardflow.io.ledger import Ledger, ledger_url, open_ledger
from guardflow.privacy.privacy_budget import summarize_budget
from tests.postgres import postgres_bin, running_postgres

ROOT = Path(__file__).resolve().parents[3]
SOURCE_A, SOURCE_B = "a" * 64, "b" * 64
# Each process waits for the common start time, then opens the ledger (all creating its tables at once on a new
# database) and asks for epsilon 1 on two sources.
_RESERVE = """
import sys, time
from guardflow.errors import BudgetError
from guardflow.io.ledger import Ledger
url, start, run_dir = sys.argv[1], float(sys.argv[2]), sys.argv[3]
while time.time() < start:
    time.sleep(0.001)
ledger = Ledger(url)
try:
    ledger.reserve("adult", ["a" * 64, "b" * 64], 1.0, 1e-5, 10.0, "train", run_dir)
except BudgetError:
    print("refused")
else:
    print("reserved")
"""


def _reserve_at_once(url: str, processes: int) -> list[str]:
    """`processes` Python processes reserving at the same moment; their answers."""
    start = time.time() + 8.0
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    running = [
        subprocess.Popen(
            [sys.executable, "-c", _RESERVE, url, repr(start), f"/runs/{index}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
        )
        for index in range(processes)
    ]
    answers = []
    for process in running:
        out, err = process.communicate(timeout=180)
        assert process.returncode == 0, f"a reserving process failed: {err[-2000:]}"
        answers.append(out.strip())
    return answers


def _assert_exact_budget(url: str, answers: list[str]) -> None:
    ledger = Ledger(url)
    spends = ledger.spends("adult")
    assert answers.count("reserved") == 10, f"exactly 10 runs of epsilon 1 fit a lifetime of 10: {answers}"
    assert answers.count("refused") == len(answers) - 10, f"every other run is refused: {answers}"
    for source in (SOURCE_A, SOURCE_B):
        spent = summarize_budget("adult", source, spends, 10.0).spent
        assert spent == pytest.approx(10.0), (
            f"source {source[:4]} spent {spent}, never more than its lifetime"
        )
    assert len(spends) == 20, f"every reservation kept, one charge per source: {len(spends)} charges"


def test_concurrent_reservations_on_sqlite_never_overspend(tmp_path: Path) -> None:
    # given a new SQLite database, room for 10 runs / when 14 processes open the ledger and reserve at one moment
    url = f"sqlite:///{tmp_path / 'mlflow.db'}"
    answers = _reserve_at_once(url, 14)
    # then exactly 10 get their charge and nothing is lost or double-spent
    _assert_exact_budget(url, answers)


@pytest.mark.skipif(
    postgres_bin() is None, reason="PostgreSQL server binaries missing (apt-get install postgresql)"
)
def test_concurrent_reservations_on_postgresql_never_overspend() -> None:
    # given a new PostgreSQL database (no ledger table yet) / when 14 processes open the ledger and reserve at
    # the same moment
    with running_postgres() as url:
        answers = _reserve_at_once(url, 14)
        # then exactly 10 get their charge and nothing is lost or double-spent
        _assert_exact_budget(url, answers)


def test_only_an_untrained_reservation_is_released(tmp_path: Path) -> None:
    # given two reservations of epsilon 4 against a lifetime of 10
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.reserve("adult", [SOURCE_A], 4.0, 1e-5, 10.0, "train", "/runs/untrained")
    ledger.reserve("adult", [SOURCE_A], 4.0, 1e-5, 10.0, "train", "/runs/trained")
    # when one stops before training and the other after training started
    assert ledger.release("/runs/untrained") == 1, "a reservation that no training used is released"
    assert ledger.advance("/runs/trained", "training") == 1, "the other moves to training"
    assert ledger.release("/runs/trained") == 0, "a run that started training can never be released"
    # then only the trained one counts, and a third run of 6 fits exactly while one of 6.5 does not
    spends = ledger.spends("adult")
    states = sorted(spend.state for spend in spends)
    assert states == ["released", "training"], f"each charge keeps its state: {states}"
    assert summarize_budget("adult", SOURCE_A, spends, 10.0).spent == pytest.approx(4.0), (
        "released stops counting"
    )
    with pytest.raises(BudgetError, match=r"spent 4\.000 of 10\.000"):
        ledger.reserve("adult", [SOURCE_A], 6.5, 1e-5, 10.0, "train", "/runs/too-much")
    ledger.reserve("adult", [SOURCE_A], 6.0, 1e-5, 10.0, "train", "/runs/last")


def test_a_refused_reservation_charges_no_source(tmp_path: Path) -> None:
    # given source B nearly exhausted
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.charge("adult", [SOURCE_B], 9.5, 1e-5, "train", "/runs/earlier")
    # when a retrain on A and B asks for epsilon 1
    with pytest.raises(BudgetError, match="bbbbbbbbbbbb"):
        ledger.reserve("adult", [SOURCE_A, SOURCE_B], 1.0, 1e-5, 10.0, "retrain", "/runs/retrain")
    # then neither source was charged
    spends = ledger.spends("adult")
    assert [spend.run_dir for spend in spends] == ["/runs/earlier"], f"the refusal wrote nothing: {spends}"


def test_the_legacy_mlflow_ledger_is_imported_once(tmp_path: Path) -> None:
    # given spends an earlier version kept as MLflow runs
    records = [
        {
            "dataset": "adult",
            "source_sha256": SOURCE_A,
            "epsilon": "1.0",
            "delta": "1e-05",
            "purpose": "train",
            "run_dir": "/runs/old",
            "recorded_at": "2026-11-01T00:00:00+00:00",
        }
    ]
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    # when they are imported twice
    first, second = ledger.import_legacy(records), ledger.import_legacy(records)
    # then they count once, as spent
    assert (first, second) == (1, 0), f"imported once: {first}, {second}"
    spends = ledger.spends("adult")
    assert [(spend.state, spend.epsilon) for spend in spends] == [("spent", 1.0)], f"as spent: {spends}"


def test_ledger_persists_in_the_tracking_store(tmp_path: Path) -> None:
    # given a fresh store / when two runs are charged, one of them to two sources
    registry.configure_tracking(tmp_path, experiment="ledger-test")
    ledger = open_ledger(tmp_path)
    ledger.charge("adult", [SOURCE_A], 1.0, 1e-5, "train", "/runs/1")
    ledger.charge("adult", [SOURCE_A, SOURCE_B], 0.5, 1e-5, "retrain", "/runs/2")
    ledger.charge("other", [SOURCE_A], 9.0, 1e-5, "train", "/runs/3")
    # then reading it back, from the MLflow store's own database, gives every charge of the dataset and only those
    spends = open_ledger(tmp_path).spends("adult")
    assert len(spends) == 3, f"three charges for adult, got {spends}"
    assert summarize_budget("adult", SOURCE_A, spends, 10).spent == 1.5, "charges add up per source"
    assert summarize_budget("adult", SOURCE_B, spends, 10).spent == 0.5, "a retrain charges every source"
    assert ledger_url(tmp_path) == registry.tracking_uri(tmp_path), "the ledger shares the tracking store"


def test_ledger_url_follows_a_shared_store_and_refuses_a_server_without_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given MLflow on a PostgreSQL store, then behind a tracking server, then the server with a named ledger
    database = "postgresql+psycopg2://team@db.example.org:5432/mlflow"
    ledger_database = "postgresql+psycopg2://team@db.example.org:5432/ledger"
    monkeypatch.delenv("GUARDFLOW_LEDGER_URL", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", database)
    on_database = ledger_url(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example.org:5000")
    with pytest.raises(ConfigError) as refused:
        ledger_url(tmp_path)
    monkeypatch.setenv("GUARDFLOW_LEDGER_URL", ledger_database)
    named = ledger_url(tmp_path)
    # then the ledger shares the database, is refused behind a server in one line, and goes where it is named
    assert on_database == database, f"ledger on the tracking database: {on_database}"
    assert "GUARDFLOW_LEDGER_URL" in str(refused.value) and "\n" not in str(refused.value), str(refused.value)
    assert named == ledger_database, f"ledger where GUARDFLOW_LEDGER_URL says: {named}"


@pytest.mark.skipif(
    postgres_bin() is None, reason="PostgreSQL server binaries missing (apt-get install postgresql)"
)
def test_a_ledger_opened_while_another_process_creates_the_tables_waits_and_opens_cleanly() -> None:
    import sqlalchemy as sa

    from guardflow.io import ledger as ledger_module

    def hold_create(_connection, _cursor, statement, *_args) -> None:
        # The race's worst timing: the opening process has found no table, and its CREATE TABLE runs only
        # after the other process committed its own.
        if threading.current_thread().name == "opening" and statement.lstrip().upper().startswith("CREATE TABLE"):
            committed.wait(timeout=30)

    committed = threading.Event()
    sa.event.listen(sa.engine.Engine, "before_cursor_execute", hold_create)
    try:
        with running_postgres() as url:
            # given another process in the middle of creating the ledger's tables on a new database (its
            # transaction holds the schema lock and the new tables, not yet committed)
            engine = sa.create_engine(url)
            with engine.connect() as other:
                creating = other.begin()
                other.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": ledger_module._SCHEMA_LOCK})
                ledger_module._metadata.create_all(other)
                # when this process opens the ledger meanwhile, and the other commits a moment later
                opened: list[object] = []
                opening = threading.Thread(target=lambda: opened.append(_open_or_error(url)), name="opening")
                opening.start()
                time.sleep(1.0)
                creating.commit()
                committed.set()
                opening.join(timeout=60)
            engine.dispose()
            # then it opened without an error, on the tables the other process created
            assert len(opened) == 1 and isinstance(opened[0], Ledger), f"opening the ledger failed: {opened}"
            assert opened[0].spends("adult") == [], "the new ledger is empty"
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", hold_create)


def _open_or_error(url: str) -> object:
    try:
        return Ledger(url)
    except Exception as error:  # the test reports it
        return error
