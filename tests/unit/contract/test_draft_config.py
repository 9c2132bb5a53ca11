"""`guardflow init`'s draft: types, bounds and lists from the data marked data-derived, personal columns blocked,
identifiers undeclared, the config unreviewed (and `train` refuses it with one line)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from guardflow.contract.draft_config import DataFile, dataset_id, draft_config
from guardflow.errors import ConfigError
from guardflow.settings import load_settings, require_reviewed

SHA = "0" * 64


def _rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [str(100 + n) for n in range(40)],
            "name": [f"Person {n}" for n in range(40)],
            "age": [str(20 + n % 30) for n in range(40)],
            "sector": ["retail", "health"] * 20,
            "note": [f"free text number {n}" for n in range(40)],
            "outcome": ["yes"] * 10 + ["no"] * 30,
        }
    )


def _draft(tmp_path: Path, **changes: object):
    arguments: dict = {
        "dataset": "people",
        "label": "outcome",
        "sensitive": ["sector"],
        "files": {"train": DataFile("train.csv", SHA), "test": DataFile("test.csv", SHA)},
        "suite": "people.contract.json",
        "personal": {"name": ("person_name",)},
    }
    return draft_config(_rows(), **(arguments | changes))


def test_the_draft_is_a_valid_unreviewed_config_with_data_derived_bounds(tmp_path: Path) -> None:
    # given a file with an id, a name, a number, a category, free text and a label / when drafted
    drafted = _draft(tmp_path)
    path = tmp_path / "people.yaml"
    path.write_text(drafted.text)
    settings = load_settings(path)
    # then it loads with defaults for every optional section, unreviewed
    assert settings.dataset.reviewed is False, "a drafted config is unreviewed"
    assert settings.registry.model_name == "guardflow-people", "the registry defaults to the dataset id"
    assert settings.privacy.target_epsilon == 1.0 and settings.gate.max_mia_auc == 0.6, "documented defaults"
    # and age is numeric with the observed bounds, sector categorical; id and note are not features
    features = settings.dataset.features
    assert set(features) == {"age", "sector"}, f"features {set(features)}"
    assert (features["age"].min, features["age"].max) == (20, 49), "observed bounds (data-derived)"
    assert drafted.undeclared == ("id", "note"), f"undeclared {drafted.undeclared}"
    # and every drafted bound or list says it is data-derived
    feature_lines = [line for line in drafted.text.splitlines() if "{type:" in line]
    assert feature_lines and all("data-derived" in line for line in feature_lines), feature_lines
    # and the personal column is blocked until a person decides, the label's rarer class is positive
    assert settings.pii.columns == {"name": "block"}, f"pii {settings.pii.columns}"
    assert (settings.dataset.label.positive, settings.dataset.label.negative) == ("yes", "no"), "classes"
    assert yaml.safe_load(drafted.text)["dataset"]["columns"] == list(_rows().columns), "every column listed"


def test_train_refuses_an_unreviewed_config_with_one_line_saying_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "people.yaml"
    path.write_text(_draft(tmp_path).text)
    with pytest.raises(ConfigError) as raised:
        require_reviewed(load_settings(path), path)
    message = str(raised.value)
    assert "\n" not in message and "public" in message and "reviewed: true" in message, message


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"label": "missing"}, "not a column"),
        ({"label": "sector", "sensitive": []}, None),
        ({"label": "age"}, "exactly two"),
        ({"sensitive": ["name"]}, "cannot be a feature"),
    ],
)
def test_a_label_or_sensitive_column_that_cannot_be_one_is_one_clear_error(
    tmp_path: Path, changes: dict, needle: str | None
) -> None:
    if needle is None:  # a two-valued column can be the label
        assert "label" in _draft(tmp_path, **changes).text, "sector can be a label"
        return
    with pytest.raises(ConfigError, match=needle):
        _draft(tmp_path, **changes)


def test_dataset_ids_are_made_safe() -> None:
    assert dataset_id("My People (2024)") == "my-people-2024", dataset_id("My People (2024)")
    assert dataset_id("_x") == "x", dataset_id("_x")
