"""The held-out slice of Adult that the evaluation tests score."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from guardflow.data.table import label_vector, typed_frame
from guardflow.io.datasets import read_split


@pytest.fixture(scope="module")
def adult_held_out(adult_settings) -> tuple[pd.DataFrame, np.ndarray]:
    dataset = adult_settings.dataset
    frame = typed_frame(read_split(dataset, "test").rows.head(3000), dataset)
    return frame, label_vector(frame, dataset).to_numpy()
