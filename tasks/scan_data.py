"""Scan accepted rows for poisoning; flagged rows go to quarantine with their detectors."""

from pathlib import Path

from guardflow.contract.validate_contract import ContractResult
from guardflow.data.partitioned import SCAN_FOLDER
from guardflow.data.table import labelled_rows
from guardflow.drift.detect_drift import Reference
from guardflow.io import registry
from guardflow.io.cluster import dask_client
from guardflow.io.datasets import read_table
from guardflow.io.lineage import file_dataset
from guardflow.io.scan_parts import PartitionedScan, scan_parts
from guardflow.io.sources import open_source
from guardflow.io.validate_file import FileContractResult
from guardflow.lineage.facets import poisoning_facet
from guardflow.poisoning.scan_poisoning import scan_poisoning
from guardflow.poisoning.scan_result import ScanResult
from guardflow.run.run_context import RunContext
from tasks.stage_log import stage_log
from tasks.stage_task import stage_task


@stage_task("load-trusted-reference", holds_raw_rows=True)
def load_trusted_reference(context: RunContext) -> Reference | None:
    """The data the champion was trained on (checked against its recorded sha256), or None without a champion."""
    settings = context.settings
    if not settings.poisoning.trusted_reference:
        return None
    registry.configure_tracking(context.home, experiment=f"guardflow-{settings.dataset.id}")
    champion = registry.champion_data(settings.registry.model_name)
    if champion is None:
        stage_log.info("reference none: no champion yet, the trusted-reference detector is skipped")
        return None
    path, sha256, sources = champion
    table = read_table(Path(path), settings.dataset, expected_sha256=sha256)
    stage_log.info("reference champion's training data: %s, %s rows", table.path.name, f"{table.row_count:,}")
    return Reference(table=table, sources=sources)


@stage_task("scan-poisoning")
def scan_data(
    context: RunContext, contract: ContractResult, reference: Reference | None = None
) -> ScanResult:
    """Scan the contract's accepted rows; with a `reference` (the champion's training data), also against it."""
    settings = context.settings
    accepted = context.rows_dataset("accepted", contract.rows_accepted)
    inputs = [accepted]
    trusted = None
    if reference is not None:
        inputs.append(file_dataset(reference.table.path, row_count=reference.table.row_count))
        # Typed as the contract types accepted rows; only rows with one of the two labels can be compared.
        trusted = labelled_rows(reference.table.rows, settings.dataset)
    with context.stage("scan_poisoning", inputs=inputs) as stage:
        result = scan_poisoning(contract.accepted, settings.dataset, settings.poisoning, reference=trusted)
        stage.run_facets.update(
            poisoning_facet(
                result.rows_in,
                result.rows_flagged,
                result.per_detector,
                result.seconds,
                result.detector_seconds,
            )
        )
        stage.datasets.append(context.rows_dataset("training-rows", result.rows_in - result.rows_flagged))
    detectors = ", ".join(f"{name} {count:,}" for name, count in result.per_detector.items())
    stage_log.info(
        "scan      %s rows flagged (%s) in %.1fs", f"{result.rows_flagged:,}", detectors, result.seconds
    )
    for detector, why in (result.skipped or {}).items():
        stage_log.info("scan      %s skipped: %s", detector, why)
    for shift in result.reference.slices if result.reference else ():
        stage_log.info("scan      shifted against the champion's data: %s", shift.describe())
    return result


@stage_task("scan-poisoning")
def scan_partitions(
    context: RunContext, contract: FileContractResult, reference: Reference | None = None
) -> PartitionedScan:
    """`scan_data` on the contract's accepted Parquet parts, partition by partition (on Dask when
    `io/cluster.py` says so): verdicts to `<run_dir>/scan/part-NNNNN.parquet`, flagged rows to its quarantine."""
    settings = context.settings
    inputs = [context.rows_dataset("accepted", contract.rows_accepted)]
    trusted = None
    if reference is not None:
        inputs.append(file_dataset(reference.table.path, row_count=reference.table.row_count))
        trusted = labelled_rows(reference.table.rows, settings.dataset)
    source = open_source(contract.path, settings.dataset, checksums=False)
    with context.stage("scan_poisoning", inputs=inputs) as stage:
        with dask_client(settings.compute, source) as client:
            result = scan_parts(
                contract.partitioned.parts,
                settings.dataset,
                settings.poisoning,
                context.run_dir / SCAN_FOLDER,
                sample_rows=settings.compute.sample_rows,
                client=client,
                reference=trusted,
            )
        stage.run_facets.update(
            poisoning_facet(
                result.rows_in,
                result.rows_flagged,
                result.per_detector,
                result.seconds,
                result.detector_seconds,
            )
        )
        stage.datasets.append(file_dataset(result.quarantine_path, row_count=result.rows_flagged))
        stage.datasets.append(context.rows_dataset("training-rows", result.rows_in - result.rows_flagged))
    detectors = ", ".join(f"{name} {count:,}" for name, count in result.per_detector.items())
    stage_log.info(
        "scan      %s rows flagged (%s) in %.1fs", f"{result.rows_flagged:,}", detectors, result.seconds
    )
    for note in result.notes:
        stage_log.info("scan      %s", note)
    for detector, why in result.skipped.items():
        stage_log.info("scan      %s skipped: %s", detector, why)
    return result
