"""One rule for a drift retrain: the seeded window split, the window comparison, and the gate lines it adds,
each naming the rows it was judged on."""

import numpy as np
import pandas as pd

from guardflow.drift.judge_retrain import judge_window, split_window
from guardflow.evaluation.decide_gate import WINDOW_REGRESSION, decide_gate
from guardflow.evaluation.evaluate_safety import evaluate_safety
from guardflow.privacy.audit_membership import MembershipAudit
from guardflow.run.format_summary import format_summary
from guardflow.run.summary import RunSummary, WindowFigures

_NO_LEAK = MembershipAudit(
    auc=0.5, tpr_at_1pct_fpr=0.01, tpr_at_01pct_fpr=0.001, epsilon_lower_bound=0.0, rows_per_side=3000
)


def test_the_same_batch_and_seed_give_the_same_window() -> None:
    # given a batch of 1,000 rows
    batch = pd.DataFrame({"row": np.arange(1000), "value": np.random.default_rng(0).random(1000)})
    # when split twice with the same seed, and once with another
    first, again, other = (
        split_window(batch, 0.3, 7),
        split_window(batch, 0.3, 7),
        split_window(batch, 0.3, 8),
    )
    # then the window is the same rows each time, 30% of the batch, and kept and window cover the batch once
    assert first.window.equals(again.window) and first.kept.equals(again.kept), "seeded: the same window"
    assert not first.window.equals(other.window), "another seed draws another window"
    assert len(first.window) == 300, f"30% of the rows form the window, got {len(first.window)}"
    rows = np.sort(np.concatenate([first.kept["row"], first.window["row"]]))
    assert np.array_equal(rows, np.arange(1000)), "every batch row is either trained on or in the window"


def _sample(rows: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities that are right with a strength set by `noise` (higher: worse model)."""
    generator = np.random.default_rng(seed)
    labels = generator.integers(0, 2, rows)
    logits = (2 * labels - 1) * 2.0 + generator.normal(0, noise, rows)
    return 1 / (1 + np.exp(-logits)), labels


def test_window_lines_fail_a_candidate_that_regresses_on_the_window_only(adult_settings) -> None:
    # given a candidate as good as the champion on the test set but much worse on the window
    gate = adult_settings.gate
    test_probabilities, test_labels = _sample(4000, 2.0, 0)
    window_candidate, window_labels = _sample(3000, 6.0, 1)
    window_champion = 1 / (1 + np.exp(-((2 * window_labels - 1) * 2.0)))
    evaluation = evaluate_safety(test_probabilities, test_labels, pd.DataFrame(index=range(4000)), _NO_LEAK)
    window = judge_window(
        window_candidate,
        window_champion,
        window_labels,
        champion_version="3",
        metrics=list(gate.max_regression),
        judged_on="drift window w.csv (3,000 rows)",
        membership=_NO_LEAK,
        seed=0,
    )
    # when judged with the window (the test-set comparison left out: no champion there)
    decision = decide_gate(evaluation, gate, 1.0, None, window.comparison, test_rows="test set t.csv")
    lines = {line.name: line for line in decision.lines}
    # then the window's no-regression lines fail, and every line says which rows it was judged on
    assert window.candidate["accuracy"] < window.champion["accuracy"] - 0.05, "the candidate is worse there"  # type: ignore[index]
    assert lines[f"{WINDOW_REGRESSION}[accuracy]"].status == "FAIL", "a regression on the window fails"
    assert not decision.passed, "a retrain worse than its champion on the drift window is not promoted"
    assert lines[f"{WINDOW_REGRESSION}[accuracy]"].judged_on == "drift window w.csv (3,000 rows)", (
        "window lines name the window"
    )
    assert lines["accuracy"].judged_on == "test set t.csv", "absolute lines name the test set"
    assert "audit-split" in (lines["mia_auc"].judged_on or ""), "the audit lines name the audit split"
    assert "on drift window w.csv" in lines[f"{WINDOW_REGRESSION}[accuracy]"].describe(), (
        "the description (summary, model card) says where the line was judged"
    )


def test_no_window_adds_no_window_lines(adult_settings) -> None:
    # given a plain training run (no drift window)
    probabilities, labels = _sample(2000, 2.0, 2)
    evaluation = evaluate_safety(probabilities, labels, pd.DataFrame(index=range(2000)), _NO_LEAK)
    # when judged / then no window line appears and the existing lines keep their descriptions
    decision = decide_gate(evaluation, adult_settings.gate, 1.0)
    assert not any(line.name.startswith(WINDOW_REGRESSION) for line in decision.lines), "no window, no lines"
    assert decision.lines[0].describe().endswith(f"(must be >= {adult_settings.gate.min_accuracy:g})"), (
        "without test_rows a line is described as before"
    )


def test_the_printed_summary_names_the_window_and_both_accuracies() -> None:
    # given a drift retrain's summary with its window section
    window = WindowFigures(
        judged_on="drift window w.csv (1,200 rows)",
        rows=1200,
        candidate={"accuracy": 0.8575, "roc_auc": 0.9, "ece": 0.05},
        champion={"accuracy": 0.85, "roc_auc": 0.9, "ece": 0.05},
        champion_version="1",
    )
    summary = RunSummary(
        flow="safety-train", status="promoted", config="c.yaml", config_sha256="0" * 64, run_dir="r", seconds=1.0,
        window=window,
    )  # fmt: skip
    # when printed / then one line says where and how both models scored
    text = format_summary(summary)
    assert "window     drift window w.csv (1,200 rows): accuracy candidate 0.8575, champion 0.8500" in text, (
        text
    )
