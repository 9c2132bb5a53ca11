"""Encoding uses public bounds only: a row's encoding never depends on the other rows."""

import numpy as np
import pandas as pd

from guardflow.data.encode_features import encode_features, feature_layout
from guardflow.data.table import typed_frame
from guardflow.io.datasets import read_split


def test_encoding_of_a_row_does_not_depend_on_the_other_rows(adult_settings) -> None:
    # given 300 typed rows of adult.data
    dataset = adult_settings.dataset
    frame = typed_frame(read_split(dataset, "train").rows.head(300), dataset)
    # when encoded together and one at a time
    together = encode_features(frame, dataset)
    alone = np.vstack([encode_features(frame.iloc[[index]], dataset) for index in range(len(frame))])
    # then the two agree exactly: nothing was fitted on the batch
    assert np.array_equal(together, alone), "encoding must be row-local (no statistics of the training rows)"


def test_encoding_matches_the_layout_and_stays_in_unit_range(adult_settings) -> None:
    dataset = adult_settings.dataset
    frame = typed_frame(read_split(dataset, "test").rows, dataset)
    encoded = encode_features(frame, dataset)
    assert encoded.shape == (len(frame), feature_layout(dataset).width), "one column per layout entry"
    assert encoded.min() >= 0.0 and encoded.max() <= 1.0, "scaled into [0, 1] by the public bounds"


def test_out_of_bounds_and_unknown_values_are_clipped_or_other(adult_settings) -> None:
    # given a row with an age above the bound, an unknown workclass and a missing occupation
    dataset = adult_settings.dataset
    row = typed_frame(read_split(dataset, "train").rows.head(1), dataset).copy()
    row.loc[:, "age"] = 500.0
    row.loc[:, "workclass"] = "Astronaut"
    row.loc[:, "occupation"] = pd.NA
    encoded = pd.Series(encode_features(row, dataset)[0], index=feature_layout(dataset).names)
    # then age is at the top of its range and both categoricals fall in 'other'
    assert encoded["age"] == 1.0, "values above the public max clip to 1"
    assert encoded["workclass=__other__"] == 1.0, "unknown categories are encoded as other"
    assert encoded["occupation=__other__"] == 1.0, "missing categories are encoded as other"
