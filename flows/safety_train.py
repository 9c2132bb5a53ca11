"""`safety-train`: load, guard PII, validate, scan, train with DP, evaluate, gate, register; lineage at every step.

Two paths through the same stages: a table in memory, or (for a folder or a file larger than
`compute.cluster_above_bytes`, or when a Dask cluster is named) partitions on Dask and out-of-core training."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from guardflow.io.cluster import early_cluster, uses_cluster
from guardflow.run.run_context import RunContext
from guardflow.run.summary import RunSummary
from tasks.compare_champion import compare_champion
from tasks.evaluate_model import describe_rows, evaluate_model, evaluate_window
from tasks.gate_model import gate_model
from tasks.guard_pii import guard_data
from tasks.load_data import load_data, training_source
from tasks.match_registered import match_registered
from tasks.record_run import (
    recorded_run,
    save_quarantine,
    summarize_partitioned_training,
    summarize_training,
)
from tasks.register_model import register_model
from tasks.reserve_budget import reserve_budget
from tasks.scan_data import load_trusted_reference, scan_data, scan_partitions
from tasks.train_model import train_model, train_model_out_of_core
from tasks.validate_data import validate_data, validate_in_chunks, warm

FLOW_NAME = "safety-train"


@flow(name=FLOW_NAME, validate_parameters=True)
def safety_train(
    config_path: str,
    run_dir: str | None = None,
    data_path: str | None = None,
    data_sources: list[str] | None = None,
    test_path: str | None = None,
    window_path: str | None = None,
    approval_reasons: list[str] | None = None,
    force: bool = False,
) -> RunSummary:
    """Train a candidate on the configured data (or `data_path`); promote it only if it passes every stage.

    `data_sources` are the sha256 of the files the training data was built from, each charged in the privacy
    ledger (default: the training file itself). `test_path`: judge on this file instead of the configured test
    split. `window_path`: a drift retrain's window (the batch's held-out rows); candidate and champion are also
    compared there (no-regression lines), while the absolute lines stay on the test split.
    `approval_reasons`: why a passing candidate must wait as challenger for `guardflow approve` (a drift retrain
    on a suspicious batch); without them, `registry.approval` decides.
    A version already registered from the same data, config and code is reported (status `unchanged`) and
    nothing is trained; `force` trains again. A drift retrain (`window_path`) always trains.
    """
    with recorded_run(FLOW_NAME, config_path, run_dir) as run:
        context = run.context
        evaluated_on = [path for path in (test_path, window_path) if path is not None]
        retrain = window_path is not None
        compute, source = context.settings.compute, training_source(context, data_path)
        # A large source's LocalCluster starts now, beside the rerun check, and serves every data stage.
        with early_cluster(compute, source, warm(context)):
            run.summary = match_registered(context, data_path, data_sources, evaluated_on, force, retrain)
            if run.summary is None:
                train = _train_partitioned if uses_cluster(compute, source) else _train_in_memory
                run.summary = train(
                    context, data_path, data_sources, test_path, window_path, approval_reasons or []
                )
    return run.result()


def _train_in_memory(
    context: RunContext,
    data_path: str | None,
    data_sources: list[str] | None,
    test_path: str | None,
    window_path: str | None,
    approval_reasons: list[str],
) -> RunSummary:
    """Every stage from loading the data to registering the candidate; the summary with its model section."""
    train = load_data(context, "train", data_path)
    train = guard_data(context, train, "train")
    contract = validate_data(context, train)
    reference = load_trusted_reference(context)
    scan = scan_data(context, contract, reference)
    quarantine = save_quarantine(
        context, {"contract": contract.quarantined, "poisoning_scan": scan.quarantined(train.rows)}
    )
    budgets = reserve_budget(context, train, data_sources)
    saved = train_model(context, train, contract, scan)
    test = load_data(context, "test", test_path)
    test = guard_data(context, test, "test")
    evaluation = evaluate_model(context, saved, test, contract, scan)
    comparison = compare_champion(context, test, evaluation, saved, contract, scan, reference)
    window = None
    if window_path is not None:
        window_table = guard_data(context, load_data(context, "window", window_path), "window")
        window = evaluate_window(context, saved, window_table, evaluation)
    test_rows = describe_rows("test set", test, evaluation.rows)
    decision = gate_model(
        context, evaluation, saved, comparison, window.comparison if window else None, test_rows
    )
    summary = summarize_training(
        context, train, contract, scan, quarantine, saved, evaluation, decision, budgets, window
    )
    return register_model(context, saved, train, evaluation, decision, summary, approval_reasons)


def _train_partitioned(
    context: RunContext,
    data_path: str | None,
    data_sources: list[str] | None,
    test_path: str | None,
    window_path: str | None,
    approval_reasons: list[str],
) -> RunSummary:
    """The same stages on a source too large for memory: contract and scan partition by partition (on Dask
    when `io/cluster.py` says so), accepted rows and verdicts as Parquet parts, DP training out of core."""
    path = Path(data_path) if data_path else context.settings.dataset.train.path
    contract = validate_in_chunks(context, path, accepted=True)
    reference = load_trusted_reference(context)
    scan = scan_partitions(context, contract, reference)
    budgets = reserve_budget(context, contract, data_sources)
    saved = train_model_out_of_core(
        context,
        path,
        contract.partitioned.parts,
        scan.scan_parts,
        contract.rows_accepted - scan.rows_flagged,
    )
    test = load_data(context, "test", test_path)
    test = guard_data(context, test, "test")
    evaluation = evaluate_model(context, saved, test)
    comparison = compare_champion(context, test, evaluation, saved, reference=reference)
    window = None
    if window_path is not None:
        window_table = guard_data(context, load_data(context, "window", window_path), "window")
        window = evaluate_window(context, saved, window_table, evaluation)
    test_rows = describe_rows("test set", test, evaluation.rows)
    decision = gate_model(
        context, evaluation, saved, comparison, window.comparison if window else None, test_rows
    )
    summary = summarize_partitioned_training(context, contract, scan, saved, evaluation, decision, budgets)
    return register_model(context, saved, contract, evaluation, decision, summary, approval_reasons)
