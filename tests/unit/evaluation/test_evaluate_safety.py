"""Assembling the evaluation: one fairness entry per attribute, intervals, the membership audit (with a power
check on a model that really leaks), the flat metrics, the plots and the HTML card."""

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from guardflow.data.encode_features import encode_features
from guardflow.data.table import label_vector, typed_frame
from guardflow.evaluation.evaluate_safety import (
    Evaluation,
    check_behaviour,
    evaluate_safety,
    save_plots,
)
from guardflow.io.datasets import read_split
from guardflow.privacy.audit_membership import MembershipAudit, audit_membership
from guardflow.privacy.network import build_mlp, predict_proba
from guardflow.privacy.train_private import split_for_audit
from tests.unit.evaluation.conftest import by_relationship


def _calibrated_sample(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities drawn uniformly and labels drawn with exactly those probabilities."""
    generator = np.random.default_rng(seed)
    probabilities = generator.uniform(size=rows)
    return probabilities, (generator.uniform(size=rows) < probabilities).astype("int64")


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
    # given an unregularised MLP overfit on about 500 rows of adult.data (full-batch Adam, 1,000 steps), the
    # other rows of the same 1,000 held out as the audit split (one pool, as the pipeline audits)
    dataset = adult_settings.dataset
    pool = typed_frame(read_split(dataset, "train").rows.head(1000), dataset)
    pool_features, pool_labels = encode_features(pool, dataset), label_vector(pool, dataset).to_numpy()
    split = split_for_audit(pool_features, pool_labels, 0.5, seed=0)
    member_features, member_labels = pool_features[split.members], pool_labels[split.members]
    nonmember_features, nonmember_labels = pool_features[split.held_out], pool_labels[split.held_out]
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
    # when its training rows are audited against the audit split
    audit = audit_membership(
        predict_proba(model, member_features).double().numpy(),
        member_labels,
        predict_proba(model, nonmember_features).double().numpy(),
        nonmember_labels,
    )
    # then the audit sees the leak (measured 0.578 with this seed, 0.562-0.578 over torch seeds 0-5; the
    # standard error of a no-leak AUC with 500 rows a side is ~0.018)
    assert audit.auc > 0.55, f"the loss attack should detect an overfit model, got AUC {audit.auc:.3f}"


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


# --- plots, metrics and the card ---


def _full_evaluation(adult_settings, adult_held_out) -> Evaluation:
    frame, labels = adult_held_out
    dataset = adult_settings.dataset
    evaluation = evaluate_safety(by_relationship(frame), labels, frame[dataset.sensitive], _NO_LEAK)
    return check_behaviour(evaluation, by_relationship, frame, labels, dataset, seed=0)


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
