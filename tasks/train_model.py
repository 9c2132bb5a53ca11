"""Encode features from public bounds and train the DP model; the weights are saved as safetensors."""

from dataclasses import replace

from guardflow.contract.validate_contract import ContractResult
from guardflow.data.encode_features import encode_features, feature_layout
from guardflow.data.table import Table, label_vector
from guardflow.io.ledger import open_ledger
from guardflow.io.lineage import file_dataset
from guardflow.lineage.facets import column_lineage_facet, training_facet
from guardflow.poisoning.scan_poisoning import ScanResult
from guardflow.privacy.network import save_weights
from guardflow.privacy.train_private import SavedModel, split_for_audit, train_private
from guardflow.run.run_context import RunContext
from guardflow.settings import require_reviewed
from tasks.stage_log import stage_log
from tasks.stage_task import stage_task


@stage_task("train-private")
def train_model(context: RunContext, train: Table, contract: ContractResult, scan: ScanResult) -> SavedModel:
    settings = context.settings
    require_reviewed(settings, context.config_path)  # also when a deployment starts the flow, not the CLI
    rows = contract.accepted[~scan.flagged]
    training_rows = context.rows_dataset("training-rows", len(rows))
    ledger = open_ledger(context.home)
    with context.stage("train_private", inputs=[training_rows]) as stage:
        features = encode_features(rows, settings.dataset)
        labels = label_vector(rows, settings.dataset).to_numpy()
        # The audit split is never trained on: the accountant sees only the members (their count, their rate).
        audit = split_for_audit(features, labels, settings.privacy.audit_fraction, settings.model.seed)
        # From here on the data is being learnt from: the reservation can no longer be released.
        ledger.advance(str(context.run_dir), "training")
        trained = train_private(
            features[audit.members], labels[audit.members], settings.privacy, settings.model
        )
        ledger.advance(str(context.run_dir), "spent")
        trained = replace(trained, privacy=replace(trained.privacy, audit_rows=len(audit.held_out)))
        model_dir = context.run_dir / "model"
        model_dir.mkdir(exist_ok=True)
        weights_path = model_dir / "weights.safetensors"
        weights_sha256 = save_weights(trained.model, weights_path)
        layout = feature_layout(settings.dataset)
        source = file_dataset(train.path)
        weights = file_dataset(weights_path, sha256=weights_sha256)
        columns = column_lineage_facet((source.namespace, source.name), layout.names, layout.sources)
        stage.datasets.append(replace(weights, extra_facets=columns))
        stage.run_facets.update(training_facet(trained.privacy))
    privacy = trained.privacy
    stage_log.info(
        "train     %s rows (%s held out for the membership audit), epsilon %.3f (delta %g, %s), noise %.2f,"
        " %d steps in %.1fs",
        f"{len(audit.members):,}",
        f"{len(audit.held_out):,}",
        privacy.epsilon,
        privacy.delta,
        privacy.accountant,
        privacy.noise_multiplier,
        privacy.steps,
        trained.seconds,
    )
    return SavedModel(trained=trained, weights_path=weights_path, weights_sha256=weights_sha256, audit=audit)
