"""A new home's Prefect database is copied from the migrated template, and only where Prefect would create it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from guardflow.io.prefect_database import DATABASE_FILE, build_template, seed_database, template_path


@pytest.fixture
def template(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache folder of its own with a template in it (any bytes will do for the copying rules)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for name in ("PREFECT_API_URL", "PREFECT_API_DATABASE_CONNECTION_URL", "PREFECT_SERVER_DATABASE_CONNECTION_URL"):
        monkeypatch.delenv(name, raising=False)
    path = template_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"migrated")
    return path


def test_a_new_home_gets_a_copy_of_the_template(template: Path, tmp_path: Path) -> None:
    home = tmp_path / "prefect"
    home.mkdir()
    assert seed_database(home), "a home without a database is seeded"
    assert (home / DATABASE_FILE).read_bytes() == b"migrated", "with the template's content"
    assert sorted(path.name for path in home.iterdir()) == [DATABASE_FILE], "and no temporary file left"


def test_a_home_with_a_database_keeps_it(template: Path, tmp_path: Path) -> None:
    home = tmp_path / "prefect"
    home.mkdir()
    (home / DATABASE_FILE).write_bytes(b"runs of this home")
    assert not seed_database(home), "nothing is copied over an existing database"
    assert (home / DATABASE_FILE).read_bytes() == b"runs of this home", "its runs are kept"


@pytest.mark.parametrize(
    "setting", ["PREFECT_API_URL", "PREFECT_API_DATABASE_CONNECTION_URL", "PREFECT_SERVER_DATABASE_CONNECTION_URL"]
)
def test_nothing_is_copied_when_prefect_uses_another_database_or_server(
    setting: str, template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(setting, "postgresql+asyncpg://elsewhere/prefect")
    home = tmp_path / "prefect"
    home.mkdir()
    assert not seed_database(home), f"{setting} set: the home's SQLite file is not Prefect's database"
    assert not (home / DATABASE_FILE).exists(), "no file is left there"


def test_without_a_template_prefect_creates_the_database_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    home = tmp_path / "prefect"
    home.mkdir()
    assert not seed_database(home), "no template, no copy"
    assert not (home / DATABASE_FILE).exists(), "Prefect migrates a new database as it always does"


def test_the_template_is_prefects_own_migrated_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # when the template is built in an empty cache folder (Prefect's own `server database upgrade`)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    built = build_template()
    assert sorted(path.name for path in built.parent.iterdir()) == [built.name], "the scratch home is removed"
    # then it is a SQLite database at Prefect's latest migration, with its tables and no runs
    with sqlite3.connect(built) as database:
        tables = {name for (name,) in database.execute("select name from sqlite_master where type = 'table'")}
        runs = database.execute("select count(*) from flow_run").fetchone()[0]
        revision = database.execute("select version_num from alembic_version").fetchone()
    assert {"flow_run", "task_run", "alembic_version"} <= tables, f"Prefect's tables, got {sorted(tables)[:10]}"
    assert runs == 0 and revision is not None, "migrated, and empty"
