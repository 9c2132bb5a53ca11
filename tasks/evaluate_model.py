"""Evaluate the candidate on held-out rows: utility, calibration, fairness, robustness, counterfactual flips and a
membership audit, with the plots saved into the run folder."""

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from guardflow.contract.validate_contract import ContractResult
from guardflow.data.encode_features import encode_features
from guardflow.data.table import Table, label_vector, labelled_rows
from guardflow.evaluation.evaluate_safety import Evaluation, check_behaviour, evaluate_safety, save_plots
from guardflow.io.lineage import file_dataset
from guardflow.poisoning.scan_poisoning import ScanResult
from guardflow.privacy.audit_membership import audit_membership
from guardflow.privacy.network import predict_proba
from guardflow.privacy.train_private import SavedModel
from guardflow.run.run_context import RunContext
from tasks.stage_log import stage_log


@task(name="evaluate-safety", cache_policy=NO_CACHE)
def evaluate_model(
    context: RunContext, saved: SavedModel, test: Table, contract: ContractResult, scan: ScanResult
) -> Evaluation:
    dataset = context.settings.dataset
    seed = context.settings.model.seed
    inputs = [file_dataset(saved.weights_path), file_dataset(test.path, row_count=test.row_count)]

    def predict(frame: pd.DataFrame) -> np.ndarray:
        return predict_proba(saved.trained.model, encode_features(frame, dataset)).double().numpy()

    with context.stage("evaluate_safety", inputs=inputs):
        held_out = labelled_rows(test.rows, dataset)
        labels = label_vector(held_out, dataset).to_numpy()
        probabilities = predict(held_out)
        members = contract.accepted[~scan.flagged]
        membership = audit_membership(
            predict(members),
            label_vector(members, dataset).to_numpy(),
            probabilities,
            labels,
            delta=context.settings.privacy.delta,
            seed=seed,
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
