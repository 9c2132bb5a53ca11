"""Parquet input in the data flows: validate, scan, drift and train read a Parquet file like the CSV it came from,
with the same row accounting (source_row = row number) and the sha256 of the file's bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flows.data_contract import data_contract
from flows.drift_check import drift_check
from flows.poisoning_scan import poisoning_scan
from flows.safety_train import safety_train
from guardflow.io.datasets import read_table
from tests.conftest import WIRING_POISONING, write_adult_config
from tests.flows.conftest import LENIENT_GATE


@pytest.fixture(scope="module")
def adult_parquet(tmp_path_factory: pytest.TempPathFactory, adult_slice: Path, adult_settings) -> Path:
    """The 6,000-row Adult slice as Parquet, every value as the text the CSV holds."""
    rows = read_table(adult_slice, adult_settings.dataset).rows.reset_index(drop=True)
    path = tmp_path_factory.mktemp("parquet") / "adult-slice.parquet"
    pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), path)
    return path


def test_validate_scan_drift_and_train_read_parquet(adult_parquet: Path, tmp_path: Path) -> None:
    # given Adult's config and its slice as a Parquet file
    config = write_adult_config(
        tmp_path, poisoning=WIRING_POISONING, registry={"model_name": "adult-parquet"}, gate=LENIENT_GATE
    )
    sha256 = hashlib.sha256(adult_parquet.read_bytes()).hexdigest()
    # when validate and scan run on it
    checked = data_contract(str(config), str(tmp_path / "validate"), str(adult_parquet))
    scanned = poisoning_scan(str(config), str(tmp_path / "scan"), str(adult_parquet))
    # then every row is accounted for and the recorded checksum is the file's
    for summary in (checked, scanned):
        assert summary.data is not None and summary.data.rows_in == 6_000, f"{summary.flow}: {summary.data}"
        assert summary.data.sha256 == sha256, f"{summary.flow} records the sha256 of the Parquet file"
    # and training on it registers a candidate, and a drift check takes it as a batch
    trained = safety_train(str(config), str(tmp_path / "train"), str(adult_parquet))
    assert trained.status in ("promoted", "rejected") and trained.model is not None, (
        f"trained: {trained.status}"
    )
    assert trained.data is not None and trained.data.sha256 == sha256, "train records the Parquet checksum"
    drifted = drift_check(str(config), str(adult_parquet), str(tmp_path / "drift"))
    assert drifted.drift is not None and drifted.drift.batch_sha256 == sha256, f"drift: {drifted.drift}"
    assert drifted.drift.rows_current == 6_000, f"every batch row compared: {drifted.drift.rows_current}"
