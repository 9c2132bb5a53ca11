"""The run folder: one per flow run, holding summary.json, quarantine.parquet, reports and the model card."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from guardflow.data.table import SOURCE_ROW

QUARANTINE_FILE = "quarantine.parquet"
SUMMARY_FILE = "summary.json"


def new_run_dir(home: Path, flow_name: str) -> Path:
    """A fresh, time-stamped folder under `<home>/runs` (made now, since a run is starting)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = home / "runs" / f"{stamp}-{flow_name}"
    path.mkdir(parents=True, exist_ok=False)
    return path


def prepare_run_dir(path: Path) -> Path:
    path = path.resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_quarantine(run_dir: Path, parts: dict[str, pd.DataFrame]) -> Path:
    """Write every quarantined row (original text values, `source_row`, `stage`, `reasons`) to one parquet file.

    `parts` maps the stage that quarantined rows to those rows (index `source_row`, a `reasons` column).
    """
    frames = [part.reset_index().assign(stage=stage) for stage, part in parts.items() if len(part)]
    if frames:
        quarantine = pd.concat(frames, ignore_index=True)
    else:
        quarantine = pd.DataFrame(
            {
                SOURCE_ROW: pd.Series(dtype="int64"),
                "stage": pd.Series(dtype="str"),
                "reasons": pd.Series(dtype="object"),
            }
        )
    path = run_dir / QUARANTINE_FILE
    quarantine.to_parquet(path, index=False)
    return path


def write_summary(run_dir: Path, summary: dict[str, object]) -> Path:
    path = run_dir / SUMMARY_FILE
    path.write_text(json.dumps(summary, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path
