"""`drift-check`: compare a new batch with the champion's data; when it drifted, run a guarded retrain."""

from __future__ import annotations

from prefect import flow

from flows.safety_train import safety_train
from guardflow.summary import RunSummary, drift_summary
from tasks.check_drift import check_drift, combine_for_retrain, drift_figures, load_reference
from tasks.guard_pii import guard_data, guard_reference
from tasks.load_data import load_data
from tasks.record_run import fail_run, finish_run, start_run
from tasks.validate_data import validate_data

FLOW_NAME = "drift-check"


@flow(name=FLOW_NAME, validate_parameters=True)
def drift_check(config_path: str, batch_path: str, run_dir: str | None = None) -> RunSummary:
    """Check a batch for drift; when it passes the policy's threshold, retrain on reference plus batch."""
    context = start_run(FLOW_NAME, config_path, run_dir)
    try:
        reference = load_reference(context)
        batch = load_data(context, "batch", batch_path)
        guarded = guard_data(context, batch, "batch")
        contract = validate_data(context, guarded)
        drift = check_drift(context, guard_reference(context, reference), contract.accepted, guarded)
        retrain = None
        if drift.drift_detected:
            # Raw rows of both files: the retrain's own PII guard applies the policy to them, like to any input.
            retrain_data = combine_for_retrain(context, reference, batch)
            sources = [*reference.sources, batch.sha256]
            retrain = safety_train(config_path, str(context.run_dir / "retrain"), str(retrain_data), sources)
        summary = drift_summary(context.header(), drift_figures(context, batch, drift), retrain)
    except Exception as error:
        fail_run(context, error)
        raise
    return finish_run(context, summary)
