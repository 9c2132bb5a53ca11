"""`drift-check-inbox`: the scheduled drift-check of a Prefect server; each new inbox batch is checked once."""

from __future__ import annotations

from prefect import flow

from flows.drift_check import drift_check
from guardflow.errors import GuardflowError
from guardflow.settings import load_settings
from tasks.stage_log import stage_log
from tasks.watch_inbox import claim_batches, finish_batch, publish_drift

FLOW_NAME = "drift-check-inbox"


@flow(name=FLOW_NAME, validate_parameters=True)
def drift_inbox(config_path: str) -> list[str]:
    """Claim the inbox's new batches, run drift-check on each (drift emits a retrain event), file them away.

    A batch that fails on its input (bad file, broken contract) is finished as failed and filed; one that fails
    inside guardflow stays claimed, so the next run takes it again, and this run fails once the others are done.
    """
    settings = load_settings(config_path)
    outcomes: list[str] = []
    internal: list[str] = []
    for claim in claim_batches(settings):
        try:
            summary = drift_check(config_path, str(claim.path), retrain="event")
        except GuardflowError as error:
            stage_log.warning("inbox     %s refused: %s", claim.path.name, error)
            finish_batch(settings, claim, f"failed: {error}", "")
            outcomes.append("failed")
            continue
        except Exception as error:
            internal.append(f"{claim.path.name}: {type(error).__name__}: {error}")
            continue
        publish_drift(settings, summary, claim)
        finish_batch(settings, claim, summary.status, summary.run_dir)
        outcomes.append(summary.status)
    if internal:
        raise RuntimeError(f"{len(internal)} batches stay claimed for the next run: {'; '.join(internal)}")
    return outcomes
