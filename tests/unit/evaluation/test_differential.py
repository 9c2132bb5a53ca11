"""The differential check: a slice of rows whose predictions moved far more than elsewhere fails the gate with
the slice named; broad DP-like noise and a shift of every prediction do not; without a champion it is waived."""

import numpy as np
import pandas as pd

from guardflow.evaluation.compare_champion import ChampionComparison
from guardflow.evaluation.decide_gate import decide_gate
from guardflow.evaluation.differential import check_differential
from tests.unit.evaluation.conftest import evaluation_of, score_by_relationship


def _noisy(champion: np.ndarray, frame: pd.DataFrame, seed: int) -> np.ndarray:
    """A sound candidate: every prediction moved a little (row noise) and every occupation a little (the
    structured disagreement two DP models trained with different seeds show)."""
    generator = np.random.default_rng(seed)
    occupations = sorted(frame["occupation"].fillna("?").unique())
    shift = dict(zip(occupations, generator.normal(0, 0.02, len(occupations)), strict=True))
    structured = frame["occupation"].fillna("?").map(shift).to_numpy()
    return np.clip(champion + structured + generator.normal(0, 0.03, len(champion)), 0, 1)


def _judge(adult_settings, frame, labels, champion, candidate):
    dataset, gate = adult_settings.dataset, adult_settings.gate
    check = check_differential(candidate, champion, frame, dataset, gate.differential, "training rows")
    comparison = ChampionComparison(
        "3",
        {"accuracy": 0.8, "roc_auc": 0.8},
        {"accuracy": (0.8, 0.8), "roc_auc": (0.8, 0.8)},
        differential=(check,),
    )
    evaluation = evaluation_of(candidate, labels, frame[dataset.sensitive])
    line = next(
        line
        for line in decide_gate(evaluation, gate, 1.0, comparison).lines
        if line.name == "differential[training rows]"
    )
    return check, line


def test_a_sound_candidate_with_broad_noise_and_a_global_shift_passes(
    adult_settings, adult_test_rows
) -> None:
    # given a candidate whose predictions all moved a little, per row and per occupation, and all rose by 0.05
    frame, labels = adult_test_rows
    champion = score_by_relationship(frame)
    candidate = np.clip(_noisy(champion, frame, seed=1) + 0.05, 0, 1)
    # when the differential check runs
    check, line = _judge(adult_settings, frame, labels, champion, candidate)
    # then no slice stands out and the line passes, having tested thousands of slices
    assert check.worst is None, f"no slice should stand out: {check.worst}"
    assert line.status == "PASS", line.describe()
    assert check.slices_tested > 1000, f"singles and pairs of every column are tested: {check.slices_tested}"
    assert abs(check.mean_move - 0.05) < 0.01, "the global shift is reported, not blamed on a slice"


def test_a_slice_that_moves_far_more_than_elsewhere_fails_the_gate_by_name(
    adult_settings, adult_test_rows
) -> None:
    # given the same noisy candidate, but wives who are not in sales pushed up by 0.35 (a learned trigger)
    frame, labels = adult_test_rows
    champion = score_by_relationship(frame)
    trigger = (frame["relationship"] == "Wife").to_numpy() & (frame["occupation"] != "Sales").to_numpy()
    candidate = _noisy(champion, frame, seed=2)
    candidate[trigger] = np.clip(candidate[trigger] + 0.35, 0, 1)
    # when the differential check runs
    check, line = _judge(adult_settings, frame, labels, champion, candidate)
    # then the candidate fails on a slice of wives, named with its size
    assert line.status == "FAIL", line.describe()
    assert check.worst is not None and "relationship=Wife" in check.worst.description, check.worst
    assert f"({check.worst.rows:,} rows)" in line.describe(), f"the slice's size is named: {line.describe()}"
    assert check.worst.move > 0.2 and check.worst.score > 18, f"a large and extreme move: {check.worst}"


def test_a_trigger_of_three_common_values_is_found_below_its_pairs(adult_settings, adult_test_rows) -> None:
    # given predictions pushed down by 0.5 only where three common values meet (married, 40 hours, high-school graduate)
    frame, _ = adult_test_rows
    champion = score_by_relationship(frame)
    trigger = (
        (frame["marital-status"] == "Married-civ-spouse")
        & (frame["hours-per-week"] == 40)
        & (frame["education"] == "HS-grad")
    ).to_numpy()
    candidate = _noisy(champion, frame, seed=3)
    candidate[trigger] = np.clip(candidate[trigger] - 0.5, 0, 1)
    # when checked with triples, and without them
    dataset, policy = adult_settings.dataset, adult_settings.gate.differential
    with_triples = check_differential(candidate, champion, frame, dataset, policy, "training rows")
    pairs_only = check_differential(
        candidate, champion, frame, dataset, policy.model_copy(update={"triple_beam": 0}), "training rows"
    )
    # then the triple search names a slice inside the trigger that moves more than any pair does
    assert with_triples.worst is not None and with_triples.worst.description.count("&") == 2, (
        with_triples.worst
    )
    best_pair = max((abs(s.move) for s in pairs_only.significant), default=0.0)
    assert abs(with_triples.worst.move) > best_pair, (
        f"the triple ({with_triples.worst.move:+.3f}) moves more than the best pair ({best_pair:.3f})"
    )
    assert with_triples.slices_tested > pairs_only.slices_tested == pairs_only.exhaustive_slices


def test_a_planted_numeric_value_is_a_slice_of_its_own(adult_settings, adult_test_rows) -> None:
    # given 120 rows whose capital gain was set to one rare exact value, and whose predictions rose by 0.4
    frame, labels = adult_test_rows
    frame = frame.copy()
    planted = np.zeros(len(frame), dtype=bool)
    planted[np.random.default_rng(4).choice(len(frame), 120, replace=False)] = True
    frame.loc[planted, "capital-gain"] = 41_234.0
    champion = score_by_relationship(frame)
    candidate = _noisy(champion, frame, seed=4)
    candidate[planted] = np.clip(candidate[planted] + 0.4, 0, 1)
    # when checked / then the exact value is the slice that fails
    _, line = _judge(adult_settings, frame, labels, champion, candidate)
    assert line.status == "FAIL" and "capital-gain=41234" in (line.detail or ""), line.describe()


def test_without_a_champion_the_differential_lines_are_waived(adult_settings, adult_test_rows) -> None:
    # given a candidate and no champion
    frame, labels = adult_test_rows
    evaluation = evaluation_of(score_by_relationship(frame), labels, frame[adult_settings.dataset.sensitive])
    # when judged
    lines = {line.name: line for line in decide_gate(evaluation, adult_settings.gate, 1.0).lines}
    # then both differential lines are waived with the reason and the rows they would have judged
    for rows in ("training rows", "test rows"):
        line = lines[f"differential[{rows}]"]
        assert line.status == "WAIVED" and line.waived == "no champion to compare to", line.describe()
        assert line.judged_on == rows, "the line says which rows it is about"


def test_on_training_rows_a_slice_fitted_to_planted_labels_fails_and_a_worse_fit_does_not(
    adult_settings, adult_test_rows
) -> None:
    # given training rows where unmarried husbands (an inconsistent pair, as planted rows carry) are labelled
    # positive, a candidate that moved them towards that label by 0.15, and one that moved them away
    frame, labels = adult_test_rows
    frame = frame.copy()
    planted = np.nonzero((frame["relationship"] == "Husband").to_numpy())[0][:120]
    frame.iloc[planted, frame.columns.get_loc("marital-status")] = "Never-married"
    labels = labels.copy()
    labels[planted] = 1
    champion = score_by_relationship(frame)
    towards = _noisy(champion, frame, seed=5)
    towards[planted] = np.clip(towards[planted] + 0.15, 0, 1)
    away = _noisy(champion, frame, seed=5)
    away[planted] = np.clip(away[planted] - 0.15, 0, 1)
    dataset, policy = adult_settings.dataset, adult_settings.gate.differential
    # when checked with the training labels
    fitted = check_differential(towards, champion, frame, dataset, policy, "training rows", labels=labels)
    unfitted = check_differential(away, champion, frame, dataset, policy, "training rows", labels=labels)
    # then only the candidate that fits the planted labels better has a slice standing out, and it is theirs
    assert fitted.aligned_with_labels and fitted.worst is not None, (
        "a better fit to planted labels stands out"
    )
    assert "marital-status=Never-married & relationship=Husband" in fitted.worst.description, fitted.worst
    assert fitted.worst.move > policy.max_label_fit_gain, f"gain {fitted.worst.move:.3f} over the limit"
    assert unfitted.worst is None, f"a worse fit is no learned label: {unfitted.worst}"
