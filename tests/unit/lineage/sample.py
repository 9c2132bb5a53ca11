"""The sample event log the lineage tests share: one real `guardflow train` run on adult (paths rewritten to
/home/user/...) in tests/data/lineage/sample_events.jsonl, plus a failed run added by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from guardflow.lineage.graph import (
    DatasetKey,
    LineageGraph,
    RunKey,
)

SAMPLE = Path(__file__).parents[2] / "data" / "lineage" / "sample_events.jsonl"
MODEL = "guardflow-adult"
TRAIN_FILE = "/home/user/guardflow/data/adult/adult.data.gz"
TRAIN_SHA256 = "5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d"
QUARANTINE = "/home/user/.guardflow/runs/20261127T003333695565Z-safety-train/quarantine.parquet"
MODEL_VERSION_1 = DatasetKey("sqlite:////home/user/.guardflow/mlflow/mlflow.db", "models/guardflow-adult/1")
FAILED_FLOW = RunKey("safety-train.adult", "01a21a70-0000-7000-8000-000000000001")
FAILED_CONTRACT = RunKey("safety-train.adult.validate_contract", "01a21a70-0000-7000-8000-000000000002")
FAILED_MESSAGE = "contract broken: 41.0% of rows quarantined, more than the 5.0% allowed"
VOID_TAGS = {"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "wbr"}


def event(
    event_type: str, run: RunKey, time: str, inputs: list[dict[str, Any]], parent: RunKey | None = None
) -> dict[str, Any]:
    facets: dict[str, Any] = {}
    if parent is not None:
        facets["parent"] = {
            "job": {"namespace": "guardflow", "name": parent.job},
            "run": {"runId": parent.run_id},
        }
    if event_type == "FAIL":
        facets["errorMessage"] = {"message": FAILED_MESSAGE, "programmingLanguage": "python"}
    return {
        "eventType": event_type,
        "eventTime": time,
        "job": {"namespace": "guardflow", "name": run.job},
        "run": {"runId": run.run_id, "facets": facets},
        "inputs": inputs,
        "outputs": [],
    }


def failed_contract_run() -> list[dict[str, Any]]:
    """A later flow run on the same file whose contract failed: START and FAIL for the flow and the stage."""
    source = {
        "namespace": "file",
        "name": TRAIN_FILE,
        "facets": {"version": {"datasetVersion": TRAIN_SHA256}},
        "inputFacets": {"dataQualityMetrics": {"rowCount": 32561, "columnMetrics": {}}},
    }
    return [
        event("START", FAILED_FLOW, "2026-11-28T09:00:00.000000+00:00", []),
        event("START", FAILED_CONTRACT, "2026-11-28T09:00:01.000000+00:00", [source], FAILED_FLOW),
        event("FAIL", FAILED_CONTRACT, "2026-11-28T09:00:03.000000+00:00", [source], FAILED_FLOW),
        event("FAIL", FAILED_FLOW, "2026-11-28T09:00:04.000000+00:00", []),
    ]


def runs_of_job(graph: LineageGraph, stage: str) -> list[RunKey]:
    return [key for key in graph.runs if key.job.endswith("." + stage)]
