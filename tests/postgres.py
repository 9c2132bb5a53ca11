"""A throwaway PostgreSQL server on loopback for tests: Debian's PostgreSQL 15 binaries, a temporary cluster.

As root (CI, these machines) the server runs as `nobody`, since PostgreSQL refuses to run as root. The cluster
trusts local connections only: it listens on 127.0.0.1 and a socket in its own folder.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.net import free_port

USER = "guardflow"


def postgres_bin() -> Path | None:
    """The folder of initdb and pg_ctl (Debian keeps them off PATH), or None when PostgreSQL is not installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["su", "nobody", "-s", "/bin/sh", "-c", " ".join(command)]


@contextmanager
def running_postgres(database: str = "guardflow") -> Iterator[str]:
    """Start a cluster with one database; yield its SQLAlchemy URL (psycopg2); stop and delete it afterwards."""
    binaries = postgres_bin()
    if binaries is None:
        raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")
    folder = Path(tempfile.mkdtemp(prefix="guardflow-pg-"))
    data = folder / "data"
    port = free_port()
    if os.geteuid() == 0:
        shutil.chown(folder, "nobody", "nogroup")
    subprocess.run(
        _as_server_user([str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", USER]),
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off"
    subprocess.run(
        _as_server_user(
            [
                str(binaries / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                f"'{options}'",
                "-l",
                str(folder / "log"),
                "-w",
                "start",
            ]
        ),
        check=True,
        capture_output=True,
    )
    try:
        subprocess.run(
            [str(binaries / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", USER, database],
            check=True,
            capture_output=True,
        )
        yield f"postgresql+psycopg2://{USER}@127.0.0.1:{port}/{database}"
    finally:
        subprocess.run(
            _as_server_user([str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
            capture_output=True,
        )
        time.sleep(0.2)
        shutil.rmtree(folder, ignore_errors=True)


def create_database(url: str, name: str) -> str:
    """Create one more database on the cluster of `url` (from `running_postgres`); its URL, same driver."""
    binaries = postgres_bin()
    if binaries is None:
        raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")
    server, _, _ = url.rpartition("/")
    port = server.rpartition(":")[2]
    subprocess.run(
        [str(binaries / "createdb"), "-h", "127.0.0.1", "-p", port, "-U", USER, name],
        check=True,
        capture_output=True,
    )
    return f"{server}/{name}"
