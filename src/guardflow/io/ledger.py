"""The privacy-budget ledger, kept in the tracking store: one record per (training run, source file) charge."""

from __future__ import annotations

from guardflow.io.records import append_record, read_records
from guardflow.privacy.privacy_budget import Spend

LEDGER_EXPERIMENT = "guardflow-privacy-ledger"
_PREFIX = "guardflow.ledger."


def record_spend(
    dataset_id: str, sources: list[str], epsilon: float, delta: float, purpose: str, run_dir: str
) -> None:
    """Charge `epsilon` to every source file; written before training starts, so a crash still counts."""
    for source in sources:
        fields = {
            "dataset": dataset_id,
            "source_sha256": source,
            "epsilon": repr(epsilon),
            "delta": repr(delta),
            "purpose": purpose,
            "run_dir": run_dir,
        }
        append_record(LEDGER_EXPERIMENT, _PREFIX, f"{dataset_id}-{purpose}-{source[:8]}", fields)


def read_spends(dataset_id: str) -> list[Spend]:
    """Every charge recorded for a dataset, oldest first."""
    return [
        Spend(
            dataset_id=record["dataset"],
            source_sha256=record["source_sha256"],
            epsilon=float(record["epsilon"]),
            delta=float(record["delta"]),
            purpose=record["purpose"],
            recorded_at=record["recorded_at"],
            run_dir=record.get("run_dir", ""),
        )
        for record in read_records(LEDGER_EXPERIMENT, _PREFIX, {"dataset": dataset_id})
    ]
