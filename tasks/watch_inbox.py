"""Inbox tasks of the scheduled drift-check: take each new batch file once, publish its drift figures, file it."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from mlflow.tracking import MlflowClient
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from guardflow.drift.detect_drift import describe_rule
from guardflow.errors import ConfigError, DataError
from guardflow.io import registry, server_state
from guardflow.io.datasets import content_sha256
from guardflow.io.server_state import BatchClaim
from guardflow.run.summary import DriftFigures, RunSummary
from guardflow.settings import Settings, guardflow_home
from tasks.stage_log import stage_log
from tasks.stage_task import stage_task

PROCESSED = "processed"
MONITOR_TAG = "guardflow.drift_monitor"


def inbox_of(settings: Settings) -> Path:
    """The configured inbox folder (made when missing); a config without one cannot watch."""
    if settings.drift.inbox is None:
        raise ConfigError(f"dataset {settings.dataset.id}: drift.inbox is not set in the config")
    settings.drift.inbox.mkdir(parents=True, exist_ok=True)
    return settings.drift.inbox


def _batch_sha256(path: Path) -> str:
    """The content sha256 (decompressed), or of the raw bytes for a file that does not decompress."""
    try:
        return content_sha256(path)
    except DataError:
        return hashlib.sha256(path.read_bytes()).hexdigest()


def file_batch(inbox: Path, path: Path) -> Path:
    """Move a batch into `inbox/processed/` (never deleted); a name taken already gets a numbered suffix."""
    target_dir = inbox / PROCESSED
    target_dir.mkdir(exist_ok=True)
    target = target_dir / path.name
    counter = 1
    while target.exists():
        target = target_dir / f"{path.stem}.{counter}{path.suffix}"
        counter += 1
    shutil.move(path, target)
    return target


@stage_task("claim-batches")
def claim_batches(settings: Settings) -> list[BatchClaim]:
    """Claim every file in the inbox not finished before (oldest name first); file the finished ones away."""
    inbox = inbox_of(settings)
    state = server_state.state_path(guardflow_home())
    owner = str(flow_run.get_id() or "in-process")
    claims: list[BatchClaim] = []
    for path in sorted(
        entry for entry in inbox.iterdir() if entry.is_file() and not entry.name.startswith(".")
    ):
        sha256 = _batch_sha256(path)
        claim = server_state.claim_batch(state, settings.dataset.id, sha256, path, owner)
        if claim is None:
            # Finished by an earlier run that stopped before filing it away: file it now, do not take it again.
            stage_log.info("inbox     %s (sha256 %s...) was processed before: filed", path.name, sha256[:12])
            file_batch(inbox, path)
            continue
        retried = (
            f", attempt {claim.attempts} (an earlier run did not finish it)" if claim.attempts > 1 else ""
        )
        stage_log.info("inbox     claimed %s (sha256 %s...)%s", path.name, sha256[:12], retried)
        claims.append(claim)
    if not claims:
        stage_log.info("inbox     nothing new in %s", inbox)
    return claims


@stage_task("finish-batch")
def finish_batch(settings: Settings, claim: BatchClaim, outcome: str, run_dir: str) -> Path:
    """Record the batch as finished (never taken again), then move it to `inbox/processed/`."""
    server_state.finish_batch(server_state.state_path(guardflow_home()), claim, outcome, run_dir)
    filed = file_batch(inbox_of(settings), claim.path)
    stage_log.info("inbox     %s finished (%s), filed as %s", claim.path.name, outcome, filed)
    return filed


def _monitor_run_id(client: MlflowClient, experiment_id: str, dataset_id: str) -> str:
    """The one long-lived MLflow run per dataset that holds its drift figures as time series."""
    found = client.search_runs([experiment_id], filter_string=f"tags.`{MONITOR_TAG}` = '{dataset_id}'")
    if found:
        return str(found[0].info.run_id)
    run = client.create_run(
        experiment_id, run_name=f"drift-monitor-{dataset_id}", tags={MONITOR_TAG: dataset_id}
    )
    return str(run.info.run_id)


@stage_task("publish-drift")
def publish_drift(settings: Settings, summary: RunSummary, claim: BatchClaim) -> None:
    """Drift figures as MLflow time series (one monitor run per dataset) and a Prefect markdown artifact."""
    drift = summary.drift
    if drift is None:
        return
    dataset_id = settings.dataset.id
    experiment_id = registry.track_dataset(guardflow_home(), dataset_id, "drift")
    client = MlflowClient()
    run_id = _monitor_run_id(client, experiment_id, dataset_id)
    step = len(server_state.batch_records(server_state.state_path(guardflow_home()), dataset_id))
    figures = {
        "drifted_share": drift.drifted_share,
        "drifted_columns": float(len(drift.drifted_columns)),
        "drift_detected": float(drift.drift_detected),
        "rows_current": float(drift.rows_current),
    }
    if drift.mean_score_reference is not None and drift.mean_score_current is not None:
        figures["mean_score_current"] = drift.mean_score_current
        figures["mean_score_shift"] = drift.mean_score_current - drift.mean_score_reference
    for name, value in figures.items():
        client.log_metric(run_id, name, value, step=step)
    client.set_tag(run_id, "guardflow.drift.last_batch_sha256", claim.sha256)
    if drift.screened:
        client.log_metric(run_id, "batch_suspects", float(drift.suspects), step=step)
        client.set_tag(
            run_id, "guardflow.drift.approval_reasons", " | ".join(drift.approval_reasons)[:4000] or "none"
        )
    columns = "\n".join(f"- `{name}`" for name in drift.drifted_columns) or "- none"
    markdown = (
        f"# Drift of batch `{claim.path.name}` ({dataset_id})\n\n"
        f"**{drift.drifted_share:.0%}** of the columns drifted (rule: "
        f"{describe_rule(settings.drift, drift.column_alpha)}): "
        f"**{'DRIFT' if drift.drift_detected else 'no drift'}**"
        f"{', retrain requested' if drift.retrain_status == 'requested' else ''}.\n\n"
        f"Drifted columns:\n{columns}\n\n"
        f"{_screen_markdown(drift)}"
        f"| | |\n|---|---|\n| batch sha256 | `{claim.sha256}` |\n| rows (reference, batch) | "
        f"{drift.rows_reference:,}, {drift.rows_current:,} |\n| report | `{drift.report_path}` |\n"
    )
    create_markdown_artifact(
        markdown=markdown,
        key=f"drift-{dataset_id}".replace("_", "-"),
        description=f"drift of {claim.path.name}: {drift.drifted_share:.0%} of columns",
    )


def _screen_markdown(drift: DriftFigures) -> str:
    """The batch screen's findings and, when the retrain waits for approval, why."""
    if not drift.screened:
        return ""
    slices = "\n".join(f"- {found}" for found in drift.shifted_slices) or "- none"
    text = f"Batch screen: **{drift.suspects:,}** rows quarantined as suspects. Slices whose label moved:\n{slices}\n\n"
    if drift.approval_reasons:
        reasons = "\n".join(f"- {reason}" for reason in drift.approval_reasons)
        text += f"**The retrain waits for `guardflow approve`** because:\n{reasons}\n\n"
    return text
