"""The model card: what a reviewer reads before trusting a model version, in markdown."""

from __future__ import annotations

import html
import re

from guardflow.evaluation.decide_gate import GateDecision
from guardflow.evaluation.evaluate_safety import Evaluation, Interval
from guardflow.privacy.train_private import PrivacyReport
from guardflow.settings import Settings


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
        f"| {group.attribute} | {name} | {group.rows[name]:,} | "
        f"{_with_interval(group.accuracy[name], group.intervals.get(f'accuracy:{name}'))} | "
        f"{group.positive_rate[name]:.4f} | "
        f"{_with_interval(group.true_positive_rate.get(name), group.intervals.get(f'tpr:{name}'))} | "
        f"{_with_interval(group.false_positive_rate.get(name), group.intervals.get(f'fpr:{name}'))} |"
        for group in evaluation.fairness
        for name in group.accuracy
    )
    difference_rows = "\n".join(
        f"| {group.attribute} | "
        f"{_with_interval(group.demographic_parity_difference, group.intervals.get('dp_difference'))} | "
        f"{_with_interval(group.equalized_odds_difference, group.intervals.get('eo_difference'))} | "
        f"{_percent(evaluation.counterfactual_flip_rate.get(group.attribute))} |"
        for group in evaluation.fairness
    )
    small_groups = [
        f"{group.attribute} {note}" for group in evaluation.fairness for note in group.small_groups()
    ]
    minimum = max((group.min_group_size for group in evaluation.fairness), default=0)
    small_text = (
        f"Groups too small to judge (a rate measured on fewer than {minimum} rows): "
        + "; ".join(small_groups)
        + ". They keep their figures above but are left out of the gaps, and their gate lines are WAIVED."
        if small_groups
        else f"Every group has at least {minimum} rows for each rate: none is left out of the gaps."
    )
    robustness = evaluation.robustness
    robustness_rows = (
        f"| none (clean rows) | - | {robustness.baseline_accuracy:.4f} |\n"
        + "\n".join(
            f"| {_PERTURBATIONS.get(p.kind, p.kind)} | {p.strength:.0%} | {p.accuracy:.4f} |"
            for p in robustness.perturbations
        )
        if robustness is not None
        else "| not measured | - | - |"
    )
    intervals = evaluation.intervals
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
Intervals are 95% percentile bootstrap intervals over the held-out rows.

| metric | value | 95% interval |
|---|---|---|
| accuracy | {evaluation.accuracy:.4f} | {_interval(intervals.get("accuracy"))} |
| ROC AUC | {evaluation.roc_auc:.4f} | {_interval(intervals.get("roc_auc"))} |
| expected calibration error | {evaluation.ece:.4f} | {_interval(intervals.get("ece"))} |
| membership-inference AUC (loss threshold) | {evaluation.membership.auc:.4f} | - |
| membership-inference TPR at 1% FPR | {evaluation.membership.tpr_at_1pct_fpr:.4f} | - |
| membership-inference TPR at 0.1% FPR | {evaluation.membership.tpr_at_01pct_fpr:.4f} | - |
| empirical epsilon lower bound (95%) | {evaluation.membership.epsilon_lower_bound:.3f} \
(claimed {privacy.epsilon:.3f}) | - |

![Reliability diagram](plots/calibration.png)

### Fairness per sensitive group
| attribute | group | rows | accuracy | positive rate | TPR | FPR |
|---|---|---|---|---|---|---|
{fairness_rows}

| attribute | demographic-parity difference | equalized-odds difference | counterfactual flip rate |
|---|---|---|---|
{difference_rows}

{small_text}

The counterfactual flip rate is the share of rows whose predicted class changes when only that attribute is set
to another of its listed categories.

![Accuracy, TPR and FPR per group](plots/groups.png)

### Robustness
| perturbation | strength | accuracy |
|---|---|---|
{robustness_rows}

![Accuracy under perturbed inputs](plots/robustness.png)

## Gate: {verdict}
Fairness gaps are judged on the favourable end of their 95% interval; against the champion, each group's TPR,
FPR and selection rate on the favourable end of the paired interval of candidate - champion, and the
differential lines on the slices (values and pairs of values) of the training and test rows whose predictions
moved far more than elsewhere.

{gate_rows}

## Limitations
- The privacy guarantee covers the training step; the contract and poisoning scan look at the raw rows
  without DP, so which rows were kept is not itself private.
- Fairness figures are on the held-out file only; small groups have wide intervals, read them before the
  point estimates.
- Opacus runs without secure RNG (torchcsprng is not available here), which is fine for research use.
"""


_PERTURBATIONS = {
    "numeric_noise": "Gaussian noise on numeric features (std as share of public range)",
    "category_swap": "categorical values swapped for another listed category (probability)",
}


def _interval(interval: Interval | None) -> str:
    return f"[{interval.low:.4f}, {interval.high:.4f}]" if interval is not None else "-"


def _with_interval(value: float | None, interval: Interval | None) -> str:
    if value is None or value != value:
        return "-"
    return f"{value:.4f} {_interval(interval)}" if interval is not None else f"{value:.4f}"


def _percent(value: float | None) -> str:
    return f"{value:.2%}" if value is not None else "-"


# --- HTML ---

_INLINE = re.compile(r"!\[([^\]]*)\]\(([^)]+)\)|\[([^\]]+)\]\(([^)]+)\)|`([^`]+)`|\*\*([^*]+)\*\*")
_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.45}"
    "table{border-collapse:collapse;margin:1rem 0}th,td{border:1px solid #ccc;padding:.25rem .6rem;"
    "text-align:left}th{background:#f3f3f3}code{background:#f3f3f3;padding:0 .2rem}img{max-width:100%}"
)


def _inline(text: str) -> str:
    """Escape text, then render images, links, inline code and bold (the inline markdown the card uses)."""
    parts: list[str] = []
    position = 0
    for match in _INLINE.finditer(text):
        parts.append(html.escape(text[position : match.start()]))
        image_alt, image_src, link_text, link_href, code, bold = match.groups()
        if image_src is not None:
            parts.append(f'<img src="{html.escape(image_src)}" alt="{html.escape(image_alt)}">')
        elif link_href is not None:
            parts.append(f'<a href="{html.escape(link_href)}">{html.escape(link_text)}</a>')
        elif code is not None:
            parts.append(f"<code>{html.escape(code)}</code>")
        else:
            parts.append(f"<strong>{html.escape(bold)}</strong>")
        position = match.end()
    parts.append(html.escape(text[position:]))
    return "".join(parts)


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def render_model_card_html(markdown_text: str) -> str:
    """A self-contained HTML page of the card: headings, paragraphs, lists, tables and (relative) images.

    A minimal converter for the markdown subset `render_model_card` writes, so the card needs no new dependency.
    """
    body: list[str] = []
    lines = markdown_text.splitlines()
    index = 0
    title = "Model card"
    while index < len(lines):
        line = lines[index]
        stripped = line.strip()
        if not stripped:
            index += 1
        elif heading := re.match(r"^(#{1,6})\s+(.*)$", stripped):
            level = len(heading.group(1))
            if level == 1:
                title = heading.group(2)
            body.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
            index += 1
        elif stripped.startswith("|"):
            rows: list[str] = []
            while index < len(lines) and lines[index].strip().startswith("|"):
                rows.append(lines[index])
                index += 1
            header, *rest = rows
            data = [row for row in rest if not re.fullmatch(r"[\s|:-]+", row)]
            table = ["<table>", "<thead><tr>"]
            table += [f"<th>{_inline(cell)}</th>" for cell in _cells(header)]
            table.append("</tr></thead><tbody>")
            for row in data:
                table.append("<tr>" + "".join(f"<td>{_inline(cell)}</td>" for cell in _cells(row)) + "</tr>")
            table.append("</tbody></table>")
            body.append("".join(table))
        elif stripped.startswith("- "):
            items: list[str] = []
            while index < len(lines) and lines[index].strip():
                current = lines[index]
                if current.strip().startswith("- "):
                    items.append(current.strip()[2:])
                elif items:  # an indented continuation of the previous item
                    items[-1] += " " + current.strip()
                else:
                    break
                index += 1
            body.append("<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in items) + "</ul>")
        else:
            paragraph: list[str] = []
            while (
                index < len(lines)
                and lines[index].strip()
                and not re.match(r"^(#{1,6}\s|\||- )", lines[index].strip())
            ):
                paragraph.append(lines[index].strip())
                index += 1
            body.append(f"<p>{_inline(' '.join(paragraph))}</p>")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
