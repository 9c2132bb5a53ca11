"""The servers' command lines: loopback by default, any other address only with authentication configured.

The servers themselves, with and without credentials, are exercised in tests/e2e/test_team_backends.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from guardflow.errors import ConfigError
from guardflow.io.servers import is_loopback, mlflow_server_command, prefect_server_command

STORE = "sqlite:////tmp/mlflow.db"
ARTIFACTS = "/tmp/artifacts"


def _auth_ini(folder: Path, database: str = "sqlite:////tmp/auth.db") -> Path:
    path = folder / "basic_auth.ini"
    path.write_text(
        f"[mlflow]\ndefault_permission = READ\ndatabase_uri = {database}\nadmin_username = admin\n"
    )
    return path


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("localhost", True),
        ("::1", True),
        ("0.0.0.0", False),
        ("10.0.0.5", False),
        ("::", False),
        ("team-server.example.org", False),
    ],
)
def test_is_loopback__host__only_this_machine_counts(host: str, expected: bool) -> None:
    # given a host to bind / when it is classified / then only loopback addresses (and localhost) count
    assert is_loopback(host) is expected, f"is_loopback({host!r}) should be {expected}"


def test_prefect_server_command__loopback_without_auth__starts() -> None:
    # given no auth string / when the server is asked for on loopback
    command = prefect_server_command("127.0.0.1", 4200, {})
    # then it is prefect server start on that address
    assert command[1:] == ["server", "start", "--host", "127.0.0.1", "--port", "4200"], f"command: {command}"


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20"])
def test_prefect_server_command__beyond_loopback_without_auth__refused(host: str) -> None:
    # given no auth string / when the server is asked for on a reachable address
    with pytest.raises(ConfigError) as refused:
        prefect_server_command(host, 4200, {})
    # then it is refused, naming the settings that would allow it
    message = str(refused.value)
    assert "PREFECT_SERVER_API_AUTH_STRING" in message and "PREFECT_API_AUTH_STRING" in message, message


def test_prefect_server_command__beyond_loopback_with_auth__starts() -> None:
    # given an auth string user:password / when the server is asked for on all interfaces
    command = prefect_server_command("0.0.0.0", 4200, {"PREFECT_SERVER_API_AUTH_STRING": "team:s3cret"})
    # then it starts there (Prefect reads the auth string from the environment itself)
    assert command[command.index("--host") + 1] == "0.0.0.0", f"command: {command}"


@pytest.mark.parametrize("auth", ["no-colon", ":password-only", "user-only:"])
def test_prefect_server_command__malformed_auth__refused(auth: str) -> None:
    # given an auth string that is not user:password / when the server is asked for / then it is refused
    with pytest.raises(ConfigError, match="user:password"):
        prefect_server_command("0.0.0.0", 4200, {"PREFECT_SERVER_API_AUTH_STRING": auth})


def test_mlflow_server_command__loopback_without_auth__plain_server() -> None:
    # given no auth config / when the tracking server is asked for on loopback
    command = mlflow_server_command("127.0.0.1", 5000, STORE, ARTIFACTS, {})
    # then it serves the given store and artifacts, without the basic-auth app
    assert command[1] == "server" and "--app-name" not in command, f"command: {command}"
    assert command[command.index("--backend-store-uri") + 1] == STORE, f"command: {command}"
    assert command[command.index("--artifacts-destination") + 1] == ARTIFACTS, f"command: {command}"


def test_mlflow_server_command__beyond_loopback_without_auth__refused() -> None:
    # given no auth config / when the tracking server is asked for on all interfaces / then it is refused
    with pytest.raises(ConfigError, match="MLFLOW_AUTH_CONFIG_PATH"):
        mlflow_server_command("0.0.0.0", 5000, STORE, ARTIFACTS, {})


def test_mlflow_server_command__auth_configured__basic_auth_app(tmp_path: Path) -> None:
    # given a basic-auth ini with its own credentials database and a CSRF secret
    environ = {
        "MLFLOW_AUTH_CONFIG_PATH": str(_auth_ini(tmp_path)),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "k" * 32,
    }
    # when the tracking server is asked for on all interfaces
    command = mlflow_server_command("0.0.0.0", 5000, STORE, ARTIFACTS, environ)
    # then MLflow's basic-auth app serves it
    assert command[-2:] == ["--app-name", "basic-auth"], f"command: {command}"


def test_mlflow_server_command__auth_config_incomplete__refused(tmp_path: Path) -> None:
    # given an ini without a credentials database, a missing ini, and a good ini without the CSRF secret
    without_database = {"MLFLOW_AUTH_CONFIG_PATH": str(_auth_ini(tmp_path, database=""))}
    missing = {"MLFLOW_AUTH_CONFIG_PATH": str(tmp_path / "nope.ini")}
    (tmp_path / "good").mkdir()
    without_secret = {"MLFLOW_AUTH_CONFIG_PATH": str(_auth_ini(tmp_path / "good"))}
    # when the tracking server is asked for with each / then each is refused with its reason
    for environ, reason in (
        (without_database, "database_uri"),
        (missing, "not a file"),
        (without_secret, "MLFLOW_FLASK_SERVER_SECRET_KEY"),
    ):
        with pytest.raises(ConfigError, match=reason):
            mlflow_server_command("0.0.0.0", 5000, STORE, ARTIFACTS, environ)
