"""The gate's verdict: one line per policy figure, PASS, FAIL or WAIVED, and only failed lines as reasons."""

from __future__ import annotations

from guardflow.evaluation.decide_gate import ChampionComparison, GateDecision, decide_gate
from guardflow.evaluation.evaluate_safety import (
    Evaluation,
)
from guardflow.privacy.audit_membership import MembershipAudit
from tests.unit.evaluation.cases import candidate_evaluation


def test_gate_rejects_a_model_whose_audit_proves_more_than_its_claim(adult_settings) -> None:
    # given an audit that proves epsilon 1.5 for a model that claims 1.0
    evaluation = candidate_evaluation()
    proven = MembershipAudit(
        auc=0.55, tpr_at_1pct_fpr=0.05, tpr_at_01pct_fpr=0.01, epsilon_lower_bound=1.5, rows_per_side=500
    )
    evaluation = Evaluation(**{**evaluation.__dict__, "membership": proven})
    # when judged / then the privacy claim's line fails
    decision = decide_gate(evaluation, adult_settings.gate, 1.0)
    assert not decision.passed, "a falsified privacy claim must be rejected"
    assert any("mia_epsilon_lower_bound" in reason for reason in decision.reasons), decision.reasons


def test_gate_fails_a_candidate_below_min_accuracy(adult_settings) -> None:
    # given a candidate that meets every threshold but accuracy
    gate = adult_settings.gate
    decision = decide_gate(candidate_evaluation(accuracy=gate.min_accuracy - 0.04), gate, 1.0)
    # then it fails, and the only reason given is the accuracy line
    assert not decision.passed, "a candidate below min_accuracy must not pass"
    assert len(decision.reasons) == 1, f"only the failed line is listed, got {decision.reasons}"
    assert decision.reasons[0].startswith("FAIL accuracy"), (
        f"the reason names accuracy: {decision.reasons[0]}"
    )
    assert f">= {gate.min_accuracy:g}" in decision.reasons[0], "the reason states the threshold"


def test_gate_passes_a_candidate_meeting_every_threshold(adult_settings) -> None:
    # given a candidate inside every threshold
    decision = decide_gate(candidate_evaluation(), adult_settings.gate, 1.0)
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
        "epsilon",
        "no_regression[accuracy]",
        "no_regression[roc_auc]",
    ], "one line per policy figure"
    assert len(decision.reasons) == len(names), "a passed decision records every line"
    assert all(reason.startswith(("PASS", "WAIVED")) for reason in decision.reasons), "every line passes"
    assert decision.reasons[-1] == "WAIVED no_regression[roc_auc] (no champion to compare to)", (
        "with no champion, the no-regression lines are waived and say why"
    )


def test_gate_lists_exactly_the_failed_lines(adult_settings) -> None:
    # given a candidate that is over-confident, leaky and unfair, but accurate
    gate = adult_settings.gate
    evaluation = candidate_evaluation(
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
    evaluation = candidate_evaluation(
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
    decision = decide_gate(candidate_evaluation(ece=float("nan")), adult_settings.gate, 1.0)
    # then the gate fails closed on that line
    assert not decision.passed, "a NaN figure must never pass the gate"
    assert decision.reasons[0].startswith("FAIL ece"), f"the NaN line is named: {decision.reasons}"


def test_no_regression_lines_judge_the_candidate_interval_against_the_champion(adult_settings) -> None:
    # given a champion at accuracy 0.86, and candidates whose 95% intervals reach or miss 0.86 - 0.01
    gate = adult_settings.gate
    champion = {"accuracy": 0.86, "roc_auc": 0.91, "ece": 0.05}

    def judged(accuracy_interval: tuple[float, float]) -> GateDecision:
        comparison = ChampionComparison(
            "7", champion, {"accuracy": accuracy_interval, "roc_auc": (0.90, 0.92)}
        )
        return decide_gate(candidate_evaluation(), gate, 1.0, comparison)

    # then a candidate whose interval still reaches the margin passes, one clearly worse fails
    assert judged((0.845, 0.852)).passed, "an interval reaching 0.85 is not a proven regression"
    worse = judged((0.830, 0.845))
    assert not worse.passed and worse.compared_to == "7", "a candidate worse even at its best fails"
    assert any("FAIL no_regression[accuracy]" in reason for reason in worse.reasons), worse.reasons


def test_a_waiver_names_the_line_and_the_reason(adult_settings) -> None:
    # given a policy that waives the accuracy line
    gate = adult_settings.gate.model_copy(update={"waivers": {"accuracy": "known label shift, ticket 42"}})
    # when a candidate below the accuracy threshold is judged
    decision = decide_gate(candidate_evaluation(accuracy=0.5), gate, 1.0)
    # then that line is waived with its reason and does not fail the candidate
    assert decision.passed, f"a waived line does not count: {decision.reasons}"
    assert "WAIVED accuracy (known label shift, ticket 42)" in [line.describe() for line in decision.lines]
