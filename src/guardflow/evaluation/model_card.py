"""The model card: what a reviewer reads before trusting a model version, in markdown and as an HTML page.

The card's text is the Jinja2 template `evaluation/templates/model_card.md.j2`; it lists whatever gate lines the
decision holds. The page is that markdown rendered by Python-Markdown inside `model_card.html.j2`.
"""

from __future__ import annotations

import markdown
from markupsafe import Markup

from guardflow.evaluation.decide_gate import GateDecision
from guardflow.evaluation.evaluate_safety import Evaluation, Interval
from guardflow.privacy.train_private import PrivacyReport
from guardflow.settings import Settings
from guardflow.templating import render_template


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
    return render_template(
        "guardflow.evaluation",
        "model_card.md.j2",
        settings=settings,
        dataset=settings.dataset,
        data_sha256=data_sha256,
        rows=rows,
        privacy=privacy,
        evaluation=evaluation,
        intervals=evaluation.intervals,
        decision=decision,
        verdict="PASSED: promoted to champion" if decision.passed else "REJECTED: registered, not promoted",
        detectors=", ".join(f"{name}: {count:,}" for name, count in per_detector.items()) or "none enabled",
        perturbations=_PERTURBATIONS,
        interval=_interval,
        with_interval=_with_interval,
        percent=_percent,
        small_text=small_text,
    )


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


def render_model_card_html(markdown_text: str) -> str:
    """A self-contained HTML page of the card: its markdown (tables included) rendered by Python-Markdown.

    Raw HTML in the markdown is not passed through: every text of the card is escaped, whatever the data said.
    """
    converter = markdown.Markdown(extensions=["tables"], output_format="html")
    converter.preprocessors.deregister("html_block")
    converter.inlinePatterns.deregister("html")
    first = markdown_text.lstrip().splitlines()[:1]
    title = first[0].removeprefix("# ") if first and first[0].startswith("# ") else "Model card"
    # Safe to mark as markup: Python-Markdown escaped every text, and raw HTML is off (the two deregisters).
    body = Markup(converter.convert(markdown_text))
    return render_template("guardflow.evaluation", "model_card.html.j2", title=title, body=body)
