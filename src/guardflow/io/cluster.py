"""Where the data stages run: an existing Dask cluster, a LocalCluster sized to the machine, or this process.

`DASK_SCHEDULER_ADDRESS` (or `compute.scheduler_address`) names an existing scheduler: the stages connect to it,
and its workers must see the same paths (the input and the run folder) as this process. Otherwise a large input
(more than `compute.cluster_above_bytes` of CSV text, gzip's counted decompressed, or more than
`compute.cluster_above_rows` Parquet rows), or a folder of files, starts a LocalCluster of one single-threaded process
per core (GX and pandas hold the GIL: processes, not threads, give parallelism); a smaller input runs in this
process, on the in-memory path. The client is used inside the library's stages (not Prefect's DaskTaskRunner):
partitions are many small pieces of one stage, not Prefect tasks, and the library never imports Prefect.

A flow whose stages will need a LocalCluster can start it early, in the background (`early_cluster`): its start
and the workers' imports then overlap the flow's own work (the rerun check's checksum), and every stage of the
flow uses that one cluster instead of starting its own.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from guardflow.errors import ConfigError
from guardflow.settings import ComputeSettings

if TYPE_CHECKING:
    from distributed import Client

    from guardflow.io.sources import Source

SCHEDULER_VARIABLE = "DASK_SCHEDULER_ADDRESS"
_CONNECT_SECONDS = 10
_early: Future[tuple[Any, Client, list[Any]]] | None = None  # the flow's LocalCluster, started in the background


def scheduler_address(compute: ComputeSettings) -> str | None:
    """The existing scheduler to use: the environment's `DASK_SCHEDULER_ADDRESS` first, then the config's."""
    return os.environ.get(SCHEDULER_VARIABLE) or compute.scheduler_address


def uses_cluster(compute: ComputeSettings, source: Source) -> bool:
    """True when the stages on `source` run on Dask (an existing cluster, or a LocalCluster for a large input)."""
    if scheduler_address(compute) is not None:
        return True
    return (
        source.is_folder
        or source.text_bytes > compute.cluster_above_bytes
        or source.parquet_rows > compute.cluster_above_rows
    )


def local_workers(compute: ComputeSettings) -> int:
    """LocalCluster workers: the config's count, else one per core this process may use."""
    if compute.workers is not None:
        return compute.workers
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return max(os.cpu_count() or 1, 1)


@contextlib.contextmanager
def dask_client(compute: ComputeSettings, source: Source) -> Iterator[Client | None]:
    """A Dask client for the stages on `source`, or None to run them in this process (see the module docstring).

    A LocalCluster started here is closed on exit; an existing cluster is only disconnected from."""
    if not uses_cluster(compute, source):
        yield None
        return
    from distributed import Client

    address = scheduler_address(compute)
    if address is not None:
        try:
            client = Client(address, timeout=_CONNECT_SECONDS)
        except (OSError, TimeoutError) as error:
            raise ConfigError(f"cannot reach the Dask scheduler at {address}: {error}") from None
        with client:
            yield client
        return
    if _early is not None:
        _, client, _ = _early.result()  # the flow's cluster: it outlives this stage
        yield client
        return
    with _local_cluster(compute) as cluster, Client(cluster) as client:
        yield client


def _local_cluster(compute: ComputeSettings) -> Any:
    from distributed import LocalCluster

    return LocalCluster(
        n_workers=local_workers(compute),
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )


@contextlib.contextmanager
def early_cluster(
    compute: ComputeSettings, source: Source, warm: Callable[[Client], list[Any]] | None = None
) -> Iterator[None]:
    """Start, in the background, the LocalCluster that `dask_client` would start for `source`, and let every
    `dask_client` inside this block use it; closed at the end of the block. `warm(client)` is submitted to the
    workers once it is up (imports the first stage needs; its futures are kept until the end). Nothing is started
    for a small source or an existing cluster."""
    global _early
    if _early is not None or not uses_cluster(compute, source) or scheduler_address(compute) is not None:
        yield
        return

    def start() -> tuple[Any, Client, list[Any]]:
        from distributed import Client

        cluster = _local_cluster(compute)
        client = Client(cluster)
        return cluster, client, warm(client) if warm is not None else []

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="guardflow-cluster") as starting:
        _early = starting.submit(start)
        try:
            yield
        finally:
            started, _early = _early, None
            with contextlib.suppress(Exception):  # a start that failed was already reported by the stage
                cluster, client, _ = started.result()
                client.close()
                cluster.close()
