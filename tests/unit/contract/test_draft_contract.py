"""Drafting a data contract from reference rows: every kind of expectation, loadable, deterministic, public bounds."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from guardflow.cli import main
from guardflow.contract.draft_contract import draft_contract
from guardflow.contract.suite import load_suite
from guardflow.contract.validate_contract import validate_contract
from guardflow.data.table import SOURCE_ROW
from guardflow.errors import ConfigError
from guardflow.io.datasets import read_split
from guardflow.settings import ContractSettings, DatasetSettings, load_settings

ROOT = Path(__file__).resolve().parents[3]
ROWS = 30


@pytest.fixture
def dataset(tmp_path: Path) -> DatasetSettings:
    """A small dataset: an identifier, a numeric and two categorical features, a code and a measure the config does
    not describe, and the label."""
    return DatasetSettings.model_validate_json(
        json.dumps(
            {
                "id": "tiny",
                "train": {"path": str(tmp_path / "train.csv"), "sha256": "0" * 64},
                "test": {"path": str(tmp_path / "test.csv"), "sha256": "0" * 64},
                "columns": ["record", "score", "colour", "size", "branch", "weight", "outcome"],
                "label": {
                    "column": "outcome",
                    "positive": "good",
                    "negative": "bad",
                    "aliases": {"good.": "good"},
                },
                "sensitive": ["colour"],
                "features": {
                    "score": {"type": "numeric", "min": 0.0, "max": 100.0},
                    "colour": {"type": "categorical", "categories": ["red", "green", "blue"]},
                    "size": {"type": "categorical", "categories": ["S", "M", "L"]},
                },
            }
        )
    )


@pytest.fixture
def rows() -> pd.DataFrame:
    """Text rows as the reader gives them: one score above its public bound, some missing sizes."""
    frame = pd.DataFrame(
        {
            "record": [f"r{index:03d}" for index in range(ROWS)],
            "score": [str(10 + index) for index in range(ROWS - 1)] + ["140"],
            "colour": (["red", "green", "blue"] * ROWS)[:ROWS],
            "size": [None, "S", "M", "L", "M", "S"] * (ROWS // 6),
            "branch": (["north", "south"] * ROWS)[:ROWS],
            "weight": [str(50 + index) for index in range(ROWS - 1)] + ["50"],
            "outcome": (["good", "bad", "good."] * ROWS)[:ROWS],
        }
    )
    frame.index = pd.RangeIndex(ROWS, name=SOURCE_ROW)
    return frame


def _by_kind(suite: dict) -> dict[tuple[str, str | None], dict]:
    return {(entry["type"], entry["kwargs"].get("column")): entry for entry in suite["expectations"]}


def test_draft_has_every_kind_of_expectation(dataset: DatasetSettings, rows: pd.DataFrame) -> None:
    # given reference rows with an identifier, a numeric feature, categorical features, an undescribed code
    # when a contract is drafted
    drafted = draft_contract(rows, dataset, "tiny")
    found = _by_kind(drafted.suite)
    # then it holds the column order, row-count bounds, null rules, a range, sets, uniqueness and the label set
    columns = found[("expect_table_columns_to_match_ordered_list", None)]
    assert columns["kwargs"]["column_list"] == list(rows.columns), "column set and order of the reference"
    count = found[("expect_table_row_count_to_be_between", None)]["kwargs"]
    assert (count["min_value"], count["max_value"]) == (1, 10_000), (
        "1 .. next power of ten above 100 x 30 rows"
    )
    score = found[("expect_column_values_to_be_between", "score")]
    assert (score["kwargs"]["min_value"], score["kwargs"]["max_value"]) == (0.0, 100.0), (
        "the range is the config's public bounds, not the observed 10 .. 140"
    )
    assert score["meta"]["column_type"] == "numeric", "the column's type is recorded"
    assert found[("expect_column_values_to_be_in_set", "colour")]["kwargs"]["value_set"] == [
        "red",
        "green",
        "blue",
    ]
    assert ("expect_column_values_to_be_unique", "record") in found, (
        "an all-distinct undescribed column is an id"
    )
    branch = found[("expect_column_values_to_be_in_set", "branch")]
    assert branch["kwargs"]["value_set"] == ["north", "south"], "an undescribed code gets its observed set"
    assert "observed" in branch["meta"]["basis"], "an observed set says so"
    label = found[("expect_column_values_to_be_in_set", "outcome")]
    assert label["kwargs"]["value_set"] == ["good", "bad"] and label["meta"]["on_failure"] == "stop", (
        "the label set stops the batch"
    )
    assert found[("expect_column_values_to_not_be_null", "score")]["meta"]["on_failure"] == "quarantine", (
        "a column without nulls in the reference quarantines a null"
    )
    size_nulls = found[("expect_column_values_to_not_be_null", "size")]
    assert size_nulls["kwargs"]["mostly"] == 0.65 and size_nulls["meta"]["on_failure"] == "stop", (
        "1 in 6 sizes missing: tolerate twice that, rounded down to 0.05, before stopping the batch"
    )
    assert all(
        entry["meta"]["on_failure"] in ("quarantine", "stop") for entry in drafted.suite["expectations"]
    ), "every expectation says what its failure means"


def test_draft_notes_what_the_reviewer_must_check(dataset: DatasetSettings, rows: pd.DataFrame) -> None:
    # given reference rows where one score breaks its public bound, sizes are missing, two columns are undescribed
    # when a contract is drafted
    drafted = draft_contract(rows, dataset, "tiny")
    # then the notes name the out-of-bounds rows, the null tolerance and the data-derived set, also in the meta
    text = "\n".join(drafted.notes)
    assert "score: 1 reference rows fall outside the public bounds [0, 100]" in text, text
    assert "size: 16.7% of the reference rows are null" in text, text
    assert "branch: not described by the config" in text, text
    assert "weight: not described by the config; numbers from 50 to 78 in the reference" in text, (
        f"an undescribed numeric column's observed range goes to the reviewer: {text}"
    )
    meta = drafted.suite["meta"]["guardflow"]
    assert meta["reviewer_notes"] == list(drafted.notes), "the notes travel with the suite"
    assert meta["drafted_by"] == "guardflow contract draft" and meta["reviewed"] is False, "a draft says so"


def test_draft_loads_and_validates_its_reference(
    dataset: DatasetSettings, rows: pd.DataFrame, tmp_path: Path
) -> None:
    # given a drafted suite written to disk
    path = tmp_path / "tiny.json"
    path.write_text(draft_contract(rows, dataset, "tiny").to_json(), encoding="utf-8")
    # when the contract loader reads it and it validates the reference rows
    suite = load_suite(path)
    result = validate_contract(rows, dataset, ContractSettings(suite=path, max_quarantined_share=0.1))
    # then GX accepts it, and only the row outside the public bound is quarantined
    assert suite.name == "tiny" and len(suite.expectations) == 15, (
        f"got {len(suite.expectations)} expectations"
    )
    assert list(result.quarantined.index) == [ROWS - 1], "only the score of 140 breaks the contract"
    assert result.quarantined["reasons"].iloc[0] == ["score: expect_column_values_to_be_between"], (
        "with its reason"
    )


def test_draft_is_deterministic(dataset: DatasetSettings, rows: pd.DataFrame) -> None:
    # given the same rows twice, once in shuffled order
    shuffled = rows.sample(frac=1.0, random_state=1)
    # when both are drafted
    first = draft_contract(rows, dataset, "tiny").to_json()
    second = draft_contract(rows, dataset, "tiny").to_json()
    third = draft_contract(shuffled, dataset, "tiny").to_json()
    # then the bytes are identical, with sorted keys
    assert first == second == third, "a draft must not depend on run or row order"
    assert first == json.dumps(json.loads(first), indent=2, sort_keys=True, ensure_ascii=False) + "\n", (
        "keys are sorted"
    )


def test_columns_differing_from_the_config_are_refused(dataset: DatasetSettings, rows: pd.DataFrame) -> None:
    # given rows missing a configured column and carrying an extra one
    renamed = rows.rename(columns={"branch": "office"})
    # when / then the draft refuses them with one line naming both
    with pytest.raises(ConfigError, match=r"missing \['branch'\]; unexpected \['office'\]"):
        draft_contract(renamed, dataset, "tiny")


def test_drafting_adult_reproduces_the_reviewed_suite_but_for_its_documented_edit(tmp_path: Path) -> None:
    # given the Adult config and its reviewed suite
    reviewed = json.loads((ROOT / "expectations" / "adult.json").read_text(encoding="utf-8"))
    out = tmp_path / "adult.json"
    # when adult.data is drafted through the CLI
    code = main(["contract", "draft", "--config", str(ROOT / "configs" / "adult.yaml"), "--out", str(out)])
    drafted = json.loads(out.read_text(encoding="utf-8"))
    # then every expectation matches the reviewed one except the edit the review records
    assert code == 0, "the draft command succeeds"
    assert drafted["name"] == reviewed["name"] == "adult", "the suite is named after its file"

    def semantics(entry: dict) -> tuple:
        return entry["type"], json.dumps(entry["kwargs"], sort_keys=True), entry["meta"]["on_failure"]

    differing = [
        (semantics(old), semantics(new))
        for old, new in zip(reviewed["expectations"], drafted["expectations"], strict=True)
        if semantics(old) != semantics(new)
    ]
    assert [new[1] for _, new in differing] == ['{"column": "native-country", "mostly": 0.95}'], differing
    edits = reviewed["meta"]["guardflow"]["review"]["edits"]
    assert len(edits) == 1 and edits[0].startswith("native-country"), (
        "the reviewed suite records its one edit"
    )


def test_draft_command_will_not_overwrite_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given an existing suite file
    out = tmp_path / "fair.json"
    out.write_text("reviewed", encoding="utf-8")
    # when a draft would overwrite it without --force
    code = main(["contract", "draft", "--config", str(ROOT / "configs" / "fair.yaml"), "--out", str(out)])
    # then it is refused with one line and exit 2, and the file is untouched
    error = capsys.readouterr().err.strip()
    assert code == 2 and len(error.splitlines()) == 1 and "--force" in error, error
    assert out.read_text(encoding="utf-8") == "reviewed", "the existing suite must be left alone"


def test_drafted_fair_suite_matches_the_bundled_one(tmp_path: Path) -> None:
    # given the Fair config and its reviewed suite
    settings = load_settings(ROOT / "configs" / "fair.yaml")
    reviewed = json.loads(settings.contract.suite.read_text(encoding="utf-8"))
    out = tmp_path / "fair.json"
    # when fair.data is drafted through the CLI
    code = main(["contract", "draft", "--config", str(ROOT / "configs" / "fair.yaml"), "--out", str(out)])
    drafted = json.loads(out.read_text(encoding="utf-8"))
    # then the review kept every drafted expectation
    assert code == 0, "the draft command succeeds"
    assert drafted["expectations"] == reviewed["expectations"], (
        "the reviewed Fair suite is the draft, unedited"
    )
    assert reviewed["meta"]["guardflow"]["reviewed"] is True, "the bundled suite is marked reviewed"


@pytest.mark.parametrize("split", ["train", "test"])
def test_bundled_fair_data_meets_its_reviewed_suite(split: str) -> None:
    # given the bundled Fair file (its sha256 checked) and the suite drafted from the training file
    settings = load_settings(ROOT / "configs" / "fair.yaml")
    rows = read_split(settings.dataset, split).rows
    # when the contract runs
    result = validate_contract(rows, settings.dataset, settings.contract)
    # then no stop expectation fails and no row is set aside
    failed = [(outcome.expectation, outcome.column) for outcome in result.outcomes if not outcome.success]
    assert failed == [], f"every expectation should pass on fair {split}: {failed}"
    assert (result.rows_in, result.rows_quarantined) == (len(rows), 0), "every row accepted"


def test_draft_of_a_missing_data_file_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a data path that does not exist
    config, out = ROOT / "configs" / "fair.yaml", tmp_path / "draft.json"
    # when a draft is asked of it
    code = main(
        [
            "contract",
            "draft",
            "--config",
            str(config),
            "--data",
            str(tmp_path / "nope.csv"),
            "--out",
            str(out),
        ]
    )
    # then one line names the file, exit 2, and nothing is written
    error = capsys.readouterr().err.strip()
    assert code == 2 and error.splitlines() == [error] and "nope.csv" in error, error
    assert not out.exists(), "no suite is written for bad input"
