"""`drift-check`: compare a new batch with the champion's data; when it drifted, run a guarded retrain."""

from __future__ import annotations

from typing import Literal

from prefect import flow

from flows.safety_train import safety_train
from guardflow.run.summary import RunSummary, drift_summary
from tasks.check_drift import check_drift, drift_figures, load_reference, split_for_retrain
from tasks.guard_pii import guard_data, guard_reference
from tasks.load_data import load_data
from tasks.record_run import fail_run, finish_run, start_run
from tasks.request_retrain import request_retrain
from tasks.validate_data import validate_data

FLOW_NAME = "drift-check"


@flow(name=FLOW_NAME, validate_parameters=True)
def drift_check(
    config_path: str,
    batch_path: str,
    run_dir: str | None = None,
    retrain: Literal["in_process", "event"] = "in_process",
) -> RunSummary:
    """Check a batch for drift; when it passes the policy's threshold, hold a seeded share of the batch out as
    its window and retrain on reference plus the rest, judged on the test split and on the window.

    `retrain="event"` (on a Prefect server): instead of training here, emit `guardflow.drift.detected` with the
    same files; the deployment trigger starts the guarded retrain, which judges it the same way.
    """
    context = start_run(FLOW_NAME, config_path, run_dir)
    try:
        reference = load_reference(context)
        batch = load_data(context, "batch", batch_path)
        guarded = guard_data(context, batch, "batch")
        contract = validate_data(context, guarded)
        drift, scores = check_drift(context, guard_reference(context, reference), contract.accepted, guarded)
        figures = drift_figures(context, batch, drift, scores)
        sources = [*reference.sources, batch.sha256]
        trained = None
        # Raw rows of both files go to the retrain: its own PII guard applies the policy, like to any input.
        # Both paths hold out the same seeded window and judge the retrain by the same rule (drift/judge_retrain).
        if drift.drift_detected:
            files = split_for_retrain(context, reference, batch)
        if drift.drift_detected and retrain == "event":
            request_retrain(context, batch, files, sources, drift.drifted_share)
        elif drift.drift_detected:
            trained = safety_train(
                config_path,
                str(context.run_dir / "retrain"),
                str(files.data_path),
                sources,
                window_path=str(files.window_path),
            )
        requested = drift.drift_detected and retrain == "event"
        summary = drift_summary(context.header(), figures, trained, requested=requested)
    except Exception as error:
        fail_run(context, error)
        raise
    return finish_run(context, summary)
