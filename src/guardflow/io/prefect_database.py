"""A new home's Prefect database, seeded from an empty one already migrated.

Prefect's ephemeral API keeps its runs in `<PREFECT_HOME>/prefect.db` (SQLite). In a new home it first creates
that database by running every migration, which took 6-7 s of a 37 s `guardflow train` on Adult (15 s alone,
`prefect server database upgrade`). The database those migrations leave is always the same for one Prefect
release, and holds nothing about any data or run: `make setup` builds it once (`python -m
guardflow.io.prefect_database`) into the cache folder, and each new home gets a copy before Prefect starts.
Where the template is missing, or the home already has a database, or Prefect is told to use another database or
server, nothing is copied and Prefect does what it always does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

from guardflow.settings import cache_folder

DATABASE_FILE = "prefect.db"
# Settings that point Prefect away from the home's own SQLite file (another database, or a server's API).
_ELSEWHERE = ("PREFECT_API_URL", "PREFECT_API_DATABASE_CONNECTION_URL", "PREFECT_SERVER_DATABASE_CONNECTION_URL")


def template_path() -> Path:
    """The migrated empty database for the installed Prefect release."""
    return cache_folder() / f"prefect-{version('prefect')}.db"


def seed_database(prefect_home: Path) -> bool:
    """Copy the template into a new home (see the module docstring); True when it did."""
    target = prefect_home / DATABASE_FILE
    template = template_path()
    if target.exists() or not template.is_file() or any(os.environ.get(name) for name in _ELSEWHERE):
        return False
    descriptor, temporary = tempfile.mkstemp(dir=prefect_home, prefix=".prefect-", suffix=".db")
    os.close(descriptor)
    try:
        shutil.copyfile(template, temporary)
        os.link(temporary, target)  # atomic, and refused if another process of this home got there first
    except FileExistsError:
        return False
    finally:
        Path(temporary).unlink(missing_ok=True)
    return True


def build_template() -> Path:
    """Run Prefect's migrations on an empty database in a scratch home and keep it as the template."""
    target = template_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".prefect-home-") as scratch:
        environment = {name: value for name, value in os.environ.items() if not name.startswith("PREFECT_")}
        environment.update(PREFECT_HOME=scratch, PREFECT_SERVER_ANALYTICS_ENABLED="false")
        prefect = Path(sys.executable).parent / "prefect"
        subprocess.run(
            [str(prefect), "server", "database", "upgrade", "-y"],
            env=environment,
            check=True,
            capture_output=True,
        )
        os.replace(Path(scratch) / DATABASE_FILE, target)
    return target


if __name__ == "__main__":
    if template_path().is_file():
        print(f"Prefect database template: {template_path()} (already built)")
    else:
        print(f"Prefect database template: {build_template()}")
