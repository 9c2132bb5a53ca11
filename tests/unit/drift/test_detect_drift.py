"""Unit tests of detect_drift: the Adult test split against the training split, shifted batches, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from scipy import stats
from sklearn.linear_model import LogisticRegression

from guardflow.data.encode_features import encode_features
from guardflow.data.table import label_vector, labelled_rows, typed_frame
from guardflow.drift.detect_drift import (
    PREDICTION_COLUMN,
    DriftResult,
    detect_drift,
    detectable_ks_distance,
    drifted_by_family_rule,
    homogeneity_p_value,
)
from guardflow.errors import DataError
from guardflow.io.datasets import read_split
from guardflow.settings import DatasetSettings, DriftSettings, Settings, load_settings

ADULT_CONFIG = Path(__file__).resolve().parents[3] / "configs" / "adult.yaml"


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
def share_rule(drift: DriftSettings) -> DriftSettings:
    """The older batch rule (Evidently's automatic tests, drifted share against max_drifted_share)."""
    return drift.model_copy(update={"rule": "drifted_share"})


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
    share_rule: DriftSettings,
    older_batch_report: Path,
) -> DriftResult:
    older = test_split[test_split["age"] > 50]
    return detect_drift(reference, older, dataset, share_rule, html_path=older_batch_report)


def test_detect_drift__test_split_against_train__no_drift(
    reference: pd.DataFrame, test_split: pd.DataFrame, dataset: DatasetSettings, share_rule: DriftSettings
) -> None:
    # given the full typed Adult test split (16,281 rows) and the full typed training split as reference
    # when drift is measured under the drifted-share rule
    drift = share_rule
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
    older_batch_result: DriftResult, share_rule: DriftSettings
) -> None:
    drift = share_rule
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
    reference: pd.DataFrame, test_split: pd.DataFrame, dataset: DatasetSettings, share_rule: DriftSettings
) -> None:
    # given the drifted-share rule and a label-free batch in which everyone works twenty more hours a week
    drift = share_rule
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


@pytest.fixture(scope="module")
def scorer(reference: pd.DataFrame, dataset: DatasetSettings) -> LogisticRegression:
    """A quick stand-in for the champion: logistic regression on the encoded training rows."""
    labelled = labelled_rows(reference, dataset)
    return LogisticRegression(max_iter=1000).fit(
        encode_features(labelled, dataset), label_vector(labelled, dataset)
    )


def _scores(model: LogisticRegression, frame: pd.DataFrame, dataset: DatasetSettings) -> np.ndarray:
    return model.predict_proba(encode_features(frame, dataset))[:, 1]


def test_drifted_by_family_rule__bonferroni_line__only_columns_below_alpha_over_k() -> None:
    # given three columns' p-values and a family-wise level of 0.05 (so each column is held to 0.05 / 3)
    one_clear = {"age": 0.001, "sex": 0.5, "race": 0.2}
    all_below_05 = {"age": 0.02, "sex": 0.03, "race": 0.04}
    # when the batch rule is applied
    # then only a p-value below 0.0167 lists its column; three p-values under 0.05 each do not flag the batch
    assert drifted_by_family_rule(one_clear, 0.05) == ("age",), "0.001 < 0.05 / 3 must be listed"
    assert drifted_by_family_rule(all_below_05, 0.05) == (), "p-values above 0.05 / 3 must not flag the batch"


def test_drifted_by_family_rule__fifteen_null_columns__false_alarms_at_most_alpha() -> None:
    # given 4,000 undrifted batches of 15 columns whose p-values are uniform, half of them sharing one value
    rng = np.random.default_rng(0)
    independent = rng.uniform(size=(2000, 15))
    dependent = np.repeat(rng.uniform(size=(2000, 1)), 15, axis=1)
    # when the family rule judges each batch
    flagged = [
        bool(drifted_by_family_rule({f"c{i}": p for i, p in enumerate(row)}, 0.05))
        for row in np.vstack([independent, dependent])
    ]
    # then at most 5% (plus sampling slack) of batches are flagged, whatever the dependence
    rate = sum(flagged) / len(flagged)
    assert rate <= 0.06, f"family-wise false alarm rate {rate:.3f} above 0.05"


def test_homogeneity_p_value__same_distribution_with_rare_categories__level_held() -> None:
    # given 400 pairs of samples (32,000 and 1,000 rows) from one distribution with very rare categories
    rng = np.random.default_rng(1)
    categories = np.array([f"k{i}" for i in range(12)])
    weights = np.array([40, 25, 15, 8, 5, 3, 2, 1, 0.5, 0.3, 0.1, 0.1])
    weights = weights / weights.sum()
    p_values = [
        homogeneity_p_value(
            pd.Series(rng.choice(categories, 32_000, p=weights)),
            pd.Series(rng.choice(categories, 1_000, p=weights)),
        )
        for _ in range(400)
    ]
    # when each pair is tested at 5% / then about 5% are rejected, not more (the pooling keeps the level)
    rate = float(np.mean(np.array(p_values) < 0.05))
    assert rate <= 0.085, f"rejection rate {rate:.3f} at level 0.05"
    assert min(p_values) > 0, "no p-value should be exactly zero under the null"


def test_homogeneity_p_value__category_the_reference_never_had__tiny_p_value() -> None:
    # given a batch where 1% of 10,000 rows carry a category absent from the reference
    rng = np.random.default_rng(2)
    reference = pd.Series(rng.choice(["a", "b", "c"], 30_000))
    current = pd.Series(rng.choice(["a", "b", "c"], 10_000))
    current[:100] = "new"
    # when / then the homogeneity test rejects far below any Bonferroni line
    p_value = homogeneity_p_value(reference, current)
    assert p_value < 1e-10, f"new category p-value {p_value}"


def test_detectable_ks_distance__shift_of_that_size__detected_at_least_95_percent() -> None:
    # given two normal samples of 2,000 rows whose true KS distance equals the stated detectable distance
    alpha = 0.05 / 16
    distance = detectable_ks_distance(2000, 2000, alpha)
    shift = 2 * stats.norm.ppf(
        (1 + distance) / 2
    )  # KS distance of N(0,1) vs N(shift,1) is 2 Phi(shift/2) - 1
    rng = np.random.default_rng(3)
    # when the KS test at alpha runs 300 times
    hits = sum(
        stats.ks_2samp(rng.normal(size=2000), rng.normal(shift, size=2000)).pvalue <= alpha
        for _ in range(300)
    )
    # then at least 95% are detected (the bound is conservative), and the distance shrinks with more rows
    assert hits / 300 >= 0.95, f"power {hits / 300:.3f} at the stated detectable distance {distance:.4f}"
    assert detectable_ks_distance(20_000, 20_000, alpha) < distance / 2, "10x the rows must detect < half"


def test_detect_drift__family_rule_random_10k_of_test_split__no_drift(
    reference: pd.DataFrame, test_split: pd.DataFrame, dataset: DatasetSettings, drift: DriftSettings
) -> None:
    # given a simple random sample of 10,000 test rows, with labels, under the config's family-wise rule
    batch = test_split.sample(10_000, random_state=0)
    # when drift is measured
    result = detect_drift(reference, batch, dataset, drift)
    # then nothing drifts, every p-value clears alpha / 15, and the reference was sampled to sample_rows
    assert drift.rule == "family_wise", f"the config's rule: {drift.rule}"
    assert result.drift_detected is False, f"an i.i.d. batch was flagged: {result.drifted_columns}"
    assert result.column_alpha == pytest.approx(drift.family_alpha / 15), (
        f"column alpha {result.column_alpha}"
    )
    assert min(result.column_scores.values()) >= drift.family_alpha / 15, f"p-values: {result.column_scores}"
    assert result.rows_compared_current == 10_000, f"current rows compared: {result.rows_compared_current}"
    assert result.rows_compared_reference == drift.sample_rows, (
        f"reference rows: {result.rows_compared_reference}"
    )
    assert result.column_tests["sex"] == "chi2_homogeneity", f"sex test: {result.column_tests['sex']}"
    assert result.column_tests["age"] == "ks", f"age test: {result.column_tests['age']}"
    assert sorted(result.detectable_effects) == sorted(result.column_scores), "an effect size per column"
    assert result.prediction_drift is None, "no scores given, no prediction drift verdict"


def test_detect_drift__family_rule_one_more_hour_a_week__batch_flagged_on_hours(
    reference: pd.DataFrame, test_split: pd.DataFrame, dataset: DatasetSettings, drift: DriftSettings
) -> None:
    # given a label-free batch in which everyone works one more hour a week
    shifted = test_split.drop(columns=[dataset.label.column]).assign(
        **{"hours-per-week": test_split["hours-per-week"] + 1}
    )
    # when drift is measured under the family-wise rule
    result = detect_drift(reference, shifted, dataset, drift)
    # then hours-per-week alone drifts, and one drifted column is enough to flag the batch
    assert result.drifted_columns == ("hours-per-week",), f"drifted columns: {result.drifted_columns}"
    assert result.drift_detected is True, f"a covariate shift was not flagged: {result}"


def test_detect_drift__new_workclass_on_one_percent__workclass_flagged_with_or_without_report(
    reference: pd.DataFrame,
    test_split: pd.DataFrame,
    dataset: DatasetSettings,
    drift: DriftSettings,
    tmp_path: Path,
) -> None:
    # given a 10,000-row batch where 100 rows carry a workclass the reference never had
    batch = test_split.sample(10_000, random_state=1).reset_index(drop=True)
    batch.loc[:99, "workclass"] = "Gig-economy"
    # when drift is measured without a report, and again with Evidently's HTML report
    result = detect_drift(reference, batch, dataset, drift)
    with_report = detect_drift(reference, batch, dataset, drift, html_path=tmp_path / "drift.html")
    # then workclass is listed and the batch flagged, and both ways give the same p-values and verdicts
    assert "workclass" in result.drifted_columns, f"drifted columns: {result.drifted_columns}"
    assert result.drift_detected is True, "a new category must flag the batch"
    assert with_report.column_scores == result.column_scores, "the report runs the same tests"
    assert with_report.drifted_columns == result.drifted_columns, (
        f"report verdicts: {with_report.drifted_columns}"
    )
    assert (tmp_path / "drift.html").stat().st_size > 10_000, "the HTML report is written"


def test_detect_drift__label_prior_shift_without_labels__prediction_drift(
    reference: pd.DataFrame,
    test_split: pd.DataFrame,
    dataset: DatasetSettings,
    drift: DriftSettings,
    scorer: LogisticRegression,
) -> None:
    # given label-free 10,000-row batches: one drawn at random, one with 10 more points of positives
    labelled = labelled_rows(test_split, dataset).reset_index(drop=True)
    positive = labelled[dataset.label.column] == dataset.label.positive
    from_positive = round(10_000 * (positive.mean() + 0.10))
    shifted = pd.concat(
        [
            labelled[positive].sample(from_positive, random_state=2),
            labelled[~positive].sample(10_000 - from_positive, random_state=2),
        ]
    ).drop(columns=[dataset.label.column])
    iid = labelled.sample(10_000, random_state=3).drop(columns=[dataset.label.column])
    reference_scores = _scores(scorer, reference, dataset)
    # when drift is measured with the champion stand-in's scores on both sides
    calm = detect_drift(reference, iid, dataset, drift, None, reference_scores, _scores(scorer, iid, dataset))
    moved = detect_drift(
        reference, shifted, dataset, drift, None, reference_scores, _scores(scorer, shifted, dataset)
    )
    # then the scores drift only on the shifted batch, and flag it
    assert calm.prediction_drift is False, f"scores drifted on an i.i.d. batch: {calm.column_scores}"
    assert PREDICTION_COLUMN in calm.column_scores, "the scores are compared as a column"
    assert moved.prediction_drift is True, f"label-prior shift not seen in scores: {moved.column_scores}"
    assert PREDICTION_COLUMN in moved.drifted_columns and moved.drift_detected, f"verdict: {moved}"


def test_detect_drift__sample_seed__same_seed_same_result_other_seed_other_sample(
    reference: pd.DataFrame, test_split: pd.DataFrame, dataset: DatasetSettings, drift: DriftSettings
) -> None:
    # given settings that cut both sides to 2,000 rows, with seed 3 twice and seed 4 once
    small = drift.model_copy(update={"sample_rows": 2000, "sample_seed": 3})
    # when drift is measured three times
    first = detect_drift(reference, test_split, dataset, small)
    again = detect_drift(reference, test_split, dataset, small)
    other = detect_drift(reference, test_split, dataset, small.model_copy(update={"sample_seed": 4}))
    # then the same seed compares the same rows (identical scores) and another seed other rows
    assert (first.rows_compared_reference, first.rows_compared_current) == (2000, 2000), f"{first}"
    assert (first.rows_reference, first.rows_current) == (len(reference), len(test_split)), "full sizes kept"
    assert first.column_scores == again.column_scores, "the same seed must give the same p-values"
    assert first.column_scores != other.column_scores, "another seed must draw another sample"


def test_detect_drift__scores_not_matching_rows__data_error(
    reference: pd.DataFrame, test_split: pd.DataFrame, dataset: DatasetSettings, drift: DriftSettings
) -> None:
    # given scores for the reference only, and current scores one value short
    reference_scores = np.full(len(reference), 0.5)
    # when / then each is refused with a one-line DataError
    with pytest.raises(DataError, match="both the reference and the batch"):
        detect_drift(reference, test_split, dataset, drift, None, reference_scores, None)
    with pytest.raises(DataError, match=r"current scores hold 16280 values for 16281 rows") as raised:
        detect_drift(
            reference, test_split, dataset, drift, None, reference_scores, np.zeros(len(test_split) - 1)
        )
    assert "\n" not in str(raised.value), f"message spans lines: {raised.value!r}"


def test_drift_settings__unknown_rule_or_tiny_sample__rejected() -> None:
    # given drift settings naming a rule that does not exist, or a sample too small to test anything
    # when / then the strict settings refuse them, naming the field
    with pytest.raises(ValidationError, match="rule"):
        DriftSettings.model_validate({"rule": "majority"})
    with pytest.raises(ValidationError, match="sample_rows"):
        DriftSettings.model_validate({"sample_rows": 10})
