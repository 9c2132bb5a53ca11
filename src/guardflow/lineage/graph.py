"""The OpenLineage event log as a graph of datasets and job runs, and the traces cut out of it.

Reads the JSON lines that guardflow's file transport appends, builds the graph, and cuts out the upstream
subgraph of a model version or the downstream subgraph of a file. No Prefect, no MLflow, no network.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from guardflow.errors import DataError, GuardflowError

log = logging.getLogger(__name__)

_END_STATES = frozenset({"COMPLETE", "FAIL", "ABORT"})
_FAILED_STATES = frozenset({"FAIL", "ABORT"})
# Facets that every event carries, or that the view shows in its own way; any other facet (guardflow's own
# training, scan, gate and model facets) is shown as its scalar fields.
_PLAIN_FACETS = frozenset(
    {"parent", "processing_engine", "tags", "errorMessage", "dataSource", "schema", "version", "jobType"}
)


@dataclass(frozen=True, order=True)
class DatasetKey:
    """A dataset's OpenLineage identity: a file is namespace `file` and its absolute path."""

    namespace: str
    name: str


@dataclass(frozen=True, order=True)
class RunKey:
    """One run of one job."""

    job: str
    run_id: str


NodeKey = DatasetKey | RunKey


@dataclass(frozen=True)
class Edge:
    """Dataset -> run (the run read it) or run -> dataset (the run wrote it), as the run's end event says."""

    source: NodeKey
    target: NodeKey
    version: str | None = None  # the dataset's version facet as this run saw it (a file's content sha256)
    row_count: int | None = None  # rows this run read or wrote


@dataclass(frozen=True)
class DatasetNode:
    key: DatasetKey
    facets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class RunNode:
    key: RunKey
    state: str  # the last event type seen: START (no end event yet), COMPLETE, FAIL or ABORT
    started_at: str | None = None
    ended_at: str | None = None
    parent: RunKey | None = None
    error: str | None = None
    facets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.state in _FAILED_STATES

    @property
    def time(self) -> str:
        return self.ended_at or self.started_at or ""


@dataclass(frozen=True)
class LineageGraph:
    """Datasets, runs and the edges between them; `focus` names the node(s) a trace started from."""

    datasets: Mapping[DatasetKey, DatasetNode]
    runs: Mapping[RunKey, RunNode]
    edges: tuple[Edge, ...]
    focus: tuple[NodeKey, ...] = ()
    direction: Literal["upstream", "downstream"] | None = None
    title: str = "lineage of all runs in the event log"

    @cached_property
    def _incoming(self) -> Mapping[NodeKey, list[Edge]]:
        return _edges_by(self.edges, lambda edge: edge.target)

    @cached_property
    def _outgoing(self) -> Mapping[NodeKey, list[Edge]]:
        return _edges_by(self.edges, lambda edge: edge.source)

    @cached_property
    def _children(self) -> Mapping[RunKey, list[RunKey]]:
        children: dict[RunKey, list[RunKey]] = defaultdict(list)
        for run in sorted(self.runs.values(), key=lambda run: run.started_at or run.time):
            if run.parent is not None:
                children[run.parent].append(run.key)
        return children

    @property
    def nodes(self) -> list[NodeKey]:
        """Datasets first, then runs, each in the order the event log first named them."""
        return [*self.datasets, *self.runs]

    def incoming(self, node: NodeKey) -> list[Edge]:
        """A run's inputs, or the runs that wrote a dataset."""
        return list(self._incoming.get(node, ()))

    def outgoing(self, node: NodeKey) -> list[Edge]:
        """A run's outputs, or the runs that read a dataset."""
        return list(self._outgoing.get(node, ()))

    def children(self, run: RunKey) -> list[RunKey]:
        """The stage runs whose parent is `run`, in start order."""
        return list(self._children.get(run, ()))

    def is_flow(self, run: RunKey) -> bool:
        """A flow run: the parent of stage runs in this graph (its own inputs and outputs repeat theirs)."""
        return bool(self._children.get(run))

    def versions(self, dataset: DatasetKey) -> list[str]:
        """The distinct versions (sha256 of files) that runs saw of a dataset, first seen first."""
        edges = self.incoming(dataset) + self.outgoing(dataset)
        return list(dict.fromkeys(edge.version for edge in edges if edge.version))

    def row_counts(self, dataset: DatasetKey) -> list[int]:
        edges = self.incoming(dataset) + self.outgoing(dataset)
        return list(dict.fromkeys(edge.row_count for edge in edges if edge.row_count is not None))


def _edges_by(edges: Iterable[Edge], end: Callable[[Edge], NodeKey]) -> Mapping[NodeKey, list[Edge]]:
    """The edges grouped by one of their ends, in their own order."""
    grouped: dict[NodeKey, list[Edge]] = defaultdict(list)
    for edge in edges:
        grouped[end(edge)].append(edge)
    return grouped


def load_events(path: Path) -> list[dict[str, Any]]:
    """The run events of a JSON-lines log; a torn or foreign line is skipped with a warning, not fatal."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"no lineage event log at {path}: run `guardflow train` first") from None
    except OSError as error:
        raise DataError(f"cannot read the lineage event log {path}: {error}") from None
    events: list[dict[str, Any]] = []
    skipped = 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            skipped += 1
            continue
        if (
            isinstance(event, dict)
            and isinstance(event.get("run"), dict)
            and isinstance(event.get("job"), dict)
        ):
            events.append(event)
        else:
            skipped += 1
    if skipped:
        log.warning("skipped %d lines of %s that are not OpenLineage run events", skipped, path)
    return events


def _custom_facets(facets: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(facets, dict):
        return {}
    return {
        name: value for name, value in facets.items() if name not in _PLAIN_FACETS and isinstance(value, dict)
    }


def _nested(mapping: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(key)
    return mapping


def _merge_edge(edges: dict[tuple[NodeKey, NodeKey], Edge], new: Edge) -> None:
    old = edges.get((new.source, new.target))
    if old is not None:
        new = Edge(
            new.source,
            new.target,
            version=new.version or old.version,
            row_count=new.row_count if new.row_count is not None else old.row_count,
        )
    edges[(new.source, new.target)] = new


def build_graph(events: Iterable[Mapping[str, Any]]) -> LineageGraph:
    """One node per dataset and per run; edges from each run's COMPLETE (or FAIL/ABORT) event."""
    runs: dict[RunKey, dict[str, Any]] = {}
    dataset_facets: dict[DatasetKey, dict[str, dict[str, Any]]] = {}
    edges: dict[tuple[NodeKey, NodeKey], Edge] = {}
    for event in events:
        run_id, job = _nested(event, "run", "runId"), _nested(event, "job", "name")
        if not isinstance(run_id, str) or not isinstance(job, str):
            continue
        key = RunKey(job, run_id)
        draft = runs.setdefault(key, {"state": "START", "facets": {}})
        event_type, event_time = str(event.get("eventType", "OTHER")), event.get("eventTime")
        if event_type in _END_STATES:
            draft["state"], draft["ended_at"] = event_type, event_time
        elif event_type == "START":
            draft.setdefault("started_at", event_time)
        run_facets = _nested(event, "run", "facets") or {}
        parent_job, parent_id = (
            _nested(run_facets, "parent", "job", "name"),
            _nested(run_facets, "parent", "run", "runId"),
        )
        if isinstance(parent_job, str) and isinstance(parent_id, str):
            draft["parent"] = RunKey(parent_job, parent_id)
        if isinstance(message := _nested(run_facets, "errorMessage", "message"), str):
            draft["error"] = message
        draft["facets"].update(_custom_facets(run_facets))
        for role in ("inputs", "outputs"):
            for dataset in event.get(role) or ():
                namespace, name = dataset.get("namespace"), dataset.get("name")
                if not isinstance(namespace, str) or not isinstance(name, str):
                    continue
                dataset_key = DatasetKey(namespace, name)
                dataset_facets.setdefault(dataset_key, {}).update(_custom_facets(dataset.get("facets")))
                if event_type not in _END_STATES:
                    continue
                version = _nested(dataset, "facets", "version", "datasetVersion")
                if role == "inputs":
                    rows = _nested(dataset, "inputFacets", "dataQualityMetrics", "rowCount")
                    edge = Edge(dataset_key, key, version=version, row_count=rows)
                else:
                    rows = _nested(dataset, "outputFacets", "outputStatistics", "rowCount")
                    edge = Edge(key, dataset_key, version=version, row_count=rows)
                _merge_edge(edges, edge)
    return LineageGraph(
        datasets={key: DatasetNode(key, facets) for key, facets in dataset_facets.items()},
        runs={key: RunNode(key=key, **draft) for key, draft in runs.items()},
        edges=tuple(edges.values()),
    )


def _walk(graph: LineageGraph, seeds: Iterable[NodeKey], upstream: bool) -> set[NodeKey]:
    seen = set(seeds)
    queue = deque(seen)
    while queue:
        node = queue.popleft()
        edges = graph.incoming(node) if upstream else graph.outgoing(node)
        for edge in edges:
            neighbour = edge.source if upstream else edge.target
            if neighbour not in seen:
                seen.add(neighbour)
                queue.append(neighbour)
    return seen


def _with_flow_context(graph: LineageGraph, nodes: set[NodeKey]) -> set[NodeKey]:
    """Add the flow runs of the stage runs in `nodes`, every stage run of those flows and what each read and wrote."""
    flows = {key for key in nodes if isinstance(key, RunKey) and graph.is_flow(key)}
    parents = {graph.runs[key].parent for key in nodes if isinstance(key, RunKey) and key in graph.runs}
    flows |= {parent for parent in parents if parent is not None and parent in graph.runs}
    runs = flows | {stage for flow in flows for stage in graph.children(flow)}
    datasets = {edge.source for run in runs for edge in graph.incoming(run)}
    datasets |= {edge.target for run in runs for edge in graph.outgoing(run)}
    return nodes | runs | datasets


def _subgraph(
    graph: LineageGraph,
    nodes: set[NodeKey],
    focus: tuple[NodeKey, ...],
    direction: Literal["upstream", "downstream"],
    title: str,
) -> LineageGraph:
    return LineageGraph(
        datasets={key: node for key, node in graph.datasets.items() if key in nodes},
        runs={key: node for key, node in graph.runs.items() if key in nodes},
        edges=tuple(edge for edge in graph.edges if edge.source in nodes and edge.target in nodes),
        focus=focus,
        direction=direction,
        title=title,
    )


def model_version_name(model_name: str, version: str) -> str:
    """The dataset name that `register_model` gives a registered model version."""
    return f"models/{model_name}/{version}"


def trace_model_version(graph: LineageGraph, model_name: str, version: str) -> LineageGraph:
    """Everything upstream of a registered model version, with the whole flow run that made it.

    Raises `GuardflowError` when no event names that version.
    """
    name = model_version_name(model_name, str(version))
    seeds = tuple(sorted(key for key in graph.datasets if key.name == name))
    if not seeds:
        prefix = model_version_name(model_name, "")
        known = sorted(
            {key.name.removeprefix(prefix) for key in graph.datasets if key.name.startswith(prefix)},
            key=lambda text: (len(text), text),
        )
        listed = f"versions {', '.join(known)}" if known else "no version of it"
        raise GuardflowError(
            f"no lineage for model {model_name} version {version}: the event log has {listed}"
        )
    nodes = _with_flow_context(graph, _walk(graph, seeds, upstream=True))
    return _subgraph(graph, nodes, seeds, "upstream", f"lineage of model {model_name} version {version}")


def trace_dataset(graph: LineageGraph, path: Path | str) -> LineageGraph:
    """Everything downstream of a file (what read it, what was trained on it, the model versions it fed).

    Raises `GuardflowError` when no event reads or writes that file.
    """
    names = {str(path), Path(path).absolute().as_posix(), Path(path).resolve().as_posix()}
    seeds = tuple(sorted(key for key in graph.datasets if key.name in names))
    if not seeds:
        raise GuardflowError(f"no lineage event reads or writes {path}")
    nodes = _with_flow_context(graph, _walk(graph, seeds, upstream=False))
    return _subgraph(graph, nodes, seeds, "downstream", f"lineage of {seeds[0].name}")
