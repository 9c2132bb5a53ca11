"""`safety-train`: load, guard PII, validate, scan, train with DP, evaluate, gate, register; lineage at every step."""

from __future__ import annotations

from prefect import flow

from guardflow.run.summary import RunSummary
from tasks.compare_champion import compare_champion
from tasks.evaluate_model import describe_rows, evaluate_model, evaluate_window
from tasks.gate_model import gate_model
from tasks.guard_pii import guard_data
from tasks.load_data import load_data
from tasks.record_run import recorded_run, save_quarantine, summarize_training
from tasks.register_model import register_model
from tasks.reserve_budget import reserve_budget
from tasks.scan_data import load_trusted_reference, scan_data
from tasks.train_model import train_model
from tasks.validate_data import validate_data

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
) -> RunSummary:
    """Train a candidate on the configured data (or `data_path`); promote it only if it passes every stage.

    `data_sources` are the sha256 of the files the training data was built from, each charged in the privacy
    ledger (default: the training file itself). `test_path`: judge on this file instead of the configured test
    split. `window_path`: a drift retrain's window (the batch's held-out rows); candidate and champion are also
    compared there (no-regression lines), while the absolute lines stay on the test split.
    `approval_reasons`: why a passing candidate must wait as challenger for `guardflow approve` (a drift retrain
    on a suspicious batch); without them, `registry.approval` decides.
    """
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
        run.summary = register_model(
            context, saved, train, evaluation, decision, summary, approval_reasons or []
        )
    return run.result()
