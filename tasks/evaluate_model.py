"""Evaluate the candidate on held-out rows: utility, calibration, fairness and a membership audit."""

from prefect import task
from prefect.cache_policies import NO_CACHE

from guardflow.audit_membership import audit_membership
from guardflow.encode_features import encode_features
from guardflow.evaluate_safety import Evaluation, evaluate_safety
from guardflow.io.datasets import Table, label_vector, typed_frame
from guardflow.io.lineage import file_dataset
from guardflow.network import predict_proba
from guardflow.run_context import RunContext
from guardflow.scan_poisoning import ScanResult
from guardflow.validate_contract import ContractResult
from tasks.stage_log import stage_log
from tasks.train_model import SavedModel


@task(name="evaluate-safety", cache_policy=NO_CACHE)
def evaluate_model(
    context: RunContext, saved: SavedModel, test: Table, contract: ContractResult, scan: ScanResult
) -> Evaluation:
    dataset = context.settings.dataset
    inputs = [file_dataset(saved.weights_path), file_dataset(test.path, row_count=test.row_count)]
    with context.stage("evaluate_safety", inputs=inputs):
        held_out = typed_frame(test.rows, dataset)
        held_out = held_out[
            held_out[dataset.label.column].isin([dataset.label.positive, dataset.label.negative])
        ]
        labels = label_vector(held_out, dataset).to_numpy()
        probabilities = predict_proba(saved.trained.model, encode_features(held_out, dataset)).numpy()
        members = contract.accepted[~scan.flagged]
        member_probabilities = predict_proba(saved.trained.model, encode_features(members, dataset)).numpy()
        membership = audit_membership(
            member_probabilities,
            label_vector(members, dataset).to_numpy(),
            probabilities,
            labels,
            delta=context.settings.privacy.delta,
            seed=context.settings.model.seed,
        )
        evaluation = evaluate_safety(probabilities, labels, held_out[dataset.sensitive], membership)
    stage_log.info(
        "evaluate  accuracy %.4f, roc_auc %.4f, ece %.4f, mia_auc %.4f on %s held-out rows",
        evaluation.accuracy,
        evaluation.roc_auc,
        evaluation.ece,
        evaluation.membership.auc,
        f"{evaluation.rows:,}",
    )
    return evaluation
