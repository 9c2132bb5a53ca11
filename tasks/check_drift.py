"""Drift tasks: find the champion's reference data, compare a batch with it, and retrain when it moved."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from guardflow.data.table import Table, typed_frame
from guardflow.drift.detect_drift import DriftResult, Reference, describe_rule, detect_drift
from guardflow.drift.judge_retrain import split_window
from guardflow.errors import DataError
from guardflow.io import registry
from guardflow.io.cluster import dask_client, uses_cluster
from guardflow.io.datasets import read_split, read_table, write_table
from guardflow.io.lineage import file_dataset
from guardflow.io.partitions import sample_source
from guardflow.io.sources import open_source
from guardflow.run.run_context import RunContext
from guardflow.run.summary import DriftFigures
from tasks.stage_log import stage_log
from tasks.stage_task import stage_task


@stage_task("load-reference", holds_raw_rows=True)
def load_reference(context: RunContext) -> Reference:
    """The data the champion was trained on (checked against its recorded sha256), else the configured train file."""
    settings = context.settings
    with context.stage("load_reference", inputs=[]) as stage:
        registry.track_dataset(context.home, settings.dataset.id)
        champion = registry.champion_data(settings.registry.model_name)
        if champion is None:
            table = read_split(settings.dataset, "train")
            sources = [table.sha256]
            origin = "configured train file (no champion yet)"
        else:
            path, sha256, sources = champion
            table, origin = _read_reference(context, Path(path), sha256)
        stage.datasets.append(file_dataset(table.path, row_count=table.row_count))
    stage_log.info("reference %s: %s, %s rows", origin, table.path.name, f"{table.row_count:,}")
    return Reference(table=table, sources=sources)


def _read_reference(context: RunContext, path: Path, sha256: str) -> tuple[Table, str]:
    """The champion's training data whole, or, when it is large (a folder, or past `compute.cluster_above_bytes`),
    a seeded uniform sample of `drift.sample_rows` rows read partition by partition on Dask: drift compares a
    sample of that size anyway, and the whole would not fit in memory."""
    settings = context.settings
    source = open_source(path, settings.dataset, checksums=False)
    if not uses_cluster(settings.compute, source):
        return read_table(path, settings.dataset, expected_sha256=sha256), "champion's training data"
    with dask_client(settings.compute, source) as client:
        sample = sample_source(
            path,
            settings.dataset,
            settings.drift.sample_rows,
            settings.drift.sample_seed,
            settings.compute.partition_bytes,
            client,
        )
    if sample.sha256 != sha256:
        raise DataError(f"checksum mismatch for {path}: expected sha256 {sha256}, found {sample.sha256}")
    return sample, f"a sample of {len(sample.rows):,} rows of the champion's training data"


@dataclass(frozen=True)
class ChampionScores:
    """The champion's positive-class probabilities on the reference rows and on the batch rows."""

    version: str
    reference: np.ndarray
    current: np.ndarray


def score_with_champion(context: RunContext, *frames: pd.DataFrame) -> tuple[str, list[np.ndarray]] | None:
    """The champion's version and its positive-class probabilities on each typed frame; None without one."""
    settings = context.settings
    registry.track_dataset(context.home, settings.dataset.id)
    champion = registry.champion_version(settings.registry.model_name)
    if champion is None:
        return None
    model = registry.load_model(champion.model_uri)
    features = list(settings.dataset.features)

    def score(frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(pd.DataFrame(model.predict(frame[features])).to_numpy(), dtype="float64").ravel()

    return champion.version, [score(frame) for frame in frames]


def champion_scores(
    context: RunContext, reference: pd.DataFrame, batch: pd.DataFrame
) -> ChampionScores | None:
    """Score both typed frames with the champion (predict_proba of the registered pyfunc); None without one."""
    scored = score_with_champion(context, reference, batch)
    if scored is None:
        return None
    version, (reference_scores, batch_scores) = scored
    return ChampionScores(version, reference_scores, batch_scores)


@stage_task("detect-drift")
def check_drift(
    context: RunContext, reference: Reference, batch: pd.DataFrame, batch_table: Table
) -> tuple[DriftResult, ChampionScores | None]:
    """Evidently drift of the contract-accepted batch rows against the reference; saves the HTML report.

    Also scores reference and batch with the champion (when there is one), for prediction drift.
    """
    dataset = context.settings.dataset
    inputs = [
        file_dataset(reference.table.path, row_count=reference.table.row_count),
        file_dataset(batch_table.path, row_count=len(batch)),
    ]
    report_path = context.run_dir / "drift_report.html"
    with context.stage("detect_drift", inputs=inputs) as stage:
        typed_reference = typed_frame(reference.table.rows, dataset)
        scores = champion_scores(context, typed_reference, batch)
        # The champion's scores on both sides: a shift in the label prior shows only there in a label-free batch.
        result = detect_drift(
            typed_reference,
            batch,
            dataset,
            context.settings.drift,
            html_path=report_path,
            reference_scores=scores.reference if scores is not None else None,
            current_scores=scores.current if scores is not None else None,
        )
        stage.datasets.append(file_dataset(report_path))
    columns = ", ".join(result.drifted_columns) or "none"
    rule = describe_rule(context.settings.drift, result.column_alpha)
    stage_log.info(
        "drift     %d of %d columns drifted (%s); rule %s: %s",
        len(result.drifted_columns),
        len(result.column_scores),
        columns,
        rule,
        "DRIFT" if result.drift_detected else "no drift",
    )
    if scores is not None:
        stage_log.info(
            "scores    champion version %s: mean score %.3f on the reference, %.3f on the batch",
            scores.version, scores.reference.mean(), scores.current.mean(),
        )  # fmt: skip
    return result, scores


@dataclass(frozen=True)
class RetrainFiles:
    """What a drift retrain on a server trains on (reference + most of the batch) and is judged on (the rest)."""

    data_path: Path
    window_path: Path
    window_rows: int


@stage_task("write-retrain-window")
def split_for_retrain(
    context: RunContext, reference: Reference, batch: Table, suspects: pd.Index | None = None
) -> RetrainFiles:
    """Reference rows plus a seeded share of the batch to train on; the other rows are the new data window.

    Both retrain paths (in-process and on a server) write their files here: the same batch and seed give the
    same window, so both judge the candidate on the same rows. `suspects` (source rows the batch screen
    quarantined) are in neither: never trained on, never judged on. `reference` and `batch` are the guarded
    tables (after the PII guard): nothing the guard removed is written."""
    settings = context.settings
    data_path = context.run_dir / "retrain_data.csv.gz"
    window_path = context.run_dir / "retrain_window.csv.gz"
    with context.stage(
        "write_retrain_window", inputs=[file_dataset(reference.table.path), file_dataset(batch.path)]
    ) as stage:
        # The parsed rows only: `row_count` also counts malformed lines, which the batch's contract quarantined.
        # Every configured column in its place (a file must keep the dataset's shape); columns the guard removed
        # (undeclared, or dropped by the PII policy) are written empty.
        columns = settings.dataset.expected_columns
        kept_rows = batch.rows if suspects is None else batch.rows.drop(index=suspects)
        kept_rows = kept_rows.reindex(columns=columns)
        split = split_window(kept_rows, settings.drift.window_fraction, settings.model.seed)
        window = split.window
        combined = pd.concat([reference.table.rows.reindex(columns=columns), split.kept], ignore_index=True)
        write_table(combined, data_path, settings.dataset)
        write_table(window, window_path, settings.dataset)
        stage.datasets += [
            file_dataset(data_path, row_count=len(combined)),
            file_dataset(window_path, row_count=len(window)),
        ]
    stage_log.info(
        "retrain   %s rows (reference + batch) to train on, %s batch rows held out as the window",
        f"{len(combined):,}", f"{len(window):,}",
    )  # fmt: skip
    return RetrainFiles(data_path, window_path, len(window))


def drift_figures(
    context: RunContext, batch: Table, result: DriftResult, scores: ChampionScores | None = None
) -> DriftFigures:
    return DriftFigures(
        batch_path=str(batch.path),
        batch_sha256=batch.sha256,
        rows_reference=result.rows_reference,
        rows_current=result.rows_current,
        drifted_share=result.drifted_share,
        drifted_columns=list(result.drifted_columns),
        drift_detected=result.drift_detected,
        report_path=str(context.run_dir / "drift_report.html"),
        champion_version=scores.version if scores is not None else None,
        mean_score_reference=float(scores.reference.mean()) if scores is not None else None,
        mean_score_current=float(scores.current.mean()) if scores is not None else None,
        prediction_drift=result.prediction_drift,
        rule=result.rule,
        column_alpha=result.column_alpha,
    )
