"""A lineage view for people without Marquez: the OpenLineage event log as a graph, traced and drawn.

Reads the JSON lines that guardflow's file transport appends, builds a graph of datasets and job runs, cuts
out the upstream subgraph of a model version or the downstream subgraph of a file, and renders a graph as an
indented listing for the terminal or as a self-contained HTML page with an inline SVG picture. No Prefect,
no MLflow, no network: the event log is the only source of truth here.
"""

from __future__ import annotations

import html
import json
import logging
import re
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from itertools import pairwise
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
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


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
        incoming: dict[NodeKey, list[Edge]] = defaultdict(list)
        for edge in self.edges:
            incoming[edge.target].append(edge)
        return incoming

    @cached_property
    def _outgoing(self) -> Mapping[NodeKey, list[Edge]]:
        outgoing: dict[NodeKey, list[Edge]] = defaultdict(list)
        for edge in self.edges:
            outgoing[edge.source].append(edge)
        return outgoing

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


# ---------------------------------------------------------------------------------------------- labels


def _version_text(version: str, short: bool = False) -> str:
    if _SHA256.match(version):
        return f"sha256 {version[:12]}…" if short else f"sha256 {version}"
    return f"version {version}"


def _rows_text(counts: Iterable[int]) -> str:
    counts = list(counts)
    if not counts:
        return ""
    return " / ".join(f"{count:,}" for count in counts) + (" row" if counts == [1] else " rows")


def _time_text(timestamp: str | None, with_date: bool = True) -> str:
    if not timestamp:
        return ""
    text = timestamp.replace("T", " ")[:19]
    return text if with_date else text[11:]


def _stage_name(graph: LineageGraph, run: RunKey) -> str:
    node = graph.runs.get(run)
    parent = node.parent if node else None
    if parent is not None and run.job.startswith(parent.job + "."):
        return run.job[len(parent.job) + 1 :]
    return run.job


def node_label(graph: LineageGraph, key: NodeKey) -> str:
    """A short name for a node: a file's base name, `<model> version <n>`, or a stage's name within its flow."""
    if isinstance(key, RunKey):
        return _stage_name(graph, key)
    parts = key.name.split("/")
    if len(parts) == 3 and parts[0] == "models":
        return f"{parts[1]} version {parts[2]}"
    if key.namespace == "file":
        return parts[-1] or key.name
    return key.name


def _facet_text(name: str, facet: Mapping[str, Any]) -> str:
    if name == "columnLineage":
        sources = sorted({
            field["field"] for lineage in facet.get("fields", {}).values() for field in lineage.get("inputFields", [])
        })  # fmt: skip
        return f"columnLineage: {len(facet.get('fields', {}))} features from {', '.join(sources) or 'no columns'}"
    fields = []
    for field_name, value in facet.items():
        if field_name.startswith("_"):
            continue
        if isinstance(value, list) and all(isinstance(item, str | int | float | bool) for item in value):
            value = ", ".join(str(item) for item in value) or "none"
        if isinstance(value, float):
            value = f"{value:.4g}"
        if isinstance(value, str | int | bool):
            fields.append(f"{field_name} {value}")
    return f"{name.removeprefix('guardflow_')}: {'; '.join(fields)}" if fields else ""


def _contract_figures(graph: LineageGraph, run: RunKey) -> tuple[int, int | None] | None:
    """Rows in and rows accepted of a contract run, from its input and output row counts."""
    if _stage_name(graph, run).rsplit(".", 1)[-1] != "validate_contract":
        return None
    rows_in = [edge.row_count for edge in graph.incoming(run) if edge.row_count is not None]
    rows_out = [edge.row_count for edge in graph.outgoing(run) if edge.row_count is not None]
    return (rows_in[0], rows_out[0] if rows_out else None) if rows_in else None


def _contract_text(graph: LineageGraph, run: RunKey) -> str:
    figures = _contract_figures(graph, run)
    if figures is None:
        return ""
    rows_in, accepted = figures
    if accepted is None:
        return f"contract: {rows_in:,} rows in"
    return f"contract: {rows_in:,} rows in, {accepted:,} accepted, {rows_in - accepted:,} quarantined"


def run_facts(graph: LineageGraph, run: RunKey) -> list[str]:
    """What a run's events say beyond its inputs and outputs: contract figures, the error, custom facets."""
    node = graph.runs[run]
    facts = [_contract_text(graph, run)]
    if node.error:
        facts.append(f"error: {node.error}")
    facts += [_facet_text(name, facet) for name, facet in node.facets.items()]
    return [fact for fact in facts if fact]


def dataset_facts(graph: LineageGraph, dataset: DatasetKey) -> list[str]:
    """A dataset's versions (sha256), row counts and custom facets, as short phrases."""
    facts = [_version_text(version) for version in graph.versions(dataset)]
    facts.append(_rows_text(graph.row_counts(dataset)))
    node = graph.datasets.get(dataset)
    facts += [_facet_text(name, facet) for name, facet in (node.facets if node else {}).items()]
    return [fact for fact in facts if fact]


# ---------------------------------------------------------------------------------------------- text


def _describe(graph: LineageGraph, key: NodeKey, run_facets: bool = True) -> str:
    """One line about a node; `run_facets=False` keeps a run's line to its state, contract figures and error."""
    if isinstance(key, DatasetKey):
        where = "" if key.namespace == "file" else f"  [{key.namespace}]"
        return "  ".join([key.name + where, *dataset_facts(graph, key)])
    run = graph.runs[key]
    head = f"{_stage_name(graph, key)}  {run.state}  {_time_text(run.time)}  run {key.run_id}"
    facts = run_facts(graph, key)
    if not run_facets:  # a custom facet is a long line: the tree keeps to what tracing needs
        facts = [fact for fact in facts if fact.startswith(("contract: ", "error: "))]
    return "  ".join([head, *facts])


def _tree_neighbours(graph: LineageGraph, node: NodeKey, upstream: bool) -> list[NodeKey]:
    edges = graph.incoming(node) if upstream else graph.outgoing(node)
    neighbours = [edge.source if upstream else edge.target for edge in edges]
    # The flow run's own inputs and outputs repeat its stages': the tree follows the stages.
    return [key for key in neighbours if not (isinstance(key, RunKey) and graph.is_flow(key))]


def _tree_lines(graph: LineageGraph, root: NodeKey, upstream: bool) -> list[str]:
    lines = [_describe(graph, root)]
    shown = {root}
    stack: list[tuple[NodeKey, str, bool]] = []
    children = _tree_neighbours(graph, root, upstream)
    stack.extend(
        (child, "", index == len(children) - 1) for index, child in reversed(list(enumerate(children)))
    )
    while stack:
        node, prefix, last = stack.pop()
        branch = "└── " if last else "├── "
        if node in shown:
            lines.append(f"{prefix}{branch}{node_label(graph, node)} (shown above)")
            continue
        shown.add(node)
        lines.append(f"{prefix}{branch}{_describe(graph, node, run_facets=False)}")
        inner = prefix + ("    " if last else "│   ")
        children = _tree_neighbours(graph, node, upstream)
        stack.extend(
            (child, inner, index == len(children) - 1) for index, child in reversed(list(enumerate(children)))
        )
    return lines


def _io_text(graph: LineageGraph, run: RunKey) -> str:
    def named(key: NodeKey, rows: int | None) -> str:
        return node_label(graph, key) + (f" ({rows:,} rows)" if rows is not None else "")

    inputs = ", ".join(named(edge.source, edge.row_count) for edge in graph.incoming(run))
    outputs = ", ".join(named(edge.target, edge.row_count) for edge in graph.outgoing(run))
    return f"{inputs} -> {outputs}".strip() if outputs else inputs


def _run_lines(graph: LineageGraph, run: RunKey, indent: str, width: int) -> list[str]:
    node = graph.runs[run]
    head = f"{indent}{_time_text(node.time, with_date=False)}  {_stage_name(graph, run):<{width}}  {node.state:<8}"
    lines = [f"{head}  {_io_text(graph, run)}".rstrip()]
    lines += [f"{indent}{'':10}{fact}" for fact in run_facts(graph, run)]
    return lines


def _runs_section(graph: LineageGraph) -> list[str]:
    groups: dict[RunKey | None, list[RunKey]] = defaultdict(list)
    for run in sorted(graph.runs.values(), key=lambda run: run.started_at or run.time):
        if graph.is_flow(run.key):
            groups.setdefault(run.key, [])
        else:
            groups[run.parent].append(run.key)
    lines: list[str] = []
    for flow, stages in groups.items():
        lines.append("")
        if flow is None:
            lines.append("runs without a flow run")
        elif (flow_node := graph.runs.get(flow)) is None:
            lines.append(f"flow {flow.job}  run {flow.run_id}  (no events of its own)")
        else:
            span = f"{_time_text(flow_node.started_at)} -> {_time_text(flow_node.ended_at, with_date=False)}"
            lines.append(f"flow {flow.job}  {flow_node.state}  {span}  run {flow.run_id}")
            lines += [f"          {fact}" for fact in run_facts(graph, flow)]
        width = max((len(_stage_name(graph, stage)) for stage in stages), default=0)
        for stage in stages:
            lines += _run_lines(graph, stage, "  ", width)
    return lines


def render_text(graph: LineageGraph) -> str:
    """An indented listing for the terminal: the trace as a tree, then every run grouped by flow run."""
    lines = [graph.title]
    if not graph.runs:
        return "\n".join([*lines, "no runs in the event log"])
    upstream = graph.direction != "downstream"
    for root in graph.focus:
        lines.append("")
        lines.append("traced back to its sources:" if upstream else "traced forward to what used it:")
        lines += _tree_lines(graph, root, upstream)
    lines += _runs_section(graph)
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- picture

_BOX_W, _BOX_H, _BEND_H, _GAP_X, _GAP_Y, _MARGIN, _FLOW_GAP = 250, 60, 8, 80, 16, 20, 36
_CHARS = 35  # characters of 11 px monospace that fit in a box
_FLOW_COLOURS = ("#7b5ea7", "#d9822b", "#2b8fd9", "#3aa37a", "#c2417a", "#8a8a2e", "#4a5fc1", "#b5533c")


@dataclass(frozen=True)
class _Bend:
    """Where a long edge crosses a layer: laid out like a thin node, so the edge runs between boxes."""

    edge: int
    layer: int


_Item = DatasetKey | RunKey | _Bend


@dataclass(frozen=True)
class _Layout:
    boxes: Mapping[NodeKey, tuple[float, float]]  # top-left corner of each box
    edges: tuple[Edge, ...]  # the edges drawn: those between stage runs and datasets
    bends: Mapping[int, list[tuple[float, float]]]  # per drawn edge: left end of each layer it crosses
    flows: tuple[RunKey, ...]
    width: float
    height: float


def _layers(graph: LineageGraph, nodes: list[NodeKey]) -> dict[NodeKey, int]:
    """Longest-path layers; a stage run with no input sits in the layer of the stage that ran before it."""
    predecessors: dict[NodeKey, list[NodeKey]] = defaultdict(list)
    weights: dict[tuple[NodeKey, NodeKey], int] = {}
    members = set(nodes)
    for edge in graph.edges:
        if edge.source in members and edge.target in members:
            predecessors[edge.target].append(edge.source)
            weights[(edge.source, edge.target)] = 1
    for parent in {run.parent for run in graph.runs.values() if run.parent is not None}:
        stages = [stage for stage in graph.children(parent) if stage in members]
        for before, stage in pairwise(stages):
            if not predecessors[stage]:
                predecessors[stage].append(before)
                weights[(before, stage)] = 0
    successors: dict[NodeKey, list[NodeKey]] = defaultdict(list)
    waiting = {node: len(predecessors[node]) for node in nodes}
    for node in nodes:
        for predecessor in predecessors[node]:
            successors[predecessor].append(node)
    layer = dict.fromkeys(nodes, 0)
    ready = deque(node for node in nodes if waiting[node] == 0)
    while ready:  # Kahn's order; nodes on a cycle (never in guardflow's logs) keep what they reached
        node = ready.popleft()
        for successor in successors[node]:
            layer[successor] = max(layer[successor], layer[node] + weights[(node, successor)])
            waiting[successor] -= 1
            if waiting[successor] == 0:
                ready.append(successor)
    # A source dataset sits just left of its first reader rather than far away in layer 0.
    for node in nodes:
        if isinstance(node, DatasetKey) and not predecessors[node] and successors[node]:
            layer[node] = max(0, min(layer[successor] for successor in successors[node]) - 1)
    return layer


def _layout(graph: LineageGraph) -> _Layout:
    """Layers by depth, left to right; rows ordered by barycentre sweeps; flow runs in a band on top."""
    flows = tuple(
        sorted((key for key in graph.runs if graph.is_flow(key)), key=lambda key: graph.runs[key].time)
    )
    order_of_flow = {flow: index for index, flow in enumerate(flows)}
    nodes = [key for key in graph.nodes if key not in order_of_flow]
    layer_of: dict[_Item, int] = {key: layer for key, layer in _layers(graph, nodes).items()}
    edges = tuple(edge for edge in graph.edges if edge.source in layer_of and edge.target in layer_of)
    links: dict[_Item, list[_Item]] = defaultdict(list)
    chains: dict[int, list[_Bend]] = {}
    for number, edge in enumerate(edges):
        chains[number] = [
            _Bend(number, layer) for layer in range(layer_of[edge.source] + 1, layer_of[edge.target])
        ]
        layer_of.update({bend: bend.layer for bend in chains[number]})
        for one, other in pairwise([edge.source, *chains[number], edge.target]):
            links[one].append(other)
            links[other].append(one)

    def initial(key: NodeKey) -> tuple[int, str, str]:
        run = graph.runs.get(key) if isinstance(key, RunKey) else None
        flow = order_of_flow.get(run.parent, -1) if run and run.parent else -1
        return (flow, run.time if run else "", node_label(graph, key))

    columns: dict[int, list[_Item]] = defaultdict(list)
    for key in sorted(nodes, key=initial):
        columns[layer_of[key]].append(key)
    for chain in chains.values():
        for bend in chain:
            columns[bend.layer].append(bend)
    index = {item: row for column in columns.values() for row, item in enumerate(column)}

    def centre(item: _Item) -> float:
        rows = [index[other] for other in links[item]]
        return sum(rows) / len(rows) if rows else float(index[item])

    for sweep in range(4):  # alternate left-to-right and right-to-left passes
        for layer in sorted(columns, reverse=bool(sweep % 2)):
            columns[layer].sort(key=centre)
            index.update({item: row for row, item in enumerate(columns[layer])})

    def height(item: _Item) -> float:
        return _BEND_H if isinstance(item, _Bend) else _BOX_H

    column_height = {
        layer: sum(height(item) for item in column) + _GAP_Y * (len(column) - 1)
        for layer, column in columns.items()
    }
    tallest = max(column_height.values(), default=0.0)
    top = _MARGIN + ((_BOX_H + _FLOW_GAP) if flows else 0)
    boxes: dict[NodeKey, tuple[float, float]] = {}
    bends: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for layer in sorted(columns):
        x, y = _MARGIN + layer * (_BOX_W + _GAP_X), top + (tallest - column_height[layer]) / 2
        for item in columns[layer]:
            if isinstance(item, _Bend):
                bends[item.edge].append((x, y + _BEND_H / 2))
            else:
                boxes[item] = (x, y)
            y += height(item) + _GAP_Y
    for row, flow in enumerate(flows):
        boxes[flow] = (_MARGIN + row * (_BOX_W + _GAP_X), _MARGIN)
    width = _MARGIN * 2 + max(len(columns), len(flows), 1) * (_BOX_W + _GAP_X) - _GAP_X
    return _Layout(boxes, edges, bends, flows, width, top + tallest + _MARGIN)


def _fit(text: str, limit: int = _CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _box_lines(graph: LineageGraph, key: NodeKey) -> list[str]:
    """The label and up to two short facts, for a box in the picture."""
    if isinstance(key, DatasetKey):
        facts = [
            ", ".join(_version_text(version, short=True) for version in graph.versions(key)),
            _rows_text(graph.row_counts(key)),
            "" if key.namespace == "file" else key.namespace,
        ]
    else:
        run, figures = graph.runs[key], _contract_figures(graph, key)
        if run.error:
            third = run.error
        elif figures is not None and figures[1] is not None:
            third = f"{figures[1]:,} accepted, {figures[0] - figures[1]:,} quarantined"
        else:
            third = f"run {key.run_id}"
        facts = [f"{run.state}  {_time_text(run.time, with_date=graph.is_flow(key))}", third]
    return [node_label(graph, key), *[fact for fact in facts if fact][:2]]


def _box_class(graph: LineageGraph, key: NodeKey) -> str:
    if isinstance(key, DatasetKey):
        return "model" if key.name.startswith("models/") else "dataset"
    run = graph.runs[key]
    return "failed" if run.failed else "run" if run.state == "COMPLETE" else "started"


def _curve(start: tuple[float, float], end: tuple[float, float]) -> str:
    bend = max(24.0, abs(end[0] - start[0]) / 2)
    return (
        f"C {start[0] + bend:.0f} {start[1]:.0f}, {end[0] - bend:.0f} {end[1]:.0f}, {end[0]:.0f} {end[1]:.0f}"
    )


def _svg(graph: LineageGraph, layout: _Layout) -> str:
    esc = html.escape
    colour = {flow: _FLOW_COLOURS[index % len(_FLOW_COLOURS)] for index, flow in enumerate(layout.flows)}
    parts = [
        f'<svg width="{layout.width:.0f}" height="{layout.height:.0f}" '
        f'viewBox="0 0 {layout.width:.0f} {layout.height:.0f}" role="img" aria-label="{esc(graph.title)}">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>',
    ]
    for number, edge in enumerate(layout.edges):
        (x1, y1), (x2, y2) = layout.boxes[edge.source], layout.boxes[edge.target]
        point = (x1 + _BOX_W, y1 + _BOX_H / 2)
        steps = [f"M {point[0]:.0f} {point[1]:.0f}"]
        for x, y in layout.bends.get(number, ()):
            steps += [_curve(point, (x, y)), f"L {x + _BOX_W:.0f} {y:.0f}"]
            point = (x + _BOX_W, y)
        steps.append(_curve(point, (x2 - 2, y2 + _BOX_H / 2)))
        parts.append(f'<path class="edge" d="{" ".join(steps)}" marker-end="url(#arrow)"/>')
    for key, (x, y) in layout.boxes.items():
        focus = " focus" if key in graph.focus else ""
        parts.append(f'<g class="node {_box_class(graph, key)}{focus}">')
        parts.append(f"<title>{esc(_describe(graph, key))}</title>")
        parts.append(f'<rect x="{x:.0f}" y="{y:.0f}" width="{_BOX_W}" height="{_BOX_H}" rx="7"/>')
        run = graph.runs.get(key) if isinstance(key, RunKey) else None
        flow = key if key in colour else (run.parent if run else None)
        if isinstance(flow, RunKey) and flow in colour:
            parts.append(
                f'<rect class="stripe" x="{x + 1:.0f}" y="{y + 1:.0f}" width="6" height="{_BOX_H - 2}" '
                f'style="fill:{colour[flow]}"/>'
            )
        for row, text in enumerate(_box_lines(graph, key)):
            css = "label" if row == 0 else "fact"
            parts.append(
                f'<text class="{css}" x="{x + 14:.0f}" y="{y + 19 + row * 16:.0f}">{esc(_fit(text))}</text>'
            )
        parts.append("</g>")
    parts.append("</svg>")
    return "\n".join(parts)


def _table(graph: LineageGraph, layout: _Layout) -> str:
    esc = html.escape

    def place(key: NodeKey) -> tuple[int, float, float]:
        x, y = layout.boxes.get(key, (0.0, 0.0))
        return (0 if key in layout.flows else 1, x, y)

    rows = [
        "<table><thead><tr><th>kind</th><th>name</th><th>state / version</th><th>details</th>"
        "<th>identity</th></tr></thead><tbody>"
    ]
    for key in sorted(graph.nodes, key=place):
        if isinstance(key, DatasetKey):
            kind, name = _box_class(graph, key), node_label(graph, key)
            state = "<br>".join(esc(_version_text(version)) for version in graph.versions(key))
            details = dataset_facts(graph, key)[len(graph.versions(key)) :]
            identity = f"{key.namespace} {key.name}" if key.namespace != "file" else key.name
        else:
            run = graph.runs[key]
            kind = "flow run" if graph.is_flow(key) else "run"
            name, state = node_label(graph, key), f"{esc(run.state)} {esc(_time_text(run.time))}"
            details = run_facts(graph, key)
            identity = f"{key.job} run {key.run_id}"
        details_html = "<br>".join(esc(detail) for detail in details if detail)
        rows.append(
            f'<tr class="{esc(_box_class(graph, key))}"><td>{esc(kind)}</td><td>{esc(name)}</td><td>{state}</td>'
            f"<td>{details_html}</td><td><code>{esc(identity)}</code></td></tr>"
        )
    rows.append("</tbody></table>")
    return "\n".join(rows)


_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 28px; }
.picture { overflow-x: auto; border: 1px solid #ddd; background: #fcfcfc; }
svg text { font: 11px ui-monospace, monospace; fill: #333; }
svg text.label { font: bold 12px system-ui, sans-serif; fill: #111; }
.edge { fill: none; stroke: #777; stroke-width: 1.4; }
.node rect { stroke-width: 1.4; }
.dataset rect { fill: #e8f1fb; stroke: #4a7bb7; }
.model rect { fill: #fff1c9; stroke: #b98100; }
.run rect { fill: #eaf6ea; stroke: #3f8f4f; }
.failed rect { fill: #fde8e6; stroke: #c0392b; }
.started rect { fill: #f0f0f0; stroke: #888; stroke-dasharray: 4 3; }
.focus rect { stroke-width: 3; }
.node rect.stripe { stroke: none; }
.legend span { display: inline-block; margin-right: 16px; }
.legend i { display: inline-block; width: 14px; height: 10px; margin-right: 4px; border: 1px solid #888; }
table { border-collapse: collapse; margin-top: 8px; }
td, th { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
tr.failed td { background: #fde8e6; } tr.model td { background: #fff8e1; }
code { font-size: 12px; word-break: break-all; }
"""


def render_html(graph: LineageGraph, title: str) -> str:
    """A self-contained page: the graph as an inline SVG laid out in layers by depth, and a table of nodes."""
    esc = html.escape
    layout = _layout(graph)
    flows = len(layout.flows)
    summary = (
        f"{len(graph.datasets)} datasets, {len(graph.runs)} runs"
        + (f" in {flows} flow run{'s' if flows != 1 else ''}" if flows else "")
        + ". Arrows go from what a run read to the run, and from the run to what it wrote; the coloured stripe "
        "ties a stage to its flow run at the top. Hover a box for its full name."
    )
    legend = (
        '<p class="legend"><span><i style="background:#e8f1fb"></i>dataset</span>'
        '<span><i style="background:#fff1c9"></i>model version</span>'
        '<span><i style="background:#eaf6ea"></i>run completed</span>'
        '<span><i style="background:#fde8e6"></i>run failed</span>'
        '<span><i style="background:#f0f0f0"></i>run started, no end event</span></p>'
    )
    return "\n".join(
        [
            "<!doctype html>",
            '<html lang="en">',
            '<head><meta charset="utf-8">',
            f"<title>{esc(title)}</title>",
            f"<style>{_STYLE}</style>",
            "</head>",
            "<body>",
            f"<h1>{esc(title)}</h1>",
            f"<p>{esc(summary)}</p>",
            legend,
            f'<div class="picture">{_svg(graph, layout)}</div>',
            "<h2>Nodes</h2>",
            _table(graph, layout),
            "</body>",
            "</html>",
            "",
        ]
    )
