"""The model card: what a reviewer reads before trusting a model version, in markdown."""

from __future__ import annotations

from guardflow.decide_gate import GateDecision
from guardflow.evaluate_safety import Evaluation
from guardflow.settings import Settings
from guardflow.train_private import PrivacyReport


def render_model_card(
    settings: Settings,
    data_sha256: str,
    rows: dict[str, int],
    per_detector: dict[str, int],
    privacy: PrivacyReport,
    evaluation: Evaluation,
    decision: GateDecision,
) -> str:
    """A markdown card: intended use, data, privacy, poisoning scan, evaluation, gate and limits."""
    dataset = settings.dataset
    verdict = "PASSED: promoted to champion" if decision.passed else "REJECTED: registered, not promoted"
    fairness_rows = "\n".join(
        f"| {group.attribute} | {name} | {group.rows[name]:,} | {group.accuracy[name]:.4f} | "
        f"{group.positive_rate[name]:.4f} |"
        for group in evaluation.fairness
        for name in group.accuracy
    )
    detectors = ", ".join(f"{name}: {count:,}" for name, count in per_detector.items()) or "none enabled"
    gate_rows = "\n".join(f"- {line.describe()}" for line in decision.lines)
    return f"""# Model card: {settings.registry.model_name}

## Intended use
Binary classifier predicting `{dataset.label.column}` = `{dataset.label.positive}` for dataset `{dataset.id}`,
for batch scoring and research. Not for decisions about individuals without human review.

## Data
- training file sha256 `{data_sha256}`
- rows in {rows["rows_in"]:,}; accepted {rows["rows_accepted"]:,}; quarantined {rows["rows_quarantined"]:,}
  (contract {rows["quarantined_by_contract"]:,}, poisoning scan {rows["quarantined_by_scan"]:,})
- features encoded from public bounds and category lists only (no statistics of the training rows)

## Privacy guarantee
(epsilon = {privacy.epsilon:.3f}, delta = {privacy.delta:g})-differential privacy for the training step, DP-SGD with
Poisson sampling (sample rate {privacy.sample_rate:.4f}, {privacy.steps} steps, noise multiplier
{privacy.noise_multiplier:.3f}, clipping norm {privacy.max_grad_norm:g}); accountant `{privacy.accountant}`
(RDP gives epsilon {privacy.epsilon_rdp:.3f}). The MLP saw {privacy.training_rows:,} rows; Platt scaling was fitted
with DP-SGD on {privacy.calibration_rows:,} other rows (epsilon {privacy.calibration_epsilon:.3f}); the rows are
disjoint, so by parallel composition the whole run is as private as the larger of the two.

## Poisoning scan
Rows flagged per detector: {detectors}.

## Evaluation (held-out, {evaluation.rows:,} rows)
| metric | value |
|---|---|
| accuracy | {evaluation.accuracy:.4f} |
| ROC AUC | {evaluation.roc_auc:.4f} |
| expected calibration error | {evaluation.ece:.4f} |
| membership-inference AUC (loss threshold) | {evaluation.membership.auc:.4f} |
| membership-inference TPR at 1% FPR | {evaluation.membership.tpr_at_1pct_fpr:.4f} |
| membership-inference TPR at 0.1% FPR | {evaluation.membership.tpr_at_01pct_fpr:.4f} |
| empirical epsilon lower bound (95%) | {evaluation.membership.epsilon_lower_bound:.3f} \
(claimed {privacy.epsilon:.3f}) |

| attribute | group | rows | accuracy | positive rate |
|---|---|---|---|---|
{fairness_rows}

## Gate: {verdict}
{gate_rows}

## Limitations
- The privacy guarantee covers the training step; the contract and poisoning scan look at the raw rows
  without DP, so which rows were kept is not itself private.
- Fairness figures are on the held-out file only and are point estimates without confidence intervals.
- Opacus runs without secure RNG (torchcsprng is not available here), which is fine for research use.
"""
