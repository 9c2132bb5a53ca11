"""The batch screen: a drifted batch is compared with the trusted data before it joins a retrain."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.plant_attacks import plant_random_backdoor
from guardflow.data.table import labelled_rows
from guardflow.drift.screen_batch import screen_batch
from guardflow.io.datasets import read_split

TRIGGER = {"occupation": "Sales", "hours-per-week": 37.0}


@pytest.fixture(scope="module")
def frames(adult_settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The champion's data (adult.data) and a 6,000-row batch of adult.test: one population."""
    dataset = adult_settings.dataset
    reference = labelled_rows(read_split(dataset, "train").rows, dataset)
    test = labelled_rows(read_split(dataset, "test").rows, dataset)
    batch = test.iloc[np.random.default_rng(0).choice(len(test), 6_000, replace=False)]
    return reference, batch


def _screen(adult_settings, batch: pd.DataFrame, reference: pd.DataFrame, policy: str):
    """The batch screened against the reference under one approval policy."""
    drift = adult_settings.drift.model_copy(update={"retrain_approval": policy})
    return screen_batch(batch, reference, adult_settings.dataset, adult_settings.poisoning, drift)


def test_a_batch_from_the_same_population_passes(adult_settings, frames) -> None:
    # given a batch drawn like the reference / when it is screened under on_suspicious
    reference, batch = frames
    screen = _screen(adult_settings, batch, reference, "on_suspicious")
    # then nothing is suspect and the retrain need not wait
    assert screen.suspect_count <= 0.005 * len(batch), f"few genuine rows suspected: {screen.suspect_count}"
    assert not screen.suspicious, f"no reason to hold a genuine batch: {screen.hold_reasons}"


def test_a_backdoored_batch_has_its_rows_quarantined_and_waits(adult_settings, frames) -> None:
    # given 180 negative rows of the batch given the trigger and the label >50K (3% of the batch)
    reference, batch = frames
    dataset = adult_settings.dataset
    poisoned, planted = plant_random_backdoor(
        batch, dataset, TRIGGER, dataset.label.positive, 0.03, "relabel", np.random.default_rng(1)
    )
    # when it is screened, under on_suspicious and under auto
    held = _screen(adult_settings, poisoned, reference, "on_suspicious")
    auto = _screen(adult_settings, poisoned, reference, "auto")
    # then most planted rows are suspects, with the slice named, and only on_suspicious holds the retrain
    found = held.suspects[held.suspects].index.intersection(planted)
    assert len(found) >= 0.9 * len(planted), f"suspects found {len(found)} of {len(planted)} planted rows"
    reasons = " ".join(held.reasons.loc[found])
    assert "occupation=Sales" in reasons and "hours-per-week=37" in reasons, (
        f"the slice is named: {reasons[:200]}"
    )
    assert held.suspicious and "suspects" in held.hold_reasons[0], f"on_suspicious holds: {held.hold_reasons}"
    assert not auto.suspicious, f"auto never holds: {auto.hold_reasons}"
    assert auto.suspect_count == held.suspect_count, "suspects are quarantined whatever the approval policy"
    quarantined = held.suspect_rows(poisoned)
    assert quarantined["reasons"].map(lambda reasons: reasons[0].startswith("label shifted in ")).all(), (
        "each quarantined row says why it was set aside"
    )


def test_required_approval_always_waits(adult_settings, frames) -> None:
    # given a genuine batch / when the policy requires approval for every drift retrain
    reference, batch = frames
    screen = _screen(adult_settings, batch, reference, "required")
    # then it waits, and says why
    assert screen.suspicious and "required" in screen.hold_reasons[0], (
        f"held by policy: {screen.hold_reasons}"
    )


def test_a_label_prior_moved_wholesale_waits(adult_settings, frames) -> None:
    # given a batch where 30% of the negative rows were relabelled positive (the prior moves by ~0.23)
    reference, batch = frames
    dataset = adult_settings.dataset
    rng = np.random.default_rng(2)
    negatives = batch.index[batch[dataset.label.column] == dataset.label.negative]
    relabelled = rng.choice(negatives, round(0.3 * len(negatives)), replace=False)
    moved = batch.copy()
    moved.loc[relabelled, dataset.label.column] = dataset.label.positive
    # when it is screened
    screen = _screen(adult_settings, moved, reference, "on_suspicious")
    # then the retrain waits, with the prior named among the reasons
    assert any("label prior moved" in reason for reason in screen.hold_reasons), f"{screen.hold_reasons}"
