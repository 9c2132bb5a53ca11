"""The privacy-budget ledger: every charge kept in the tracking store and read back per dataset."""

from __future__ import annotations

from pathlib import Path

from guardflow.io import ledger, registry
from guardflow.privacy.privacy_budget import summarize_budget

SOURCE_A, SOURCE_B = "a" * 64, "b" * 64


def test_ledger_persists_in_the_tracking_store(tmp_path: Path) -> None:
    # given a fresh store / when two runs are charged, one of them to two sources
    registry.configure_tracking(tmp_path, experiment="ledger-test")
    ledger.record_spend("adult", [SOURCE_A], 1.0, 1e-5, "train", "/runs/1")
    ledger.record_spend("adult", [SOURCE_A, SOURCE_B], 0.5, 1e-5, "retrain", "/runs/2")
    ledger.record_spend("other", [SOURCE_A], 9.0, 1e-5, "train", "/runs/3")
    # then reading it back gives every charge of the dataset, and only those
    spends = ledger.read_spends("adult")
    assert len(spends) == 3, f"three charges for adult, got {spends}"
    assert summarize_budget("adult", SOURCE_A, spends, 10).spent == 1.5, "charges add up per source"
    assert summarize_budget("adult", SOURCE_B, spends, 10).spent == 0.5, "a retrain charges every source"
