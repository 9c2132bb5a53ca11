"""The data stages on Dask: a LocalCluster of two worker processes (started and closed here, once for the
module) validates a CSV of a few thousand Adult rows partition by partition and scans the accepted parts, and
every verdict, count and quarantined row (with its reasons) is the in-memory path's."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from guardflow.contract.validate_contract import ContractResult, validate_table
from guardflow.data.partitioned import ACCEPTED_FOLDER, FLAGGED, REASON, rows_to_train
from guardflow.data.table import REASONS, SOURCE_ROW
from guardflow.io.datasets import read_table
from guardflow.io.scan_parts import PartitionedScan, scan_parts
from guardflow.io.validate_file import FileContractResult, validate_file, warm_workers
from guardflow.poisoning.scan_poisoning import scan_poisoning
from guardflow.poisoning.scan_result import DUPLICATE_FLOOD, ScanResult
from guardflow.settings import Settings

ROWS = 3000
FLOOD_COPIES = 40
OFF_MANIFOLD_ROWS = 10
FLIPS = 60
FIELDS = 15
PARTITION_BYTES = 80_000  # about 700 rows: five partitions or more


@pytest.fixture(scope="module")
def client() -> Iterator[object]:
    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as connected,
    ):
        yield connected


def _poisoned_lines(settings: Settings) -> list[bytes]:
    """The first 3,000 rows of adult.data with four bad rows (the contract's) and planted poison (the scan's):
    a row copied 40 times, 10 rows assembled from rare values, 60 labels flipped."""
    lines = gzip.decompress(settings.dataset.train.path.read_bytes()).split(b"\n")[:ROWS]
    rng = np.random.default_rng(7)
    for row in rng.choice(np.arange(100, ROWS), FLIPS, replace=False):
        fields = lines[row].split(b", ")
        fields[-1] = b"<=50K" if fields[-1] == b">50K" else b">50K"
        lines[row] = b", ".join(fields)
    rare = lines[20].split(b", ")
    rare[0], rare[1], rare[5], rare[6] = b"90", b"Never-worked", b"Married-AF-spouse", b"Armed-Forces"
    rare[10], rare[12], rare[13] = b"99999", b"99", b"Holand-Netherlands"
    lines += [b", ".join(rare)] * OFF_MANIFOLD_ROWS + [lines[30]] * FLOOD_COPIES
    lines[4] += b", extra"  # a ragged line: malformed
    lines[50] = lines[50].replace(b", ", b", \x00", 1)  # a NUL byte: malformed
    fields = lines[70].split(b", ")
    fields[0] = b"300"  # an impossible age
    lines[70] = b", ".join(fields)
    fields = lines[90].split(b", ")
    fields[1] = b"Wizard"  # an unseen category
    lines[90] = b", ".join(fields)
    return lines


@dataclass(frozen=True)
class Paths:
    """The same file through both paths."""

    contract: ContractResult
    scan: ScanResult
    partitioned: FileContractResult
    partitioned_scan: PartitionedScan


@pytest.fixture(scope="module")
def both(client: object, adult_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Paths:
    folder = tmp_path_factory.mktemp("dask")
    path = folder / "poisoned.csv"
    path.write_bytes(b"\n".join(_poisoned_lines(adult_settings)) + b"\n")
    dataset, contract, policy = adult_settings.dataset, adult_settings.contract, adult_settings.poisoning
    in_memory = validate_table(read_table(path, dataset), dataset, contract)
    in_memory_scan = scan_poisoning(in_memory.accepted, dataset, policy)
    run_dir = folder / "run"
    partitioned = validate_file(
        path,
        dataset,
        contract,
        run_dir / "quarantine.parquet",
        chunk_bytes=PARTITION_BYTES,
        client=client,  # type: ignore[arg-type]
        accepted_dir=run_dir / ACCEPTED_FOLDER,
    )
    partitioned_scan = scan_parts(
        partitioned.partitioned.parts,
        dataset,
        policy,
        run_dir / "scan",
        sample_rows=adult_settings.compute.sample_rows,
        client=client,  # type: ignore[arg-type]
    )
    return Paths(in_memory, in_memory_scan, partitioned, partitioned_scan)


def test_the_contract_on_dask_gives_the_in_memory_verdict_and_accounting(both: Paths) -> None:
    # given the file validated in memory and in partitions on two Dask workers
    memory, dask = both.contract, both.partitioned
    # then both count and judge alike, and the partitioned run did cut the file into partitions
    assert dask.chunks >= 5, f"a ~330 kB file in 80 kB partitions makes 5 or more, got {dask.chunks}"
    assert (dask.rows_in, dask.rows_accepted, dask.rows_quarantined) == (
        memory.rows_in,
        memory.rows_accepted,
        memory.rows_quarantined,
    ), "row accounting must be the in-memory path's"
    assert dask.rows_in == dask.rows_accepted + dask.rows_quarantined, "in = accepted + quarantined"
    assert dask.rows_quarantined == 4, f"the four bad rows are quarantined, got {dask.rows_quarantined}"
    assert dask.outcomes == memory.outcomes, "every expectation's outcome must be the in-memory one"


def test_the_contract_on_dask_quarantines_the_same_rows_for_the_same_reasons(both: Paths) -> None:
    # given the quarantine streamed by the partitioned contract
    quarantine = pd.read_parquet(both.partitioned.quarantine_path).set_index(SOURCE_ROW)
    expected = both.contract.quarantined
    # then it holds the in-memory quarantine's rows, with the same reasons
    assert quarantine.index.tolist() == expected.index.tolist(), "the same rows must be quarantined"
    assert [list(reasons) for reasons in quarantine[REASONS]] == [
        list(reasons) for reasons in expected[REASONS]
    ], "each quarantined row must carry the in-memory reasons"


def test_the_accepted_parts_hold_the_in_memory_accepted_rows(both: Paths) -> None:
    # given the Parquet parts the workers wrote
    parts = [rows_to_train(part, None) for part in both.partitioned.partitioned.parts]
    accepted = pd.concat(parts)
    expected = both.contract.accepted
    # then together they are the accepted rows, typed alike, in source order
    assert accepted.index.tolist() == expected.index.tolist(), "the parts must hold every accepted row once"
    pd.testing.assert_frame_equal(
        accepted.astype("object"), expected[accepted.columns].astype("object"), obj="accepted rows"
    )


def test_the_scan_on_dask_flags_the_same_rows_for_the_same_reasons(both: Paths) -> None:
    # given the accepted rows scanned in memory and part by part on the workers
    memory, dask = both.scan, both.partitioned_scan
    verdicts = pd.concat(pd.read_parquet(part) for part in dask.scan_parts).set_index(SOURCE_ROW)
    # then the counts per detector, the flagged rows and their reasons are the in-memory scan's
    assert memory.per_detector[DUPLICATE_FLOOD] >= FLOOD_COPIES - 10, (
        f"the planted flood must be found for the comparison to mean something: {memory.per_detector}"
    )
    assert dask.per_detector == memory.per_detector, "counts per detector must be the in-memory scan's"
    assert dask.rows_flagged == memory.rows_flagged, "the same number of rows must be flagged"
    assert not dask.sampled, "data smaller than the sample is scanned whole by every detector"
    flagged = verdicts.index[verdicts[FLAGGED]]
    assert flagged.tolist() == memory.flags.index[memory.flagged].tolist(), "the same rows must be flagged"
    expected = memory.reasons().map("; ".join)
    assert verdicts.loc[flagged, REASON].tolist() == expected.loc[flagged].tolist(), (
        "each flagged row must carry the in-memory reasons"
    )
    quarantine = pd.read_parquet(dask.quarantine_path)
    assert quarantine.index.tolist() == flagged.tolist(), "every flagged row must go to the scan's quarantine"


def test_rows_to_train_leave_out_the_flagged_rows(both: Paths) -> None:
    # given the accepted parts and their scan parts
    pairs = zip(both.partitioned.partitioned.parts, both.partitioned_scan.scan_parts, strict=True)
    kept = pd.concat(rows_to_train(accepted, scan) for accepted, scan in pairs)
    # then the rows to train on are the accepted rows the scan did not flag
    expected = both.scan.flags.index[~both.scan.flagged]
    assert kept.index.tolist() == expected.tolist(), "training rows = accepted minus flagged"


def test_warming_loads_the_suite_on_every_worker(client: object, adult_settings: Settings) -> None:
    # given the cluster's two workers / when warmed up for the contract
    futures = warm_workers(client, adult_settings.contract.suite)  # type: ignore[arg-type]
    suites = client.gather(futures)  # type: ignore[attr-defined]
    # then each worker loaded the suite (once each), and without a cluster nothing is sent anywhere
    assert len(futures) == 2 and {suite.name for suite in suites} == {"adult"}, suites
    assert warm_workers(None, adult_settings.contract.suite) == []
