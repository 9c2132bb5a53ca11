"""Evaluations the gate, card and metric tests share: a synthetic candidate and a real one on Adult's test file."""

from __future__ import annotations

from guardflow.evaluation.evaluate_safety import (
    Evaluation,
    GroupFairness,
    check_behaviour,
    evaluate_safety,
)
from guardflow.privacy.audit_membership import MembershipAudit
from tests.unit.evaluation.conftest import NO_LEAK, by_relationship


def candidate_evaluation(
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


def full_evaluation(adult_settings, adult_held_out) -> Evaluation:
    frame, labels = adult_held_out
    dataset = adult_settings.dataset
    evaluation = evaluate_safety(by_relationship(frame), labels, frame[dataset.sensitive], NO_LEAK)
    return check_behaviour(evaluation, by_relationship, frame, labels, dataset, seed=0)
