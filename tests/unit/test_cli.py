"""The command line: bad input ends with one line on stderr and exit 2, before any server starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from guardflow.cli import main
from tests.conftest import ROOT, write_adult_config

INVALID = ROOT / "tests" / "configs" / "invalid"


def _guardflow(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "guardflow", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "GUARDFLOW_HOME": str(home)},
    )


@pytest.mark.parametrize("name", ["unknown_key", "missing_key", "wrong_type"])
def test_bad_config_is_one_line_and_exit_2(name: str, tmp_path: Path) -> None:
    # given a config with an unknown key, a missing key or a wrong type / when train runs in a fresh process
    result = _guardflow("train", "--config", str(INVALID / f"{name}.yaml"), home=tmp_path)
    # then one line names the problem, the exit code is 2, and nothing else happened
    assert result.returncode == 2, f"exit code must be 2, got {result.returncode}: {result.stderr}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("guardflow: config"), f"one line on stderr, got {lines}"
    assert "Traceback" not in result.stderr + result.stdout, "no traceback for bad input"
    assert not (tmp_path / "mlflow").exists(), "nothing may be registered for a bad config"


def test_missing_data_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    config = write_adult_config(tmp_path)
    result = _guardflow("train", "--config", str(config), "--data", str(tmp_path / "nope.csv"), home=tmp_path)
    assert result.returncode == 2, f"exit code must be 2, got {result.returncode}"
    assert result.stderr.strip() == f"guardflow: data file not found: {tmp_path / 'nope.csv'}", result.stderr


def test_config_schema_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config-schema"]) == 0, "config-schema exits 0"
    assert '"privacy"' in capsys.readouterr().out, "the schema describes the privacy section"


def test_unknown_command_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as caught:
        main(["fly"])
    assert caught.value.code == 2, "argparse usage errors exit 2"
