"""OpenLineage events for guardflow's jobs: which datasets each run read and wrote, and how it ended.

Events go over HTTP (Marquez and friends) when a URL is configured, else to a JSON-lines file in the run
folder. Lineage is observability, not the product: a transport that fails is logged and counted, and the
run goes on. Over HTTP, events the endpoint did not take wait in a spool folder, one file each, and are
delivered in emission order by the next event that gets through, by `LineageEmitter.flush()`, or by
`flush_spool()` from another process (`guardflow lineage flush`).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict, TypeVar, Unpack

import attr
from openlineage.client import OpenLineageClient
from openlineage.client.constants import __version__ as openlineage_client_version
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    BaseFacet,
    DatasetFacet,
    InputDatasetFacet,
    JobFacet,
    OutputDatasetFacet,
    RunFacet,
    data_quality_metrics_input_dataset,
    dataset_version_dataset,
    datasource_dataset,
    error_message_run,
    job_type_job,
    output_statistics_output_dataset,
    parent_run,
    processing_engine_run,
    schema_dataset,
)
from openlineage.client.naming.dataset import LocalFileSystem
from openlineage.client.serde import Serde

from guardflow import __version__ as guardflow_version
from guardflow.io.lineage_receiver import DEFAULT_ENDPOINT, HttpReceiver, NotDelivered, Outcome, endpoint_url
from guardflow.io.lineage_spool import Drain, Spool, drain_spool
from guardflow.io.lineage_spool import flush_spool as flush_spool  # re-exported: `guardflow lineage flush`

log = logging.getLogger(__name__)

PRODUCER = f"https://github.com/guardflow/guardflow/tree/{guardflow_version}"
# Short timeouts and one retry of a refused or timed-out connection: a dead endpoint costs a run about
# nothing (refused) or 4 s (black hole) per attempt, and events wait in the spool. A read is never retried:
# the receiver may already have stored the event, and resending it is how duplicates happen.
_HTTP_TIMEOUT_SECONDS = 2.0
# After a failed attempt, events go straight to the spool for this long before the endpoint is tried again.
_PAUSE_AFTER_FAILURE_SECONDS = 30.0
# An emit spends at most this long delivering older spooled events; the rest wait for the next emit or flush.
_DRAIN_BUDGET_SECONDS = 10.0

_Facet = TypeVar("_Facet", bound=BaseFacet)


class EventParts(TypedDict, total=False):
    """What a run event says besides its job and run id; `parent` is (parent job name, parent run id)."""

    inputs: Iterable[LineageDataset]
    outputs: Iterable[LineageDataset]
    parent: tuple[str, str] | None
    run_facets: Mapping[str, RunFacet] | None


@dataclass(frozen=True)
class LineageDataset:
    """A dataset as lineage sees it: its OpenLineage identity, its columns and how many rows it held.

    `extra_facets` holds further dataset facets (openlineage `facet_v2` objects), keyed by facet name.
    """

    namespace: str
    name: str
    columns: tuple[tuple[str, str], ...] = ()
    row_count: int | None = None
    version: str | None = None  # e.g. the content sha256 -> the datasetVersion facet
    input_facets: Mapping[str, InputDatasetFacet] = field(default_factory=dict, hash=False)
    extra_facets: Mapping[str, DatasetFacet] = field(default_factory=dict, hash=False)


def file_dataset(
    path: Path,
    columns: Iterable[tuple[str, str]] = (),
    row_count: int | None = None,
    sha256: str | None = None,
) -> LineageDataset:
    """A local file under OpenLineage's naming: namespace `file`, name the absolute path; its sha256 as version."""
    naming = LocalFileSystem(path=Path(path).resolve().as_posix())
    return LineageDataset(
        namespace=naming.get_namespace(),
        name=naming.get_name(),
        columns=tuple((str(name), str(type_)) for name, type_ in columns),
        row_count=row_count,
        version=sha256,
    )


def new_run_id() -> str:
    """A fresh run id: time-ordered UUIDv7 from the client's generator when it has one, else UUIDv4."""
    try:
        from openlineage.client.uuid import generate_new_uuid
    except ImportError:
        return str(uuid.uuid4())
    return str(generate_new_uuid())


def _lineage_disabled() -> bool:
    # The same test the client applies, so `describe()` tells the truth.
    return os.environ.get("OPENLINEAGE_DISABLED", "").strip().lower() == "true"


def _stamped(facet: _Facet) -> _Facet:
    """A copy of a caller's facet that names guardflow as its producer."""
    return attr.evolve(facet, producer=PRODUCER)


def _dataset_facets(dataset: LineageDataset) -> dict[str, DatasetFacet]:
    facets: dict[str, DatasetFacet] = {}
    if dataset.columns:
        facets["schema"] = schema_dataset.SchemaDatasetFacet(
            fields=[
                schema_dataset.SchemaDatasetFacetFields(name=name, type=type_, ordinal_position=position)
                for position, (name, type_) in enumerate(dataset.columns, start=1)
            ],
            producer=PRODUCER,
        )
    if dataset.namespace == "file":
        uri: str | None = "file://"
    else:
        uri = dataset.namespace if "://" in dataset.namespace else None
    facets["dataSource"] = datasource_dataset.DatasourceDatasetFacet(
        name=dataset.namespace, uri=uri, producer=PRODUCER
    )
    if dataset.version:
        facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(
            datasetVersion=dataset.version, producer=PRODUCER
        )
    facets.update({key: _stamped(facet) for key, facet in dataset.extra_facets.items()})
    return facets


def _input_dataset(dataset: LineageDataset) -> InputDataset:
    input_facets: dict[str, InputDatasetFacet] = {}
    if dataset.row_count is not None:
        metrics = data_quality_metrics_input_dataset.DataQualityMetricsInputDatasetFacet(
            # The spec requires `columnMetrics`; an empty mapping says "no per-column metrics".
            columnMetrics={},
            rowCount=dataset.row_count,
            producer=PRODUCER,
        )
        input_facets["dataQualityMetrics"] = metrics
    input_facets.update({key: _stamped(facet) for key, facet in dataset.input_facets.items()})
    return InputDataset(
        namespace=dataset.namespace,
        name=dataset.name,
        facets=_dataset_facets(dataset),
        inputFacets=input_facets,
    )


def _output_dataset(dataset: LineageDataset) -> OutputDataset:
    output_facets: dict[str, OutputDatasetFacet] = {}
    if dataset.row_count is not None:
        statistics = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
            rowCount=dataset.row_count, producer=PRODUCER
        )
        output_facets["outputStatistics"] = statistics
    return OutputDataset(
        namespace=dataset.namespace,
        name=dataset.name,
        facets=_dataset_facets(dataset),
        outputFacets=output_facets,
    )


class LineageEmitter:
    """Emits START, COMPLETE, FAIL and ABORT run events for jobs in one namespace.

    The transport is chosen once: HTTP to `url`, else to `$OPENLINEAGE_URL`, else a JSON-lines file at
    `log_path`; `OPENLINEAGE_DISABLED=true` turns emission off. Constructing an emitter touches neither
    disk nor network.

    Over HTTP with a `spool_dir`, each event is first written to the spool, then the spool is delivered
    oldest first, so an event never overtakes an older one still waiting. An event the endpoint does not
    take (refused, timed out, 5xx) stays there, and for `pause_after_failure` seconds further events are
    only spooled; `flush()` tries again at once. Without a `spool_dir` such an event is logged and lost.
    """

    def __init__(
        self,
        namespace: str,
        log_path: Path,
        url: str | None = None,
        spool_dir: Path | None = None,
        *,
        timeout: float = _HTTP_TIMEOUT_SECONDS,
        pause_after_failure: float = _PAUSE_AFTER_FAILURE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.namespace = namespace
        self._log_path = Path(log_path)
        self._url = url or os.environ.get("OPENLINEAGE_URL") or None
        self._endpoint = os.environ.get("OPENLINEAGE_ENDPOINT", DEFAULT_ENDPOINT)
        self._disabled = _lineage_disabled()
        self._spool = Spool(Path(spool_dir)) if spool_dir is not None and self._url else None
        self._timeout = timeout
        self._pause_after_failure = pause_after_failure
        self._clock = clock
        self._paused_until = -math.inf
        self._client: OpenLineageClient | None = None
        self._receiver: HttpReceiver | None = None
        self._lock = threading.Lock()
        self._emitted = 0
        self._failed = 0
        self._spooled = 0

    @property
    def log_path(self) -> Path:
        return self._log_path

    @property
    def events_emitted(self) -> int:
        """Events the transport accepted, counting spooled ones this emitter delivered later (any run's)."""
        return self._emitted

    @property
    def events_failed(self) -> int:
        """Events lost: not delivered and not spooled, or refused by the receiver (logged, not raised)."""
        return self._failed

    @property
    def events_spooled(self) -> int:
        """Events of this emitter left in the spool when emitted (endpoint down or slow, or older ones waiting)."""
        return self._spooled

    @property
    def events_waiting(self) -> int:
        """Events in the spool now, from this run or earlier ones."""
        return len(self._spool.pending()) if self._spool is not None else 0

    def describe(self) -> str:
        """Where events go, with counts, in one line for a run summary."""
        if self._disabled:
            return "OpenLineage: disabled (OPENLINEAGE_DISABLED=true)"
        where = endpoint_url(self._url, self._endpoint) if self._url else str(self._log_path)
        spooled = ""
        if self._spool is not None:
            waiting = self.events_waiting
            if self._spooled or waiting:
                spooled = f", {self._spooled} spooled, {waiting} waiting in {self._spool.folder}"
        failed = f", {self._failed} failed" if self._failed else ""
        return f"OpenLineage: {self._emitted} events to {where}{spooled}{failed}"

    def flush(self) -> int:
        """Deliver the spool now, even while paused after a failure; returns how many events went out."""
        if self._disabled or self._spool is None:
            return 0
        with self._lock:
            try:
                return len(self._deliver_spool().delivered)
            except Exception as error:  # a lineage outage must never stop the pipeline
                log.warning("OpenLineage spool %s could not be delivered: %s", self._spool.folder, error)
                return 0

    def start(self, job: str, run_id: str, **event: Unpack[EventParts]) -> None:
        """Record that a run of `job` started; `parent` is (parent job name, parent run id)."""
        self._emit(RunState.START, job, run_id, **event)

    def complete(self, job: str, run_id: str, **event: Unpack[EventParts]) -> None:
        """Record that a run of `job` finished well, with what it read and wrote."""
        self._emit(RunState.COMPLETE, job, run_id, **event)

    def fail(self, job: str, run_id: str, message: str, **event: Unpack[EventParts]) -> None:
        """Record that a run of `job` failed, with the error message users saw."""
        error = error_message_run.ErrorMessageRunFacet(
            message=message, programmingLanguage="python", producer=PRODUCER
        )
        event["run_facets"] = {**(event.get("run_facets") or {}), "errorMessage": error}
        self._emit(RunState.FAIL, job, run_id, **event)

    def abort(self, job: str, run_id: str, message: str, **event: Unpack[EventParts]) -> None:
        """Record that a run of `job` was cut short (its process died) and will never end by itself."""
        error = error_message_run.ErrorMessageRunFacet(
            message=message, programmingLanguage="python", producer=PRODUCER
        )
        event["run_facets"] = {**(event.get("run_facets") or {}), "errorMessage": error}
        self._emit(RunState.ABORT, job, run_id, **event)

    def _emit(
        self,
        state: RunState,
        job: str,
        run_id: str,
        inputs: Iterable[LineageDataset] = (),
        outputs: Iterable[LineageDataset] = (),
        parent: tuple[str, str] | None = None,
        run_facets: Mapping[str, RunFacet] | None = None,
    ) -> None:
        if self._disabled:
            return
        # Built before the transport is touched: a malformed event is our bug and should raise.
        event = self._run_event(state, job, run_id, inputs, outputs, parent, run_facets)
        with self._lock:
            try:
                if self._url is None:
                    self._client_for_first_use().emit(event)
                    self._emitted += 1
                elif self._spool is None:
                    self._send_without_spool(Serde.to_json(event).encode("utf-8"))
                else:
                    self._send_through_spool(Serde.to_json(event).encode("utf-8"), run_id, state)
            except Exception as error:  # a lineage outage must never stop the pipeline
                self._failed += 1
                log.warning(
                    "OpenLineage %s event for job %s was not delivered (%s): %s",
                    state.value,
                    job,
                    endpoint_url(self._url, self._endpoint) if self._url else self._log_path,
                    error,
                )

    def _send_without_spool(self, body: bytes) -> None:
        attempt = self._receiver_for_first_use().post(body)
        if attempt.outcome is not Outcome.DELIVERED:
            raise NotDelivered(attempt.detail)
        self._emitted += 1

    def _send_through_spool(self, body: bytes, run_id: str, state: RunState) -> None:
        assert self._spool is not None
        # Write-ahead: the event is on disk before any attempt, so delivery has one path (oldest first) and
        # a run that dies mid-send leaves it for the next run rather than losing it.
        try:
            path = self._spool.append(body, run_id, state.value)
        except OSError as error:
            log.warning(
                "OpenLineage spool %s is unusable (%s); sending without it", self._spool.folder, error
            )
            self._send_without_spool(body)
            return
        if self._clock() < self._paused_until:
            self._spooled += 1
            return
        self._deliver_spool(deadline=self._clock() + _DRAIN_BUDGET_SECONDS)
        if path.exists():  # neither delivered nor set aside as rejected
            self._spooled += 1

    def _deliver_spool(self, deadline: float = math.inf) -> Drain:
        assert self._spool is not None
        result = drain_spool(self._spool, self._receiver_for_first_use(), deadline, self._clock)
        self._emitted += len(result.delivered)
        self._failed += result.rejected
        if result.failure:
            self._paused_until = self._clock() + self._pause_after_failure
            log.warning(
                "OpenLineage endpoint did not take events (%s): %d wait in %s, next try in %.0f s or at flush",
                result.failure,
                result.remaining,
                self._spool.folder,
                self._pause_after_failure,
            )
        else:
            self._paused_until = -math.inf
        return result

    def _receiver_for_first_use(self) -> HttpReceiver:
        assert self._url is not None
        if self._receiver is None:
            self._receiver = HttpReceiver(self._url, self._endpoint, self._timeout)
        return self._receiver

    def _run_event(
        self,
        state: RunState,
        job: str,
        run_id: str,
        inputs: Iterable[LineageDataset],
        outputs: Iterable[LineageDataset],
        parent: tuple[str, str] | None,
        run_facets: Mapping[str, RunFacet] | None,
    ) -> RunEvent:
        facets: dict[str, RunFacet] = {
            "processing_engine": processing_engine_run.ProcessingEngineRunFacet(
                version=guardflow_version,
                name="guardflow",
                openlineageAdapterVersion=openlineage_client_version,
                producer=PRODUCER,
            )
        }
        if parent is not None:
            parent_job, parent_run_id = parent
            facets["parent"] = parent_run.ParentRunFacet(
                run=parent_run.Run(runId=parent_run_id),
                job=parent_run.Job(namespace=self.namespace, name=parent_job),
                producer=PRODUCER,
            )
        facets.update({key: _stamped(facet) for key, facet in (run_facets or {}).items()})
        job_facets: dict[str, JobFacet] = {
            "jobType": job_type_job.JobTypeJobFacet(
                processingType="BATCH",
                integration="GUARDFLOW",
                jobType="TASK" if parent is not None else "JOB",
                producer=PRODUCER,
            )
        }
        return RunEvent(
            eventType=state,
            eventTime=datetime.now(UTC).isoformat(),
            run=Run(runId=run_id, facets=facets),
            job=Job(namespace=self.namespace, name=job, facets=job_facets),
            inputs=[_input_dataset(dataset) for dataset in inputs],
            outputs=[_output_dataset(dataset) for dataset in outputs],
            producer=PRODUCER,
        )

    def _client_for_first_use(self) -> OpenLineageClient:
        if self._client is None:
            self._client = OpenLineageClient(config={"transport": self._transport_config()})
        return self._client

    def _transport_config(self) -> dict[str, Any]:
        # Only the file transport goes through the client; HTTP goes through `HttpReceiver` and the spool.
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        # append=True: one file, one event per line (without it the client writes a file per event).
        return {"type": "file", "log_file_path": str(self._log_path), "append": True}
