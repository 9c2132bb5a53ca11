"""The new gate lines where a reviewer reads them: the lineage gate facet (valid against its schema), the model
card (small groups, per-group and differential lines) and the flat describe() text of summary.json."""

import numpy as np
from openlineage.client.serde import Serde

from guardflow.evaluation.compare_champion import ChampionComparison, compare_groups
from guardflow.evaluation.decide_gate import WINDOW_ROWS, GateDecision, decide_gate
from guardflow.evaluation.differential import check_differential
from guardflow.evaluation.evaluate_safety import (
    Evaluation,
)
from guardflow.evaluation.model_card import render_model_card
from guardflow.lineage.facets import gate_facet
from guardflow.privacy.audit_membership import MembershipAudit
from guardflow.privacy.train_private import PrivacyReport
from tests.lineage_validation import load_spec
from tests.unit.evaluation.cases import candidate_evaluation
from tests.unit.evaluation.conftest import evaluation_of, score_by_relationship

PRIVACY = PrivacyReport(
    epsilon=1.0, delta=1e-5, accountant="prv", epsilon_rdp=1.2, noise_multiplier=1.0, max_grad_norm=1.0,
    sample_rate=0.01, steps=100, epochs=5, empty_batches=0, training_rows=900, calibration_rows=100,
    calibration_epsilon=0.9,
)  # fmt: skip
ROWS = {"rows_in": 6000, "rows_accepted": 6000, "rows_quarantined": 0, "quarantined_by_contract": 0,
        "quarantined_by_scan": 0}  # fmt: skip


def _decision(adult_settings, adult_test_rows):
    """A candidate that pushes wives' predictions up by 0.4 and halves Black people's positive predictions."""
    frame, labels = adult_test_rows
    dataset, gate = adult_settings.dataset, adult_settings.gate
    champion = score_by_relationship(frame)
    candidate = champion.copy()
    wives = (frame["relationship"] == "Wife").to_numpy()
    candidate[wives] = np.clip(candidate[wives] + 0.4, 0, 1)
    black = np.nonzero((frame["race"] == "Black").to_numpy() & (champion >= 0.5))[0]
    candidate[black[::2]] = 0.05
    evaluation = evaluation_of(candidate, labels, frame[dataset.sensitive])
    comparison = ChampionComparison(
        "4",
        {"accuracy": 0.8, "roc_auc": 0.8},
        {"accuracy": (0.8, 0.8), "roc_auc": (0.8, 0.8)},
        groups=compare_groups(candidate, champion, labels, frame[dataset.sensitive]),
        differential=(
            check_differential(candidate, champion, frame, dataset, gate.differential, "test rows"),
        ),
    )
    return evaluation, decide_gate(evaluation, gate, 1.0, comparison, test_rows="test set (6,000 rows)")


def test_the_gate_facet_carries_every_new_line_and_matches_its_schema(
    adult_settings, adult_test_rows
) -> None:
    # given a decision with per-group, differential, waived small-group lines
    _, decision = _decision(adult_settings, adult_test_rows)
    # when turned into the lineage facet
    facet = Serde.to_dict(gate_facet(decision)["guardflow_gate"])
    # then it validates against the facet schema and holds every line with its status, detail and rows
    spec = load_spec()
    schema = {
        "$ref": "https://guardflow.dev/spec/facets/1-0-0/GuardflowGateRunFacet.json#/$defs/GuardflowGateRunFacet"
    }
    errors = [error.message for error in spec.validator(schema).iter_errors(facet)]
    assert not errors, errors
    lines = {line["name"]: line for line in facet["lines"]}
    assert len(lines) == len(decision.lines), "every line reaches the facet"
    assert lines["differential[test rows]"]["status"] == "FAIL", lines["differential[test rows]"]
    assert "relationship=Wife" in lines["differential[test rows]"]["detail"], "the slice is named"
    assert lines["no_regression[race=Black, selection_rate]"]["judgedOn"] == "test set (6,000 rows)", (
        "a group line names the test rows it was judged on"
    )
    assert lines["min_group_size[race=Other]"]["status"] == "WAIVED", "small groups are waived, not dropped"
    assert lines["differential[training rows]"]["waived"] == "training rows not scored", (
        "a check not run says so"
    )


def test_the_card_lists_small_groups_and_every_line(adult_settings, adult_test_rows) -> None:
    # given the same decision / when the model card is rendered
    evaluation, decision = _decision(adult_settings, adult_test_rows)
    card = render_model_card(adult_settings, "0" * 64, ROWS, {}, PRIVACY, evaluation, decision)
    # then the small groups are listed with their sizes, and each new line appears with its verdict
    assert "Groups too small to judge" in card and "race Other: tpr on" in card, "small groups are reported"
    assert "- FAIL differential[test rows]" in card, "the differential line is in the card"
    assert "- FAIL no_regression[race=Black, tpr]" in card, "the harmed group is named in the card"
    assert "- WAIVED min_group_size[race=Amer-Indian-Eskimo]" in card, "waived lines are in the card"
    assert "REJECTED" in card, "the verdict follows the failed lines"


# --- the gate ---


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
        "eo_difference[sex]",
        "epsilon",
        "no_regression[accuracy]",
        "no_regression[roc_auc]",
        *(
            f"no_regression[sex={group}, {rate}{rows}]"
            for rows in ("", ", reference rows")
            for group in ("Female", "Male")
            for rate in ("selection_rate", "tpr", "fpr")
        ),
        "differential[training rows]",
        "differential[test rows]",
    ], "one line per policy figure"
    assert len(decision.reasons) == len(names), "a passed decision records every line"
    assert all(reason.startswith(("PASS", "WAIVED")) for reason in decision.reasons), "every line passes"
    assert "WAIVED no_regression[roc_auc] (no champion to compare to)" in decision.reasons, (
        "with no champion, the no-regression lines are waived and say why"
    )
    assert decision.reasons[-1] == "WAIVED differential[test rows] (no champion to compare to)", (
        "with no champion, the differential lines are waived and say why"
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


def test_a_drift_window_gets_its_own_differential_line(adult_settings, adult_test_rows) -> None:
    # given a drift retrain's window on which the candidate pushed wives' predictions up by 0.4, and one where it
    # moved nothing
    frame, labels = adult_test_rows
    dataset, gate = adult_settings.dataset, adult_settings.gate
    champion = score_by_relationship(frame)
    moved = champion.copy()
    wives = (frame["relationship"] == "Wife").to_numpy()
    moved[wives] = np.clip(moved[wives] + 0.4, 0, 1)
    evaluation = evaluation_of(champion, labels, frame[dataset.sensitive])

    def window_of(candidate: np.ndarray) -> ChampionComparison:
        check = check_differential(candidate, champion, frame, dataset, gate.differential, WINDOW_ROWS)
        figures = {"accuracy": 0.8, "roc_auc": 0.8}
        return ChampionComparison(
            "4", figures, {"accuracy": (0.8, 0.8), "roc_auc": (0.8, 0.8)}, differential=(check,),
            judged_on="drift window (6,000 rows)",
        )  # fmt: skip

    # when the gate judges a retrain with each window
    lines = {
        name: {line.name: line for line in decide_gate(evaluation, gate, 1.0, None, window=window).lines}
        for name, window in (("moved", window_of(moved)), ("still", window_of(champion)))
    }
    # then the window's differential line fails the moved one, naming the slice, and passes the other
    failed = lines["moved"]["differential[window rows]"]
    assert failed.status == "FAIL" and "relationship=Wife" in (failed.detail or ""), failed.describe()
    assert lines["still"]["differential[window rows]"].status == "PASS", lines["still"][
        "differential[window rows]"
    ]
