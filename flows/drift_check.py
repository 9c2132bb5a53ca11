"""`drift-check`: compare a new batch with the champion's data; when it drifted, run a guarded retrain."""

from __future__ import annotations

from typing import Literal

from prefect import flow

from flows.safety_train import safety_train
from guardflow.run.summary import RunSummary, drift_summary, with_screen
from tasks.check_drift import check_drift, drift_figures, load_reference, split_for_retrain
from tasks.guard_pii import guard_data, guard_reference
from tasks.load_data import load_data
from tasks.record_run import recorded_run, save_quarantine
from tasks.request_retrain import request_retrain
from tasks.screen_batch import screen_batch, suspect_rows
from tasks.validate_data import validate_data

FLOW_NAME = "drift-check"


@flow(name=FLOW_NAME, validate_parameters=True)
def drift_check(
    config_path: str,
    batch_path: str,
    run_dir: str | None = None,
    retrain: Literal["in_process", "event"] = "in_process",
) -> RunSummary:
    """Check a batch for drift; when it passes the policy's threshold, screen it against the champion's data
    (suspect rows quarantined), hold a seeded share of the rest out as its window and retrain on reference plus
    the rest, judged on the test split and on the window. A suspicious batch's retrain waits for approval.

    `retrain="event"` (on a Prefect server): instead of training here, emit `guardflow.drift.detected` with the
    same files; the deployment trigger starts the guarded retrain, which judges it the same way.
    """
    with recorded_run(FLOW_NAME, config_path, run_dir) as run:
        context = run.context
        reference = load_reference(context)
        batch = load_data(context, "batch", batch_path)
        guarded = guard_data(context, batch, "batch")
        contract = validate_data(context, guarded)
        trusted = guard_reference(context, reference)
        drift, scores = check_drift(context, trusted, contract.accepted, guarded)
        figures = drift_figures(context, batch, drift, scores)
        sources = [*reference.sources, batch.sha256]
        trained = None
        screen = screen_batch(context, trusted, contract, drift) if drift.drift_detected else None
        save_quarantine(
            context, {"contract": contract.quarantined, "batch_screen": suspect_rows(screen, guarded.rows)}
        )
        # The retrain's files hold the guarded rows (undeclared and dropped columns emptied, identifiers hashed): no
        # personal data is copied into the run folder; the retrain's own guard then sees nothing left to act on.
        # Both paths hold out the same seeded window and judge the retrain by the same rule (drift/judge_retrain).
        if screen is not None:
            figures = with_screen(figures, screen)
            files = split_for_retrain(context, trusted, guarded, screen.suspects[screen.suspects].index)
            approval = list(screen.hold_reasons)
        if screen is not None and retrain == "event":
            request_retrain(context, batch, files, sources, drift.drifted_share, approval)
        elif screen is not None:
            trained = safety_train(
                config_path,
                str(context.run_dir / "retrain"),
                str(files.data_path),
                sources,
                window_path=str(files.window_path),
                approval_reasons=approval,
            )
        requested = drift.drift_detected and retrain == "event"
        run.summary = drift_summary(context.header(), figures, trained, requested=requested)
    return run.result()
