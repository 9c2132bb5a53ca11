"""Process-wide settings for a quiet, offline run, applied by the CLI (and tests) before heavy imports.

Nothing here runs on import: `prepare_environment` is called explicitly, once, at the edge.
"""

from __future__ import annotations

import functools
import gc
import logging
import os
import sys
import warnings
from pathlib import Path

from guardflow.io.prefect_database import seed_database

QUIET_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    # The ephemeral API gets 20 s to start by default; on 2 busy cores a cold start can take longer.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    # Prefect's console would print each failed task's traceback; the CLI prints one line instead, and the
    # full logs stay in the Prefect API (and UI) through its API handler.
    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "CRITICAL",
    "PREFECT_LOGGING_EXTRA_LOGGERS": "guardflow",
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
    "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
    "PREFECT_LOGGING_INTERNAL_LEVEL": "ERROR",
    "GX_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    "GIT_PYTHON_REFRESH": "quiet",
    "TQDM_DISABLE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def prepare_environment(home: Path) -> None:
    """Point Prefect at `<home>/prefect` (a new one's database seeded from the migrated template, see
    `io/prefect_database.py`), silence telemetry and progress bars, and route our logs to stderr."""
    for name, value in QUIET_DEFAULTS.items():
        os.environ.setdefault(name, value)
    prefect_home = Path(os.environ.setdefault("PREFECT_HOME", str(home / "prefect")))
    prefect_home.mkdir(parents=True, exist_ok=True)
    seed_database(prefect_home)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    configure_console_logging()


@functools.cache
def freeze_loaded_objects() -> None:
    """Once per process, once its libraries are loaded (a flow's: Prefect, torch, GX, MLflow; a Dask worker's:
    GX, pandas, pyarrow): move the objects alive now, about a million, out of the garbage collector's view. Its
    full collections would otherwise walk them again each time: about 2.5 s of a run on Adult, 0.29 s per
    partition in a contract worker. What is allocated afterwards is collected as usual."""
    gc.collect()
    gc.freeze()


def configure_console_logging(level: int = logging.INFO) -> None:
    """Our own messages, one clean line each; third-party loggers stay at WARNING."""
    root = logging.getLogger("guardflow")
    if not any(getattr(handler, "_guardflow", False) for handler in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._guardflow = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    # Stage lines are the console's story; the library's own loggers speak up only when something is wrong.
    root.setLevel(logging.WARNING)
    logging.getLogger("guardflow.stages").setLevel(level)
    logging.getLogger("guardflow.cli").setLevel(level)
    root.propagate = False
    for noisy in (
        "mlflow",
        "alembic",
        "great_expectations",
        "evidently",
        "opacus",
        "urllib3",
        "httpx",
        "openlineage",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)
