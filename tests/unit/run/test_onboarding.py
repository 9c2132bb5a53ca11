"""`guardflow contract draft` on a new dataset: the PII policy and minimisation apply before drafting, personal
columns without a policy are warned about and none of their values is drafted, and a file without the columns the
policy drops can be drafted."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from faker import Faker

from guardflow.cli import main
from guardflow.io.datasets import content_sha256
from guardflow.run.onboarding import draft_suite
from guardflow.settings import load_settings

OWNERS = ["Margaret Holloway", "Robert Dunmore", "Linda Farrow", "James Kettering", "Susan Oakley"]


def _write(tmp_path: Path, rows: pd.DataFrame, policies: dict[str, str], columns: list[str]) -> Path:
    data = tmp_path / "data.csv"
    rows.to_csv(data, index=False)
    config = {
        "dataset": {
            "id": "shop",
            "columns": columns,
            "train": {"path": str(data), "sha256": content_sha256(data)},
            "test": {"path": str(data), "sha256": content_sha256(data)},
            "label": {"column": "bought", "positive": "yes", "negative": "no"},
            "features": {
                "age": {"type": "numeric", "min": 0, "max": 120},
                "owner": {"type": "categorical", "categories": OWNERS[:2]},
            },
        },
        "contract": {"suite": str(tmp_path / "suite.json")},
        "pii": {"columns": policies},
    }
    path = tmp_path / "shop.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _rows(count: int = 200) -> pd.DataFrame:
    fake = Faker("en_US")
    fake.seed_instance(3)
    return pd.DataFrame(
        {
            "email": [f"buyer{n}@example.org" for n in range(count)],
            "age": [str(20 + n % 50) for n in range(count)],
            "owner": [fake.name() for _ in range(count)],
            "ticket": [f"T{n:05d}" for n in range(count)],
            "bought": ["yes", "no"] * (count // 2),
        }
    )


def test_draft_applies_the_policy_and_quotes_no_value_of_a_personal_column_without_one(
    tmp_path: Path,
) -> None:
    # given a shop file: an email (policy drop), an owner feature whose values are people's names (no policy
    # can cover a feature), an undeclared ticket column
    rows = _rows()
    config = _write(tmp_path, rows, {"email": "drop"}, list(rows.columns))
    # when the contract is drafted
    outcome = draft_suite(load_settings(config), None, "shop")
    suite = outcome.drafted.to_json()
    # then the owner column is warned about, and no value of it (nor of the dropped email) is in the suite
    assert any("'owner'" in warning and "person_name" in warning for warning in outcome.warnings), (
        outcome.warnings
    )
    assert not any(value in suite for value in rows["owner"]), "no owner value in the drafted suite"
    assert "example.org" not in suite and "T000" not in suite, (
        "dropped and undeclared columns are not drafted"
    )
    columns = json.loads(suite)["expectations"][0]["kwargs"]["column_list"]
    assert columns == ["age", "owner", "bought"], f"the declared columns only: {columns}"
    assert outcome.undeclared == ("ticket",), f"undeclared: {outcome.undeclared}"


def test_a_file_without_the_dropped_columns_can_be_drafted(tmp_path: Path) -> None:
    # given a config whose columns include an email the policy drops, and a file that no longer has it
    rows = _rows().drop(columns=["email"])
    config = _write(tmp_path, rows, {"email": "drop"}, ["email", *rows.columns])
    # when drafted / then it works, and the suite is the same as for the file with the column
    outcome = draft_suite(load_settings(config), None, "shop")
    columns = json.loads(outcome.drafted.to_json())["expectations"][0]["kwargs"]["column_list"]
    assert columns == ["age", "owner", "bought"], f"declared columns: {columns}"


def test_init_with_a_label_that_is_not_binary_is_exit_2_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a file whose chosen label has more than two values
    data = tmp_path / "data.csv"
    _rows().to_csv(data, index=False)
    out = tmp_path / "configs" / "shop.yaml"
    # when init runs / then exit 2, one line naming the problem, and no config written
    code = main(["init", "--data", str(data), "--label", "age", "--out", str(out)])
    errors = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(errors) == 1 and "exactly two" in errors[0], f"exit {code}: {errors}"
    assert not out.exists(), "nothing is written for a config that cannot be drafted"
