"""Membership-inference audit: can an attacker tell training rows from unseen rows by the model's loss?

A loss-threshold attack (Yeom et al. 2018): score each row by its negative loss; the attack's ROC AUC over
an equal number of members (training rows) and non-members (held-out rows) measures the leak. 0.5 is no leak.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve


@dataclass(frozen=True)
class MembershipAudit:
    """The attack's AUC and its true-positive rates at low false-positive rates."""

    auc: float
    tpr_at_1pct_fpr: float
    rows_per_side: int


def _log_loss_per_row(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    clipped = np.clip(probabilities, 1e-7, 1 - 1e-7)
    return -(labels * np.log(clipped) + (1 - labels) * np.log(1 - clipped))


def audit_membership(
    member_probabilities: np.ndarray,
    member_labels: np.ndarray,
    nonmember_probabilities: np.ndarray,
    nonmember_labels: np.ndarray,
    seed: int = 0,
) -> MembershipAudit:
    """Run the loss-threshold attack on a balanced sample of members and non-members."""
    rows = min(len(member_labels), len(nonmember_labels))
    generator = np.random.default_rng(seed)
    members = generator.choice(len(member_labels), size=rows, replace=False)
    nonmembers = generator.choice(len(nonmember_labels), size=rows, replace=False)
    member_loss = _log_loss_per_row(member_probabilities[members], member_labels[members])
    nonmember_loss = _log_loss_per_row(nonmember_probabilities[nonmembers], nonmember_labels[nonmembers])
    is_member = np.concatenate([np.ones(rows), np.zeros(rows)])
    attack_score = -np.concatenate([member_loss, nonmember_loss])
    false_positive_rate, true_positive_rate, _ = roc_curve(is_member, attack_score)
    return MembershipAudit(
        auc=float(roc_auc_score(is_member, attack_score)),
        tpr_at_1pct_fpr=float(np.interp(0.01, false_positive_rate, true_positive_rate)),
        rows_per_side=rows,
    )
