"""`drift-retrain`: what a `guardflow.drift.detected` event starts on a server; a guarded safety-train."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from guardflow.settings import load_settings
from tasks.guard_retrain import enter_retrain, record_trigger

FLOW_NAME = "drift-retrain"


@flow(name=FLOW_NAME, validate_parameters=True)
def drift_retrain(
    config_path: str,
    batch_sha256: str,
    data_path: str,
    window_path: str,
    data_sources: str,
    drift_run_dir: str,
) -> dict[str, str]:
    """Run safety-train on reference plus batch (judged like `guardflow drift` judges it: absolute lines on the
    test split, no-regression lines on the test split and on the batch's window), unless the guard says no.

    The guard records every trigger; inside the dataset's cooldown, or while another retrain is in flight, the
    trigger is recorded as such and nothing is trained. `data_sources` are comma-separated sha256s to charge.
    """
    settings = load_settings(config_path)
    ticket = enter_retrain(settings, batch_sha256)
    if not ticket.decision.acted_on:
        return record_trigger(settings, ticket, drift_run_dir, ticket.decision.action, None)
    # Imported here: a trigger the guard turns away should not pay for importing torch, Opacus and the rest.
    from flows.safety_train import safety_train

    run_dir = str(Path(drift_run_dir) / "retrain")
    try:
        summary = safety_train(
            config_path, run_dir, data_path, data_sources.split(","), window_path=window_path
        )
    except Exception as error:
        record_trigger(settings, ticket, drift_run_dir, f"failed: {type(error).__name__}: {error}", run_dir)
        raise
    return record_trigger(settings, ticket, drift_run_dir, summary.status, run_dir)
