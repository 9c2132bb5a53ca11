"""OpenLineage events for guardflow's jobs: which datasets each run read and wrote, and how it ended.

Events go over HTTP (Marquez and friends) when a URL is configured, else to a JSON-lines file in the run
folder. Lineage is observability, not the product: a transport that fails is logged and counted, and the
run goes on.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

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

from guardflow import __version__ as guardflow_version

log = logging.getLogger(__name__)

PRODUCER = f"https://github.com/guardflow/guardflow/tree/{guardflow_version}"
DEFAULT_ENDPOINT = "api/v1/lineage"
# The client's default (5 retries, growing backoff) costs about 9 s per event when the endpoint is down;
# two quick retries ride out a blip without stalling a batch run behind a dead lineage server.
_HTTP_RETRY = {"total": 2, "connect": 2, "read": 2, "backoff_factor": 0.2}
_HTTP_TIMEOUT_SECONDS = 5.0

_Facet = TypeVar("_Facet", bound=BaseFacet)


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
    """Emits START, COMPLETE and FAIL run events for jobs in one namespace.

    The transport is chosen once: HTTP to `url`, else to `$OPENLINEAGE_URL`, else a JSON-lines file at
    `log_path`; `OPENLINEAGE_DISABLED=true` turns emission off. The client is built at the first event,
    so constructing an emitter touches neither disk nor network.
    """

    def __init__(self, namespace: str, log_path: Path, url: str | None = None) -> None:
        self.namespace = namespace
        self._log_path = Path(log_path)
        self._url = url or os.environ.get("OPENLINEAGE_URL") or None
        self._endpoint = os.environ.get("OPENLINEAGE_ENDPOINT", DEFAULT_ENDPOINT)
        self._disabled = _lineage_disabled()
        self._client: OpenLineageClient | None = None
        self._lock = threading.Lock()
        self._emitted = 0
        self._failed = 0

    @property
    def log_path(self) -> Path:
        return self._log_path

    @property
    def events_emitted(self) -> int:
        """Events the transport accepted."""
        return self._emitted

    @property
    def events_failed(self) -> int:
        """Events the transport could not deliver (logged as warnings, not raised)."""
        return self._failed

    def describe(self) -> str:
        """Where events go, with counts, in one line for a run summary."""
        if self._disabled:
            return "OpenLineage: disabled (OPENLINEAGE_DISABLED=true)"
        where = f"{self._url.rstrip('/')}/{self._endpoint.lstrip('/')}" if self._url else str(self._log_path)
        failed = f", {self._failed} failed" if self._failed else ""
        return f"OpenLineage: {self._emitted} events to {where}{failed}"

    def start(
        self,
        job: str,
        run_id: str,
        inputs: Iterable[LineageDataset] = (),
        outputs: Iterable[LineageDataset] = (),
        parent: tuple[str, str] | None = None,
        run_facets: Mapping[str, RunFacet] | None = None,
    ) -> None:
        """Record that a run of `job` started; `parent` is (parent job name, parent run id)."""
        self._emit(RunState.START, job, run_id, inputs, outputs, parent, run_facets)

    def complete(
        self,
        job: str,
        run_id: str,
        inputs: Iterable[LineageDataset] = (),
        outputs: Iterable[LineageDataset] = (),
        parent: tuple[str, str] | None = None,
        run_facets: Mapping[str, RunFacet] | None = None,
    ) -> None:
        """Record that a run of `job` finished well, with what it read and wrote."""
        self._emit(RunState.COMPLETE, job, run_id, inputs, outputs, parent, run_facets)

    def fail(
        self,
        job: str,
        run_id: str,
        message: str,
        inputs: Iterable[LineageDataset] = (),
        outputs: Iterable[LineageDataset] = (),
        parent: tuple[str, str] | None = None,
    ) -> None:
        """Record that a run of `job` failed, with the error message users saw."""
        error = error_message_run.ErrorMessageRunFacet(
            message=message, programmingLanguage="python", producer=PRODUCER
        )
        self._emit(RunState.FAIL, job, run_id, inputs, outputs, parent, {"errorMessage": error})

    def _emit(
        self,
        state: RunState,
        job: str,
        run_id: str,
        inputs: Iterable[LineageDataset],
        outputs: Iterable[LineageDataset],
        parent: tuple[str, str] | None,
        run_facets: Mapping[str, RunFacet] | None,
    ) -> None:
        if self._disabled:
            return
        # Built before the transport is touched: a malformed event is our bug and should raise.
        event = self._run_event(state, job, run_id, inputs, outputs, parent, run_facets)
        with self._lock:
            try:
                self._client_for_first_use().emit(event)
            except Exception as error:  # a lineage outage must never stop the pipeline
                self._failed += 1
                log.warning(
                    "OpenLineage %s event for job %s was not delivered (%s): %s",
                    state.value,
                    job,
                    self._url or self._log_path,
                    error,
                )
            else:
                self._emitted += 1

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
        if self._url:
            config: dict[str, Any] = {
                "type": "http",
                "url": self._url,
                "endpoint": self._endpoint,
                "timeout": _HTTP_TIMEOUT_SECONDS,
                "retry": _HTTP_RETRY,
            }
            if api_key := os.environ.get("OPENLINEAGE_API_KEY"):
                config["auth"] = {"type": "api_key", "apiKey": api_key}
            return config
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        # append=True: one file, one event per line (without it the client writes a file per event).
        return {"type": "file", "log_file_path": str(self._log_path), "append": True}
