"""The data contract: rows that break row-level expectations are quarantined, broken batches stop."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from guardflow.contract.suite import load_suite
from guardflow.contract.validate_contract import validate_contract
from guardflow.data.table import REASONS, SOURCE_ROW
from guardflow.errors import ConfigError, ContractError
from guardflow.io.datasets import read_split
from guardflow.settings import ContractSettings, Settings, load_settings

CONFIG = Path(__file__).resolve().parents[3] / "configs" / "adult.yaml"
SLICE = 500


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(CONFIG)


@pytest.fixture(scope="module")
def train_rows(settings: Settings) -> pd.DataFrame:
    return read_split(settings.dataset, "train").rows


@pytest.fixture
def train_slice(train_rows: pd.DataFrame) -> pd.DataFrame:
    """A fresh, editable copy of the first rows of adult.data, as text."""
    return train_rows.head(SLICE).copy()


def _suite_without(settings: Settings, tmp_path: Path, expectation: str, column: str) -> ContractSettings:
    """The adult contract with one expectation removed: a suite that 'forgot' a check."""
    raw = json.loads(settings.contract.suite.read_text(encoding="utf-8"))
    raw["expectations"] = [
        entry
        for entry in raw["expectations"]
        if not (entry["type"] == expectation and entry["kwargs"].get("column") == column)
    ]
    path = tmp_path / "forgetful.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    return settings.contract.model_copy(update={"suite": path})


@pytest.mark.slow
def test_full_adult_data_passes_with_every_row_accounted_for(
    settings: Settings, train_rows: pd.DataFrame
) -> None:
    # given all 32,561 rows of adult.data
    # when the contract runs
    result = validate_contract(train_rows, settings.dataset, settings.contract)
    # then every row is either accepted or quarantined, and the quarantine is small
    assert result.rows_in == len(train_rows), "rows_in should count every input row"
    assert result.rows_in == result.rows_accepted + result.rows_quarantined, "no row may be lost or doubled"
    assert len(result.accepted) == result.rows_accepted, "accepted frame should match its count"
    assert len(result.quarantined) == result.rows_quarantined, "quarantined frame should match its count"
    assert result.rows_quarantined / result.rows_in <= settings.contract.max_quarantined_share, (
        f"adult.data should quarantine at most the allowed share, got {result.rows_quarantined} rows"
    )
    assert result.accepted.index.name == SOURCE_ROW, "accepted rows should keep source_row as index"
    assert result.accepted["age"].dtype == "float64", "accepted rows should be typed"
    assert len(result.outcomes) == len(load_suite(settings.contract.suite).expectations), (
        "there should be one outcome per expectation"
    )
    missing = {
        outcome.column: outcome.unexpected_count
        for outcome in result.outcomes
        if outcome.on_failure == "stop" and outcome.unexpected_count
    }
    assert set(missing) == {"workclass", "occupation", "native-country"}, (
        f"only the three columns with '?' should hold nulls, got {missing}"
    )


def test_test_split_passes_with_label_aliases_resolved(settings: Settings) -> None:
    # given the first rows of adult.test, whose labels end with a dot (">50K.")
    rows = read_split(settings.dataset, "test").rows.head(SLICE)
    # when the contract runs
    result = validate_contract(rows, settings.dataset, settings.contract)
    # then the aliases resolve and the label in-set check passes
    assert result.rows_in == SLICE, "every row of the slice should be counted"
    labels = set(result.accepted["income"].unique())
    assert labels <= {">50K", "<=50K"}, f"labels should be resolved to the two classes, got {labels}"


def test_rows_breaking_row_level_expectations_are_quarantined_with_reasons(
    settings: Settings, train_slice: pd.DataFrame
) -> None:
    # given a slice with an out-of-range age, an unknown category, and a row breaking two checks at once
    train_slice.loc[3, "age"] = "150"
    train_slice.loc[7, "workclass"] = "Wizard"
    train_slice.loc[11, "age"] = "5"
    train_slice.loc[11, "sex"] = "Robot"
    train_slice.loc[13, "hours-per-week"] = "forty"
    # when the contract runs
    result = validate_contract(train_slice, settings.dataset, settings.contract)
    # then exactly those rows are quarantined, by source_row, with their original text and every reason
    quarantined = result.quarantined
    assert list(quarantined.index) == [3, 7, 11, 13], f"wrong rows quarantined: {list(quarantined.index)}"
    assert quarantined.index.name == SOURCE_ROW, "quarantined rows should be indexed by source_row"
    reasons = quarantined[REASONS].to_dict()
    assert reasons[3] == ["age: expect_column_values_to_be_between"], "row 3: its age only"
    assert reasons[7] == ["workclass: expect_column_values_to_be_in_set"], "row 7: its unknown workclass only"
    assert reasons[11] == [
        "age: expect_column_values_to_be_between",
        "sex: expect_column_values_to_be_in_set",
    ], "row 11 should carry both of its reasons"
    assert reasons[13] == ["hours-per-week: expect_column_values_to_not_be_null"], (
        "an unparsable number is missing once typed"
    )
    assert quarantined.loc[3, "age"] == "150", "quarantined rows should keep the original text value"
    assert quarantined.loc[13, "hours-per-week"] == "forty", "the unparsable text should be kept as written"
    assert quarantined.loc[7, "workclass"] == "Wizard", "the unknown category should be kept as written"
    assert result.rows_accepted == SLICE - 4, "all other rows should be accepted"
    overlap = result.accepted.index.intersection(quarantined.index)
    assert overlap.empty, f"no row may be both accepted and quarantined, got {list(overlap)}"
    assert result.passed_share == pytest.approx((SLICE - 4) / SLICE), "passed_share should be accepted / in"
    failed = {(o.column, o.expectation) for o in result.outcomes if not o.success}
    assert ("age", "expect_column_values_to_be_between") in failed, "the age outcome should record a failure"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda rows: rows.drop(columns=["education"]), r"missing columns \['education'\]"),
        (
            lambda rows: rows.rename(columns={"sex": "gender"}),
            r"missing columns \['sex'\]; unexpected columns \['gender'\]",
        ),
        (lambda rows: rows.assign(extra="x"), r"unexpected columns \['extra'\]"),
    ],
    ids=["missing", "renamed", "extra"],
)
def test_wrong_columns_stop_the_batch(
    settings: Settings,
    train_slice: pd.DataFrame,
    change: Callable[[pd.DataFrame], pd.DataFrame],
    message: str,
) -> None:
    # given a slice whose columns differ from the contract
    rows = change(train_slice)
    # when / then the contract names the columns
    with pytest.raises(ContractError, match=message):
        validate_contract(rows, settings.dataset, settings.contract)


def test_reordered_columns_stop_the_batch(settings: Settings, train_slice: pd.DataFrame) -> None:
    # given the right columns in the wrong order
    rows = train_slice[list(reversed(train_slice.columns))]
    # when / then the ordered-columns expectation stops the batch
    with pytest.raises(ContractError, match="expect_table_columns_to_match_ordered_list"):
        validate_contract(rows, settings.dataset, settings.contract)


def test_empty_batch_stops(settings: Settings, train_slice: pd.DataFrame) -> None:
    # given a batch with the right columns and no rows
    rows = train_slice.head(0)
    # when / then it is refused, though GX map expectations would pass it vacuously
    with pytest.raises(ContractError, match="empty"):
        validate_contract(rows, settings.dataset, settings.contract)


def test_all_null_column_stops_even_without_a_not_null_expectation(
    settings: Settings, train_slice: pd.DataFrame, tmp_path: Path
) -> None:
    # given a suite that forgot the not-null check for `relationship`, and a batch where it is entirely null
    contract = _suite_without(settings, tmp_path, "expect_column_values_to_not_be_null", "relationship")
    train_slice["relationship"] = np.nan
    # when / then the batch stops and names the column
    with pytest.raises(ContractError, match="'relationship' is entirely null"):
        validate_contract(train_slice, settings.dataset, contract)


def test_all_unparsable_numeric_column_stops(settings: Settings, train_slice: pd.DataFrame) -> None:
    # given a numeric column in which no value parses as a number
    train_slice["fnlwgt"] = "n/a"
    # when / then the batch stops
    with pytest.raises(ContractError, match="'fnlwgt' has no value that parses as a number"):
        validate_contract(train_slice, settings.dataset, settings.contract)


def test_label_outside_its_set_stops(settings: Settings, train_slice: pd.DataFrame) -> None:
    # given two rows whose label is neither class
    train_slice.loc[[4, 9], "income"] = "maybe"
    # when / then the label in-set expectation stops the whole batch, naming the value
    expected = r"income: expect_column_values_to_be_in_set failed: 2 of 500 .*'maybe'"
    with pytest.raises(ContractError, match=expected):
        validate_contract(train_slice, settings.dataset, settings.contract)


def test_too_many_missing_in_a_mostly_column_stops(settings: Settings, train_slice: pd.DataFrame) -> None:
    # given `occupation` missing in a fifth of the rows (the contract tolerates 15%)
    train_slice.loc[train_slice.index[:100], "occupation"] = np.nan
    # when / then the batch-level not-null check stops it
    expected = r"occupation: expect_column_values_to_not_be_null failed: 1\d\d of 500 .*at least 85%"
    with pytest.raises(ContractError, match=expected):
        validate_contract(train_slice, settings.dataset, settings.contract)


def test_quarantine_share_over_the_limit_stops(settings: Settings, train_slice: pd.DataFrame) -> None:
    # given 10% of rows with an impossible age, against a 5% limit
    train_slice.loc[train_slice.index[::10], "age"] = "300"
    # when / then the batch stops with the share and the limit
    expected = r"50 of 500 rows quarantined \(10\.0%\), above the limit of 5\.0%"
    with pytest.raises(ContractError, match=expected):
        validate_contract(train_slice, settings.dataset, settings.contract)


def test_suite_without_on_failure_is_a_config_error(settings: Settings, tmp_path: Path) -> None:
    # given a suite with an expectation that does not say what its failure means
    raw = json.loads(settings.contract.suite.read_text(encoding="utf-8"))
    raw["expectations"][0]["meta"] = {}
    path = tmp_path / "no_meta.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    # when / then loading it fails with one line naming the expectation
    with pytest.raises(
        ConfigError, match=r"expect_table_columns_to_match_ordered_list needs meta\.on_failure"
    ):
        load_suite(path)
