"""Test-session setup: an isolated $GUARDFLOW_HOME and the quiet, offline environment, before any import of
Prefect, MLflow or GX happens in a test module."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ADULT_CONFIG = ROOT / "configs" / "adult.yaml"


def pytest_configure(config: pytest.Config) -> None:
    home = Path(tempfile.mkdtemp(prefix="guardflow-tests-"))
    os.environ["GUARDFLOW_HOME"] = str(home)
    from guardflow.runtime import prepare_environment

    prepare_environment(home)


# The long modules first (real servers, whole flows): with `--dist loadfile --no-loadscope-reorder` (the Makefile)
# xdist hands files to the two workers in this order, so they end together instead of one running a server test
# alone at the end (xdist's own order is by number of tests, which put the server tests last).
_LONG_FIRST = ("tests/e2e/", "tests/notebooks/", "tests/flows/")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        return next(
            (index for index, prefix in enumerate(_LONG_FIRST) if item.nodeid.startswith(prefix)),
            len(_LONG_FIRST),
        )

    items.sort(key=rank)  # stable: each file's tests keep their order, files their order within a rank


@pytest.fixture(scope="session")
def adult_settings():
    from guardflow.settings import load_settings

    return load_settings(ADULT_CONFIG)


# Flow tests check the wiring. Slice purity's blind models (~6 s of a 27 s run on the 6,000-row slice, ~15 s of a
# drift retrain on the whole training file) are tested on small data in tests/unit/poisoning and measured on attacks
# in bench/attacks.py; the scan's own flow tests and the every-section summary test keep the bundled setting.
WIRING_POISONING = {"slice_purity": False}


def write_adult_config(folder: Path, **overrides: dict) -> Path:
    """configs/adult.yaml with absolute paths and some sections overridden, written to `folder`."""
    raw = yaml.safe_load(ADULT_CONFIG.read_text())
    for split in ("train", "test"):
        raw["dataset"][split]["path"] = str((ADULT_CONFIG.parent / raw["dataset"][split]["path"]).resolve())
    raw["contract"]["suite"] = str((ADULT_CONFIG.parent / raw["contract"]["suite"]).resolve())
    for section, values in overrides.items():
        raw[section] = {**raw.get(section, {}), **values}
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def run_guardflow(*args: str, home: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`python -m guardflow ARGS` in a clean environment: this checkout's code, `home` as $GUARDFLOW_HOME."""
    return subprocess.run(
        [sys.executable, "-m", "guardflow", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
        env={
            "PATH": "/usr/bin:/bin",
            "GUARDFLOW_HOME": str(home),
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
            # The ephemeral Prefect API may take longer than guardflow's 90 s to start on a very busy machine.
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        },
    )
