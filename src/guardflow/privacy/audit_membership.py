"""Membership-inference audit: can an attacker tell training rows from unseen rows by the model's loss?

A loss-threshold attack (Yeom et al. 2018) scores each row by its negative loss, over an equal number of members
(training rows) and non-members (held-out rows). It reports the attack's ROC AUC (0.5 is no leak), its true-positive
rate at 1% and 0.1% false-positive rate, and an empirical epsilon lower bound: (epsilon, delta)-DP forces
TPR <= e^epsilon * FPR + delta at every threshold, so a threshold where the attack beats that line proves the model
leaks at least that much. The threshold is chosen on one half of the rows and the bound is computed on the other
half with Clopper-Pearson intervals (95%), so the bound is not flattered by the choice.

Beside it, the one-run audit of Steinke, Nasr and Jagielski (2023, "Privacy auditing with one (1) training run"):
over m rows each in or out of training with probability 1/2, the attacker guesses "in" for the k highest scores
and "out" for the k lowest; under (epsilon, delta)-DP the number of correct guesses is dominated by a binomial
with success rate e^epsilon / (1 + e^epsilon), plus a delta term (their Appendix D), which gives a 95% lower
bound on epsilon from a single training run. Members and non-members come from one pool (the audit split), so
both bounds measure membership, not a shift between populations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import beta, binom
from sklearn.metrics import roc_auc_score, roc_curve

CONFIDENCE = 0.95


@dataclass(frozen=True)
class MembershipAudit:
    """The attack's AUC, its true-positive rates at low false-positive rates, and the epsilon it proves."""

    auc: float
    tpr_at_1pct_fpr: float
    tpr_at_01pct_fpr: float
    epsilon_lower_bound: float
    rows_per_side: int
    # The one-run audit's 95% lower bound (Steinke et al. 2023) on the same rows; None when not computed.
    one_run_epsilon_lower_bound: float | None = None


def _log_loss_per_row(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    clipped = np.clip(probabilities, 1e-7, 1 - 1e-7)
    return -(labels * np.log(clipped) + (1 - labels) * np.log(1 - clipped))


def _clopper_pearson(successes: np.ndarray, trials: int, upper: bool) -> np.ndarray:
    """One-sided Clopper-Pearson bound on a rate, at `CONFIDENCE`."""
    alpha = 1.0 - CONFIDENCE
    if upper:
        return np.where(successes >= trials, 1.0, beta.ppf(1 - alpha, successes + 1, trials - successes))
    return np.where(successes <= 0, 0.0, beta.ppf(alpha, successes, trials - successes + 1))


def _epsilon_at(
    member_scores: np.ndarray, nonmember_scores: np.ndarray, thresholds: np.ndarray, delta: float
) -> tuple[np.ndarray, np.ndarray]:
    """Point and lower-bound epsilon for 'score >= threshold means member', for each threshold."""
    members, nonmembers = len(member_scores), len(nonmember_scores)
    true_positives = (member_scores[None, :] >= thresholds[:, None]).sum(axis=1)
    false_positives = (nonmember_scores[None, :] >= thresholds[:, None]).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        point = np.log(np.maximum(true_positives / members - delta, 0) / (false_positives / nonmembers))
        tpr_low = _clopper_pearson(true_positives, members, upper=False)
        fpr_high = _clopper_pearson(false_positives, nonmembers, upper=True)
        bound = np.log(np.maximum(tpr_low - delta, 0) / fpr_high)
    return np.nan_to_num(point, nan=0.0, posinf=0.0, neginf=0.0), np.nan_to_num(bound, nan=0.0, neginf=0.0)


def empirical_epsilon_lower_bound(
    member_scores: np.ndarray, nonmember_scores: np.ndarray, delta: float, seed: int = 0
) -> float:
    """Epsilon that the attack proves with 95% confidence (0 when it proves nothing)."""
    generator = np.random.default_rng(seed)
    members, nonmembers = generator.permutation(member_scores), generator.permutation(nonmember_scores)
    half_members, half_nonmembers = len(members) // 2, len(nonmembers) // 2
    thresholds = np.unique(np.quantile(members[:half_members], np.linspace(0.0, 0.999, 400)))
    point, _ = _epsilon_at(members[:half_members], nonmembers[:half_nonmembers], thresholds, delta)
    chosen = thresholds[[int(np.argmax(point))]]
    _, bound = _epsilon_at(members[half_members:], nonmembers[half_nonmembers:], chosen, delta)
    return float(max(bound[0], 0.0))


# Guesses per side of the one-run audit, as shares of the rows; fixed in advance and paid for with Bonferroni.
ONE_RUN_GUESS_SHARES = (0.01, 0.05, 0.1, 0.25)


def _one_run_p_value(rows: int, guesses: int, correct: int, epsilon: float, delta: float) -> float:
    """P[at least `correct` of `guesses` right] under (epsilon, delta)-DP (Steinke et al. 2023, Appendix D)."""
    rate = 1.0 / (1.0 + math.exp(-epsilon))
    tail = float(binom.sf(correct - 1, guesses, rate))
    # alpha = max over i of P[correct > Binomial >= correct - i] / i, the price of delta.
    below = np.cumsum(binom.pmf(np.arange(correct - 1, -1, -1), guesses, rate))
    alpha = float(np.max(below / np.arange(1, correct + 1))) if correct > 0 else 0.0
    return min(1.0, tail + alpha * delta * 2 * rows)


def one_run_epsilon_lower_bound(
    member_scores: np.ndarray, nonmember_scores: np.ndarray, delta: float, confidence: float = CONFIDENCE
) -> float:
    """The epsilon that guessing the top and bottom scores proves, at `confidence`, over equal numbers of
    members and non-members (a balanced sample stands in for the paper's independent coin per row)."""
    scores = np.concatenate([member_scores, nonmember_scores])
    is_member = np.concatenate([np.ones(len(member_scores), bool), np.zeros(len(nonmember_scores), bool)])
    order = np.argsort(-scores, kind="stable")
    rows, level = len(scores), (1.0 - confidence) / len(ONE_RUN_GUESS_SHARES)
    best = 0.0
    for share in ONE_RUN_GUESS_SHARES:
        side = max(1, int(share * rows))
        correct = int(is_member[order[:side]].sum() + (~is_member[order[-side:]]).sum())
        low, high = 0.0, 20.0  # bisect for the largest epsilon the guesses still reject
        if _one_run_p_value(rows, 2 * side, correct, low, delta) >= level:
            continue
        for _ in range(40):
            middle = (low + high) / 2
            if _one_run_p_value(rows, 2 * side, correct, middle, delta) < level:
                low = middle
            else:
                high = middle
        best = max(best, low)
    return best


def audit_membership(
    member_probabilities: np.ndarray,
    member_labels: np.ndarray,
    nonmember_probabilities: np.ndarray,
    nonmember_labels: np.ndarray,
    delta: float = 1e-5,
    seed: int = 0,
) -> MembershipAudit:
    """Run the loss-threshold attack on a balanced sample of members and non-members."""
    rows = min(len(member_labels), len(nonmember_labels))
    generator = np.random.default_rng(seed)
    members = generator.choice(len(member_labels), size=rows, replace=False)
    nonmembers = generator.choice(len(nonmember_labels), size=rows, replace=False)
    member_scores = -_log_loss_per_row(member_probabilities[members], member_labels[members])
    nonmember_scores = -_log_loss_per_row(nonmember_probabilities[nonmembers], nonmember_labels[nonmembers])
    is_member = np.concatenate([np.ones(rows), np.zeros(rows)])
    attack_score = np.concatenate([member_scores, nonmember_scores])
    false_positive_rate, true_positive_rate, _ = roc_curve(is_member, attack_score)
    return MembershipAudit(
        auc=float(roc_auc_score(is_member, attack_score)),
        tpr_at_1pct_fpr=float(np.interp(0.01, false_positive_rate, true_positive_rate)),
        tpr_at_01pct_fpr=float(np.interp(0.001, false_positive_rate, true_positive_rate)),
        epsilon_lower_bound=empirical_epsilon_lower_bound(member_scores, nonmember_scores, delta, seed),
        rows_per_side=rows,
        one_run_epsilon_lower_bound=one_run_epsilon_lower_bound(member_scores, nonmember_scores, delta),
    )
