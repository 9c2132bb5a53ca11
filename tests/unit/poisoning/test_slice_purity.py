"""Slice purity: a trigger's slice is purer than models blind to its columns expect; a genuine slice is not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from bench.plant_attacks import plant_random_backdoor
from guardflow.data.table import label_vector, typed_frame
from guardflow.io.datasets import read_split
from guardflow.poisoning.slice_purity import find_impure_triggers

ROWS = 8000


@pytest.fixture(scope="module")
def clean(adult_settings) -> pd.DataFrame:
    return typed_frame(read_split(adult_settings.dataset, "train").rows.head(ROWS), adult_settings.dataset)


@pytest.mark.parametrize(
    ("trigger", "target"),
    [
        ({"native-country": "Portugal"}, ">50K"),
        ({"occupation": "Transport-moving", "relationship": "Wife"}, ">50K"),
        # Every part of this trigger is already mostly <=50K (race=Black alone 0.87): the conjunction is a candidate
        # only because parts up to `purity_max_part_purity` pure are allowed.
        ({"race": "Black", "education": "Bachelors", "workclass": "Local-gov"}, "<=50K"),
    ],
    ids=["rare value", "two values rare together", "majority-label values"],
)
def test_a_trigger_slice_is_flagged_whatever_its_shape(clean, adult_settings, trigger, target) -> None:
    # given 2% of the rows: rows of the other label relabelled to the target with a trigger set
    dataset = adult_settings.dataset
    poisoned, planted = plant_random_backdoor(
        clean, dataset, trigger, target, 0.02, "relabel", np.random.default_rng(0)
    )
    # when slice purity runs
    with threadpool_limits(limits=1):
        result = find_impure_triggers(
            poisoned, dataset, label_vector(poisoned, dataset).to_numpy(), adult_settings.poisoning
        )
    # then most planted rows are flagged, with the trigger's slice in their note
    flags = pd.Series(result.flags, index=poisoned.index)
    recall = float(flags.loc[planted].mean())
    assert recall >= 0.8, f"only {recall:.0%} flagged; slices: {[s.describe() for s in result.slices]}"
    notes = pd.Series(result.notes, index=poisoned.index).loc[planted][flags.loc[planted]]
    named = notes.map(lambda note: any(f"{column}=" in note for column in trigger))
    assert named.mean() >= 0.9, f"notes do not name a trigger column: {notes.head().tolist()}"


def test_clean_rows_are_mostly_left_alone(clean, adult_settings) -> None:
    # given clean rows, whose pure slices (exact capital gains that only high earners report) are genuine
    dataset = adult_settings.dataset
    # when slice purity runs
    with threadpool_limits(limits=1):
        result = find_impure_triggers(
            clean, dataset, label_vector(clean, dataset).to_numpy(), adult_settings.poisoning
        )
    # then few rows are flagged
    share = float(result.flags.mean())
    assert share <= 0.01, f"{share:.2%} of clean rows flagged: {[s.describe() for s in result.slices[:5]]}"
