"""Per-group no-regression against the champion: every group's TPR, FPR and selection rate, judged on the
favourable end of the paired bootstrap interval of candidate - champion."""

import numpy as np
import pandas as pd

from guardflow.evaluation.compare_champion import ChampionComparison, compare_groups
from guardflow.evaluation.decide_gate import GateLine, decide_gate
from tests.unit.evaluation.conftest import evaluation_of


def _rows(seed: int = 0) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """4,000 rows: groups A (2,000), B (1,970) and C (30, too small), labels 30% positive, a fair champion."""
    generator = np.random.default_rng(seed)
    groups = np.array(["A"] * 2000 + ["B"] * 1970 + ["C"] * 30)
    labels = (generator.uniform(size=4000) < 0.3).astype("int64")
    champion = np.clip(np.where(labels == 1, 0.7, 0.2) + generator.normal(0, 0.2, 4000), 0, 1)
    return labels, champion, pd.DataFrame({"group": groups})


def _lines(adult_settings, labels, champion, candidate, sensitive) -> dict[str, GateLine]:
    comparison = ChampionComparison(
        "5",
        {"accuracy": 0.8, "roc_auc": 0.8},
        {"accuracy": (0.8, 0.8), "roc_auc": (0.8, 0.8)},
        groups=compare_groups(candidate, champion, labels, sensitive),
    )
    evaluation = evaluation_of(candidate, labels, sensitive)
    decision = decide_gate(evaluation, adult_settings.gate, 1.0, comparison)
    return {line.name: line for line in decision.lines}


def test_the_champion_against_itself_passes_every_group_line(adult_settings) -> None:
    # given a candidate that predicts exactly what the champion does
    labels, champion, sensitive = _rows()
    changes = compare_groups(champion, champion, labels, sensitive)
    # then every paired difference is exactly zero, and every group line passes
    assert {(c.difference.low, c.difference.high) for c in changes if c.measured_on} == {(0.0, 0.0)}, (
        "the same resamples for both models: no difference at all"
    )
    lines = _lines(adult_settings, labels, champion, champion, sensitive)
    assert lines["no_regression[group=A, tpr]"].status == "PASS", lines[
        "no_regression[group=A, tpr]"
    ].describe()
    assert lines["no_regression[group=B, selection_rate]"].status == "PASS"


def test_a_drop_in_one_groups_tpr_fails_that_groups_line(adult_settings) -> None:
    # given a candidate that turns 30% of group A's positives negative, and leaves B alone
    labels, champion, sensitive = _rows()
    candidate = champion.copy()
    targeted = np.nonzero((sensitive["group"].to_numpy() == "A") & (labels == 1) & (champion >= 0.5))[0]
    candidate[targeted[: int(0.3 * len(targeted))]] = 0.1
    # when judged against the champion
    lines = _lines(adult_settings, labels, champion, candidate, sensitive)
    # then A's TPR and selection-rate lines fail, naming the group; B's pass
    tpr = lines["no_regression[group=A, tpr]"]
    assert tpr.status == "FAIL" and "candidate" in (tpr.detail or ""), tpr.describe()
    assert tpr.value < -adult_settings.gate.max_group_regression["tpr"], "even the favourable end is worse"
    assert lines["no_regression[group=B, tpr]"].status == "PASS", "the other group is not blamed"
    # and a lower FPR is no regression
    assert lines["no_regression[group=A, fpr]"].status == "PASS", lines[
        "no_regression[group=A, fpr]"
    ].describe()


def test_a_rise_in_fpr_is_worse_and_a_small_noisy_change_is_not(adult_settings) -> None:
    # given a candidate that calls 20% of B's negatives positive, and flips 2 rows of A at random
    labels, champion, sensitive = _rows(seed=1)
    candidate = champion.copy()
    negatives_b = np.nonzero((sensitive["group"].to_numpy() == "B") & (labels == 0) & (champion < 0.5))[0]
    candidate[negatives_b[: int(0.2 * len(negatives_b))]] = 0.9
    candidate[[0, 1]] = 1 - candidate[[0, 1]]
    # when judged / then B's FPR line fails and A's lines pass
    lines = _lines(adult_settings, labels, champion, candidate, sensitive)
    assert lines["no_regression[group=B, fpr]"].status == "FAIL", lines[
        "no_regression[group=B, fpr]"
    ].describe()
    for rate in ("tpr", "fpr", "selection_rate"):
        assert lines[f"no_regression[group=A, {rate}]"].status == "PASS", f"two rows are noise ({rate})"


def test_a_group_too_small_to_judge_is_waived_with_its_size(adult_settings) -> None:
    # given group C with 30 rows, all of whose positive predictions the candidate removes
    labels, champion, sensitive = _rows()
    candidate = np.where(sensitive["group"].to_numpy() == "C", 0.0, champion)
    # when judged
    lines = _lines(adult_settings, labels, champion, candidate, sensitive)
    # then C's lines are waived with the reason, not dropped and not failed
    line = lines["no_regression[group=C, selection_rate]"]
    assert line.status == "WAIVED", line.describe()
    assert line.waived == "too few to judge: 30 rows < 50", line.waived
    assert lines["min_group_size[group=C]"].status == "WAIVED", "the small group is listed among the lines"


def test_without_a_champion_every_group_line_is_waived(adult_settings) -> None:
    # given no champion
    labels, champion, sensitive = _rows()
    decision = decide_gate(evaluation_of(champion, labels, sensitive), adult_settings.gate, 1.0)
    # then every group's line is there, waived with the reason
    group_lines = [line for line in decision.lines if line.name.startswith("no_regression[group=")]
    assert len(group_lines) == 3 * 3, "three groups x three rates"
    assert all(line.waived == "no champion to compare to" for line in group_lines), group_lines
