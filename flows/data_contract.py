"""`data-contract`: the contract stage alone: load, validate, quarantine, record. Nothing is trained."""

from __future__ import annotations

from prefect import flow

from guardflow.summary import RunSummary
from tasks.guard_pii import guard_data
from tasks.load_data import load_data
from tasks.record_check import record_contract
from tasks.record_run import fail_run, finish_run, save_quarantine, start_run
from tasks.validate_data import validate_data

FLOW_NAME = "data-contract"


@flow(name=FLOW_NAME, validate_parameters=True)
def data_contract(config_path: str, run_dir: str | None = None, data_path: str | None = None) -> RunSummary:
    """Check the configured training data (or `data_path`) against its contract and write the run record."""
    context = start_run(FLOW_NAME, config_path, run_dir)
    try:
        table = load_data(context, "train", data_path)
        table = guard_data(context, table, "train")
        contract = validate_data(context, table)
        quarantine = save_quarantine(context, {"contract": contract.quarantined})
        summary = record_contract(context, table, contract, quarantine)
    except Exception as error:
        fail_run(context, error)
        raise
    return finish_run(context, summary)
