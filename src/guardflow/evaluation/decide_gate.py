"""The gate: policy as code. Each line compares one figure with its threshold; all must pass to promote.

Absolute lines hold every candidate to the policy's thresholds. No-regression lines hold it to the current
champion, evaluated on the same held-out rows: a candidate fails only when even the favourable end of its 95%
confidence interval is worse than the champion by more than the policy's margin (single values would flag noise).
With no champion, those lines are WAIVED and say so; the policy can also waive a line by name, with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from guardflow.evaluation.evaluate_safety import Evaluation
from guardflow.settings import GateSettings


@dataclass(frozen=True)
class GateLine:
    """One policy line with its figures: `value` must be `comparison` (>= or <=) `threshold`."""

    name: str
    value: float
    comparison: str
    threshold: float
    waived: str | None = None  # why the line does not count, when it does not
    # Which rows the figure was measured on (the test set, a drift window, the audit split).
    judged_on: str | None = None

    @property
    def status(self) -> str:
        if self.waived is not None:
            return "WAIVED"
        met = self.value >= self.threshold if self.comparison == ">=" else self.value <= self.threshold
        return "PASS" if met else "FAIL"

    @property
    def passed(self) -> bool:
        return self.status != "FAIL"

    def describe(self) -> str:
        if self.waived is not None:
            return f"WAIVED {self.name} ({self.waived})"
        where = f" on {self.judged_on}" if self.judged_on else ""
        rule = f"(must be {self.comparison} {self.threshold:.4g})"
        return f"{self.status} {self.name} {self.value:.4f} {rule}{where}"


# Which way is better, for the metrics a no-regression line can name.
HIGHER_IS_BETTER = {"accuracy": True, "roc_auc": True, "ece": False}


@dataclass(frozen=True)
class ChampionComparison:
    """The champion's figures on the candidate's held-out rows, and the candidate's 95% intervals."""

    champion_version: str
    champion: dict[str, float]
    candidate_interval: dict[str, tuple[float, float]]
    judged_on: str | None = None  # the rows both were scored on, when not the test set


# No-regression lines judged on a drift retrain's window (the batch's held-out rows), beside the test set's.
WINDOW_REGRESSION = "no_regression_window"


def _regression_lines(
    gate: GateSettings, comparison: ChampionComparison | None, prefix: str = "no_regression"
) -> list[GateLine]:
    lines = []
    for metric, margin in gate.max_regression.items():
        name = f"{prefix}[{metric}]"
        if comparison is None:
            lines.append(GateLine(name, 0.0, ">=", 0.0, waived="no champion to compare to"))
            continue
        low, high = comparison.candidate_interval[metric]
        champion = comparison.champion[metric]
        where = comparison.judged_on
        if HIGHER_IS_BETTER[metric]:
            lines.append(GateLine(name, high, ">=", champion - margin, judged_on=where))
        else:
            lines.append(GateLine(name, low, "<=", champion + margin, judged_on=where))
    return lines


@dataclass(frozen=True)
class GateDecision:
    """The verdict on a candidate and every line behind it, and the champion it was compared with."""

    lines: tuple[GateLine, ...]
    compared_to: str | None = None

    @property
    def passed(self) -> bool:
        return all(line.passed for line in self.lines)

    @property
    def reasons(self) -> list[str]:
        """The failed lines, or every line when the candidate passed (so the record says why either way)."""
        failed = [line.describe() for line in self.lines if not line.passed]
        return failed or [line.describe() for line in self.lines]


def decide_gate(
    evaluation: Evaluation,
    gate: GateSettings,
    claimed_epsilon: float,
    comparison: ChampionComparison | None = None,
    window: ChampionComparison | None = None,
    test_rows: str | None = None,
) -> GateDecision:
    """Judge a candidate against the policy's absolute thresholds and, when there is one, the champion.

    The empirical epsilon the membership audit proves must not exceed the epsilon the model claims: if it did,
    the privacy claim on the model card would be false. `window`: the champion on a drift retrain's window,
    for a second set of no-regression lines; `test_rows` names the rows the other figures were measured on.
    """
    side = evaluation.membership.rows_per_side
    audited = f"{side:,} trained rows vs {side:,} audit-split rows"
    lines = [
        GateLine("accuracy", evaluation.accuracy, ">=", gate.min_accuracy),
        GateLine("roc_auc", evaluation.roc_auc, ">=", gate.min_roc_auc),
        GateLine("ece", evaluation.ece, "<=", gate.max_ece),
        GateLine("mia_auc", evaluation.membership.auc, "<=", gate.max_mia_auc, judged_on=audited),
        GateLine(
            "mia_epsilon_lower_bound",
            evaluation.membership.epsilon_lower_bound,
            "<=",
            claimed_epsilon,
            judged_on=audited,
        ),
    ]
    lines += [
        GateLine(
            f"dp_difference[{group.attribute}]",
            group.demographic_parity_difference,
            "<=",
            gate.max_demographic_parity_difference,
        )
        for group in evaluation.fairness
    ]
    if gate.max_epsilon is not None:
        lines.append(
            GateLine("epsilon", claimed_epsilon, "<=", gate.max_epsilon, judged_on="the privacy accountant")
        )
    lines += _regression_lines(gate, comparison)
    if window is not None:
        lines += _regression_lines(gate, window, WINDOW_REGRESSION)
    lines = [replace(line, judged_on=line.judged_on or test_rows) for line in lines]
    lines = [
        replace(line, waived=gate.waivers[line.name]) if line.name in gate.waivers else line for line in lines
    ]
    return GateDecision(tuple(lines), compared_to=comparison.champion_version if comparison else None)
