"""The model card: the markdown a reviewer reads, and the HTML page made from it."""

from __future__ import annotations

import re
from dataclasses import replace

from guardflow.evaluation.decide_gate import GateLine, decide_gate
from guardflow.evaluation.model_card import render_model_card, render_model_card_html
from guardflow.privacy.train_private import PrivacyReport
from tests.unit.evaluation.cases import full_evaluation

PRIVACY = PrivacyReport(
    epsilon=1.0,
    delta=1e-5,
    accountant="prv",
    epsilon_rdp=1.2,
    noise_multiplier=1.0,
    max_grad_norm=1.0,
    sample_rate=0.01,
    steps=100,
    epochs=5,
    empty_batches=0,
    training_rows=900,
    calibration_rows=100,
    calibration_epsilon=0.9,
)
ROWS = {
    "rows_in": 1000,
    "rows_accepted": 990,
    "rows_quarantined": 10,
    "quarantined_by_contract": 6,
    "quarantined_by_scan": 4,
}


def test_html_card_holds_the_tables_and_plot_links(adult_settings, adult_held_out) -> None:
    # given a card for a full evaluation
    evaluation = full_evaluation(adult_settings, adult_held_out)
    decision = decide_gate(evaluation, adult_settings.gate, 1.0)
    card = render_model_card(adult_settings, "0" * 64, ROWS, {"outliers": 4}, PRIVACY, evaluation, decision)
    # when rendered as HTML
    page = render_model_card_html(card)
    # then every markdown table became an HTML table and the plots are linked relatively
    assert "| accuracy |" in card and "equalized-odds difference" in card, "the markdown carries the figures"
    separators = [line for line in card.splitlines() if line.startswith("|---")]
    assert page.count("<table>") == len(separators) == 4, "metrics, groups, differences, robustness"
    assert "<th>TPR</th>" in page and "<th>equalized-odds difference</th>" in page, "fairness columns"
    for name in ("calibration", "groups", "robustness"):
        assert re.search(f'<img [^>]*src="plots/{name}.png"', page), f"{name} plot is linked relatively"
    assert "<h1>Model card: guardflow-adult</h1>" in page and "<li>" in page, "headings and lists"
    assert "&gt;= 0.84" in page, "text is escaped"


def test_the_card_lists_every_line_the_decision_holds(adult_settings, adult_held_out) -> None:
    # given a decision with one more line than the policy has today (a line another stage may add)
    evaluation = full_evaluation(adult_settings, adult_held_out)
    decision = decide_gate(evaluation, adult_settings.gate, 1.0)
    extra = GateLine("backdoor_attack_success", 0.31, "<=", 0.05)
    decision = replace(decision, lines=(*decision.lines, extra))
    # when the card is written
    card = render_model_card(adult_settings, "0" * 64, ROWS, {"outliers": 4}, PRIVACY, evaluation, decision)
    # then the gate section holds one item per line, in order, the new one included, and the verdict
    gate_section = card.split("## Gate: ", 1)[1].split("\n## ", 1)[0]
    items = [line[2:] for line in gate_section.splitlines() if line.startswith("- ")]
    assert items == [line.describe() for line in decision.lines], f"gate items: {items}"
    assert items[-1].startswith("FAIL backdoor_attack_success"), f"the added line is a FAIL: {items[-1]}"
    assert gate_section.startswith("REJECTED: registered, not promoted"), gate_section.splitlines()[0]


def test_raw_html_in_the_markdown_is_shown_as_text_not_run() -> None:
    # given card markdown in which a value carries HTML (a category or a file name from the data)
    markdown_text = "# Model card: m\n\n- group <script>alert(1)</script> & <b>bold</b>\n\n<div>block</div>\n"
    # when rendered as a page
    page = render_model_card_html(markdown_text)
    # then the markup is escaped text, and the title comes from the first heading
    assert "<script>" not in page and "<b>" not in page and "<div>" not in page, "raw HTML was passed through"
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in page, "text is escaped"
    assert "<title>Model card: m</title>" in page, "the page's title is the card's first heading"
