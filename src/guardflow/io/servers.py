"""The command lines of the two servers a team shares: Prefect's API and UI, and MLflow's tracking server.

Both bind loopback by default. Any other address is refused unless the server asks who is calling:
- Prefect: HTTP basic auth with `PREFECT_SERVER_API_AUTH_STRING=user:password` on the server; every client
  and worker sends `PREFECT_API_AUTH_STRING` with the same value. The health probe stays open.
- MLflow: the `basic-auth` app (`--app-name basic-auth`), configured by the ini file in
  `MLFLOW_AUTH_CONFIG_PATH` (its own credentials database, `database_uri`, and the first admin), with
  `MLFLOW_FLASK_SERVER_SECRET_KEY` for its CSRF protection. Clients send `MLFLOW_TRACKING_USERNAME` and
  `MLFLOW_TRACKING_PASSWORD`.
"""

from __future__ import annotations

import configparser
import ipaddress
import sys
from collections.abc import Mapping
from pathlib import Path

from guardflow.errors import ConfigError

PREFECT_AUTH = "PREFECT_SERVER_API_AUTH_STRING"
MLFLOW_AUTH_CONFIG = "MLFLOW_AUTH_CONFIG_PATH"
MLFLOW_SECRET_KEY = "MLFLOW_FLASK_SERVER_SECRET_KEY"


def is_loopback(host: str) -> bool:
    """Whether `host` is an address only this machine can reach (127.0.0.0/8, ::1, or `localhost`)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve to anything


def _bin(name: str) -> str:
    """A console script of this environment (next to the running Python)."""
    return str(Path(sys.executable).parent / name)


def prefect_server_command(host: str, port: int, environ: Mapping[str, str]) -> list[str]:
    """`prefect server start` on `host:port`; refused beyond loopback without an auth string `user:password`."""
    auth = environ.get(PREFECT_AUTH, "")
    if auth:
        user, _, password = auth.partition(":")
        if not user or not password:
            raise ConfigError(f"{PREFECT_AUTH} must be user:password")
    elif not is_loopback(host):
        raise ConfigError(
            f"refusing to serve Prefect on {host} without authentication: set {PREFECT_AUTH}=user:password "
            "(and PREFECT_API_AUTH_STRING to the same on every client and worker), or bind 127.0.0.1"
        )
    return [_bin("prefect"), "server", "start", "--host", host, "--port", str(port)]


def _auth_database(config_path: Path) -> str:
    """The credentials database the basic-auth ini names; refused when the file or the setting is missing."""
    if not config_path.is_file():
        raise ConfigError(f"{MLFLOW_AUTH_CONFIG} names {config_path}, which is not a file")
    parser = configparser.ConfigParser()
    try:
        parser.read(config_path, encoding="utf-8")
    except configparser.Error as error:
        raise ConfigError(f"{config_path}: not an ini file ({type(error).__name__})") from None
    database = parser.get("mlflow", "database_uri", fallback="")
    if not database:
        raise ConfigError(f"{config_path}: [mlflow] database_uri must name the credentials database")
    return database


def mlflow_server_command(
    host: str,
    port: int,
    backend_store_uri: str,
    artifacts_destination: str,
    environ: Mapping[str, str],
    workers: int = 2,
) -> list[str]:
    """`mlflow server` on `host:port` over `backend_store_uri`, serving artifacts from `artifacts_destination`.

    With `MLFLOW_AUTH_CONFIG_PATH` set it runs the basic-auth app (whatever the host); beyond loopback it is
    refused without it."""
    command = [
        _bin("mlflow"),
        "server",
        "--backend-store-uri",
        backend_store_uri,
        "--artifacts-destination",
        artifacts_destination,
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    config = environ.get(MLFLOW_AUTH_CONFIG, "")
    if not config:
        if not is_loopback(host):
            raise ConfigError(
                f"refusing to serve MLflow on {host} without authentication: set {MLFLOW_AUTH_CONFIG} to a "
                "basic_auth.ini (its own database_uri and admin) and MLFLOW_FLASK_SERVER_SECRET_KEY, or bind "
                "127.0.0.1"
            )
        return command
    _auth_database(Path(config))
    if not environ.get(MLFLOW_SECRET_KEY):
        raise ConfigError(f"MLflow's basic-auth app needs {MLFLOW_SECRET_KEY} (any long random string)")
    return [*command, "--app-name", "basic-auth"]
