"""The MLflow UI in a real browser: after a finished run, the registered model page shows the champion alias and
the gate tags, and the run's artifacts page shows the model card.

The module trains once on a 6,000-row slice (~40 s), serves the run's store with `mlflow server` on loopback and
drives Debian's headless Chromium through Playwright. Screenshots land in tests/output/e2e/.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from guardflow.io.datasets import read_split, write_table
from tests.conftest import ROOT, WIRING_POISONING, write_adult_config
from tests.flows.conftest import LENIENT_GATE
from tests.net import free_port

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
# Flags this machine needs: no sandbox as root, no GPU, and no background calls into the closed network.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MODEL_NAME = "guardflow-e2e"
SCREENSHOTS = ROOT / "tests" / "output" / "e2e"
VENV_BIN = Path(sys.executable).parent
SERVER_START_TIMEOUT = 120.0
RENDER_TIMEOUT_MS = 60_000


@dataclass(frozen=True)
class ServedStore:
    """A finished run's MLflow store, served by `mlflow server` at `base_url`."""

    base_url: str
    home: Path
    version: str
    run_id: str
    experiment_id: str


@pytest.fixture(scope="module", autouse=True)
def chromium() -> Path:
    """Debian's Chromium; without it the module skips locally and fails under CI (`make test` installs it)."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: install Debian's chromium (`make browser`)"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory: pytest.TempPathFactory, adult_settings) -> Path:
    """A fresh $GUARDFLOW_HOME holding one finished `guardflow train` run on a slice that passes a lenient gate."""
    folder = tmp_path_factory.mktemp("e2e")
    home = folder / "home"
    data = folder / "adult-slice.data.gz"
    write_table(read_split(adult_settings.dataset, "train").rows.head(6_000), data, adult_settings.dataset)
    config = write_adult_config(
        folder, poisoning=WIRING_POISONING, registry={"model_name": MODEL_NAME}, gate=LENIENT_GATE
    )
    # The session's Prefect home belongs to the parent pytest process; the run gets its own.
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    env["GUARDFLOW_HOME"] = str(home)
    completed = subprocess.run(
        [str(VENV_BIN / "guardflow"), "train", "--config", str(config), "--data", str(data)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, (
        f"guardflow train failed ({completed.returncode}):\n{completed.stderr[-3000:]}"
    )
    assert (home / "mlflow" / "mlflow.db").exists(), f"the run left no MLflow store under {home}"
    return home


def _wait_for_health(base_url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"mlflow server exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(f"{base_url}/health", timeout=2).ok:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    pytest.fail(
        f"mlflow server did not answer /health in {SERVER_START_TIMEOUT:.0f} s:\n{log.read_text()[-3000:]}"
    )


def _stop(server: subprocess.Popen[bytes]) -> None:
    """Stop the server and the uvicorn worker it spawned: they share the process group we gave it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.wait(timeout=15)
    # Whatever ignored SIGTERM (or outlived its parent) in the group goes now.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGKILL)
    server.wait(timeout=15)


@pytest.fixture(scope="module")
def served_store(trained_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedStore]:
    """`mlflow server` on loopback over the run's store, stopped at the end whatever happens."""
    store = trained_home / "mlflow"
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("mlflow-server") / "server.log"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no job runner: nothing uses it here
    with log.open("wb") as sink:
        server = subprocess.Popen(
            [
                str(VENV_BIN / "mlflow"),
                "server",
                "--backend-store-uri",
                f"sqlite:///{store / 'mlflow.db'}",
                "--default-artifact-root",
                str(store / "artifacts"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_for_health(base_url, server, log)
        versions = requests.get(
            f"{base_url}/api/2.0/mlflow/model-versions/search",
            params={"filter": f"name='{MODEL_NAME}'"},
            timeout=10,
        ).json()["model_versions"]
        assert len(versions) == 1, f"expected one version of {MODEL_NAME}, the store has {versions}"
        run_id = versions[0]["run_id"]
        run = requests.get(
            f"{base_url}/api/2.0/mlflow/runs/get", params={"run_id": run_id}, timeout=10
        ).json()
        yield ServedStore(
            base_url, trained_home, versions[0]["version"], run_id, run["run"]["info"]["experiment_id"]
        )
    finally:
        _stop(server)


@pytest.fixture(scope="module")
def browser(chromium: Path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # Playwright gives Chromium a new, empty profile of its own.
        launched = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    try:
        yield context.new_page()
    finally:
        context.close()


def _render(page, url: str, wait_for_text: str, screenshot: str) -> str:
    """Open a UI route, wait until the SPA has drawn `wait_for_text`, save a screenshot and return the page text."""
    page.goto(url)
    # The SPA keeps polling, so "network idle" never comes: wait for the content itself.
    shown = page.get_by_text(wait_for_text, exact=True).first
    shown.wait_for(timeout=RENDER_TIMEOUT_MS)
    shown.scroll_into_view_if_needed()  # the UI scrolls inside panels: bring the checked item into the shot
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / screenshot), full_page=True)
    return page.inner_text("body")


def test_registered_model_page_shows_champion_and_gate(served_store: ServedStore, page) -> None:
    # Given a finished run whose version passed the gate
    url = f"{served_store.base_url}/#/models/{MODEL_NAME}"
    # When the registered model's page is open
    text = _render(page, url, "guardflow.gate", "registered_model.png")
    # Then its version list shows the champion alias and the gate verdict
    assert "champion" in text, f"no champion alias on {url}"
    assert re.search(r"guardflow\.gate\W+passed", text), f"no `guardflow.gate: passed` tag on {url}"


def test_model_version_page_shows_alias_and_tags(served_store: ServedStore, page) -> None:
    # Given the champion version
    url = f"{served_store.base_url}/#/models/{MODEL_NAME}/versions/{served_store.version}"
    # When its version page is open
    text = _render(page, url, "guardflow.gate", "model_version.png")
    # Then the alias and the gate tags are on it
    assert "champion" in text, f"no champion alias on {url}"
    assert re.search(r"guardflow\.gate\W+passed", text), f"no `guardflow.gate: passed` tag on {url}"
    assert re.search(r"guardflow\.epsilon\W+\d", text), f"no `guardflow.epsilon` value on {url}"


def test_run_artifacts_page_shows_model_card(served_store: ServedStore, page) -> None:
    # Given the card the run logged, read straight from the artifact store
    cards = list((served_store.home / "mlflow" / "artifacts" / served_store.run_id).rglob("model_card.md"))
    assert len(cards) == 1, f"expected one model_card.md among the run's artifacts, found {cards}"
    title = cards[0].read_text().splitlines()[0].lstrip("# ").strip()
    url = (
        f"{served_store.base_url}/#/experiments/{served_store.experiment_id}"
        f"/runs/{served_store.run_id}/artifacts/model_card.md"
    )
    # When the run's artifacts page is open on the card
    text = _render(page, url, title, "model_card.png")
    # Then the file is listed and its rendered content is shown
    assert "model_card.md" in text, f"model_card.md is not listed on {url}"
    assert title in text, f"the card's first line {title!r} is not shown on {url}"
    assert "Privacy guarantee" in text, f"the card's privacy section is not shown on {url}"
