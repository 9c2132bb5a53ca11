"""The gate: policy as code. Each line compares one figure with its threshold; all must pass to promote.

Absolute lines hold every candidate to the policy's thresholds; the fairness gaps are judged on the favourable
end of their 95% intervals, over groups with at least `min_group_size` rows (smaller groups are listed, their
lines WAIVED). No-regression lines hold it to the current champion, evaluated on the same held-out rows: a
candidate fails only when even the favourable end of its 95% interval (for groups: of the paired interval of
candidate - champion) is worse than the champion by more than the policy's margin (single values would flag
noise); a drift retrain also gets them on its window (`no_regression_window`). The per-group lines are judged
twice: on the test rows, and on the champion's training rows with their trusted labels (`..., reference rows]`),
where small groups have more rows and the labels are not the candidate's. Every line says which rows it was
judged on (`judged_on`). The differential lines fail a candidate whose predictions moved far more in one
slice of its training or test rows than elsewhere. With no champion, the champion lines are WAIVED and say so;
the policy can also waive a line by name, with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from guardflow.evaluation.compare_champion import HIGHER_IS_BETTER_RATE, ChampionComparison, GroupChange
from guardflow.evaluation.differential import DifferentialCheck
from guardflow.evaluation.evaluate_safety import Evaluation
from guardflow.evaluation.fairness import MEASURED_ON, RATES, GroupFairness
from guardflow.evaluation.intervals import Interval
from guardflow.gate_settings import GateSettings

__all__ = ["ChampionComparison", "GateDecision", "GateLine", "decide_gate"]

NO_CHAMPION = "no champion to compare to"
DIFFERENTIAL_ROWS = ("training rows", "test rows")
WINDOW_ROWS = (
    "window rows"  # a drift retrain's window: its differential line, beside the training and test rows
)
REFERENCE_ROWS = "reference rows"  # the champion's training rows, with the labels it was trained on
NO_REFERENCE = "reference rows not scored (no trusted reference loaded)"
# A drift retrain learns a relationship that has moved since the champion's data was labelled: its old labels
# would count the adaptation as a regression. The retrain's no-regression lines are judged on the window.
RETRAIN_REFERENCE = "drift retrain: the champion's training labels predate the shift (judged on the window)"


@dataclass(frozen=True)
class GateLine:
    """One policy line with its figures: `value` must be `comparison` (>= or <=) `threshold`."""

    name: str
    value: float
    comparison: str
    threshold: float
    waived: str | None = None  # why the line does not count, when it does not
    detail: str | None = None  # what the value is made of: interval, slice, group sizes
    judged_on: str | None = None  # which rows the line was judged on, when not obvious

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
        detail = f"; {self.detail}" if self.detail else ""
        where = f" on {self.judged_on}" if self.judged_on else ""
        rule = f"(must be {self.comparison} {self.threshold:.4g}{detail})"
        return f"{self.status} {self.name} {self.value:.4f} {rule}{where}"


# Which way is better, for the metrics a no-regression line can name.
HIGHER_IS_BETTER = {"accuracy": True, "roc_auc": True, "ece": False}


# No-regression lines judged on a drift retrain's window (the batch's held-out rows), beside the test set's.
WINDOW_REGRESSION = "no_regression_window"


def _regression_lines(
    gate: GateSettings, comparison: ChampionComparison | None, prefix: str = "no_regression"
) -> list[GateLine]:
    lines = []
    for metric, margin in gate.max_regression.items():
        name = f"{prefix}[{metric}]"
        if comparison is None:
            lines.append(GateLine(name, 0.0, ">=", 0.0, waived=NO_CHAMPION))
            continue
        low, high = comparison.candidate_interval[metric]
        champion = comparison.champion[metric]
        where = comparison.judged_on
        if HIGHER_IS_BETTER[metric]:
            lines.append(GateLine(name, high, ">=", champion - margin, judged_on=where))
        else:
            lines.append(GateLine(name, low, "<=", champion + margin, judged_on=where))
    return lines


def _interval_text(interval: Interval | None) -> str:
    return (
        f"95% interval [{interval.low:.3f}, {interval.high:.3f}]" if interval is not None else "no interval"
    )


def _gap_line(
    name: str, point: float, interval: Interval | None, threshold: float, group: GroupFairness
) -> GateLine:
    """A fairness gap judged on the low (favourable) end of its interval; the point value without one."""
    judged = interval.low if interval is not None and interval.low == interval.low else point
    detail = f"point {point:.3f}, {_interval_text(interval)}, groups of >= {group.min_group_size} rows"
    return GateLine(name, judged, "<=", threshold, detail=detail, judged_on=None)


def _fairness_lines(evaluation: Evaluation, gate: GateSettings) -> list[GateLine]:
    lines = []
    for group in evaluation.fairness:
        lines.append(
            _gap_line(
                f"dp_difference[{group.attribute}]",
                group.demographic_parity_difference,
                group.intervals.get("dp_difference"),
                gate.max_demographic_parity_difference,
                group,
            )
        )
        if gate.max_equalized_odds_difference is not None:
            lines.append(
                _gap_line(
                    f"eo_difference[{group.attribute}]",
                    group.equalized_odds_difference,
                    group.intervals.get("eo_difference"),
                    gate.max_equalized_odds_difference,
                    group,
                )
            )
        for name in group.rows:
            small = [rate for rate in RATES if not group.judged(rate, name)]
            if small:
                sizes = ", ".join(
                    f"{rate} on {group.measured_rows(rate, name)} {MEASURED_ON[rate]}" for rate in small
                )
                lines.append(
                    GateLine(
                        f"min_group_size[{group.attribute}={name}]",
                        float(min(group.measured_rows(rate, name) for rate in small)),
                        ">=",
                        float(group.min_group_size),
                        waived=f"too few to judge: {sizes} < {group.min_group_size}; "
                        f"left out of the gaps of {group.attribute}",
                    )
                )
    return lines


def _group_line_name(attribute: str, group: str, rate: str, rows: str | None) -> str:
    return f"no_regression[{attribute}={group}, {rate}{f', {rows}' if rows else ''}]"


def _group_line(
    change: GroupChange,
    margin: float,
    min_group_size: int,
    rows: str | None = None,
    judged_on: str | None = None,
) -> GateLine:
    name = _group_line_name(change.attribute, change.group, change.rate, rows)
    if change.measured_on < min_group_size:
        reason = f"too few to judge: {change.measured_on} {MEASURED_ON[change.rate]} < {min_group_size}"
        return GateLine(name, 0.0, ">=", 0.0, waived=reason, judged_on=judged_on)
    detail = (
        f"candidate {change.candidate:.3f}, champion {change.champion:.3f}, difference "
        f"{_interval_text(change.difference)} on {change.measured_on:,} {MEASURED_ON[change.rate]}"
    )
    if HIGHER_IS_BETTER_RATE[change.rate]:
        return GateLine(name, change.favourable_end, ">=", -margin, detail=detail, judged_on=judged_on)
    return GateLine(name, change.favourable_end, "<=", margin, detail=detail, judged_on=judged_on)


def _group_regression_lines(
    evaluation: Evaluation, gate: GateSettings, comparison: ChampionComparison | None, retrain: bool = False
) -> list[GateLine]:
    """Every group's lines on the test rows, then on the reference rows (the champion's training data; waived
    on a drift retrain, whose window has no-regression lines of its own)."""
    rates = [rate for rate in RATES if rate in gate.max_group_regression]
    if comparison is None:
        return [
            GateLine(_group_line_name(group.attribute, name, rate, rows), 0.0, ">=", 0.0, waived=NO_CHAMPION,
                     judged_on=REFERENCE_ROWS if rows else None)
            for rows in (None, REFERENCE_ROWS)
            for group in evaluation.fairness
            for name in group.rows
            for rate in rates
        ]  # fmt: skip
    lines = [
        _group_line(change, gate.max_group_regression[change.rate], gate.min_group_size)
        for change in comparison.groups
        if change.rate in rates
    ]
    if comparison.reference_groups is None or retrain:
        reason = RETRAIN_REFERENCE if retrain else NO_REFERENCE
        return lines + [
            GateLine(_group_line_name(group.attribute, name, rate, REFERENCE_ROWS), 0.0, ">=", 0.0,
                     waived=reason, judged_on=REFERENCE_ROWS)
            for group in evaluation.fairness
            for name in group.rows
            for rate in rates
        ]  # fmt: skip
    judged_on = f"the champion's training rows ({comparison.reference_rows:,}, their recorded labels)"
    return lines + [
        _group_line(
            change, gate.max_group_regression[change.rate], gate.min_group_size, REFERENCE_ROWS, judged_on
        )
        for change in comparison.reference_groups
        if change.rate in rates
    ]


def _differential_line(judged_on: str, check: DifferentialCheck | None, gate: GateSettings) -> GateLine:
    name = f"differential[{judged_on}]"
    if check is None:
        return GateLine(name, 0.0, "<=", 0.0, waived=NO_CHAMPION, judged_on=judged_on)
    limit = (
        gate.differential.max_label_fit_gain
        if check.aligned_with_labels
        else gate.differential.max_slice_move
    )
    tested = f"{check.slices_tested:,} slices of >= {gate.differential.min_slice_size} rows tested"
    if check.aligned_with_labels:
        tested += ", moves towards each row's training label"
    worst = check.worst
    if worst is None:
        strongest = f"; strongest {check.strongest.describe()}" if check.strongest else ""
        return GateLine(
            name, 0.0, "<=", limit, detail=f"no slice stands out, {tested}{strongest}", judged_on=judged_on
        )
    return GateLine(
        name, abs(worst.move), "<=", limit, detail=f"slice {worst.describe()}, {tested}", judged_on=judged_on
    )


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
    lines += _fairness_lines(evaluation, gate)
    if gate.max_epsilon is not None:
        lines.append(
            GateLine("epsilon", claimed_epsilon, "<=", gate.max_epsilon, judged_on="the privacy accountant")
        )
    lines += _regression_lines(gate, comparison)
    if window is not None:
        lines += _regression_lines(gate, window, WINDOW_REGRESSION)
        lines += [_differential_line(WINDOW_ROWS, check, gate) for check in window.differential]
    lines += _group_regression_lines(evaluation, gate, comparison, retrain=window is not None)
    checks = {check.judged_on: check for check in comparison.differential} if comparison else {}
    for judged_on in DIFFERENTIAL_ROWS:
        if comparison is not None and judged_on not in checks:
            lines.append(
                GateLine(
                    f"differential[{judged_on}]",
                    0.0,
                    "<=",
                    0.0,
                    waived=f"{judged_on} not scored",
                    judged_on=judged_on,
                )
            )
        else:
            lines.append(_differential_line(judged_on, checks.get(judged_on), gate))
    lines = [replace(line, judged_on=line.judged_on or test_rows) for line in lines]
    lines = [
        replace(line, waived=gate.waivers[line.name]) if line.name in gate.waivers else line for line in lines
    ]
    return GateDecision(tuple(lines), compared_to=comparison.champion_version if comparison else None)
