"""Shared data for the evaluation tests: Adult's held-out rows and a way to build an evaluation of them."""

import numpy as np
import pandas as pd
import pytest

from guardflow.data.table import label_vector, labelled_rows, typed_frame
from guardflow.evaluation.evaluate_safety import Evaluation, evaluate_safety
from guardflow.io.datasets import read_split
from guardflow.privacy.audit_membership import MembershipAudit

NO_LEAK = MembershipAudit(
    auc=0.5, tpr_at_1pct_fpr=0.01, tpr_at_01pct_fpr=0.001, epsilon_lower_bound=0.0, rows_per_side=1000
)


@pytest.fixture(scope="session")
def adult_test_rows(adult_settings) -> tuple[pd.DataFrame, np.ndarray]:
    """The first 6,000 labelled rows of adult.test, typed, and their labels."""
    dataset = adult_settings.dataset
    frame = labelled_rows(read_split(dataset, "test").rows, dataset).head(6000)
    return frame, label_vector(frame, dataset).to_numpy()


def score_by_relationship(frame: pd.DataFrame) -> np.ndarray:
    """A plausible stand-in model: husbands and wives 0.6, everyone else 0.1, plus a little per-row variety."""
    base = np.where(frame["relationship"].isin(["Husband", "Wife"]), 0.6, 0.1)
    return np.clip(base + 0.002 * (frame["age"].fillna(40).to_numpy() - 40), 0.01, 0.99)


def evaluation_of(
    probabilities: np.ndarray, labels: np.ndarray, sensitive: pd.DataFrame, min_group_size: int = 50
) -> Evaluation:
    return evaluate_safety(probabilities, labels, sensitive, NO_LEAK, min_group_size=min_group_size)


@pytest.fixture(scope="session")
def adult_held_out(adult_settings) -> tuple[pd.DataFrame, np.ndarray]:
    """The first 3,000 rows of adult.test, typed, and their labels."""
    dataset = adult_settings.dataset
    frame = typed_frame(read_split(dataset, "test").rows.head(3000), dataset)
    return frame, label_vector(frame, dataset).to_numpy()


def by_relationship(frame: pd.DataFrame) -> np.ndarray:
    """A model reading one categorical column: husbands and wives 0.8, everyone else 0.2."""
    return np.where(frame["relationship"].isin(["Husband", "Wife"]), 0.8, 0.2)
