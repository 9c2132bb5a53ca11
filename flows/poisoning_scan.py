"""`poisoning-scan`: load, validate, scan for poisoning and write the run record; no training."""

from __future__ import annotations

from prefect import flow

from guardflow.run.summary import RunSummary
from tasks.guard_pii import guard_data
from tasks.load_data import load_data
from tasks.record_run import recorded_run, save_quarantine, summarize_scan
from tasks.scan_data import load_trusted_reference, scan_data
from tasks.validate_data import validate_data

FLOW_NAME = "poisoning-scan"


@flow(name=FLOW_NAME, validate_parameters=True)
def poisoning_scan(config_path: str, run_dir: str | None = None, data_path: str | None = None) -> RunSummary:
    """Scan the configured training data (or `data_path`): the contract's accepted rows go through every
    detector; flagged rows are quarantined with their detectors and scores; the policy may fail the run."""
    with recorded_run(FLOW_NAME, config_path, run_dir) as run:
        context = run.context
        train = load_data(context, "train", data_path)
        train = guard_data(context, train, "train")
        contract = validate_data(context, train)
        reference = load_trusted_reference(context)
        scan = scan_data(context, contract, reference)
        quarantine = save_quarantine(
            context, {"contract": contract.quarantined, "poisoning_scan": scan.quarantined(train.rows)}
        )
        run.summary = summarize_scan(context, train, contract, scan, quarantine)
    return run.result()
