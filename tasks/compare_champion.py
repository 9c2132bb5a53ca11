"""Score the current champion on the candidate's held-out rows and training rows, so the gate can hold the
candidate to it: headline figures, every group's rates, and where predictions moved."""

import numpy as np
import pandas as pd

from guardflow.contract.validate_contract import ContractResult
from guardflow.data.encode_features import encode_features
from guardflow.data.table import Table, label_vector, labelled_rows
from guardflow.drift.detect_drift import Reference
from guardflow.evaluation.compare_champion import ChampionComparison, ScoredRows, compare_with_champion
from guardflow.evaluation.evaluate_safety import Evaluation
from guardflow.io import registry
from guardflow.io.lineage import file_dataset
from guardflow.poisoning.scan_result import ScanResult
from guardflow.privacy.network import predict_proba
from guardflow.privacy.train_private import SavedModel
from guardflow.run.run_context import RunContext
from tasks.evaluate_model import training_rows
from tasks.stage_log import stage_log
from tasks.stage_task import stage_task


@stage_task("compare-champion")
def compare_champion(
    context: RunContext,
    test: Table,
    evaluation: Evaluation,
    saved: SavedModel,
    contract: ContractResult | None = None,
    scan: ScanResult | None = None,
    reference: Reference | None = None,
) -> ChampionComparison | None:
    """The champion against the candidate on the same rows (None when there is no champion yet): the test rows,
    the candidate's training rows as the contract accepted them (scan-flagged ones included; out of core, the
    bounded sample of the rows trained on, kept at training), and the champion's own training rows with their
    recorded labels (`reference`, loaded for the scan)."""
    settings = context.settings
    dataset = settings.dataset
    inputs = [file_dataset(test.path, sha256=test.sha256)]
    if reference is not None:
        inputs.append(file_dataset(reference.table.path, sha256=reference.table.sha256))
    with context.stage("compare_champion", inputs=inputs):
        registry.track_dataset(context.home, dataset.id)
        champion = registry.champion_version(settings.registry.model_name)
        if champion is None:
            stage_log.info("champion  none yet: the gate judges on absolute lines only")
            return None
        model = registry.load_model(champion.model_uri)

        def scored(frame: pd.DataFrame, labels: np.ndarray | None = None) -> ScoredRows:
            features = frame[list(dataset.features)]
            predictions = np.asarray(
                pd.DataFrame(model.predict(features)).to_numpy(), dtype="float64"
            ).ravel()
            candidate = predict_proba(saved.trained.model, encode_features(frame, dataset)).double().numpy()
            return ScoredRows(frame, candidate, predictions, labels)

        held_out = labelled_rows(test.rows, dataset)
        # The differential check on the training side judges every accepted row with its given label, the rows
        # the scan quarantined included: a scan that kept a genuine pure slice's contrary rows out of one model's
        # training and not the other's would otherwise read as the candidate fitting that slice's labels (a sound
        # drift retrain was rejected so), while rows the scan removed cannot teach the candidate anything.
        if saved.encoded is None and contract is not None:
            training = contract.accepted
        else:
            training = training_rows(saved, contract, scan)
        trusted = None
        if reference is not None:
            trusted_rows = labelled_rows(reference.table.rows, dataset)
            trusted = scored(trusted_rows, label_vector(trusted_rows, dataset).to_numpy())
        comparison = compare_with_champion(
            champion.version,
            scored(held_out),
            scored(training, label_vector(training, dataset).to_numpy()),
            label_vector(held_out, dataset).to_numpy(),
            evaluation,
            dataset,
            settings.gate,
            seed=settings.model.seed,
            reference=trusted,
        )
    stage_log.info(
        "champion  version %s on the same rows: %s",
        champion.version, ", ".join(f"{name} {value:.4f}" for name, value in comparison.champion.items()),
    )  # fmt: skip
    for check in comparison.differential:
        strongest = check.strongest.describe() if check.strongest else "no slice"
        stage_log.info(
            "          %s: %s slices, strongest %s", check.judged_on, f"{check.slices_tested:,}", strongest
        )
    return comparison
