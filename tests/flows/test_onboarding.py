"""Bring your own data: a generated file about people goes from CSV to a registered model with `guardflow init`,
`guardflow contract draft` and `guardflow train` only (plus the lines a reviewer changes), and none of the
personal values planted in it is in any file written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from guardflow.cli import main
from guardflow.settings import guardflow_home, load_settings
from tests.flows.test_guard_pii import _written_files
from tests.pii_data import _SHAPES, CASE_PREFIX, EMAIL_DOMAIN, SURNAMES, _readable_text, people_dataset

PERSONAL = ("name", "first", "last", "dob", "email")


def _leaks(path: Path, dates: set[str]) -> list[str]:
    """Planted values in a file: invented surnames in any case, case numbers, emails, dates of birth."""
    text = _readable_text(path)
    folded = text.lower()
    found = [marker for marker in (*SURNAMES, CASE_PREFIX, EMAIL_DOMAIN) if marker.lower() in folded]
    return found + sorted(set(_SHAPES.findall(text)) & dates)


def _review(config: Path) -> None:
    """What a reviewer does: public bounds for the numbers, a decision per personal column, reviewed: true."""
    text = config.read_text()
    text = re.sub(
        r'"age": \{type: numeric, min: \d+, max: \d+\}', '"age": {type: numeric, min: 16, max: 100}', text
    )
    text = re.sub(
        r'"hours": \{type: numeric, min: \d+, max: \d+\}', '"hours": {type: numeric, min: 0, max: 99}', text
    )
    for column in PERSONAL:
        policy = "hash" if column == "email" else "drop"
        text = text.replace(f'"{column}": block', f'"{column}": {policy}')
    config.write_text(text.replace("reviewed: false", "reviewed: true"))


def test_a_new_dataset_goes_from_csv_to_a_registered_model_with_init_draft_and_train(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a CSV about people: id, full name, lower-case first and last names, birth date, case number, email
    data = tmp_path / "data"
    data.mkdir()
    train, test = people_dataset(6_000, seed=1), people_dataset(2_000, seed=2)
    train.to_csv(data / "people.csv", index=False)
    test.to_csv(data / "people-test.csv", index=False)
    dates = set(train["dob"]) | set(test["dob"])
    assert _leaks(data / "people.csv", dates), "the scanner finds the planted values in the input"
    config = tmp_path / "configs" / "people.yaml"
    suite = tmp_path / "configs" / "people.contract.json"
    files = ["--data", str(data / "people.csv"), "--test", str(data / "people-test.csv")]

    # when init drafts a config, then train refuses it until it is reviewed
    assert main(["init", *files, "--label", "outcome", "--sensitive", "group", "--out", str(config)]) == 0
    drafted = load_settings(config)
    assert set(drafted.pii.columns) == set(PERSONAL), (
        f"init blocks every personal column: {drafted.pii.columns}"
    )
    assert set(drafted.dataset.features) == {"age", "hours", "sector", "region", "group"}, "the features"
    capsys.readouterr()
    assert main(["train", "--config", str(config)]) == 2, "an unreviewed config is refused (exit 2)"
    refusal = capsys.readouterr().err.strip().splitlines()
    assert len(refusal) == 1 and "reviewed: true" in refusal[0], f"one line saying what to do: {refusal}"

    # and, once reviewed, contract draft writes the suite of the declared columns and train registers a model
    _review(config)
    assert main(["contract", "draft", "--config", str(config), "--out", str(suite)]) == 0, "drafted"
    columns = json.loads(suite.read_text())["expectations"][0]["kwargs"]["column_list"]
    assert columns == ["email", "age", "hours", "sector", "region", "group", "outcome"], f"suite {columns}"
    run_dir = tmp_path / "run"
    code = main(["train", "--config", str(config), "--run-dir", str(run_dir)])
    summary = json.loads((run_dir / "summary.json").read_text())
    assert code in (0, 3) and summary["model"]["version"], f"a registered version, got exit {code}: {summary}"
    assert summary["columns"]["undeclared_dropped"] == ["id", "case_number"], summary["columns"]

    # then no planted value is in any file written: configs, suite, run folder, home (MLflow, lineage), Prefect
    written = _written_files(tmp_path / "configs", run_dir, guardflow_home())
    assert len(written) > 20, f"scanned {len(written)} files"
    leaks = [(str(path), leak) for path in written for leak in _leaks(path, dates)]
    assert leaks == [], f"planted personal data in written files: {leaks[:5]}"
