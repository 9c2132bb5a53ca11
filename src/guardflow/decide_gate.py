"""The gate: policy as code. Each line compares one figure with its threshold; all must pass to promote."""

from __future__ import annotations

from dataclasses import dataclass

from guardflow.evaluate_safety import Evaluation
from guardflow.settings import GateSettings


@dataclass(frozen=True)
class GateLine:
    """One policy line with its figures: `value` must be `comparison` (>= or <=) `threshold`."""

    name: str
    value: float
    comparison: str
    threshold: float

    @property
    def passed(self) -> bool:
        return self.value >= self.threshold if self.comparison == ">=" else self.value <= self.threshold

    def describe(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        return f"{verdict} {self.name} {self.value:.4f} (must be {self.comparison} {self.threshold:g})"


@dataclass(frozen=True)
class GateDecision:
    """The verdict on a candidate and every line behind it."""

    lines: tuple[GateLine, ...]

    @property
    def passed(self) -> bool:
        return all(line.passed for line in self.lines)

    @property
    def reasons(self) -> list[str]:
        """The failed lines, or every line when the candidate passed (so the record says why either way)."""
        failed = [line.describe() for line in self.lines if not line.passed]
        return failed or [line.describe() for line in self.lines]


def decide_gate(evaluation: Evaluation, gate: GateSettings, claimed_epsilon: float) -> GateDecision:
    """Judge a candidate's evaluation against the absolute thresholds of the policy.

    The empirical epsilon the membership audit proves must not exceed the epsilon the model claims: if it did,
    the privacy claim on the model card would be false.
    """
    lines = [
        GateLine("accuracy", evaluation.accuracy, ">=", gate.min_accuracy),
        GateLine("roc_auc", evaluation.roc_auc, ">=", gate.min_roc_auc),
        GateLine("ece", evaluation.ece, "<=", gate.max_ece),
        GateLine("mia_auc", evaluation.membership.auc, "<=", gate.max_mia_auc),
        GateLine("mia_epsilon_lower_bound", evaluation.membership.epsilon_lower_bound, "<=", claimed_epsilon),
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
    return GateDecision(tuple(lines))
