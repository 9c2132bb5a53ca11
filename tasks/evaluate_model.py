"""Evaluate the candidate on held-out rows: utility, calibration, fairness, robustness, counterfactual flips and a
membership audit, with the plots saved into the run folder; and, for a drift retrain, on the batch's window."""

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pandas as pd

from guardflow.contract.validate_contract import ContractResult
from guardflow.data.encode_features import encode_features
from guardflow.data.table import Table, label_vector, labelled_rows
from guardflow.drift.judge_retrain import WindowJudgement, judge_window
from guardflow.evaluation.decide_gate import WINDOW_ROWS
from guardflow.evaluation.differential import check_differential
from guardflow.evaluation.evaluate_safety import Evaluation, check_behaviour, evaluate_safety, save_plots
from guardflow.io.lineage import file_dataset
from guardflow.poisoning.scan_result import ScanResult
from guardflow.privacy.audit_membership import MembershipAudit, audit_membership
from guardflow.privacy.network import predict_proba
from guardflow.privacy.train_private import SavedModel
from guardflow.privacy.train_streaming import sample_rows
from guardflow.run.run_context import RunContext
from tasks.check_drift import score_with_champion
from tasks.stage_log import stage_log
from tasks.stage_task import stage_task


def audit_training_rows(
    context: RunContext,
    saved: SavedModel,
    accepted: pd.DataFrame,
    predict: Callable[[pd.DataFrame], np.ndarray],
) -> MembershipAudit:
    """The loss attack on one pool: members are the accepted rows trained on, non-members the audit split of
    the same rows, never trained on. Non-members from another population (a test set, a drift window) would
    let the attack separate populations and "prove" a leak that is not there."""
    dataset = context.settings.dataset
    if saved.audit is None:
        raise ValueError("the model carries no audit split: train it with tasks.train_model")
    members, held_out = accepted.iloc[saved.audit.members], accepted.iloc[saved.audit.held_out]
    return audit_membership(
        predict(members),
        label_vector(members, dataset).to_numpy(),
        predict(held_out),
        label_vector(held_out, dataset).to_numpy(),
        delta=context.settings.privacy.delta,
        seed=context.settings.model.seed,
    )


# Out of core, the membership audit reads at most this many rows a side from the memmaps (seeded, uniform).
AUDIT_SAMPLE_ROWS = 20_000


def audit_encoded_rows(context: RunContext, saved: SavedModel) -> MembershipAudit:
    """The loss attack out of core: a bounded uniform sample of the rows the MLP trained on against one of the
    audit split (never trained on), both read from the memory-mapped arrays."""
    if saved.encoded is None:
        raise ValueError("the model carries no encoded arrays: train it with tasks.train_model_out_of_core")
    seed = context.settings.model.seed
    model = saved.trained.model
    member_features, member_labels = sample_rows(saved.encoded, "training", AUDIT_SAMPLE_ROWS, seed)
    held_out_features, held_out_labels = sample_rows(saved.encoded, "audit", AUDIT_SAMPLE_ROWS, seed + 1)
    return audit_membership(
        predict_proba(model, member_features).double().numpy(),
        member_labels,
        predict_proba(model, held_out_features).double().numpy(),
        held_out_labels,
        delta=context.settings.privacy.delta,
        seed=seed,
    )


def training_rows(
    saved: SavedModel, contract: ContractResult | None, scan: ScanResult | None
) -> pd.DataFrame:
    """The rows the candidate trained on (accepted by the contract, not flagged by the scan); out of core, the
    bounded uniform sample of them that training kept aside."""
    if saved.encoded is not None:
        return pd.read_parquet(saved.encoded.sample_path)
    if contract is None or scan is None:
        raise ValueError("an in-memory model needs the contract's accepted rows and the scan's flags")
    return contract.accepted[~scan.flagged]


@stage_task("evaluate-safety")
def evaluate_model(
    context: RunContext,
    saved: SavedModel,
    test: Table,
    contract: ContractResult | None = None,
    scan: ScanResult | None = None,
) -> Evaluation:
    """Judge the candidate on the test rows; the membership audit on its own training pool (in memory: the
    accepted rows; out of core: bounded samples of the encoded arrays, and `contract`/`scan` are not needed)."""
    dataset = context.settings.dataset
    seed = context.settings.model.seed
    inputs = [file_dataset(saved.weights_path), file_dataset(test.path, row_count=test.row_count)]

    def predict(frame: pd.DataFrame) -> np.ndarray:
        return predict_proba(saved.trained.model, encode_features(frame, dataset)).double().numpy()

    with context.stage("evaluate_safety", inputs=inputs):
        held_out = labelled_rows(test.rows, dataset)
        labels = label_vector(held_out, dataset).to_numpy()
        probabilities = predict(held_out)
        membership = (
            audit_encoded_rows(context, saved)
            if saved.encoded is not None
            else audit_training_rows(context, saved, training_rows(saved, contract, scan), predict)
        )
        evaluation = evaluate_safety(
            probabilities,
            labels,
            held_out[dataset.sensitive],
            membership,
            seed=seed,
            min_group_size=context.settings.gate.min_group_size,
        )
        evaluation = check_behaviour(evaluation, predict, held_out, labels, dataset, seed=seed)
        save_plots(evaluation, context.run_dir / "plots")
    accuracy_interval = evaluation.intervals["accuracy"]
    stage_log.info(
        "evaluate  accuracy %.4f [%.4f, %.4f], roc_auc %.4f, ece %.4f, mia_auc %.4f on %s held-out rows",
        evaluation.accuracy,
        accuracy_interval.low,
        accuracy_interval.high,
        evaluation.roc_auc,
        evaluation.ece,
        evaluation.membership.auc,
        f"{evaluation.rows:,}",
    )
    return evaluation


def describe_rows(label: str, table: Table, rows: int) -> str:
    """How a gate line names the rows it was judged on: `test set adult.test.gz (16,281 rows)`."""
    return f"{label} {table.path.name} ({rows:,} rows)"


@stage_task("evaluate-window")
def evaluate_window(
    context: RunContext, saved: SavedModel, window: Table, evaluation: Evaluation
) -> WindowJudgement:
    """Candidate and champion on a drift retrain's window (the batch's held-out rows), for the gate's
    `no_regression_window` lines; the absolute lines stay on the stable test set."""
    settings = context.settings
    dataset = settings.dataset
    with context.stage("evaluate_window", inputs=[file_dataset(window.path, sha256=window.sha256)]):
        held_out = labelled_rows(window.rows, dataset)
        labels = label_vector(held_out, dataset).to_numpy()
        candidate = predict_proba(saved.trained.model, encode_features(held_out, dataset)).double().numpy()
        scored = score_with_champion(context, held_out)
        judgement = judge_window(
            candidate,
            scored[1][0] if scored is not None else None,
            labels,
            champion_version=scored[0] if scored is not None else None,
            metrics=list(settings.gate.max_regression),
            judged_on=describe_rows("drift window", window, len(labels)),
            membership=evaluation.membership,
            seed=settings.model.seed,
        )
        if judgement.comparison is not None and scored is not None:
            # The gate's differential check on the batch's own held-out rows: a slice of the new data where the
            # retrain's predictions moved far more than elsewhere (the training rows' check covers the rest).
            moved = check_differential(
                candidate, scored[1][0], held_out, dataset, settings.gate.differential, WINDOW_ROWS
            )
            judgement = replace(judgement, comparison=replace(judgement.comparison, differential=(moved,)))
    champion = judgement.champion
    stage_log.info(
        "window    %s rows: candidate accuracy %.4f, champion %s",
        f"{judgement.rows:,}",
        judgement.candidate["accuracy"],
        f"{champion['accuracy']:.4f}" if champion is not None else "none yet",
    )
    return judgement
