"""The trusted reference: a slice whose label rate rose against the champion's rows is found and named."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from bench.plant_attacks import flip_labels, plant_random_backdoor
from guardflow.data.table import typed_frame
from guardflow.io.datasets import read_split
from guardflow.poisoning.scan_poisoning import scan_poisoning
from guardflow.poisoning.trusted_reference import TRUSTED_REFERENCE, compare_reference

ROWS = 8000
TRIGGER = {"occupation": "Tech-support", "hours-per-week": 44.0}


@pytest.fixture(scope="module")
def halves(adult_settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The first ROWS Adult rows split at random into a trusted reference and new rows."""
    frame = typed_frame(read_split(adult_settings.dataset, "train").rows.head(ROWS), adult_settings.dataset)
    order = np.random.default_rng(0).permutation(len(frame))
    return frame.iloc[np.sort(order[: ROWS // 2])], frame.iloc[np.sort(order[ROWS // 2 :])]


def test_a_backdoor_slice_is_flagged_with_the_slice_in_its_reason(halves, adult_settings) -> None:
    # given new rows where 2% of <=50K rows carry a two-value trigger and the label >50K, and clean reference rows
    reference, new = halves
    dataset = adult_settings.dataset
    poisoned, planted = plant_random_backdoor(
        new, dataset, TRIGGER, ">50K", 0.02, "relabel", np.random.default_rng(1)
    )
    # when they are compared with the reference
    with threadpool_limits(limits=1):
        comparison = compare_reference(poisoned, reference, dataset, adult_settings.poisoning)
    # then the trigger's slice is shifted towards >50K and its planted rows are flagged, named by the slice
    recall = float(comparison.flags.loc[planted].mean())
    assert recall >= 0.9, f"only {recall:.0%} of the backdoor rows flagged; slices: {comparison.slices}"
    names = [shift.name for shift in comparison.slices]
    assert any("occupation=Tech-support" in name for name in names), f"trigger slice not named: {names}"
    reason = comparison.reasons.loc[planted[comparison.flags.loc[planted].to_numpy()][0]]
    assert "occupation=Tech-support" in reason and ">50K" in reason, (
        f"reason does not name the slice: {reason!r}"
    )
    genuine = float(comparison.flags.drop(planted).mean())
    assert genuine <= 0.01, f"{genuine:.1%} of genuine rows flagged"


def test_rows_drawn_like_the_reference_are_not_flagged(halves, adult_settings) -> None:
    # given new rows drawn from the same data as the reference, with 2% of labels flipped at random
    reference, new = halves
    noisy, _ = flip_labels(new, adult_settings.dataset, 0.02, np.random.default_rng(2))
    # when they are compared with the reference
    with threadpool_limits(limits=1):
        comparison = compare_reference(noisy, reference, adult_settings.dataset, adult_settings.poisoning)
    # then no slice is shifted (a small spread of noise is no slice's shift) and no row is flagged
    assert not comparison.slices, (
        f"shifted slices on unshifted data: {[s.describe() for s in comparison.slices]}"
    )
    assert not comparison.flags.any(), f"{int(comparison.flags.sum())} rows flagged on unshifted data"


def test_the_scan_skips_the_detector_without_a_reference_and_carries_its_reasons_with_one(
    halves, adult_settings
) -> None:
    # given the same backdoored rows
    reference, new = halves
    dataset = adult_settings.dataset
    poisoned, planted = plant_random_backdoor(
        new, dataset, TRIGGER, ">50K", 0.02, "inject", np.random.default_rng(3)
    )
    # (slice purity, ~5 s a scan, has its own tests: this one is about the reference)
    policy = adult_settings.poisoning.model_copy(update={"max_flagged_share": 1.0, "slice_purity": False})
    # when they are scanned without a reference, then with one
    with threadpool_limits(limits=1):
        alone = scan_poisoning(poisoned, dataset, policy)
        trusted = scan_poisoning(poisoned, dataset, policy, reference=reference)
    # then the detector is skipped and said so without one; with one, the quarantine names the slice
    assert TRUSTED_REFERENCE not in alone.flags.columns, "the detector must not run without a reference"
    assert TRUSTED_REFERENCE in (alone.skipped or {}), f"the skip must be reported: {alone.skipped}"
    assert trusted.flags[TRUSTED_REFERENCE].loc[planted].mean() >= 0.9, (
        "the reference must catch the injection"
    )
    quarantined = trusted.quarantined(poisoned)
    reasons = " ".join(" ".join(found) for found in quarantined.loc[planted[:5], "reasons"])
    assert "trusted_reference: " in reasons and "occupation=Tech-support" in reasons, f"reasons: {reasons!r}"
