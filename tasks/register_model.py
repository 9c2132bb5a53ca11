"""Register the candidate in MLflow with its tags, card and run record; only a passing one becomes champion."""

from pathlib import Path

import pandas as pd

from guardflow.data.partitioned import SCAN_FOLDER
from guardflow.data.table import Table, typed_frame
from guardflow.evaluation.decide_gate import GateDecision
from guardflow.evaluation.evaluate_safety import Evaluation
from guardflow.evaluation.model_card import render_model_card, render_model_card_html
from guardflow.io import promotion, registry
from guardflow.io.code_version import code_version
from guardflow.io.lineage import LineageDataset, file_dataset
from guardflow.io.validate_file import FileContractResult
from guardflow.lineage.facets import model_facet
from guardflow.privacy.train_private import SavedModel
from guardflow.run.run_context import RunContext
from guardflow.run.summary import ModelFigures, RunSummary, with_model
from guardflow.settings import settings_hash
from tasks.stage_log import stage_log
from tasks.stage_task import stage_task


def model_dataset(context: RunContext, model: ModelFigures) -> LineageDataset:
    """The model version as a lineage dataset, named in the tracking store's namespace, with the model facet."""
    return LineageDataset(
        namespace=registry.public_tracking_uri(context.home),
        name=f"models/{model.name}/{model.version}",
        version=model.version,
        extra_facets=model_facet(model.weights_sha256, model.name, model.version, model.aliases),
    )


def _example_rows(saved: SavedModel, train: Table | FileContractResult) -> pd.DataFrame:
    """Five training rows for the model's input example; out of core, from the sample training kept aside."""
    if isinstance(train, Table):
        return train.rows.head(5)
    if saved.encoded is None:
        raise ValueError("a model trained on partitioned data carries its encoded arrays")
    return pd.read_parquet(saved.encoded.sample_path).head(5)


def _quarantine_files(context: RunContext) -> list[Path]:
    """The run's quarantine: one file in memory; on the large path the contract's and the scan's."""
    files = [context.run_dir / "quarantine.parquet", context.run_dir / SCAN_FOLDER / "quarantine.parquet"]
    return [path for path in files if path.is_file()]


@stage_task("register-model")
def register_model(
    context: RunContext,
    saved: SavedModel,
    train: Table | FileContractResult,
    evaluation: Evaluation,
    decision: GateDecision,
    summary: RunSummary,
    approval_reasons: list[str] | None = None,
) -> RunSummary:
    """Log and register the candidate; return the summary with its model section filled in.

    A passing candidate waits as challenger when `registry.approval` is required or `approval_reasons` say why
    a person must look first (a drift retrain on a suspicious batch)."""
    settings = context.settings
    reasons = list(approval_reasons or [])
    if settings.registry.approval == "required":
        reasons.insert(0, "registry.approval is 'required'")
    waits = bool(reasons)
    if summary.data is None or summary.poisoning is None:
        raise RuntimeError("register_model needs a summary with data and poisoning figures")
    rows = summary.data.model_dump()
    privacy = saved.trained.privacy
    card_path = context.run_dir / "model_card.md"
    card = render_model_card(
        settings, train.sha256, rows, summary.poisoning.per_detector, privacy, evaluation, decision
    )
    card_path.write_text(card, encoding="utf-8")
    card_html_path = context.run_dir / "model_card.html"
    card_html_path.write_text(render_model_card_html(card), encoding="utf-8")
    folders = [context.run_dir / name for name in ("plots", "contract")]
    plots = [folder for folder in folders if folder.is_dir()]
    tags = {
        "guardflow.gate": "passed" if decision.passed else "rejected",
        "guardflow.gate_failed": "; ".join(line.name for line in decision.lines if not line.passed) or "none",
        "guardflow.gate_waived": "; ".join(line.name for line in decision.lines if line.waived) or "none",
        "guardflow.epsilon": f"{privacy.epsilon:.4f}",
        "guardflow.delta": f"{privacy.delta:g}",
        "guardflow.accountant": privacy.accountant,
        "guardflow.data_sha256": train.sha256,
        "guardflow.data_path": str(train.path),
        "guardflow.data_sources": ",".join(summary.privacy.data_sources) if summary.privacy else train.sha256,
        "guardflow.weights_sha256": saved.weights_sha256,
        "guardflow.config_sha256": settings_hash(settings),
        "guardflow.code_version": code_version(),
        "guardflow.dataset": settings.dataset.id,
        registry.RUN_DIR_TAG: str(context.run_dir),
    }
    if context.rerun is not None:
        tags[registry.RUN_KEY_TAG] = context.rerun.run_key
    if decision.passed and waits:
        # MLflow keeps tag values up to a few thousand characters; the summary keeps every reason whole.
        tags["guardflow.approval_reasons"] = " | ".join(reasons)[:4000]
    params = {
        "target_epsilon": settings.privacy.target_epsilon,
        "delta": privacy.delta,
        "max_grad_norm": privacy.max_grad_norm,
        "noise_multiplier": round(privacy.noise_multiplier, 6),
        "sample_rate": round(privacy.sample_rate, 6),
        "steps": privacy.steps,
        "epochs": privacy.epochs,
        "batch_size": settings.privacy.batch_size,
        "learning_rate": settings.privacy.learning_rate,
        "hidden_units": list(saved.trained.hidden_units),
        "seed": settings.model.seed,
    }
    metrics = {
        **evaluation.metrics(),
        "epsilon": privacy.epsilon,
        "epsilon_rdp": privacy.epsilon_rdp,
        **{key: float(value) for key, value in rows.items() if isinstance(value, int)},
        **{f"scan_flagged_{name}": float(count) for name, count in summary.poisoning.per_detector.items()},
        "scan_seconds": summary.poisoning.seconds,
    }
    spec = {
        "input_width": saved.trained.input_width,
        "hidden_units": list(saved.trained.hidden_units),
        "dataset": settings.dataset.model_dump(mode="json"),
    }
    example = typed_frame(_example_rows(saved, train), settings.dataset)[list(settings.dataset.features)]
    with context.stage("register_model", inputs=[file_dataset(saved.weights_path)]) as stage:
        registry.track_dataset(context.home, settings.dataset.id)
        version = registry.log_candidate(
            run_name=context.run_dir.name,
            params=params,
            metrics=metrics,
            tags=tags,
            artifacts=[card_path, card_html_path, *plots, *_quarantine_files(context)],
            weights_path=saved.weights_path,
            spec=spec,
            model_name=settings.registry.model_name,
            input_example=example,
            version_tags={registry.REGISTRATION_TAG: "pending"},  # `complete` once its aliases are settled
        )
        if decision.passed:
            promotion.accept_candidate(version.name, version.version, waits)
        registry.set_version_tag(version.name, version.version, registry.REGISTRATION_TAG, "complete")
        version = registry.version_of(version.name, version.version)
        registered = with_model(summary, version, saved.weights_sha256)
        if registered.model is not None:
            stage.datasets.append(model_dataset(context, registered.model))
    aliases = ", ".join(version.aliases) or "no alias"
    stage_log.info("register  %s version %s (%s)", version.name, version.version, aliases)
    if decision.passed and waits:
        for reason in reasons:
            stage_log.info("            waits for approval: %s", reason)
        return registered.model_copy(update={"status": "awaiting_approval", "approval_reasons": reasons})
    return registered
