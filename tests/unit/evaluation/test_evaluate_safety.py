"""Safety figures and the gate: calibration error, group fairness, the membership-inference audit (with a power
check on a model that really leaks) and the gate's verdict."""

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from guardflow.data.encode_features import encode_features
from guardflow.data.table import label_vector, typed_frame
from guardflow.evaluation.decide_gate import ChampionComparison, GateDecision, decide_gate
from guardflow.evaluation.evaluate_safety import (
    Evaluation,
    GroupFairness,
    check_behaviour,
    counterfactual_flip_rate,
    evaluate_safety,
    expected_calibration_error,
    group_fairness,
    robustness,
    save_plots,
)
from guardflow.evaluation.model_card import render_model_card, render_model_card_html
from guardflow.io.datasets import read_split
from guardflow.privacy.audit_membership import MembershipAudit, audit_membership
from guardflow.privacy.network import build_mlp, predict_proba
from guardflow.privacy.train_private import PrivacyReport


def _calibrated_sample(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities drawn uniformly and labels drawn with exactly those probabilities."""
    generator = np.random.default_rng(seed)
    probabilities = generator.uniform(size=rows)
    return probabilities, (generator.uniform(size=rows) < probabilities).astype("int64")


# --- expected calibration error ---


def test_ece_is_near_zero_for_calibrated_probabilities() -> None:
    # given 200,000 labels drawn with exactly their predicted probability
    probabilities, labels = _calibrated_sample(200_000, seed=0)
    # when the calibration error is measured, then only sampling noise remains (measured 0.003)
    ece = expected_calibration_error(probabilities, labels)
    assert 0.0 <= ece < 0.01, f"ECE of calibrated probabilities should be ~0, got {ece:.4f}"


def test_ece_is_large_for_a_constant_overconfident_prediction() -> None:
    # given balanced labels and a model that always says 0.99
    labels = np.tile([0, 1], 500)
    probabilities = np.full(len(labels), 0.99)
    # then the error is the whole gap between 0.99 and the observed rate of 0.5
    assert expected_calibration_error(probabilities, labels) == pytest.approx(0.49), (
        "one bin holding every row: ECE = |0.99 - 0.5|"
    )


def test_ece_counts_probabilities_of_exactly_zero_and_one() -> None:
    # given predictions at the very ends of [0, 1], each right half the time
    probabilities = np.array([0.0, 0.0, 1.0, 1.0])
    labels = np.array([0, 1, 0, 1])
    # then both end bins count, each with a gap of 0.5
    assert expected_calibration_error(probabilities, labels) == pytest.approx(0.5), (
        "0 and 1 fall in the end bins"
    )


# --- group fairness ---


def test_group_fairness_gives_the_exact_positive_rates_and_parity_difference() -> None:
    # given two groups: women predicted positive 1 in 4, men 3 in 5
    groups = pd.Series(["Female"] * 4 + ["Male"] * 5)
    predictions = np.array([1, 0, 0, 0, 1, 1, 1, 0, 0])
    labels = np.array([1, 0, 0, 1, 1, 1, 0, 0, 0])
    # when fairness is measured on the attribute
    fairness = group_fairness("sex", groups, predictions, labels)
    # then rates, accuracies and counts are the hand-computed ones and the gap is 0.6 - 0.25
    assert fairness.positive_rate == {"Female": 0.25, "Male": 0.6}, "positive-prediction rate per group"
    assert fairness.accuracy == {"Female": 0.75, "Male": 0.8}, "accuracy per group"
    assert fairness.rows == {"Female": 4, "Male": 5}, "rows per group"
    assert fairness.demographic_parity_difference == pytest.approx(0.35), "largest gap in positive rate"


def test_missing_sensitive_values_form_their_own_group() -> None:
    # given one row with no recorded group, predicted positive, among groups predicted positive half the time
    groups = pd.Series(["A", "A", "B", "B", None])
    predictions = np.array([1, 0, 0, 1, 1])
    fairness = group_fairness("race", groups, predictions, np.zeros(5, dtype="int64"))
    # then it is a group of its own, and it sets the parity gap
    assert fairness.rows == {"(missing)": 1, "A": 2, "B": 2}, (
        "missing values are their own group, not dropped"
    )
    assert fairness.demographic_parity_difference == pytest.approx(0.5), "gap between 1.0 (missing) and 0.5"


def test_evaluate_safety_reports_one_fairness_entry_per_sensitive_column() -> None:
    # given calibrated probabilities and two sensitive columns
    probabilities, labels = _calibrated_sample(2000, seed=1)
    generator = np.random.default_rng(2)
    sensitive = pd.DataFrame(
        {"sex": generator.choice(["Female", "Male"], 2000), "race": generator.choice(["A", "B", "C"], 2000)}
    )
    membership = MembershipAudit(
        auc=0.5, tpr_at_1pct_fpr=0.01, tpr_at_01pct_fpr=0.001, epsilon_lower_bound=0.0, rows_per_side=1000
    )
    # when evaluated
    evaluation = evaluate_safety(probabilities, labels, sensitive, membership)
    # then the figures are those of the predictions at threshold 0.5
    expected_accuracy = float(((probabilities >= 0.5) == labels).mean())
    assert evaluation.accuracy == pytest.approx(expected_accuracy), "accuracy at the 0.5 threshold"
    assert [group.attribute for group in evaluation.fairness] == ["sex", "race"], (
        "one entry per sensitive column"
    )
    metrics = evaluation.metrics()
    assert {"accuracy", "roc_auc", "ece", "mia_auc", "dp_difference_sex", "dp_difference_race"} <= set(
        metrics
    ), "the flat view carries every gate figure"
    assert metrics["mia_auc"] == 0.5, "the membership audit is carried through unchanged"


# --- membership inference ---


def test_audit_finds_no_leak_when_members_and_nonmembers_look_alike() -> None:
    # given members and non-members drawn from the same distribution
    member_probabilities, member_labels = _calibrated_sample(5000, seed=3)
    nonmember_probabilities, nonmember_labels = _calibrated_sample(6000, seed=4)
    # when audited
    audit = audit_membership(member_probabilities, member_labels, nonmember_probabilities, nonmember_labels)
    # then the attack is a coin toss (standard error of the AUC here is ~0.006)
    assert audit.auc == pytest.approx(0.5, abs=0.03), f"no leak should give AUC ~0.5, got {audit.auc:.3f}"
    assert audit.rows_per_side == 5000, "the audit balances both sides to the smaller one"
    assert audit.epsilon_lower_bound < 0.1, f"no leak proves no epsilon, got {audit.epsilon_lower_bound:.3f}"


def test_audit_detects_members_with_much_lower_loss() -> None:
    # given members whose own label gets a probability near 1, and ordinary non-members
    generator = np.random.default_rng(5)
    member_labels = generator.integers(0, 2, size=3000)
    confidence = generator.beta(8, 1, size=3000)
    member_probabilities = np.where(member_labels == 1, confidence, 1 - confidence)
    nonmember_probabilities, nonmember_labels = _calibrated_sample(3000, seed=6)
    # when audited
    audit = audit_membership(member_probabilities, member_labels, nonmember_probabilities, nonmember_labels)
    # then the attack clearly separates them (measured 0.80; TPR at 1% FPR 0.044)
    assert audit.auc > 0.75, f"a strong leak must be detected, got AUC {audit.auc:.3f}"
    assert audit.tpr_at_1pct_fpr > 0.01, "at 1% false positives the attack finds more than chance"
    # and it proves a positive epsilon with 95% confidence (measured 0.75)
    assert audit.epsilon_lower_bound > 0.4, (
        f"a strong leak proves epsilon > 0, got {audit.epsilon_lower_bound:.3f}"
    )


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_audit_detects_an_overfit_non_private_model_on_adult(adult_settings, one_torch_thread) -> None:
    # given an unregularised MLP overfit on 500 rows of adult.data (full-batch Adam, 1,000 steps)
    dataset = adult_settings.dataset
    members = typed_frame(read_split(dataset, "train").rows.head(500), dataset)
    nonmembers = typed_frame(read_split(dataset, "test").rows.head(500), dataset)
    member_features, member_labels = (
        encode_features(members, dataset),
        label_vector(members, dataset).to_numpy(),
    )
    nonmember_features = encode_features(nonmembers, dataset)
    nonmember_labels = label_vector(nonmembers, dataset).to_numpy()
    torch.manual_seed(0)
    model = build_mlp(member_features.shape[1], [256, 256])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    inputs, targets = torch.tensor(member_features), torch.tensor(member_labels, dtype=torch.float32)
    for _ in range(1000):
        optimizer.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(model(inputs).squeeze(-1), targets)
        loss.backward()
        optimizer.step()
    model.eval()
    assert loss.item() < 0.05, f"the model must have memorised its rows (training loss {loss.item():.3f})"
    # when its training rows are audited against 500 rows of adult.test
    audit = audit_membership(
        predict_proba(model, member_features).double().numpy(),
        member_labels,
        predict_proba(model, nonmember_features).double().numpy(),
        nonmember_labels,
    )
    # then the audit sees the leak (measured 0.578 with this seed, 0.562-0.578 over torch seeds 0-5; the
    # standard error of a no-leak AUC with 500 rows a side is ~0.018)
    assert audit.auc > 0.55, f"the loss attack should detect an overfit model, got AUC {audit.auc:.3f}"


# --- the gate ---


def test_gate_rejects_a_model_whose_audit_proves_more_than_its_claim(adult_settings) -> None:
    # given an audit that proves epsilon 1.5 for a model that claims 1.0
    evaluation = _evaluation()
    proven = MembershipAudit(
        auc=0.55, tpr_at_1pct_fpr=0.05, tpr_at_01pct_fpr=0.01, epsilon_lower_bound=1.5, rows_per_side=500
    )
    evaluation = Evaluation(**{**evaluation.__dict__, "membership": proven})
    # when judged / then the privacy claim's line fails
    decision = decide_gate(evaluation, adult_settings.gate, 1.0)
    assert not decision.passed, "a falsified privacy claim must be rejected"
    assert any("mia_epsilon_lower_bound" in reason for reason in decision.reasons), decision.reasons


def _evaluation(
    accuracy: float = 0.86,
    roc_auc: float = 0.91,
    ece: float = 0.03,
    mia_auc: float = 0.52,
    dp_difference: float = 0.10,
) -> Evaluation:
    fairness = GroupFairness(
        attribute="sex",
        accuracy={"Female": 0.9, "Male": 0.84},
        positive_rate={"Female": 0.10, "Male": 0.10 + dp_difference},
        rows={"Female": 300, "Male": 700},
    )
    return Evaluation(
        rows=1000,
        accuracy=accuracy,
        roc_auc=roc_auc,
        ece=ece,
        fairness=(fairness,),
        membership=MembershipAudit(
            auc=mia_auc,
            tpr_at_1pct_fpr=0.01,
            tpr_at_01pct_fpr=0.001,
            epsilon_lower_bound=0.0,
            rows_per_side=500,
        ),
    )


def test_gate_fails_a_candidate_below_min_accuracy(adult_settings) -> None:
    # given a candidate that meets every threshold but accuracy
    gate = adult_settings.gate
    decision = decide_gate(_evaluation(accuracy=gate.min_accuracy - 0.04), gate, 1.0)
    # then it fails, and the only reason given is the accuracy line
    assert not decision.passed, "a candidate below min_accuracy must not pass"
    assert len(decision.reasons) == 1, f"only the failed line is listed, got {decision.reasons}"
    assert decision.reasons[0].startswith("FAIL accuracy"), (
        f"the reason names accuracy: {decision.reasons[0]}"
    )
    assert f">= {gate.min_accuracy:g}" in decision.reasons[0], "the reason states the threshold"


def test_gate_passes_a_candidate_meeting_every_threshold(adult_settings) -> None:
    # given a candidate inside every threshold
    decision = decide_gate(_evaluation(), adult_settings.gate, 1.0)
    # then it passes and the record lists every line as passed
    assert decision.passed, f"a candidate meeting every threshold must pass: {decision.reasons}"
    names = [line.name for line in decision.lines]
    assert names == [
        "accuracy",
        "roc_auc",
        "ece",
        "mia_auc",
        "mia_epsilon_lower_bound",
        "dp_difference[sex]",
        "eo_difference[sex]",
        "epsilon",
        "no_regression[accuracy]",
        "no_regression[roc_auc]",
        *(
            f"no_regression[sex={group}, {rate}]"
            for group in ("Female", "Male")
            for rate in ("selection_rate", "tpr", "fpr")
        ),
        "differential[training rows]",
        "differential[test rows]",
    ], "one line per policy figure"
    assert len(decision.reasons) == len(names), "a passed decision records every line"
    assert all(reason.startswith(("PASS", "WAIVED")) for reason in decision.reasons), "every line passes"
    assert "WAIVED no_regression[roc_auc] (no champion to compare to)" in decision.reasons, (
        "with no champion, the no-regression lines are waived and say why"
    )
    assert decision.reasons[-1] == "WAIVED differential[test rows] (no champion to compare to)", (
        "with no champion, the differential lines are waived and say why"
    )


def test_gate_lists_exactly_the_failed_lines(adult_settings) -> None:
    # given a candidate that is over-confident, leaky and unfair, but accurate
    gate = adult_settings.gate
    evaluation = _evaluation(
        ece=gate.max_ece + 0.02,
        mia_auc=gate.max_mia_auc + 0.05,
        dp_difference=gate.max_demographic_parity_difference + 0.05,
    )
    decision = decide_gate(evaluation, gate, 1.0)
    # then it fails with one reason per failed line, and no passed line among them
    assert not decision.passed, "any failed line fails the gate"
    failed = [reason.split()[1] for reason in decision.reasons]
    assert failed == ["ece", "mia_auc", "dp_difference[sex]"], f"the failed lines, in policy order: {failed}"
    assert all(reason.startswith("FAIL") for reason in decision.reasons), (
        "passed lines are not reasons to fail"
    )


def test_gate_accepts_figures_exactly_at_their_thresholds(adult_settings) -> None:
    # given a candidate sitting exactly on every threshold
    gate = adult_settings.gate
    evaluation = _evaluation(
        accuracy=gate.min_accuracy,
        roc_auc=gate.min_roc_auc,
        ece=gate.max_ece,
        mia_auc=gate.max_mia_auc,
        dp_difference=0.0,
    )
    # then the thresholds are inclusive
    decision = decide_gate(evaluation, gate, 1.0)
    assert decision.passed, f"thresholds are inclusive bounds: {decision.reasons}"


def test_gate_fails_a_figure_that_is_not_a_number(adult_settings) -> None:
    # given a candidate whose calibration error could not be computed
    decision = decide_gate(_evaluation(ece=float("nan")), adult_settings.gate, 1.0)
    # then the gate fails closed on that line
    assert not decision.passed, "a NaN figure must never pass the gate"
    assert decision.reasons[0].startswith("FAIL ece"), f"the NaN line is named: {decision.reasons}"


# --- bootstrap intervals ---


def _informative_sample(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Labels drawn with probability p, predictions p squared (so the model is miscalibrated), two groups."""
    probabilities, labels = _calibrated_sample(rows, seed)
    groups = pd.DataFrame({"sex": np.random.default_rng(seed + 100).choice(["Female", "Male"], rows)})
    return probabilities**2, labels, groups


_NO_LEAK = MembershipAudit(
    auc=0.5, tpr_at_1pct_fpr=0.01, tpr_at_01pct_fpr=0.001, epsilon_lower_bound=0.0, rows_per_side=1
)


def test_intervals_contain_the_point_estimates_and_shrink_with_more_rows() -> None:
    # given the same miscalibrated model scored on 1,000 and on 16,000 rows
    small = evaluate_safety(
        *_informative_sample(1_000, seed=7)[:2], pd.DataFrame(index=range(1_000)), _NO_LEAK
    )
    large_sample = _informative_sample(16_000, seed=8)
    large = evaluate_safety(large_sample[0], large_sample[1], large_sample[2], _NO_LEAK)
    # then every interval holds its point estimate
    for evaluation in (small, large):
        for name in ("accuracy", "roc_auc", "ece"):
            interval = evaluation.intervals[name]
            assert interval.contains(getattr(evaluation, name)), f"{name} {interval} misses its estimate"
    sex = large.fairness[0]
    for name in ("Female", "Male"):
        assert sex.intervals[f"tpr:{name}"].contains(sex.true_positive_rate[name]), f"TPR interval of {name}"
        assert sex.intervals[f"fpr:{name}"].contains(sex.false_positive_rate[name]), f"FPR interval of {name}"
    # and 16 times the rows make them about 4 times narrower (at least 2.5 times)
    for name in ("accuracy", "roc_auc", "ece"):
        ratio = small.intervals[name].width / large.intervals[name].width
        assert ratio > 2.5, f"{name} interval should shrink with more rows, width ratio {ratio:.2f}"


def test_bootstrap_auc_equals_sklearn_on_a_resample_with_ties() -> None:
    # given scores with many ties and one resample's row counts
    from sklearn.metrics import roc_auc_score

    from guardflow.evaluation.intervals import resample_counts
    from guardflow.evaluation.metrics import weighted_auc

    generator = np.random.default_rng(9)
    scores = generator.integers(0, 5, size=300) / 4
    labels = (generator.uniform(size=300) < scores).astype("int64")
    counts = resample_counts(300, 3, seed=1)
    # when the weighted AUC is computed, then it equals sklearn's AUC on the rows repeated by their counts
    for resample in range(3):
        repeated = np.repeat(np.arange(300), counts[resample].astype(int))
        expected = roc_auc_score(labels[repeated], scores[repeated])
        got = weighted_auc(counts, scores, labels)[resample]
        assert got == pytest.approx(expected), f"resample {resample}: {got} vs sklearn {expected}"


# --- equalized odds ---


def test_equalized_odds_difference_is_the_larger_of_the_tpr_and_fpr_gaps() -> None:
    # given group A with TPR 2/2 and FPR 1/2, group B with TPR 1/4 and FPR 0/2
    groups = pd.Series(["A"] * 4 + ["B"] * 6)
    labels = np.array([1, 1, 0, 0, 1, 1, 1, 1, 0, 0])
    predictions = np.array([1, 1, 1, 0, 1, 0, 0, 0, 0, 0])
    # when fairness is measured
    fairness = group_fairness("group", groups, predictions, labels)
    # then the TPR gap (0.75) beats the FPR gap (0.5)
    assert fairness.true_positive_rate == {"A": 1.0, "B": 0.25}, "TPR per group"
    assert fairness.false_positive_rate == {"A": 0.5, "B": 0.0}, "FPR per group"
    assert fairness.equalized_odds_difference == pytest.approx(0.75), "max(TPR gap 0.75, FPR gap 0.5)"


def test_a_group_without_positives_is_left_out_of_the_tpr_gap() -> None:
    # given group B has no positive labels at all
    fairness = group_fairness(
        "group", pd.Series(["A", "A", "B", "B"]), np.array([1, 0, 1, 0]), np.array([1, 0, 0, 0])
    )
    # then its TPR is undefined and the difference comes from the FPR gap alone (A 0, B 0.5)
    assert np.isnan(fairness.true_positive_rate["B"]), "no positives: TPR is NaN, not 0"
    assert fairness.equalized_odds_difference == pytest.approx(0.5), "only the FPR gap is defined"


# --- robustness and counterfactuals ---


@pytest.fixture(scope="module")
def adult_held_out(adult_settings) -> tuple[pd.DataFrame, np.ndarray]:
    dataset = adult_settings.dataset
    frame = typed_frame(read_split(dataset, "test").rows.head(3000), dataset)
    return frame, label_vector(frame, dataset).to_numpy()


def _by_relationship(frame: pd.DataFrame) -> np.ndarray:
    return np.where(frame["relationship"].isin(["Husband", "Wife"]), 0.8, 0.2)


def _by_capital_gain(frame: pd.DataFrame) -> np.ndarray:
    return np.where(frame["capital-gain"].to_numpy() > 5000, 0.9, 0.1)


def test_robustness_is_unchanged_for_features_the_model_ignores(adult_settings, adult_held_out) -> None:
    # given a model reading only a categorical column and one reading only a numeric column
    frame, labels = adult_held_out
    categorical = robustness(_by_relationship, frame, labels, adult_settings.dataset, seed=0)
    numeric = robustness(_by_capital_gain, frame, labels, adult_settings.dataset, seed=0)
    # then numeric noise leaves the first untouched and category swaps the second
    for perturbation in categorical.perturbations:
        if perturbation.kind == "numeric_noise":
            assert perturbation.accuracy == categorical.baseline_accuracy, f"{perturbation.name} changed it"
    for perturbation in numeric.perturbations:
        if perturbation.kind == "category_swap":
            assert perturbation.accuracy == numeric.baseline_accuracy, f"{perturbation.name} changed it"
    names = [perturbation.name for perturbation in numeric.perturbations]
    assert names == [
        "numeric_noise_5pct",
        "numeric_noise_10pct",
        "category_swap_5pct",
        "category_swap_10pct",
    ], "the strengths are stated in the names"


def test_robustness_drops_for_features_the_model_depends_on(adult_settings, adult_held_out) -> None:
    # given the same two models
    frame, labels = adult_held_out
    categorical = robustness(_by_relationship, frame, labels, adult_settings.dataset, seed=0)
    numeric = robustness(_by_capital_gain, frame, labels, adult_settings.dataset, seed=0)
    # then perturbing what each reads costs accuracy, more at the larger strength
    swaps = {p.strength: p.accuracy for p in categorical.perturbations if p.kind == "category_swap"}
    noise = {p.strength: p.accuracy for p in numeric.perturbations if p.kind == "numeric_noise"}
    assert swaps[0.10] < swaps[0.05] < categorical.baseline_accuracy, f"swaps must hurt: {swaps}"
    assert noise[0.10] < noise[0.05] < numeric.baseline_accuracy, f"noise must hurt: {noise}"


def test_counterfactual_flip_rate_is_zero_without_and_one_with_only_the_attribute(
    adult_settings, adult_held_out
) -> None:
    # given a model ignoring sex and a model reading nothing but sex
    frame, _ = adult_held_out
    dataset = adult_settings.dataset

    def by_sex(rows: pd.DataFrame) -> np.ndarray:
        return np.where(rows["sex"] == "Male", 0.9, 0.1)

    # then changing sex flips none of the first model's predictions and every one of the second's
    assert counterfactual_flip_rate(_by_relationship, frame, dataset, "sex") == 0.0, "sex is not read"
    assert counterfactual_flip_rate(by_sex, frame, dataset, "sex") == 1.0, "only sex is read"
    with pytest.raises(ValueError, match="categorical"):
        counterfactual_flip_rate(by_sex, frame, dataset, "age")


# --- plots, metrics and the card ---


def _full_evaluation(adult_settings, adult_held_out) -> Evaluation:
    frame, labels = adult_held_out
    dataset = adult_settings.dataset
    evaluation = evaluate_safety(_by_relationship(frame), labels, frame[dataset.sensitive], _NO_LEAK)
    return check_behaviour(evaluation, _by_relationship, frame, labels, dataset, seed=0)


def test_metrics_carry_the_new_figures(adult_settings, adult_held_out) -> None:
    # given a full evaluation / when flattened
    metrics = _full_evaluation(adult_settings, adult_held_out).metrics()
    # then intervals, equalized odds, robustness and flip rates are there under short names
    expected = {
        "accuracy_ci_low",
        "accuracy_ci_high",
        "roc_auc_ci_low",
        "ece_ci_high",
        "eo_difference_sex",
        "eo_difference_race",
        "tpr_sex_Female",
        "fpr_race_White",
        "robust_accuracy_numeric_noise_5pct",
        "robust_accuracy_category_swap_10pct",
        "counterfactual_flip_rate_sex",
        "counterfactual_flip_rate_race",
    }
    assert expected <= set(metrics), f"missing: {sorted(expected - set(metrics))}"
    assert metrics["counterfactual_flip_rate_sex"] == 0.0, "the relationship model never reads sex"


def test_plots_are_written_as_non_empty_pngs(adult_settings, adult_held_out, tmp_path) -> None:
    # given a full evaluation / when plotted
    paths = save_plots(_full_evaluation(adult_settings, adult_held_out), tmp_path / "plots")
    # then the three PNGs exist and are real images
    assert [path.name for path in paths] == ["calibration.png", "groups.png", "robustness.png"], paths
    for path in paths:
        content = path.read_bytes()
        assert content.startswith(b"\x89PNG") and len(content) > 5_000, f"{path.name} is not a drawn PNG"


def test_html_card_holds_the_tables_and_plot_links(adult_settings, adult_held_out) -> None:
    # given a card for a full evaluation
    evaluation = _full_evaluation(adult_settings, adult_held_out)
    privacy = PrivacyReport(
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
    rows = {
        "rows_in": 1000,
        "rows_accepted": 990,
        "rows_quarantined": 10,
        "quarantined_by_contract": 6,
        "quarantined_by_scan": 4,
    }
    decision = decide_gate(evaluation, adult_settings.gate, 1.0)
    card = render_model_card(adult_settings, "0" * 64, rows, {"outliers": 4}, privacy, evaluation, decision)
    # when rendered as HTML
    page = render_model_card_html(card)
    # then every markdown table became an HTML table and the plots are linked relatively
    assert "| accuracy |" in card and "equalized-odds difference" in card, "the markdown carries the figures"
    separators = [line for line in card.splitlines() if line.startswith("|---")]
    assert page.count("<table>") == len(separators) == 4, "metrics, groups, differences, robustness"
    assert "<th>TPR</th>" in page and "<th>equalized-odds difference</th>" in page, "fairness columns"
    for name in ("calibration", "groups", "robustness"):
        assert f'<img src="plots/{name}.png"' in page, f"{name} plot is linked relatively"
    assert "<h1>Model card: guardflow-adult</h1>" in page and "<li>" in page, "headings and lists"
    assert "&gt;= 0.84" in page, "text is escaped"


def test_no_regression_lines_judge_the_candidate_interval_against_the_champion(adult_settings) -> None:
    # given a champion at accuracy 0.86, and candidates whose 95% intervals reach or miss 0.86 - 0.01
    gate = adult_settings.gate
    champion = {"accuracy": 0.86, "roc_auc": 0.91, "ece": 0.05}

    def judged(accuracy_interval: tuple[float, float]) -> GateDecision:
        comparison = ChampionComparison(
            "7", champion, {"accuracy": accuracy_interval, "roc_auc": (0.90, 0.92)}
        )
        return decide_gate(_evaluation(), gate, 1.0, comparison)

    # then a candidate whose interval still reaches the margin passes, one clearly worse fails
    assert judged((0.845, 0.852)).passed, "an interval reaching 0.85 is not a proven regression"
    worse = judged((0.830, 0.845))
    assert not worse.passed and worse.compared_to == "7", "a candidate worse even at its best fails"
    assert any("FAIL no_regression[accuracy]" in reason for reason in worse.reasons), worse.reasons


def test_a_waiver_names_the_line_and_the_reason(adult_settings) -> None:
    # given a policy that waives the accuracy line
    gate = adult_settings.gate.model_copy(update={"waivers": {"accuracy": "known label shift, ticket 42"}})
    # when a candidate below the accuracy threshold is judged
    decision = decide_gate(_evaluation(accuracy=0.5), gate, 1.0)
    # then that line is waived with its reason and does not fail the candidate
    assert decision.passed, f"a waived line does not count: {decision.reasons}"
    assert "WAIVED accuracy (known label shift, ticket 42)" in [line.describe() for line in decision.lines]
