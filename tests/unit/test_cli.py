"""The command line: bad input ends with one line on stderr and exit 2, before any server starts."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from guardflow.cli import main
from guardflow.io.records import append_record
from tests.conftest import ROOT, run_guardflow, write_adult_config
from tests.malformed_corpus import KINDS, write_kind

INVALID = ROOT / "tests" / "configs" / "invalid"


@pytest.mark.parametrize("name", ["unknown_key", "missing_key", "wrong_type"])
def test_bad_config_is_one_line_and_exit_2(name: str, tmp_path: Path) -> None:
    # given a config with an unknown key, a missing key or a wrong type / when train runs in a fresh process
    result = run_guardflow("train", "--config", str(INVALID / f"{name}.yaml"), home=tmp_path)
    # then one line names the problem, the exit code is 2, and nothing else happened
    assert result.returncode == 2, f"exit code must be 2, got {result.returncode}: {result.stderr}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("guardflow: config"), f"one line on stderr, got {lines}"
    assert "Traceback" not in result.stderr + result.stdout, "no traceback for bad input"
    assert not (tmp_path / "mlflow").exists(), "nothing may be registered for a bad config"


def test_missing_data_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    config = write_adult_config(tmp_path)
    result = run_guardflow(
        "train", "--config", str(config), "--data", str(tmp_path / "nope.csv"), home=tmp_path
    )
    assert result.returncode == 2, f"exit code must be 2, got {result.returncode}"
    assert result.stderr.strip() == f"guardflow: data file not found: {tmp_path / 'nope.csv'}", result.stderr


def test_config_schema_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config-schema"]) == 0, "config-schema exits 0"
    assert '"privacy"' in capsys.readouterr().out, "the schema describes the privacy section"


def test_unknown_command_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as caught:
        main(["fly"])
    assert caught.value.code == 2, "argparse usage errors exit 2"


def test_lineage_show_traces_a_model_version_to_its_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given the event log of a real run (tests/data/lineage) as this home's log
    log = tmp_path / "lineage" / "events.jsonl"
    log.parent.mkdir(parents=True)
    log.write_text((ROOT / "tests" / "data" / "lineage" / "sample_events.jsonl").read_text())
    monkeypatch.setenv("GUARDFLOW_HOME", str(tmp_path))
    page = tmp_path / "lineage.html"
    # when the lineage of model version 1 is shown
    result = subprocess.run(
        [sys.executable, "-m", "guardflow", "lineage", "show", "--config", str(ROOT / "configs" / "adult.yaml"),
         "--model-version", "1", "--html", str(page)],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
        env={"PATH": "/usr/bin:/bin", "GUARDFLOW_HOME": str(tmp_path)},
    )  # fmt: skip
    # then it reaches the training file's sha256 and the contract run, in the terminal and on the page
    assert result.returncode == 0, result.stderr
    assert "5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d" in result.stdout, (
        "the data sha256"
    )
    assert "validate_contract" in result.stdout, "the contract run"
    assert "<svg" in page.read_text(), "the page has a picture"


def test_lineage_show_of_an_unknown_version_is_one_line_and_exit_2(tmp_path: Path) -> None:
    log = tmp_path / "lineage" / "events.jsonl"
    log.parent.mkdir(parents=True)
    log.write_text((ROOT / "tests" / "data" / "lineage" / "sample_events.jsonl").read_text())
    result = run_guardflow(
        "lineage",
        "show",
        "--config",
        str(ROOT / "configs" / "adult.yaml"),
        "--model-version",
        "99",
        home=tmp_path,
    )
    assert result.returncode == 2, f"unknown version must exit 2, got {result.returncode}"
    assert len(result.stderr.strip().splitlines()) == 1, f"one line, got {result.stderr!r}"


def test_deploy_without_a_server_is_one_line_and_exit_2(tmp_path: Path) -> None:
    # given a valid config and no Prefect server configured (no PREFECT_API_URL)
    config = write_adult_config(tmp_path)
    env = {
        "PATH": "/usr/bin:/bin",
        "GUARDFLOW_HOME": str(tmp_path),
        "PREFECT_HOME": str(tmp_path / "prefect"),
    }
    env |= {"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {}
    # when deploy runs
    result = subprocess.run(
        [sys.executable, "-m", "guardflow", "deploy", "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env=env,
    )
    # then it says, in one line, that a server is needed, and registers nothing
    assert result.returncode == 2, f"exit code must be 2, got {result.returncode}: {result.stderr}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "PREFECT_API_URL" in lines[0], f"one line naming PREFECT_API_URL, got {lines}"


def test_scan_of_a_missing_data_file_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a config and a data path that does not exist / when scan runs
    config = write_adult_config(tmp_path)
    code = main(["scan", "--config", str(config), "--data", str(tmp_path / "nope.csv")])
    # then one line names the file and the exit code is 2, before any flow starts
    errors = capsys.readouterr().err.strip().splitlines()
    assert code == 2, f"exit code must be 2, got {code}"
    assert errors == [f"guardflow: data file not found: {tmp_path / 'nope.csv'}"], f"one line, got {errors}"


def test_scan_with_a_bad_config_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["scan", "--config", str(INVALID / "unknown_key.yaml")])
    errors = capsys.readouterr().err.strip().splitlines()
    assert code == 2, f"exit code must be 2, got {code}"
    assert len(errors) == 1 and errors[0].startswith("guardflow: config"), f"one line on stderr, got {errors}"


@pytest.fixture(scope="module")
def cli_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One $GUARDFLOW_HOME for the CLI runs of this module: Prefect creates its database once (~11 s), not per run."""
    return tmp_path_factory.mktemp("cli-home")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["wrong_delimiter", "unseen_label"])
def test_train_on_a_bad_file_is_one_line_and_exit_2(
    name: str, base_lines: list[bytes], tmp_path: Path, cli_home: Path
) -> None:
    # given a file that fails in load (wrong delimiter) or in the contract (unseen label)
    kind = next(kind for kind in KINDS if kind.name == name)
    path = write_kind(kind, base_lines, tmp_path)
    config = write_adult_config(tmp_path)
    # when guardflow train runs on it
    result = run_guardflow(
        "train", "--config", str(config), "--data", str(path), home=cli_home, timeout=600
    )
    # then one line on stderr names the file, the line and the problem; exit 2; no traceback
    assert result.returncode == 2, f"exit code must be 2, got {result.returncode}: {result.stderr[-2000:]}"
    lines = [line for line in result.stderr.splitlines() if line.startswith("guardflow: ")]
    assert len(lines) == 1 and str(path) in lines[0], f"one line naming the file, got {result.stderr[-2000:]}"
    assert kind.error is not None and re.search(kind.error[1], lines[0]), f"the problem is named: {lines[0]}"
    assert "Traceback" not in result.stderr + result.stdout, "no traceback for bad input"


@pytest.mark.parametrize(
    ("command", "setting"),
    [
        (["serve", "--host", "0.0.0.0"], "PREFECT_SERVER_API_AUTH_STRING"),
        (["ui", "--host", "0.0.0.0"], "MLFLOW_AUTH"),
    ],
)
def test_server_beyond_loopback_without_auth_is_one_line_and_exit_2(
    command: list[str], setting: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # given no authentication configured
    for name in ("PREFECT_SERVER_API_AUTH_STRING", "MLFLOW_AUTH_CONFIG_PATH"):
        monkeypatch.delenv(name, raising=False)
    # when a server is asked to listen on every interface
    code = main(command)
    # then it is refused before anything starts: one line naming the setting, exit 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2, f"exit code must be 2, got {code}"
    assert len(lines) == 1 and setting in lines[0], f"one line naming {setting}, got {lines}"


def test_train_on_a_tracking_server_without_shared_ledger_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # given MLflow reached over HTTP and no shared ledger database named
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example.org:5000")
    monkeypatch.delenv("GUARDFLOW_LEDGER_URL", raising=False)
    # when a training is asked for
    code = main(["train", "--config", str(write_adult_config(tmp_path))])
    # then it is refused at once, in one line naming the setting, rather than keeping a per-machine ledger
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2, f"exit code must be 2, got {code}"
    assert len(lines) == 1 and "GUARDFLOW_LEDGER_URL" in lines[0], f"one line naming the ledger, got {lines}"


# What a command that only reads records must not import: each costs seconds (Prefect also starts a server).
HEAVY_MODULES = (
    "prefect",
    "mlflow",
    "torch",
    "opacus",
    "great_expectations",
    "evidently",
    "sklearn",
    "pandas",
)
READ_ONLY_COMMANDS = {
    "budget": (["budget", "--verbose"], "train    eps 1.000"),
    "history": (["history"], "champion history of guardflow-adult: 1 moves"),
    "lineage show": (["lineage", "show"], "validate_contract"),
}


@pytest.fixture(scope="module")
def recorded_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with real records: a ledger charge, a champion move in the MLflow store, a lineage event log."""
    from guardflow.io import registry
    from guardflow.io.history import HISTORY_EXPERIMENT, HISTORY_PREFIX
    from guardflow.io.ledger import open_ledger
    from guardflow.settings import load_settings

    home = tmp_path_factory.mktemp("recorded-home")
    settings = load_settings(ROOT / "configs" / "adult.yaml")
    registry.track_dataset(home, settings.dataset.id)
    ledger = open_ledger(home)
    ledger.reserve(
        settings.dataset.id, [settings.dataset.train.sha256], 1.0, 1e-5, 10.0, "train", str(home / "run")
    )
    fields = {"model": settings.registry.model_name, "action": "gate", "version": "1", "previous": ""}
    append_record(HISTORY_EXPERIMENT, HISTORY_PREFIX, "gate-v1", {**fields, "reason": "passed", "by": "test"})
    log = home / "lineage" / "events.jsonl"
    log.parent.mkdir(parents=True)
    log.write_text((ROOT / "tests" / "data" / "lineage" / "sample_events.jsonl").read_text())
    return home


@pytest.mark.parametrize("command", sorted(READ_ONLY_COMMANDS))
def test_read_only_commands_import_no_heavy_library(command: str, recorded_home: Path) -> None:
    # given a home with records / when a command that only reads them runs in a fresh interpreter
    arguments, expected = READ_ONLY_COMMANDS[command]
    probe = (
        "import json, sys\n"
        "from guardflow.cli import main\n"
        "code = main(sys.argv[1:])\n"
        f"print(json.dumps([code, sorted(name for name in {HEAVY_MODULES!r} if name in sys.modules)]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, *arguments, "--config", str(ROOT / "configs" / "adult.yaml")],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
        env={"PATH": "/usr/bin:/bin", "GUARDFLOW_HOME": str(recorded_home),
             "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])},
    )  # fmt: skip
    # then it printed the records and imported none of the heavy libraries
    assert result.returncode == 0, f"{command} must succeed: {result.stderr[-2000:]}"
    *printed, last = result.stdout.strip().splitlines()
    code, imported = json.loads(last)
    assert code == 0, f"{command} must exit 0, got {code}: {result.stderr[-2000:]}"
    assert expected in "\n".join(printed), f"{command} must print its records, got {printed}"
    assert imported == [], f"{command} imported {imported}: seconds a read-only command must not spend"


def test_recover_repairs_a_dead_run_of_the_home_and_says_so(tmp_path: Path) -> None:
    # given a home where a run's process died mid-stage (no Prefect flow run to mark)
    from guardflow.io import run_marker
    from tests.unit.io.test_run_marker import dead_pid, marker_for

    home = tmp_path / "home"
    marker = marker_for(tmp_path / "run", pid=dead_pid(), last_stage="scan_poisoning")
    run_marker.write_marker(home, marker)
    # when `guardflow recover` runs
    result = run_guardflow("recover", home=home)
    # then it repairs that run: one log line, a crashed summary with the last stage
    assert result.returncode == 0, result.stderr
    assert "recovered 1 crashed runs" in result.stdout, result.stdout
    assert f"recovered safety-train run {marker.run_dir}" in result.stderr, result.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert (summary["status"], summary["crash"]["last_stage"]) == ("crashed", "scan_poisoning"), summary[
        "crash"
    ]


def test_the_entry_point_exits_with_its_code_after_exit_handlers_threads_and_buffers(tmp_path: Path) -> None:
    # given a process with an exit handler, a non-daemon thread still writing, and output still in its buffer,
    # whose command fails on a missing config (the entry point skips the interpreter's module teardown)
    probe = (
        "import atexit, sys, threading, time\n"
        "from pathlib import Path\n"
        "from guardflow import cli\n"
        "out = Path(sys.argv[1])\n"
        "atexit.register(lambda: (out / 'handler').write_text('ran'))\n"
        "threading.Thread(target=lambda: (time.sleep(0.5), (out / 'thread').write_text('done'))).start()\n"
        "print('still buffered', end='')\n"
        "sys.argv = ['guardflow', 'scan', '--config', str(out / 'missing.yaml')]\n"
        "cli.entrypoint()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True, cwd=ROOT, timeout=120,
        env={"PATH": "/usr/bin:/bin", "GUARDFLOW_HOME": str(tmp_path / "home"),
             "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])},
    )  # fmt: skip
    # then the exit code is the command's, and nothing the interpreter's own exit would have done was skipped
    assert result.returncode == 2, f"the command's exit code, got {result.returncode}: {result.stderr}"
    assert result.stdout == "still buffered", f"buffered output is flushed, got {result.stdout!r}"
    assert (tmp_path / "handler").read_text() == "ran", "exit handlers run"
    assert (tmp_path / "thread").read_text() == "done", "non-daemon threads are joined first"
