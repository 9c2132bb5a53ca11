"""Duplicate floods calibrated to the data: natural repeats of low-cardinality rows stay, a flood does not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.plant_attacks import duplicate_flood
from guardflow.data.table import typed_frame
from guardflow.io.datasets import read_split
from guardflow.poisoning.scan_poisoning import _duplicate_floods
from guardflow.settings import load_settings
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def fair():
    return load_settings(ROOT / "configs" / "fair.yaml")


@pytest.fixture(scope="module")
def fair_rows(fair) -> pd.DataFrame:
    dataset = fair.dataset
    return typed_frame(read_split(dataset, "train").rows, dataset)[[*dataset.features, dataset.label.column]]


def test_natural_repeats_of_few_valued_rows_are_not_a_flood(fair, fair_rows) -> None:
    # given Fair's rows (8 features of a few values each: identical rows are natural there)
    repeated = float(fair_rows.duplicated(keep="first").mean())
    assert repeated > 0.05, (
        f"the case needs natural repeats; only {repeated:.1%} of rows repeat an earlier one"
    )
    # when duplicate floods are looked for
    _, flags = _duplicate_floods(fair_rows, fair.dataset, fair.poisoning)
    # then (almost) no genuine row is flagged
    assert flags.mean() <= 0.005, f"{flags.mean():.2%} of genuine rows flagged as a flood"


def test_one_row_copied_many_times_is_a_flood(fair, fair_rows) -> None:
    # given 2% of new rows, copies of 10 random rows
    flooded, planted = duplicate_flood(fair_rows, fair.dataset, 0.02, 10, np.random.default_rng(0))
    # when duplicate floods are looked for
    _, flags = _duplicate_floods(flooded, fair.dataset, fair.poisoning)
    # then most copies are flagged, and the genuine rows are not
    flagged = pd.Series(flags, index=flooded.index)
    assert flagged.loc[planted].mean() >= 0.6, f"only {flagged.loc[planted].mean():.0%} of the copies flagged"
    assert flagged.drop(planted).mean() <= 0.005, "genuine rows flagged as a flood"
