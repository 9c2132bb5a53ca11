"""Screen a drifted batch against the champion's training data before it joins a retrain."""

import pandas as pd

from guardflow.contract.validate_contract import ContractResult
from guardflow.data.table import labelled_rows
from guardflow.drift import screen_batch as screening
from guardflow.drift.detect_drift import DriftResult, Reference
from guardflow.io.lineage import file_dataset
from guardflow.run.run_context import RunContext
from tasks.stage_log import stage_log
from tasks.stage_task import stage_task


@stage_task("screen-batch", holds_raw_rows=True)
def screen_batch(
    context: RunContext, reference: Reference, contract: ContractResult, drift: DriftResult
) -> screening.BatchScreen:
    """Suspect rows of the batch (a label shifted inside a slice) and why a retrain on it must wait, if it must."""
    settings = context.settings
    dataset = settings.dataset
    accepted = contract.accepted
    batch = accepted[accepted[dataset.label.column].isin([dataset.label.positive, dataset.label.negative])]
    inputs = [file_dataset(reference.table.path, row_count=reference.table.row_count)]
    with context.stage("screen_batch", inputs=inputs) as stage:
        screen = screening.screen_batch(
            batch,
            labelled_rows(reference.table.rows, dataset),
            dataset,
            settings.poisoning,
            settings.drift,
            drift.drifted_columns,
        )
        stage.datasets.append(context.rows_dataset("screened-batch-rows", screen.rows - screen.suspect_count))
    slices = "; ".join(found.describe() for found in screen.slices[:3]) or "none"
    stage_log.info(
        "screen    %s of %s batch rows suspect (slices: %s) in %.1fs",
        f"{screen.suspect_count:,}", f"{screen.rows:,}", slices, screen.seconds,
    )  # fmt: skip
    for reason in screen.hold_reasons:
        stage_log.info("            retrain waits for approval: %s", reason)
    return screen


def suspect_rows(screen: screening.BatchScreen | None, rows: pd.DataFrame) -> pd.DataFrame:
    """The batch rows the screen set aside (none without a screen), for the drift run's quarantine."""
    if screen is None:
        return rows.head(0).assign(reasons=pd.Series(dtype="object"))
    return screen.suspect_rows(rows)
