"""Starting and reaching the servers: the quiet environment set before Prefect or MLflow loads, the checks before
a flow starts (its files, a shared privacy ledger beside a tracking server, a Prefect server to deploy to), the
ephemeral Prefect API a flow runs on, and the `deploy`, `worker`, `serve` and `ui` commands."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from guardflow.errors import EXIT_OK, ConfigError, DataError
from guardflow.settings import guardflow_home, load_settings

logger = logging.getLogger("guardflow.cli")  # the command's own lines (see runtime.prepare_environment)


def prepare() -> None:
    """Quiet, offline defaults; must run before Prefect, MLflow or GX are imported."""
    from guardflow.runtime import prepare_environment

    prepare_environment(guardflow_home())


def check_files(*paths: Path) -> None:
    for path in paths:
        if not Path(path).is_file():
            raise DataError(f"data file not found: {path}")


def require_shared_ledger() -> None:
    """Refuse at once, in one line, a tracking server (http) with no shared privacy ledger named: the runs
    would otherwise fail at the budget stage, or worse, each machine would keep a ledger of its own."""
    prepare()  # before MLflow is imported
    from guardflow.io.ledger import ledger_url

    ledger_url(guardflow_home())


def start_prefect_api(flow_name: str, dataset_id: str) -> Callable[[], None]:
    """Say what starts, then start the Prefect API the flow will run on, in the background; return a function
    that waits until it answers (and raises if it could not start).

    With `PREFECT_API_URL` set, the flow reports to that server and nothing is started. Otherwise Prefect's
    ephemeral API (a server subprocess on the home's database, the one `make serve` shows) boots on the other
    core while this process imports the flow's libraries (torch, Great Expectations, MLflow), instead of after:
    Prefect reuses the running instance when the flow asks for its client.
    """
    # The first line, before any heavy import: the user sees at once that the config was accepted.
    logger.info(
        "%s: dataset %s, config and files checked; starting Prefect and the pipeline", flow_name, dataset_id
    )
    from prefect.settings import get_current_settings

    prefect_settings = get_current_settings()
    if prefect_settings.api.url or not prefect_settings.server.ephemeral.enabled:
        return lambda: None
    from prefect.server.api.server import SubprocessASGIServer

    failures: list[BaseException] = []

    # The server boots while this process imports, the two sharing the CPU: it gets the configured startup time
    # twice over, so that a start the usual path would allow is not refused for having begun earlier.
    timeout = 2 * prefect_settings.server.ephemeral.startup_timeout_seconds

    def start() -> None:
        try:
            SubprocessASGIServer().start(timeout=timeout)
        except BaseException as error:  # handed to the main thread, which reports it once
            failures.append(error)

    starting = threading.Thread(target=start, name="prefect-api-start", daemon=True)
    starting.start()

    def wait() -> None:
        starting.join()
        if failures:
            raise failures[0]

    return wait


def require_server() -> str:
    """The Prefect API URL to deploy to or poll; refused when only the ephemeral API would answer."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if not url:
        raise ConfigError(
            "no Prefect server: set PREFECT_API_URL (e.g. http://127.0.0.1:4200/api, see `make serve`)"
        )
    return str(url)


def deploy(args: argparse.Namespace) -> int:
    for config in args.config:
        settings = load_settings(config)
        check_files(settings.dataset.train.path, settings.dataset.test.path, settings.contract.suite)
    prepare()
    url = require_server()
    from flows.deployments import deploy_dataset

    for config in args.config:
        for deployed in deploy_dataset(config):
            print(f"deployed {deployed.name:<28} {deployed.runs}")
    pools = sorted({load_settings(config).deploy.work_pool for config in args.config})
    print(f"on {url}; start a worker with: guardflow worker --pool {pools[0]}")
    return EXIT_OK


def worker(args: argparse.Namespace) -> int:
    pool = args.pool or (load_settings(args.config).deploy.work_pool if args.config else "guardflow")
    require_shared_ledger()
    prepare()
    require_server()
    command = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process"]
    if args.limit:
        command += ["--limit", str(args.limit)]
    # The worker's flow runs inherit this environment: GUARDFLOW_HOME, PREFECT_API_URL and the quiet defaults.
    os.execv(sys.executable, command)


def serve(args: argparse.Namespace) -> int:
    from guardflow.io.servers import prefect_server_command

    command = prefect_server_command(args.host, args.port, os.environ)
    prepare()  # the server's home and quiet defaults, as for every other command
    os.execv(command[0], command)


def ui(args: argparse.Namespace) -> int:
    from guardflow.io.servers import mlflow_server_command

    home = guardflow_home()
    store = args.backend_store_uri or f"sqlite:///{(home / 'mlflow' / 'mlflow.db').resolve()}"
    artifacts = args.artifacts_destination or str((home / "mlflow" / "artifacts").resolve())
    command = mlflow_server_command(args.host, args.port, store, artifacts, os.environ, args.workers)
    if store.startswith("sqlite:///"):
        Path(store.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    prepare()
    os.execv(command[0], command)
