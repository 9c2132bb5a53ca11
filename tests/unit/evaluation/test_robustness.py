"""Robustness to perturbed inputs and counterfactual flips of sensitive attributes."""

import numpy as np
import pandas as pd
import pytest

from guardflow.evaluation.robustness import counterfactual_flip_rate, robustness
from tests.unit.evaluation.conftest import by_relationship


def _by_capital_gain(frame: pd.DataFrame) -> np.ndarray:
    return np.where(frame["capital-gain"].to_numpy() > 5000, 0.9, 0.1)


def test_robustness_is_unchanged_for_features_the_model_ignores(adult_settings, adult_held_out) -> None:
    # given a model reading only a categorical column and one reading only a numeric column
    frame, labels = adult_held_out
    categorical = robustness(by_relationship, frame, labels, adult_settings.dataset, seed=0)
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
    categorical = robustness(by_relationship, frame, labels, adult_settings.dataset, seed=0)
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
    assert counterfactual_flip_rate(by_relationship, frame, dataset, "sex") == 0.0, "sex is not read"
    assert counterfactual_flip_rate(by_sex, frame, dataset, "sex") == 1.0, "only sex is read"
    with pytest.raises(ValueError, match="categorical"):
        counterfactual_flip_rate(by_sex, frame, dataset, "age")
