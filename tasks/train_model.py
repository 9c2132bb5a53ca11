"""Encode features from public bounds and train the DP model; the weights are saved as safetensors.

In memory for a table, out of core (memory-mapped arrays in the run folder) for partitioned data."""

from dataclasses import replace
from pathlib import Path

from guardflow.contract.validate_contract import ContractResult
from guardflow.data.encode_features import encode_rows, feature_layout
from guardflow.data.table import Table
from guardflow.io.ledger import open_ledger
from guardflow.io.lineage import LineageDataset, file_dataset
from guardflow.lineage.facets import column_lineage_facet, training_facet
from guardflow.poisoning.scan_result import ScanResult
from guardflow.privacy.network import save_weights
from guardflow.privacy.train_private import SavedModel, TrainedModel, split_for_audit, train_private
from guardflow.privacy.train_streaming import encode_parts, train_streaming
from guardflow.run.run_context import RunContext
from guardflow.settings import require_reviewed
from tasks.stage_log import stage_log
from tasks.stage_task import stage_task


@stage_task("train-private")
def train_model(context: RunContext, train: Table, contract: ContractResult, scan: ScanResult) -> SavedModel:
    settings = context.settings
    require_reviewed(settings, context.config_path)  # also when a deployment starts the flow, not the CLI
    rows = contract.accepted[~scan.flagged]
    # Rows flagged for label noise alone calibrate (on their hash's side) but are never trained on.
    noisy = contract.accepted[scan.calibration_only]
    training_rows = context.rows_dataset("training-rows", len(rows))
    ledger = open_ledger(context.home)
    with context.stage("train_private", inputs=[training_rows]) as stage:
        features, labels = encode_rows(rows, settings.dataset)
        # The audit split is never trained on: the accountant sees only the members (their count, their rate).
        audit = split_for_audit(features, labels, settings.privacy.audit_fraction, settings.model.seed)
        # From here on the data is being learnt from: the reservation can no longer be released.
        ledger.advance(str(context.run_dir), "training")
        trained = train_private(
            features[audit.members], labels[audit.members], settings.privacy, settings.model,
            calibration_extra=encode_rows(noisy, settings.dataset),
        )  # fmt: skip
        ledger.advance(str(context.run_dir), "spent")
        trained = replace(trained, privacy=replace(trained.privacy, audit_rows=len(audit.held_out)))
        weights_path, weights_sha256 = _save_model(context, trained, train.path, stage.datasets)
        stage.run_facets.update(training_facet(trained.privacy))
    _log_training(trained, len(audit.members), len(audit.held_out))
    return SavedModel(trained=trained, weights_path=weights_path, weights_sha256=weights_sha256, audit=audit)


@stage_task("train-private")
def train_model_out_of_core(
    context: RunContext,
    source: Path,
    accepted_parts: tuple[Path, ...],
    scan_parts: tuple[Path, ...] | None,
    rows_to_train: int,
) -> SavedModel:
    """The same stage on partitioned data: each accepted part (minus the rows its scan part flags) is encoded
    into memory-mapped arrays under `<run_dir>/encoded`, and DP-SGD samples its batches from them."""
    settings = context.settings
    require_reviewed(settings, context.config_path)
    training_rows = context.rows_dataset("training-rows", rows_to_train)
    ledger = open_ledger(context.home)
    with context.stage("train_private", inputs=[training_rows]) as stage:
        arrays = encode_parts(
            accepted_parts, scan_parts, settings.dataset, settings.privacy, settings.model.seed,
            context.run_dir / "encoded",
        )  # fmt: skip
        if arrays.total != rows_to_train:
            raise RuntimeError(f"encoded {arrays.total} rows of the {rows_to_train} to train on")
        ledger.advance(str(context.run_dir), "training")
        trained = train_streaming(arrays, settings.privacy, settings.model)
        ledger.advance(str(context.run_dir), "spent")
        trained = replace(trained, privacy=replace(trained.privacy, audit_rows=arrays.rows["audit"]))
        weights_path, weights_sha256 = _save_model(context, trained, source, stage.datasets)
        stage.run_facets.update(training_facet(trained.privacy))
    members = arrays.rows["training"] + arrays.rows["calibration"] - arrays.extra_calibration
    _log_training(trained, members, arrays.rows["audit"])
    return SavedModel(
        trained=trained, weights_path=weights_path, weights_sha256=weights_sha256, encoded=arrays
    )


def _save_model(
    context: RunContext, trained: TrainedModel, source_path: Path, outputs: list[LineageDataset]
) -> tuple[Path, str]:
    """Write the weights as safetensors, and add them to the stage's outputs with their column lineage."""
    model_dir = context.run_dir / "model"
    model_dir.mkdir(exist_ok=True)
    weights_path = model_dir / "weights.safetensors"
    weights_sha256 = save_weights(trained.model, weights_path)
    layout = feature_layout(context.settings.dataset)
    source = file_dataset(source_path)
    weights = file_dataset(weights_path, sha256=weights_sha256)
    columns = column_lineage_facet((source.namespace, source.name), layout.names, layout.sources)
    outputs.append(replace(weights, extra_facets=columns))
    return weights_path, weights_sha256


def _log_training(trained: TrainedModel, members: int, held_out: int) -> None:
    privacy = trained.privacy
    stage_log.info(
        "train     %s rows (%s held out for the membership audit), epsilon %.3f (delta %g, %s), noise %.2f,"
        " %d steps in %.1fs",
        f"{members:,}",
        f"{held_out:,}",
        privacy.epsilon,
        privacy.delta,
        privacy.accountant,
        privacy.noise_multiplier,
        privacy.steps,
        trained.seconds,
    )
