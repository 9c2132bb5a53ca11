"""One rule for a drift retrain, whichever path runs it (in-process `guardflow drift` or a server's
`drift-retrain`): the same seeded window of the batch is held out, and the candidate is judged the same way.

- Absolute lines (accuracy, ROC AUC, ECE, fairness) on the configured stable test set: the population the
  thresholds were set for. On a shifted window no retrain could be held to them (a harder subpopulation).
- No-regression lines, candidate against champion, on the stable test set and on the window (the batch's
  held-out rows): the retrain must not be worse where the model was, nor where the data went.
- The membership audit on the training pool's audit split (privacy/train_private.split_for_audit).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from guardflow.evaluation.decide_gate import ChampionComparison
from guardflow.evaluation.evaluate_safety import champion_figures, evaluate_safety
from guardflow.privacy.audit_membership import MembershipAudit


@dataclass(frozen=True)
class WindowSplit:
    """A drifted batch's rows to train on (`kept`) and its held-out window, both in the batch's row order."""

    kept: pd.DataFrame
    window: pd.DataFrame


def split_window(rows: pd.DataFrame, fraction: float, seed: int) -> WindowSplit:
    """Hold out a seeded `fraction` (at least one row) of the batch's parsed rows as the window.

    Both paths call this with the model seed, so the same batch and seed give the same window.
    """
    order = np.random.default_rng(seed).permutation(len(rows))
    cut = max(1, round(fraction * len(rows)))
    return WindowSplit(kept=rows.iloc[np.sort(order[cut:])], window=rows.iloc[np.sort(order[:cut])])


@dataclass(frozen=True)
class WindowJudgement:
    """Candidate and champion on the window: point figures of both, and the comparison the gate's
    `no_regression_window` lines are built from (None when there is no champion)."""

    judged_on: str
    rows: int
    candidate: dict[str, float]
    champion: dict[str, float] | None
    comparison: ChampionComparison | None


def judge_window(
    candidate_probabilities: np.ndarray,
    champion_probabilities: np.ndarray | None,
    labels: np.ndarray,
    *,
    champion_version: str | None,
    metrics: list[str],
    judged_on: str,
    membership: MembershipAudit,
    seed: int,
) -> WindowJudgement:
    """Score both models on the window's labelled rows; the candidate's 95% bootstrap intervals for `metrics`
    are what the no-regression lines hold against the champion's point figures, as on the test set."""
    candidate = evaluate_safety(
        candidate_probabilities, labels, pd.DataFrame(index=range(len(labels))), membership, seed=seed
    )
    figures = {"accuracy": candidate.accuracy, "roc_auc": candidate.roc_auc, "ece": candidate.ece}
    if champion_probabilities is None or champion_version is None:
        return WindowJudgement(judged_on, len(labels), figures, None, None)
    champion = champion_figures(champion_probabilities, labels)
    comparison = ChampionComparison(
        champion_version=champion_version,
        champion=champion,
        candidate_interval={
            metric: (candidate.intervals[metric].low, candidate.intervals[metric].high) for metric in metrics
        },
        judged_on=judged_on,
    )
    return WindowJudgement(judged_on, len(labels), figures, champion, comparison)
