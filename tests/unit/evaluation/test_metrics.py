"""Point metrics and their resampled versions: calibration error, and the weighted AUC the bootstrap uses."""

import numpy as np
import pytest

from guardflow.evaluation.evaluate_safety import (
    expected_calibration_error,
)


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
