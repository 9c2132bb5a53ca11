"""Where the data stages run: an existing cluster when one is named, a LocalCluster for a large input or a
folder, this process otherwise (no cluster is started here: the Dask path is tests/unit/io/test_scan_parts.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from guardflow.io.cluster import (
    SCHEDULER_VARIABLE,
    dask_client,
    local_workers,
    scheduler_address,
    uses_cluster,
)
from guardflow.io.sources import Source, SourceFile
from guardflow.settings import ComputeSettings


def _source(path: Path, size: int) -> Source:
    return Source(path=path, files=(SourceFile(path=path, bytes=size, sha256="", parquet=False),))


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
