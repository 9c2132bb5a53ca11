"""guardflow's own OpenLineage facets: training, poisoning scan, gate, model version and the Prefect run.

Each is a custom facet with a `_schemaURL` naming a JSON schema shipped in `guardflow/schemas/facets/`, so any
consumer can validate it. Field names are camelCase, as in the OpenLineage spec.
"""

from __future__ import annotations

from pathlib import Path

import attr
from openlineage.client.facet_v2 import (
    DatasetFacet,
    InputDatasetFacet,
    RunFacet,
    column_lineage_dataset,
    data_quality_assertions_dataset,
    data_quality_metrics_input_dataset,
)

from guardflow.evaluation.decide_gate import GateDecision
from guardflow.privacy.train_private import PrivacyReport

SCHEMA_BASE = "https://guardflow.dev/spec/facets/1-0-0/"
SCHEMA_DIR = Path(__file__).parent / "schemas" / "facets"


def _schema_url(name: str) -> str:
    return f"{SCHEMA_BASE}{name}.json#/$defs/{name}"


@attr.define
class GuardflowTrainingRunFacet(RunFacet):
    epsilon: float
    delta: float
    accountant: str
    epsilonRdp: float
    noiseMultiplier: float
    maxGradNorm: float
    sampleRate: float
    steps: int
    epochs: int
    trainingRows: int
    calibrationRows: int
    calibrationEpsilon: float

    @staticmethod
    def _get_schema() -> str:
        return _schema_url("GuardflowTrainingRunFacet")


@attr.define
class GuardflowPoisoningScanRunFacet(RunFacet):
    rowsScanned: int
    rowsFlagged: int
    perDetector: dict[str, int]
    seconds: float | None = None
    detectorSeconds: dict[str, float] | None = None

    @staticmethod
    def _get_schema() -> str:
        return _schema_url("GuardflowPoisoningScanRunFacet")


@attr.define
class GuardflowContractRunFacet(RunFacet):
    suiteName: str
    rowsIn: int
    rowsAccepted: int
    rowsQuarantined: int
    balanced: bool
    expectations: int
    expectationsFailed: int

    @staticmethod
    def _get_schema() -> str:
        return _schema_url("GuardflowContractRunFacet")


@attr.define
class GuardflowGateRunFacet(RunFacet):
    passed: bool
    lines: list[dict[str, object]]

    @staticmethod
    def _get_schema() -> str:
        return _schema_url("GuardflowGateRunFacet")


@attr.define
class GuardflowModelDatasetFacet(DatasetFacet):
    weightsSha256: str
    registeredModel: str
    version: str
    aliases: list[str]

    @staticmethod
    def _get_schema() -> str:
        return _schema_url("GuardflowModelDatasetFacet")


@attr.define
class GuardflowPiiRunFacet(RunFacet):
    columnsChecked: int
    findings: list[dict[str, object]]
    dropped: list[str]
    hashed: list[str]
    redactedValues: dict[str, int]

    @staticmethod
    def _get_schema() -> str:
        return _schema_url("GuardflowPiiRunFacet")


@attr.define
class GuardflowPrefectRunFacet(RunFacet):
    flowRunId: str
    flowName: str

    @staticmethod
    def _get_schema() -> str:
        return _schema_url("GuardflowPrefectRunFacet")


def training_facet(privacy: PrivacyReport) -> dict[str, RunFacet]:
    return {
        "guardflow_training": GuardflowTrainingRunFacet(
            epsilon=privacy.epsilon, delta=privacy.delta, accountant=privacy.accountant,
            epsilonRdp=privacy.epsilon_rdp, noiseMultiplier=privacy.noise_multiplier,
            maxGradNorm=privacy.max_grad_norm, sampleRate=privacy.sample_rate, steps=privacy.steps,
            epochs=privacy.epochs, trainingRows=privacy.training_rows, calibrationRows=privacy.calibration_rows,
            calibrationEpsilon=privacy.calibration_epsilon,
        )
    }  # fmt: skip


def poisoning_facet(
    rows_scanned: int,
    rows_flagged: int,
    per_detector: dict[str, int],
    seconds: float | None = None,
    detector_seconds: dict[str, float] | None = None,
) -> dict[str, RunFacet]:
    return {
        "guardflow_poisoning_scan": GuardflowPoisoningScanRunFacet(
            rowsScanned=rows_scanned,
            rowsFlagged=rows_flagged,
            perDetector=dict(per_detector),
            seconds=None if seconds is None else round(seconds, 3),
            detectorSeconds=None if detector_seconds is None else dict(detector_seconds),
        )
    }


def contract_facet(
    suite_name: str, rows_in: int, rows_accepted: int, rows_quarantined: int, outcomes: list[bool]
) -> dict[str, RunFacet]:
    """The contract's row accounting; `balanced` is computed here, not taken on trust."""
    return {
        "guardflow_contract": GuardflowContractRunFacet(
            suiteName=suite_name,
            rowsIn=rows_in,
            rowsAccepted=rows_accepted,
            rowsQuarantined=rows_quarantined,
            balanced=rows_in == rows_accepted + rows_quarantined,
            expectations=len(outcomes),
            expectationsFailed=sum(not success for success in outcomes),
        )
    }


def quality_metrics_facet(rows_in: int, null_counts: dict[str, int]) -> dict[str, InputDatasetFacet]:
    """OpenLineage's dataQualityMetrics for a checked batch: its row count and each column's null count."""
    columns = {
        column: data_quality_metrics_input_dataset.ColumnMetrics(nullCount=count)
        for column, count in null_counts.items()
    }
    return {
        "dataQualityMetrics": data_quality_metrics_input_dataset.DataQualityMetricsInputDatasetFacet(
            columnMetrics=columns, rowCount=rows_in
        )
    }


def gate_facet(decision: GateDecision) -> dict[str, RunFacet]:
    lines: list[dict[str, object]] = [
        {"name": line.name, "comparison": line.comparison, "passed": line.passed, "status": line.status}
        | ({"waived": line.waived} if line.waived else {"value": line.value, "threshold": line.threshold})
        | ({"detail": line.detail} if line.detail else {})
        | ({"judgedOn": line.judged_on} if line.judged_on else {})
        for line in decision.lines
    ]
    return {"guardflow_gate": GuardflowGateRunFacet(passed=decision.passed, lines=lines)}


def model_facet(weights_sha256: str, name: str, version: str, aliases: list[str]) -> dict[str, DatasetFacet]:
    return {
        "guardflow_model": GuardflowModelDatasetFacet(
            weightsSha256=weights_sha256, registeredModel=name, version=version, aliases=list(aliases)
        )
    }


def assertions_facet(outcomes: list[tuple[str, str | None, bool]]) -> dict[str, InputDatasetFacet]:
    """The contract's expectations as OpenLineage data-quality assertions: (expectation, column, success)."""
    assertions = [
        data_quality_assertions_dataset.Assertion(assertion=name, success=success, column=column)
        for name, column, success in outcomes
    ]
    return {
        "dataQualityAssertions": data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(assertions)
    }


def column_lineage_facet(
    source: tuple[str, str], feature_names: tuple[str, ...], feature_sources: tuple[str, ...]
) -> dict[str, DatasetFacet]:
    """Which source column each encoded model feature comes from (`source` is the file's namespace and name)."""
    namespace, name = source
    fields = {
        feature: column_lineage_dataset.Fields(
            inputFields=[column_lineage_dataset.InputField(namespace=namespace, name=name, field=column)],
            transformationDescription="public-bounds encoding (scale, bin or one-hot; nothing fitted)",
            transformationType="INDIRECT",
        )
        for feature, column in zip(feature_names, feature_sources, strict=True)
    }
    return {"columnLineage": column_lineage_dataset.ColumnLineageDatasetFacet(fields=fields)}


def prefect_facet(flow_run_id: str, flow_name: str) -> dict[str, RunFacet]:
    return {"guardflow_prefect": GuardflowPrefectRunFacet(flowRunId=flow_run_id, flowName=flow_name)}


def pii_facet(
    columns_checked: int,
    findings: list[tuple[str, tuple[str, ...], dict[str, float]]],
    dropped: tuple[str, ...],
    hashed: tuple[str, ...],
    redacted: dict[str, int],
) -> dict[str, RunFacet]:
    """What the PII guard found (column, kinds, share of sampled values per kind) and did; never a value."""
    return {
        "guardflow_pii": GuardflowPiiRunFacet(
            columnsChecked=columns_checked,
            findings=[
                {"column": column, "kinds": list(kinds), "shares": dict(shares)}
                for column, kinds, shares in findings
            ],
            dropped=list(dropped),
            hashed=list(hashed),
            redactedValues=dict(redacted),
        )
    }
