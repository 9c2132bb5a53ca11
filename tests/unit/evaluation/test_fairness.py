"""Fairness gaps judged on their intervals, and groups too small to judge: listed, left out of the gaps, WAIVED."""

import numpy as np
import pandas as pd
import pytest

from guardflow.evaluation.decide_gate import decide_gate
from guardflow.evaluation.fairness import group_fairness
from tests.unit.evaluation.conftest import evaluation_of


def _two_groups(gap: float, rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Groups A and B of `rows` each; B's selection rate is `gap` above A's 0.2."""
    generator = np.random.default_rng(seed)
    group = np.array(["A"] * rows + ["B"] * rows)
    labels = (generator.uniform(size=2 * rows) < 0.3).astype("int64")
    rate = np.where(group == "A", 0.2, 0.2 + gap)
    probabilities = (generator.uniform(size=2 * rows) < rate).astype("float64") * 0.9 + 0.05
    return probabilities, labels, pd.DataFrame({"group": group})


def _line(adult_settings, evaluation, name):
    return next(line for line in decide_gate(evaluation, adult_settings.gate, 1.0).lines if line.name == name)


def test_a_parity_gap_above_the_threshold_only_by_noise_passes(adult_settings) -> None:
    # given groups of 120 rows whose true selection rates differ by 0.22 (under the 0.25 threshold)
    probabilities, labels, sensitive = _two_groups(0.22, 120, seed=3)
    evaluation = evaluation_of(probabilities, labels, sensitive)
    line = _line(adult_settings, evaluation, "dp_difference[group]")
    interval = evaluation.fairness[0].intervals["dp_difference"]
    # then it is judged on the low end of its interval, which the noise cannot push over the threshold
    assert line.value == interval.low and line.status == "PASS", line.describe()
    assert "95% interval" in (line.detail or ""), "the line shows its interval"


def test_a_parity_gap_clearly_above_the_threshold_fails(adult_settings) -> None:
    # given 5,000 rows per group and a true gap of 0.40
    probabilities, labels, sensitive = _two_groups(0.40, 5000)
    # then even the low end of the interval is above 0.25
    line = _line(adult_settings, evaluation_of(probabilities, labels, sensitive), "dp_difference[group]")
    assert line.status == "FAIL" and line.value > 0.3, line.describe()


def test_an_equalized_odds_gap_fails_on_its_interval(adult_settings) -> None:
    # given a model with TPR 0.9 in group A and 0.3 in group B (5,000 rows each)
    generator = np.random.default_rng(5)
    group = np.array(["A"] * 5000 + ["B"] * 5000)
    labels = (generator.uniform(size=10_000) < 0.4).astype("int64")
    tpr = np.where(group == "A", 0.9, 0.3)
    predicted = np.where(
        labels == 1, generator.uniform(size=10_000) < tpr, generator.uniform(size=10_000) < 0.1
    )
    evaluation = evaluation_of(predicted.astype("float64"), labels, pd.DataFrame({"group": group}))
    # then the equalized-odds line fails and the parity line is judged separately
    line = _line(adult_settings, evaluation, "eo_difference[group]")
    assert line.status == "FAIL" and line.value > 0.5, line.describe()


def test_a_tiny_group_is_left_out_of_the_gap_and_waived_not_dropped(adult_settings) -> None:
    # given two large groups with equal rates and a group of 10 people all predicted positive
    generator = np.random.default_rng(6)
    group = np.array(["A"] * 1000 + ["B"] * 1000 + ["Tiny"] * 10)
    labels = (generator.uniform(size=2010) < 0.3).astype("int64")
    predicted = np.where(group == "Tiny", 1, generator.uniform(size=2010) < 0.2).astype("float64")
    evaluation = evaluation_of(predicted, labels, pd.DataFrame({"group": group}), min_group_size=50)
    fairness = evaluation.fairness[0]
    # then the tiny group keeps its figures but not the gap, and is reported
    assert fairness.positive_rate["Tiny"] == 1.0 and fairness.rows["Tiny"] == 10, "figures kept"
    assert fairness.demographic_parity_difference < 0.1, "the 10 people do not set the gap"
    assert any(note.startswith("Tiny: selection_rate on 10 rows < 50") for note in fairness.small_groups())
    lines = {line.name: line for line in decide_gate(evaluation, adult_settings.gate, 1.0).lines}
    assert lines["dp_difference[group]"].status == "PASS", lines["dp_difference[group]"].describe()
    waived = lines["min_group_size[group=Tiny]"]
    assert waived.status == "WAIVED" and "too few to judge" in (waived.waived or ""), waived.describe()
    # and with no minimum, the same figures fail parity (the point estimate on 10 people)
    raw = group_fairness("group", pd.Series(group), predicted.astype("int64"), labels)
    assert raw.demographic_parity_difference > 0.7, "without a minimum the tiny group dominates"


# --- group fairness ---


def test_group_fairness_gives_the_exact_positive_rates_and_parity_difference() -> None:
    # given two groups: women predicted positive 1 in 4, men 3 in 5
    groups = pd.Series(["Female"] * 4 + ["Male"] * 5)
    predictions = np.array([1, 0, 0, 0, 1, 1, 1, 0, 0])
    labels = np.array([1, 0, 0, 1, 1, 1, 0, 0, 0])
    # when fairness is measured on the attribute
    fairness = group_fairness("sex", groups, predictions, labels)
    # then rates, accuracies and counts are the hand-computed ones and the gap is 0.6 - 0.25
    assert fairness.positive_rate == {"Female": 0.25, "Male": 0.6}, "positive-prediction rate per group"
    assert fairness.accuracy == {"Female": 0.75, "Male": 0.8}, "accuracy per group"
    assert fairness.rows == {"Female": 4, "Male": 5}, "rows per group"
    assert fairness.demographic_parity_difference == pytest.approx(0.35), "largest gap in positive rate"


def test_missing_sensitive_values_form_their_own_group() -> None:
    # given one row with no recorded group, predicted positive, among groups predicted positive half the time
    groups = pd.Series(["A", "A", "B", "B", None])
    predictions = np.array([1, 0, 0, 1, 1])
    fairness = group_fairness("race", groups, predictions, np.zeros(5, dtype="int64"))
    # then it is a group of its own, and it sets the parity gap
    assert fairness.rows == {"(missing)": 1, "A": 2, "B": 2}, (
        "missing values are their own group, not dropped"
    )
    assert fairness.demographic_parity_difference == pytest.approx(0.5), "gap between 1.0 (missing) and 0.5"


# --- equalized odds ---


def test_equalized_odds_difference_is_the_larger_of_the_tpr_and_fpr_gaps() -> None:
    # given group A with TPR 2/2 and FPR 1/2, group B with TPR 1/4 and FPR 0/2
    groups = pd.Series(["A"] * 4 + ["B"] * 6)
    labels = np.array([1, 1, 0, 0, 1, 1, 1, 1, 0, 0])
    predictions = np.array([1, 1, 1, 0, 1, 0, 0, 0, 0, 0])
    # when fairness is measured
    fairness = group_fairness("group", groups, predictions, labels)
    # then the TPR gap (0.75) beats the FPR gap (0.5)
    assert fairness.true_positive_rate == {"A": 1.0, "B": 0.25}, "TPR per group"
    assert fairness.false_positive_rate == {"A": 0.5, "B": 0.0}, "FPR per group"
    assert fairness.equalized_odds_difference == pytest.approx(0.75), "max(TPR gap 0.75, FPR gap 0.5)"


def test_a_group_without_positives_is_left_out_of_the_tpr_gap() -> None:
    # given group B has no positive labels at all
    fairness = group_fairness(
        "group", pd.Series(["A", "A", "B", "B"]), np.array([1, 0, 1, 0]), np.array([1, 0, 0, 0])
    )
    # then its TPR is undefined and the difference comes from the FPR gap alone (A 0, B 0.5)
    assert np.isnan(fairness.true_positive_rate["B"]), "no positives: TPR is NaN, not 0"
    assert fairness.equalized_odds_difference == pytest.approx(0.5), "only the FPR gap is defined"
