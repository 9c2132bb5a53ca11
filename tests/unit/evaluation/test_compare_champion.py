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
    # then every group's line is there, on the test rows and on the reference rows, waived with the reason
    group_lines = [line for line in decision.lines if line.name.startswith("no_regression[group=")]
    assert len(group_lines) == 3 * 3 * 2, "three groups x three rates x (test rows, reference rows)"
    assert all(line.waived == "no champion to compare to" for line in group_lines), group_lines
    reference = [line for line in group_lines if line.name.endswith(", reference rows]")]
    assert len(reference) == 3 * 3, "every group and rate also on the reference rows"


# --- the same lines on the champion's training rows, with their recorded (trusted) labels ---


def _reference_lines(
    adult_settings, candidate_on_reference, reference_rows=None, window: ChampionComparison | None = None
) -> dict[str, GateLine]:
    """Test rows where candidate and champion agree; the reference rows as given (None: not scored)."""
    labels, champion, sensitive = _rows()
    comparison = ChampionComparison(
        "5",
        {"accuracy": 0.8, "roc_auc": 0.8},
        {"accuracy": (0.8, 0.8), "roc_auc": (0.8, 0.8)},
        groups=compare_groups(champion, champion, labels, sensitive),
        reference_groups=None if reference_rows is None else compare_groups(
            candidate_on_reference, reference_rows[1], reference_rows[0], reference_rows[2]
        ),
        reference_rows=0 if reference_rows is None else len(reference_rows[0]),
    )  # fmt: skip
    evaluation = evaluation_of(champion, labels, sensitive)
    decision = decide_gate(evaluation, adult_settings.gate, 1.0, comparison, window)
    return {line.name: line for line in decision.lines}


def test_a_candidate_that_keeps_the_reference_groups_passes_their_lines(adult_settings) -> None:
    # given reference rows (other rows than the test rows) on which the candidate predicts what the champion does
    labels, champion, sensitive = _rows(seed=2)
    lines = _reference_lines(adult_settings, champion, (labels, champion, sensitive))
    # then every judged reference line passes and says which rows it was judged on
    line = lines["no_regression[group=A, tpr, reference rows]"]
    assert line.status == "PASS", line.describe()
    assert "champion's training rows (4,000" in (line.judged_on or ""), line.judged_on
    assert lines["no_regression[group=B, fpr, reference rows]"].status == "PASS", "no change, no failure"


def test_a_tpr_drop_seen_only_on_the_reference_rows_fails_its_reference_line(adult_settings) -> None:
    # given a candidate that, on the reference rows, turns 30% of group B's predicted positives negative
    # (on the test rows it agrees with the champion: the test rows alone would let it through)
    labels, champion, sensitive = _rows(seed=2)
    candidate = champion.copy()
    targeted = np.nonzero((sensitive["group"].to_numpy() == "B") & (labels == 1) & (champion >= 0.5))[0]
    candidate[targeted[: int(0.3 * len(targeted))]] = 0.1
    lines = _reference_lines(adult_settings, candidate, (labels, champion, sensitive))
    # then B's TPR line on the reference rows fails with its figures; its test-row line and group A pass
    failed = lines["no_regression[group=B, tpr, reference rows]"]
    assert failed.status == "FAIL", failed.describe()
    assert "positives" in (failed.detail or "") and failed.value < -0.05, failed.describe()
    assert lines["no_regression[group=B, tpr]"].status == "PASS", "the test rows saw no change"
    assert lines["no_regression[group=A, tpr, reference rows]"].status == "PASS", (
        "the other group is not blamed"
    )


def test_reference_lines_are_waived_for_small_groups_and_without_a_reference(adult_settings) -> None:
    # given reference rows where group C has 30 rows (all its positive predictions removed by the candidate)
    labels, champion, sensitive = _rows(seed=2)
    candidate = np.where(sensitive["group"].to_numpy() == "C", 0.0, champion)
    lines = _reference_lines(adult_settings, candidate, (labels, champion, sensitive))
    # then C's reference lines are waived with the size, not failed
    small = lines["no_regression[group=C, selection_rate, reference rows]"]
    assert small.status == "WAIVED" and small.waived == "too few to judge: 30 rows < 50", small.describe()
    # and with a champion but no reference rows scored, every reference line is waived with that reason
    unscored = _reference_lines(adult_settings, None)
    reference = [line for name, line in unscored.items() if name.endswith(", reference rows]")]
    assert len(reference) == 3 * 3, "every group and rate is listed"
    assert all(line.waived and "reference rows not scored" in line.waived for line in reference), reference


def test_a_drift_retrain_waives_the_reference_lines_it_would_fail_and_says_why(adult_settings) -> None:
    # given the candidate that fails B's TPR on the reference rows, but as a drift retrain (a window is judged)
    labels, champion, sensitive = _rows(seed=2)
    candidate = champion.copy()
    targeted = np.nonzero((sensitive["group"].to_numpy() == "B") & (labels == 1) & (champion >= 0.5))[0]
    candidate[targeted[: int(0.3 * len(targeted))]] = 0.1
    window = ChampionComparison(
        "5",
        {"accuracy": 0.8, "roc_auc": 0.8},
        {"accuracy": (0.8, 0.8), "roc_auc": (0.8, 0.8)},
        groups=compare_groups(champion, champion, labels, sensitive),
    )
    lines = _reference_lines(adult_settings, candidate, (labels, champion, sensitive), window)
    # then the reference line is waived with the reason (old labels would count adapting to a shift as harm)
    line = lines["no_regression[group=B, tpr, reference rows]"]
    assert line.status == "WAIVED", line.describe()
    assert line.waived and "drift retrain" in line.waived, line.waived
