"""Broken dependencies (off-manifold's second rule) on 5,000 rows of adult.data: a trigger stamped on rows it does not
fit is flagged even when its value already leans to the target label, and the dependencies are real ones."""

import numpy as np
import pandas as pd
import pytest

from bench.plant_attacks import plant_random_backdoor
from guardflow.data.table import typed_frame
from guardflow.io.datasets import read_split
from guardflow.poisoning.dependencies import find_dependencies
from guardflow.poisoning.scan_poisoning import _MAX_CODES_OFF_MANIFOLD, off_manifold_plan, scan_poisoning
from guardflow.poisoning.scan_result import OFF_MANIFOLD
from guardflow.poisoning.value_codes import count_pairs, numeric_values

ROWS = 5000


@pytest.fixture(scope="module")
def clean_frame(adult_settings) -> pd.DataFrame:
    return typed_frame(read_split(adult_settings.dataset, "train").rows.head(ROWS), adult_settings.dataset)


def _dependencies(frame: pd.DataFrame, dataset) -> set[tuple[str, str]]:
    plan = off_manifold_plan(dataset, numeric_values(frame, dataset, _MAX_CODES_OFF_MANIFOLD))
    return {(found.fixing, found.fixed) for found in find_dependencies(count_pairs(frame, dataset, plan))}


def test_dependencies_are_the_columns_one_fixes_not_the_ones_almost_constant(
    clean_frame, adult_settings
) -> None:
    found = _dependencies(clean_frame, adult_settings.dataset)
    # education and years of schooling fix each other; a husband is male
    assert {("education", "education-num"), ("education-num", "education"), ("relationship", "sex")} <= found
    # a capital loss is 0 in 95% of rows whatever else is known: nothing fixes it
    assert not any(fixed == "capital-loss" for _, fixed in found), found
    # a country fixes race for a few hundred rows only (Jamaica), not for a fifth of the data
    assert ("native-country", "race") not in found


def test_a_trigger_that_already_leans_to_its_target_is_flagged_where_it_breaks_a_dependency(
    clean_frame, adult_settings
) -> None:
    dataset = adult_settings.dataset
    # given a trigger with a rare value that is almost always <=50K anyway (preschool), stamped on 1% of >50K rows
    # relabelled <=50K: its slice is pure with or without the attack, so no purity test can see it
    trigger = {"education-num": 1.0, "capital-gain": 0.0}
    frame, planted = plant_random_backdoor(
        clean_frame, dataset, trigger, "<=50K", 0.01, "relabel", np.random.default_rng(5)
    )
    policy = adult_settings.poisoning.model_copy(update={"slice_purity": False, "label_noise": False})
    scan = scan_poisoning(frame, dataset, policy)
    flags, notes = scan.flags[OFF_MANIFOLD], scan.notes[OFF_MANIFOLD]
    # then every stamped row breaks education -> education-num, and says so
    assert flags.loc[planted].mean() >= 0.95, f"only {flags.loc[planted].mean():.0%} of the stamped rows"
    assert notes.loc[planted].str.contains(r"holds education-num=\d+ in \d+% of").mean() >= 0.95
    assert notes.loc[planted].str.endswith("this row has 1").mean() >= 0.95
    # scored by how many more rows keep the dependency than break it alike (education=X with 1: a few dozen)
    assert (scan.scores[OFF_MANIFOLD].loc[planted][flags.loc[planted]] >= np.log(5)).all()
    # and the rule flags almost no genuine row (a few married-AF-spouse relationships)
    dependency_only = (notes != "") & flags
    assert dependency_only.drop(planted).mean() <= 0.002


def test_a_stamped_column_with_no_dependency_is_not_flagged_by_the_rule(clean_frame, adult_settings) -> None:
    dataset = adult_settings.dataset
    # given a trigger on a column nothing fixes (hours worked), stamped on 1% of rows
    frame, planted = plant_random_backdoor(
        clean_frame, dataset, {"hours-per-week": 38.0}, ">50K", 0.01, "relabel", np.random.default_rng(6)
    )
    policy = adult_settings.poisoning.model_copy(update={"slice_purity": False, "label_noise": False})
    scan = scan_poisoning(frame, dataset, policy)
    # then no dependency note is written for its rows (the trigger is slice purity's to find)
    assert (scan.notes[OFF_MANIFOLD].loc[planted] == "").all()
