"""Unit tests of detect_drift: the Adult test split against the training split, shifted batches, bad input."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from guardflow.detect_drift import DriftResult, detect_drift
from guardflow.errors import DataError
from guardflow.io.datasets import read_split, typed_frame
from guardflow.settings import DatasetSettings, DriftSettings, Settings, load_settings

ADULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "adult.yaml"


@pytest.fixture(autouse=True)
def _no_telemetry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DO_NOT_TRACK", "1")


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(ADULT_CONFIG)


@pytest.fixture(scope="module")
def dataset(settings: Settings) -> DatasetSettings:
    return settings.dataset


@pytest.fixture(scope="module")
def drift(settings: Settings) -> DriftSettings:
    return settings.drift


@pytest.fixture(scope="module")
def reference(dataset: DatasetSettings) -> pd.DataFrame:
    return typed_frame(read_split(dataset, "train").rows, dataset)


@pytest.fixture(scope="module")
def test_split(dataset: DatasetSettings) -> pd.DataFrame:
    return typed_frame(read_split(dataset, "test").rows, dataset)


@pytest.fixture(scope="module")
def older_batch_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("drift") / "reports" / "drift.html"


@pytest.fixture(scope="module")
def older_batch_result(
    reference: pd.DataFrame,
    test_split: pd.DataFrame,
    dataset: DatasetSettings,
    drift: DriftSettings,
    older_batch_report: Path,
) -> DriftResult:
    older = test_split[test_split["age"] > 50]
    return detect_drift(reference, older, dataset, drift, html_path=older_batch_report)


def test_detect_drift__test_split_against_train__no_drift(
    reference: pd.DataFrame, test_split: pd.DataFrame, dataset: DatasetSettings, drift: DriftSettings
) -> None:
    # given the full typed Adult test split (16,281 rows) and the full typed training split as reference
    # when drift is measured
    result = detect_drift(reference, test_split, dataset, drift)
    # then no column drifts and the batch is not flagged, with every feature and the label compared
    compared = [*dataset.features, dataset.label.column]
    assert result.rows_reference == len(reference), f"reference rows: {result.rows_reference}"
    assert result.rows_current == 16_281, f"current rows: {result.rows_current}"
    assert sorted(result.column_scores) == sorted(compared), (
        f"compared columns: {sorted(result.column_scores)}"
    )
    assert sorted(result.column_tests) == sorted(compared), f"tests named for: {sorted(result.column_tests)}"
    assert result.drift_detected is False, f"unexpected drift: {result}"
    assert result.drifted_columns == (), f"drifted columns: {result.drifted_columns}"
    assert result.drifted_share == 0.0, f"drifted share: {result.drifted_share}"
    # a large reference gets distance tests: Wasserstein for numbers, Jensen-Shannon for categories
    assert "Wasserstein" in result.column_tests["age"], f"age test: {result.column_tests['age']}"
    assert "Jensen-Shannon" in result.column_tests["sex"], f"sex test: {result.column_tests['sex']}"
    assert all(0 <= score < drift.column_threshold for score in result.column_scores.values()), (
        f"scores at or above the threshold: {result.column_scores}"
    )


def test_detect_drift__people_over_fifty_only__drift_detected_and_age_listed(
    older_batch_result: DriftResult, drift: DriftSettings
) -> None:
    # given the test split cut down to people older than fifty (run in the fixture)
    result = older_batch_result
    # then age drifts, far past the threshold, and enough correlated columns follow to flag the batch
    assert "age" in result.drifted_columns, f"drifted columns: {result.drifted_columns}"
    assert result.column_scores["age"] > drift.column_threshold, f"age score: {result.column_scores['age']}"
    assert result.drifted_share >= drift.max_drifted_share, f"drifted share: {result.drifted_share}"
    assert result.drift_detected is True, f"drift not detected: {result}"
    expected_share = len(result.drifted_columns) / len(result.column_scores)
    assert result.drifted_share == pytest.approx(expected_share), (
        f"share {result.drifted_share} does not match {len(result.drifted_columns)} drifted columns"
    )


def test_detect_drift__html_path_given__report_written(
    older_batch_report: Path, older_batch_result: DriftResult
) -> None:
    # given a drift run asked to save its report in a folder that did not exist (run in the fixture)
    # then the HTML report is there, non-empty, and is an HTML document
    assert older_batch_report.is_file(), f"no report at {older_batch_report}"
    content = older_batch_report.read_text(encoding="utf-8")
    assert len(content) > 1000, f"report is only {len(content)} characters"
    assert "<html" in content.lower(), "report is not an HTML document"


def test_detect_drift__hours_shifted_without_label__column_listed_but_batch_not_flagged(
    reference: pd.DataFrame, test_split: pd.DataFrame, dataset: DatasetSettings, drift: DriftSettings
) -> None:
    # given a label-free batch in which everyone works twenty more hours a week
    shifted = test_split.drop(columns=[dataset.label.column]).assign(
        **{"hours-per-week": test_split["hours-per-week"] + 20}
    )
    # when drift is measured
    result = detect_drift(reference, shifted, dataset, drift)
    # then hours-per-week is listed as drifted, the label is not compared, and one column is too few to flag
    assert result.drifted_columns == ("hours-per-week",), f"drifted columns: {result.drifted_columns}"
    assert dataset.label.column not in result.column_scores, f"label compared: {sorted(result.column_scores)}"
    assert result.drifted_share == pytest.approx(1 / len(dataset.features)), f"share: {result.drifted_share}"
    assert result.drift_detected is False, f"one drifted column flagged the batch: {result}"


def test_detect_drift__empty_batch__data_error(
    reference: pd.DataFrame, test_split: pd.DataFrame, dataset: DatasetSettings, drift: DriftSettings
) -> None:
    # given a batch with the right columns and no rows
    empty = test_split.iloc[0:0]
    # when / then drift detection refuses it with a one-line DataError
    with pytest.raises(DataError, match="current batch is empty") as raised:
        detect_drift(reference, empty, dataset, drift)
    assert "\n" not in str(raised.value), f"message spans lines: {raised.value!r}"


def test_detect_drift__feature_missing_or_blank__data_error_names_it(
    reference: pd.DataFrame, test_split: pd.DataFrame, dataset: DatasetSettings, drift: DriftSettings
) -> None:
    # given one batch without the age column and one whose workclass is blank everywhere
    without_age = test_split.drop(columns=["age"])
    blank_workclass = test_split.assign(workclass=pd.NA)
    # when / then each is refused with a DataError naming the column
    with pytest.raises(DataError, match=r"lacks columns.*age"):
        detect_drift(reference, without_age, dataset, drift)
    with pytest.raises(DataError, match=r"no values.*workclass"):
        detect_drift(reference, blank_workclass, dataset, drift)


def test_detect_drift__untyped_numeric_feature__data_error(
    reference: pd.DataFrame, test_split: pd.DataFrame, dataset: DatasetSettings, drift: DriftSettings
) -> None:
    # given a batch whose ages are still text, as read from the file
    untyped = test_split.assign(age=test_split["age"].astype(str))
    # when / then it is refused with a hint to type the frame first
    with pytest.raises(DataError, match=r"typed_frame.*age"):
        detect_drift(reference, untyped, dataset, drift)
