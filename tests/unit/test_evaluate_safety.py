"""Safety figures and the gate: calibration error, group fairness, the membership-inference audit (with a power
check on a model that really leaks) and the gate's verdict."""

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from guardflow.audit_membership import MembershipAudit, audit_membership
from guardflow.decide_gate import decide_gate
from guardflow.encode_features import encode_features
from guardflow.evaluate_safety import (
    Evaluation,
    GroupFairness,
    evaluate_safety,
    expected_calibration_error,
    group_fairness,
)
from guardflow.io.datasets import label_vector, read_split, typed_frame
from guardflow.network import build_mlp, predict_proba


def _calibrated_sample(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities drawn uniformly and labels drawn with exactly those probabilities."""
    generator = np.random.default_rng(seed)
    probabilities = generator.uniform(size=rows)
    return probabilities, (generator.uniform(size=rows) < probabilities).astype("int64")


# --- expected calibration error ---


def test_ece_is_near_zero_for_calibrated_probabilities() -> None:
    # given 200,000 labels drawn with exactly their predicted probability
    probabilities, labels = _calibrated_sample(200_000, seed=0)
    # when the calibration error is measured, then only sampling noise remains (measured 0.003)
    ece = expected_calibration_error(probabilities, labels)
    assert 0.0 <= ece < 0.01, f"ECE of calibrated probabilities should be ~0, got {ece:.4f}"


def test_ece_is_large_for_a_constant_overconfident_prediction() -> None:
    # given balanced labels and a model that always says 0.99
    labels = np.tile([0, 1], 500)
    probabilities = np.full(len(labels), 0.99)
    # then the error is the whole gap between 0.99 and the observed rate of 0.5
    assert expected_calibration_error(probabilities, labels) == pytest.approx(0.49), (
        "one bin holding every row: ECE = |0.99 - 0.5|"
    )


def test_ece_counts_probabilities_of_exactly_zero_and_one() -> None:
    # given predictions at the very ends of [0, 1], each right half the time
    probabilities = np.array([0.0, 0.0, 1.0, 1.0])
    labels = np.array([0, 1, 0, 1])
    # then both end bins count, each with a gap of 0.5
    assert expected_calibration_error(probabilities, labels) == pytest.approx(0.5), (
        "0 and 1 fall in the end bins"
    )


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


def test_evaluate_safety_reports_one_fairness_entry_per_sensitive_column() -> None:
    # given calibrated probabilities and two sensitive columns
    probabilities, labels = _calibrated_sample(2000, seed=1)
    generator = np.random.default_rng(2)
    sensitive = pd.DataFrame(
        {"sex": generator.choice(["Female", "Male"], 2000), "race": generator.choice(["A", "B", "C"], 2000)}
    )
    membership = MembershipAudit(
        auc=0.5, tpr_at_1pct_fpr=0.01, tpr_at_01pct_fpr=0.001, epsilon_lower_bound=0.0, rows_per_side=1000
    )
    # when evaluated
    evaluation = evaluate_safety(probabilities, labels, sensitive, membership)
    # then the figures are those of the predictions at threshold 0.5
    expected_accuracy = float(((probabilities >= 0.5) == labels).mean())
    assert evaluation.accuracy == pytest.approx(expected_accuracy), "accuracy at the 0.5 threshold"
    assert [group.attribute for group in evaluation.fairness] == ["sex", "race"], (
        "one entry per sensitive column"
    )
    metrics = evaluation.metrics()
    assert {"accuracy", "roc_auc", "ece", "mia_auc", "dp_difference_sex", "dp_difference_race"} <= set(
        metrics
    ), "the flat view carries every gate figure"
    assert metrics["mia_auc"] == 0.5, "the membership audit is carried through unchanged"


# --- membership inference ---


def test_audit_finds_no_leak_when_members_and_nonmembers_look_alike() -> None:
    # given members and non-members drawn from the same distribution
    member_probabilities, member_labels = _calibrated_sample(5000, seed=3)
    nonmember_probabilities, nonmember_labels = _calibrated_sample(6000, seed=4)
    # when audited
    audit = audit_membership(member_probabilities, member_labels, nonmember_probabilities, nonmember_labels)
    # then the attack is a coin toss (standard error of the AUC here is ~0.006)
    assert audit.auc == pytest.approx(0.5, abs=0.03), f"no leak should give AUC ~0.5, got {audit.auc:.3f}"
    assert audit.rows_per_side == 5000, "the audit balances both sides to the smaller one"
    assert audit.epsilon_lower_bound < 0.1, f"no leak proves no epsilon, got {audit.epsilon_lower_bound:.3f}"


def test_audit_detects_members_with_much_lower_loss() -> None:
    # given members whose own label gets a probability near 1, and ordinary non-members
    generator = np.random.default_rng(5)
    member_labels = generator.integers(0, 2, size=3000)
    confidence = generator.beta(8, 1, size=3000)
    member_probabilities = np.where(member_labels == 1, confidence, 1 - confidence)
    nonmember_probabilities, nonmember_labels = _calibrated_sample(3000, seed=6)
    # when audited
    audit = audit_membership(member_probabilities, member_labels, nonmember_probabilities, nonmember_labels)
    # then the attack clearly separates them (measured 0.80; TPR at 1% FPR 0.044)
    assert audit.auc > 0.75, f"a strong leak must be detected, got AUC {audit.auc:.3f}"
    assert audit.tpr_at_1pct_fpr > 0.01, "at 1% false positives the attack finds more than chance"
    # and it proves a positive epsilon with 95% confidence (measured 0.75)
    assert audit.epsilon_lower_bound > 0.4, (
        f"a strong leak proves epsilon > 0, got {audit.epsilon_lower_bound:.3f}"
    )


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_audit_detects_an_overfit_non_private_model_on_adult(adult_settings, one_torch_thread) -> None:
    # given an unregularised MLP overfit on 500 rows of adult.data (full-batch Adam, 1,000 steps)
    dataset = adult_settings.dataset
    members = typed_frame(read_split(dataset, "train").rows.head(500), dataset)
    nonmembers = typed_frame(read_split(dataset, "test").rows.head(500), dataset)
    member_features, member_labels = (
        encode_features(members, dataset),
        label_vector(members, dataset).to_numpy(),
    )
    nonmember_features = encode_features(nonmembers, dataset)
    nonmember_labels = label_vector(nonmembers, dataset).to_numpy()
    torch.manual_seed(0)
    model = build_mlp(member_features.shape[1], [256, 256])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    inputs, targets = torch.tensor(member_features), torch.tensor(member_labels, dtype=torch.float32)
    for _ in range(1000):
        optimizer.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(model(inputs).squeeze(-1), targets)
        loss.backward()
        optimizer.step()
    model.eval()
    assert loss.item() < 0.05, f"the model must have memorised its rows (training loss {loss.item():.3f})"
    # when its training rows are audited against 500 rows of adult.test
    audit = audit_membership(
        predict_proba(model, member_features).double().numpy(),
        member_labels,
        predict_proba(model, nonmember_features).double().numpy(),
        nonmember_labels,
    )
    # then the audit sees the leak (measured 0.578 with this seed, 0.562-0.578 over torch seeds 0-5; the
    # standard error of a no-leak AUC with 500 rows a side is ~0.018)
    assert audit.auc > 0.55, f"the loss attack should detect an overfit model, got AUC {audit.auc:.3f}"


# --- the gate ---


def test_gate_rejects_a_model_whose_audit_proves_more_than_its_claim(adult_settings) -> None:
    # given an audit that proves epsilon 1.5 for a model that claims 1.0
    evaluation = _evaluation()
    proven = MembershipAudit(
        auc=0.55, tpr_at_1pct_fpr=0.05, tpr_at_01pct_fpr=0.01, epsilon_lower_bound=1.5, rows_per_side=500
    )
    evaluation = Evaluation(**{**evaluation.__dict__, "membership": proven})
    # when judged / then the privacy claim's line fails
    decision = decide_gate(evaluation, adult_settings.gate, 1.0)
    assert not decision.passed, "a falsified privacy claim must be rejected"
    assert any("mia_epsilon_lower_bound" in reason for reason in decision.reasons), decision.reasons


def _evaluation(
    accuracy: float = 0.86,
    roc_auc: float = 0.91,
    ece: float = 0.03,
    mia_auc: float = 0.52,
    dp_difference: float = 0.10,
) -> Evaluation:
    fairness = GroupFairness(
        attribute="sex",
        accuracy={"Female": 0.9, "Male": 0.84},
        positive_rate={"Female": 0.10, "Male": 0.10 + dp_difference},
        rows={"Female": 300, "Male": 700},
    )
    return Evaluation(
        rows=1000,
        accuracy=accuracy,
        roc_auc=roc_auc,
        ece=ece,
        fairness=(fairness,),
        membership=MembershipAudit(
            auc=mia_auc,
            tpr_at_1pct_fpr=0.01,
            tpr_at_01pct_fpr=0.001,
            epsilon_lower_bound=0.0,
            rows_per_side=500,
        ),
    )


def test_gate_fails_a_candidate_below_min_accuracy(adult_settings) -> None:
    # given a candidate that meets every threshold but accuracy
    gate = adult_settings.gate
    decision = decide_gate(_evaluation(accuracy=gate.min_accuracy - 0.04), gate, 1.0)
    # then it fails, and the only reason given is the accuracy line
    assert not decision.passed, "a candidate below min_accuracy must not pass"
    assert len(decision.reasons) == 1, f"only the failed line is listed, got {decision.reasons}"
    assert decision.reasons[0].startswith("FAIL accuracy"), (
        f"the reason names accuracy: {decision.reasons[0]}"
    )
    assert f">= {gate.min_accuracy:g}" in decision.reasons[0], "the reason states the threshold"


def test_gate_passes_a_candidate_meeting_every_threshold(adult_settings) -> None:
    # given a candidate inside every threshold
    decision = decide_gate(_evaluation(), adult_settings.gate, 1.0)
    # then it passes and the record lists every line as passed
    assert decision.passed, f"a candidate meeting every threshold must pass: {decision.reasons}"
    names = [line.name for line in decision.lines]
    assert names == [
        "accuracy",
        "roc_auc",
        "ece",
        "mia_auc",
        "mia_epsilon_lower_bound",
        "dp_difference[sex]",
    ], "one line per policy figure"
    assert len(decision.reasons) == len(names), "a passed decision records every line"
    assert all(reason.startswith("PASS") for reason in decision.reasons), "every line is a PASS"


def test_gate_lists_exactly_the_failed_lines(adult_settings) -> None:
    # given a candidate that is over-confident, leaky and unfair, but accurate
    gate = adult_settings.gate
    evaluation = _evaluation(
        ece=gate.max_ece + 0.02,
        mia_auc=gate.max_mia_auc + 0.05,
        dp_difference=gate.max_demographic_parity_difference + 0.05,
    )
    decision = decide_gate(evaluation, gate, 1.0)
    # then it fails with one reason per failed line, and no passed line among them
    assert not decision.passed, "any failed line fails the gate"
    failed = [reason.split()[1] for reason in decision.reasons]
    assert failed == ["ece", "mia_auc", "dp_difference[sex]"], f"the failed lines, in policy order: {failed}"
    assert all(reason.startswith("FAIL") for reason in decision.reasons), (
        "passed lines are not reasons to fail"
    )


def test_gate_accepts_figures_exactly_at_their_thresholds(adult_settings) -> None:
    # given a candidate sitting exactly on every threshold
    gate = adult_settings.gate
    evaluation = _evaluation(
        accuracy=gate.min_accuracy,
        roc_auc=gate.min_roc_auc,
        ece=gate.max_ece,
        mia_auc=gate.max_mia_auc,
        dp_difference=0.0,
    )
    # then the thresholds are inclusive
    decision = decide_gate(evaluation, gate, 1.0)
    assert decision.passed, f"thresholds are inclusive bounds: {decision.reasons}"


def test_gate_fails_a_figure_that_is_not_a_number(adult_settings) -> None:
    # given a candidate whose calibration error could not be computed
    decision = decide_gate(_evaluation(ece=float("nan")), adult_settings.gate, 1.0)
    # then the gate fails closed on that line
    assert not decision.passed, "a NaN figure must never pass the gate"
    assert decision.reasons[0].startswith("FAIL ece"), f"the NaN line is named: {decision.reasons}"
