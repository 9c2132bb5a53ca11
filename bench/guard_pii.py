"""The PII guard's cost and precision: Adult's two files (no column may be found), and Adult's first 6,000 rows with
eight planted personal-data columns (each must be found, with the kinds planted); then person-name columns in any
shape: precision and recall of column detection on a Faker corpus (several locales, mixed case), by value (neutral
column names) and by column name, and the columns found in every bundled dataset (must be none).

Times are medians of `--repeats` runs of the whole guard (detection, policy, stray-value redaction) in this process.
Saves bench/results/guard_pii.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the planted-PII generator is shared with the tests

from bench.name_corpus import measure_names  # noqa: E402
from guardflow.io.datasets import read_split  # noqa: E402
from guardflow.pii.guard_pii import guard_pii  # noqa: E402
from guardflow.settings import PiiSettings, load_settings  # noqa: E402
from tests.pii_data import PII_COLUMNS, planted_pii  # noqa: E402

PLANTED_ROWS = 6_000
KEY = b"bench-key-not-a-secret-0123456789"


def _measure(rows: pd.DataFrame, pii: PiiSettings, repeats: int) -> dict[str, Any]:
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = guard_pii(rows, pii, key=lambda: KEY)
        seconds.append(time.perf_counter() - started)
    return {
        "rows": len(rows),
        "columns": len(rows.columns),
        "median_seconds": round(statistics.median(seconds), 3),
        "seconds": [round(value, 3) for value in seconds],
        "findings": {
            finding.column: finding.all_shares or list(finding.kinds) for finding in result.findings
        },
        "dropped": list(result.dropped),
        "hashed": list(result.hashed),
        "redacted": result.redacted,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=5, help="Faker corpora drawn per locale")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "guard_pii.json")
    args = parser.parse_args()
    settings = load_settings(ROOT / "configs" / "adult.yaml")
    load_before = os.getloadavg()
    adult = {
        split: _measure(read_split(settings.dataset, split).rows, settings.pii, args.repeats)
        for split in ("train", "test")
    }
    head = read_split(settings.dataset, "train").rows.head(PLANTED_ROWS).reset_index(drop=True)
    rows = pd.concat([head, planted_pii(PLANTED_ROWS, seed=0)], axis=1)
    policy = {column: "hash" if column in ("email", "ssn") else "drop" for column in PII_COLUMNS}
    planted = _measure(rows, PiiSettings(columns=policy), args.repeats)
    found = set(planted["findings"])
    figures: dict[str, object] = {
        "load_average_before": load_before,
        "adult_train": adult["train"],
        "adult_test": adult["test"],
        "adult_columns_found": sum(len(result["findings"]) for result in adult.values()),
        "planted": planted,
        "planted_columns_found": f"{len(found & set(PII_COLUMNS))} of {len(PII_COLUMNS)}",
    }
    figures["names"] = measure_names(seeds=list(range(args.seeds)))
    figures["load_average_after"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
