"""`data-contract`: the contract stage alone: load, validate, quarantine, record. Nothing is trained."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from guardflow.run.summary import RunSummary
from guardflow.settings import load_settings
from tasks.guard_pii import guard_data
from tasks.load_data import load_data
from tasks.record_check import record_contract
from tasks.record_run import recorded_run, save_quarantine
from tasks.validate_data import validate_data, validate_in_chunks

FLOW_NAME = "data-contract"


@flow(name=FLOW_NAME, validate_parameters=True)
def data_contract(
    config_path: str, run_dir: str | None = None, data_path: str | None = None, chunked: bool = False
) -> RunSummary:
    """Check the configured training data (or `data_path`) against its contract and write the run record.

    `chunked`: read and validate the file chunk by chunk in bounded memory (for files too large to hold),
    streaming the quarantine to parquet; no PII policy and no Data Docs page in that mode.
    """
    with recorded_run(FLOW_NAME, config_path, run_dir) as run:
        context = run.context
        if chunked:
            path = Path(data_path) if data_path else load_settings(config_path).dataset.train.path
            checked = validate_in_chunks(context, path)
            source = (checked.path, checked.sha256, checked.rows_in)
            summary = record_contract(context, source, checked, checked.quarantine_path)
        else:
            table = load_data(context, "train", data_path)
            table = guard_data(context, table, "train")
            contract = validate_data(context, table)
            quarantine = save_quarantine(context, {"contract": contract.quarantined})
            source = (table.path, table.sha256, table.row_count)
            summary = record_contract(context, source, contract, quarantine)
        run.summary = summary
    return run.result()
