"""Scan accepted rows for poisoning; flagged rows go to quarantine with their detectors."""

from prefect import task
from prefect.cache_policies import NO_CACHE

from guardflow.contract.validate_contract import ContractResult
from guardflow.lineage.facets import poisoning_facet
from guardflow.poisoning.scan_poisoning import ScanResult, scan_poisoning
from guardflow.run.run_context import RunContext
from tasks.stage_log import stage_log


@task(name="scan-poisoning", cache_policy=NO_CACHE)
def scan_data(context: RunContext, contract: ContractResult) -> ScanResult:
    settings = context.settings
    accepted = context.rows_dataset("accepted", contract.rows_accepted)
    with context.stage("scan_poisoning", inputs=[accepted]) as stage:
        result = scan_poisoning(contract.accepted, settings.dataset, settings.poisoning)
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
    return result
