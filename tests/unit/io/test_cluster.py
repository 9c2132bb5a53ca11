"""Where the data stages run: an existing cluster when one is named, a LocalCluster for a large input or a
folder, this process otherwise; a flow's cluster started early and shared by its stages (the Dask path itself is
tests/unit/io/test_scan_parts.py)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

from guardflow.io.cluster import (
    SCHEDULER_VARIABLE,
    dask_client,
    early_cluster,
    local_workers,
    scheduler_address,
    uses_cluster,
)
from guardflow.io.sources import Source, SourceFile, open_source
from guardflow.settings import ComputeSettings, load_settings

REPO = Path(__file__).resolve().parents[3]


def _source(path: Path, size: int) -> Source:
    return Source(
        path=path, files=(SourceFile(path=path, bytes=size, sha256="", parquet=False, text_bytes=size),)
    )


def test_a_small_file_runs_in_this_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # given no scheduler named and a file below the threshold
    monkeypatch.delenv(SCHEDULER_VARIABLE, raising=False)
    compute = ComputeSettings(cluster_above_bytes=1000)
    small = _source(tmp_path / "small.csv", 999)
    # when the stages ask for a client
    with dask_client(compute, small) as client:
        # then there is none: the in-memory path runs
        assert client is None, "a file below compute.cluster_above_bytes must run in this process"
    assert not uses_cluster(compute, small), "no cluster for a small file"


def test_a_large_file_or_a_folder_takes_a_local_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given no scheduler named
    monkeypatch.delenv(SCHEDULER_VARIABLE, raising=False)
    compute = ComputeSettings(cluster_above_bytes=1000)
    # then a file above the threshold, or any folder, goes to a cluster
    assert uses_cluster(compute, _source(tmp_path / "large.csv", 1001)), "a large file must use a cluster"
    assert uses_cluster(compute, _source(tmp_path, 10)), "a folder must use a cluster whatever its size"


def test_a_parquet_file_is_judged_by_its_rows_and_a_gzip_file_by_its_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given no scheduler named, a compact Parquet file of 2,000 rows and a gzip CSV that compresses 100-fold
    monkeypatch.delenv(SCHEDULER_VARIABLE, raising=False)
    pd.DataFrame({"age": range(2000), "label": ["<=50K"] * 2000}).to_parquet(tmp_path / "rows.parquet")
    (tmp_path / "text.csv.gz").write_bytes(gzip.compress(b"39, <=50K\n" * 10_000))
    dataset = load_settings(REPO / "configs" / "adult.yaml").dataset
    parquet = open_source(tmp_path / "rows.parquet", dataset, checksums=False)
    text = open_source(tmp_path / "text.csv.gz", dataset, checksums=False)
    assert parquet.parquet_rows == 2000 and text.text_bytes == 100_000, "rows from the footer, text from gzip"
    # then each goes to a cluster past its own threshold, though both files are small on disk
    assert parquet.bytes < 20_000 and text.bytes < 2_000, "both files are compact"
    assert uses_cluster(ComputeSettings(cluster_above_rows=1999), parquet), "2,000 Parquet rows > 1,999"
    assert not uses_cluster(ComputeSettings(cluster_above_rows=2000), parquet), "2,000 rows are not > 2,000"
    assert uses_cluster(ComputeSettings(cluster_above_bytes=99_999), text), "gzip counts decompressed"
    assert not uses_cluster(ComputeSettings(cluster_above_bytes=100_000), text), "100,000 bytes of text fit"


def test_the_environment_names_the_scheduler_before_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    # given a scheduler in the config and another in DASK_SCHEDULER_ADDRESS
    compute = ComputeSettings(scheduler_address="tcp://from-config:8786")
    monkeypatch.setenv(SCHEDULER_VARIABLE, "tcp://from-environment:8786")
    # then the environment's wins, and any input then runs on it
    assert scheduler_address(compute) == "tcp://from-environment:8786", "the environment overrides the config"
    monkeypatch.delenv(SCHEDULER_VARIABLE)
    assert scheduler_address(compute) == "tcp://from-config:8786", "the config names it otherwise"
    assert uses_cluster(compute, _source(Path("tiny.csv"), 1)), "a named cluster takes even a tiny input"


def test_local_workers_default_to_the_cores_this_process_may_use() -> None:
    # then the count is the config's when set, else at least one per usable core
    assert local_workers(ComputeSettings(workers=3)) == 3, "compute.workers sets the count"
    assert local_workers(ComputeSettings()) >= 1, "by default one worker per usable core"


def test_an_early_cluster_serves_every_stage_and_closes_with_the_flow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a large source, and a flow that starts its one-worker LocalCluster early, warming it as it comes up
    monkeypatch.delenv(SCHEDULER_VARIABLE, raising=False)
    compute = ComputeSettings(cluster_above_bytes=1000, workers=1)
    large = _source(tmp_path / "large.csv", 1001)
    with early_cluster(compute, large, warm=lambda client: [client.submit(pow, 2, 10)]):
        # when two stages ask for a client
        with dask_client(compute, large) as first:
            answer = first.submit(pow, 3, 4).result()
        with dask_client(compute, large) as second:
            # then both get the same client of the same running cluster
            assert second is first, "every stage of the flow uses the early cluster"
            assert answer == 81 and second.status == "running", "the first stage's end does not close it"
    # and it is closed with the block
    assert first.status == "closed", f"the flow's cluster is closed at its end, got {first.status}"


def test_no_early_cluster_for_a_small_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a small source / when a flow asks for an early cluster
    monkeypatch.delenv(SCHEDULER_VARIABLE, raising=False)
    compute = ComputeSettings(cluster_above_bytes=1000)
    small = _source(tmp_path / "small.csv", 999)
    with early_cluster(compute, small), dask_client(compute, small) as client:
        # then nothing is started: the stages run in this process
        assert client is None
