"""The lineage graph as a self-contained HTML page: an inline SVG picture laid out in layers, and a node table.

The layout (layers by depth, rows by barycentre sweeps, flow runs in a band on top) is computed here; the page's
markup and CSS are the Jinja2 template `lineage/templates/lineage.html.j2`, which escapes every text.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise

from guardflow.lineage.graph import DatasetKey, Edge, LineageGraph, NodeKey, RunKey
from guardflow.lineage.labels import (
    contract_figures,
    dataset_facts,
    describe,
    node_label,
    rows_text,
    run_facts,
    time_text,
    version_text,
)
from guardflow.templating import render_template

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
            ", ".join(version_text(version, short=True) for version in graph.versions(key)),
            rows_text(graph.row_counts(key)),
            "" if key.namespace == "file" else key.namespace,
        ]
    else:
        run, figures = graph.runs[key], contract_figures(graph, key)
        if run.error:
            third = run.error
        elif figures is not None and figures[1] is not None:
            third = f"{figures[1]:,} accepted, {figures[0] - figures[1]:,} quarantined"
        else:
            third = f"run {key.run_id}"
        facts = [f"{run.state}  {time_text(run.time, with_date=graph.is_flow(key))}", third]
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


@dataclass(frozen=True)
class _Text:
    css: str
    x: str
    y: str
    text: str


@dataclass(frozen=True)
class _Box:
    """One node as the template draws it: coordinates already formatted, texts fitted, unescaped."""

    css: str
    title: str
    x: str
    y: str
    stripe: tuple[str, str, str, str] | None  # x, y, height, colour of the flow's stripe
    texts: tuple[_Text, ...]


@dataclass(frozen=True)
class _Row:
    css: str
    kind: str
    name: str
    state: tuple[str, ...]  # lines
    details: tuple[str, ...]  # lines
    identity: str


def _edge_paths(layout: _Layout) -> list[str]:
    """The `d` attribute of each drawn edge: a curve into each layer it crosses, then along it, then onwards."""
    paths = []
    for number, edge in enumerate(layout.edges):
        (x1, y1), (x2, y2) = layout.boxes[edge.source], layout.boxes[edge.target]
        point = (x1 + _BOX_W, y1 + _BOX_H / 2)
        steps = [f"M {point[0]:.0f} {point[1]:.0f}"]
        for x, y in layout.bends.get(number, ()):
            steps += [_curve(point, (x, y)), f"L {x + _BOX_W:.0f} {y:.0f}"]
            point = (x + _BOX_W, y)
        steps.append(_curve(point, (x2 - 2, y2 + _BOX_H / 2)))
        paths.append(" ".join(steps))
    return paths


def _boxes(graph: LineageGraph, layout: _Layout) -> list[_Box]:
    colour = {flow: _FLOW_COLOURS[index % len(_FLOW_COLOURS)] for index, flow in enumerate(layout.flows)}
    boxes = []
    for key, (x, y) in layout.boxes.items():
        run = graph.runs.get(key) if isinstance(key, RunKey) else None
        flow = key if key in colour else (run.parent if run else None)
        stripe = None
        if isinstance(flow, RunKey) and flow in colour:
            stripe = (f"{x + 1:.0f}", f"{y + 1:.0f}", f"{_BOX_H - 2}", colour[flow])
        texts = tuple(
            _Text("label" if row == 0 else "fact", f"{x + 14:.0f}", f"{y + 19 + row * 16:.0f}", _fit(text))
            for row, text in enumerate(_box_lines(graph, key))
        )
        css = _box_class(graph, key) + (" focus" if key in graph.focus else "")
        boxes.append(_Box(css, describe(graph, key), f"{x:.0f}", f"{y:.0f}", stripe, texts))
    return boxes


def _rows(graph: LineageGraph, layout: _Layout) -> list[_Row]:
    """The node table: flow runs first, then the rest in the picture's reading order."""

    def place(key: NodeKey) -> tuple[int, float, float]:
        x, y = layout.boxes.get(key, (0.0, 0.0))
        return (0 if key in layout.flows else 1, x, y)

    rows = []
    for key in sorted(graph.nodes, key=place):
        if isinstance(key, DatasetKey):
            versions = graph.versions(key)
            rows.append(
                _Row(
                    css=_box_class(graph, key),
                    kind=_box_class(graph, key),
                    name=node_label(graph, key),
                    state=tuple(version_text(version) for version in versions),
                    details=tuple(dataset_facts(graph, key)[len(versions) :]),
                    identity=f"{key.namespace} {key.name}" if key.namespace != "file" else key.name,
                )
            )
        else:
            run = graph.runs[key]
            rows.append(
                _Row(
                    css=_box_class(graph, key),
                    kind="flow run" if graph.is_flow(key) else "run",
                    name=node_label(graph, key),
                    state=(f"{run.state} {time_text(run.time)}",),
                    details=tuple(run_facts(graph, key)),
                    identity=f"{key.job} run {key.run_id}",
                )
            )
    return rows


def render_html(graph: LineageGraph, title: str) -> str:
    """A self-contained page: the graph as an inline SVG laid out in layers by depth, and a table of nodes."""
    layout = _layout(graph)
    flows = len(layout.flows)
    summary = (
        f"{len(graph.datasets)} datasets, {len(graph.runs)} runs"
        + (f" in {flows} flow run{'s' if flows != 1 else ''}" if flows else "")
        + ". Arrows go from what a run read to the run, and from the run to what it wrote; the coloured stripe "
        "ties a stage to its flow run at the top. Hover a box for its full name."
    )
    return render_template(
        "guardflow.lineage",
        "lineage.html.j2",
        title=title,
        summary=summary,
        graph_title=graph.title,
        width=f"{layout.width:.0f}",
        height=f"{layout.height:.0f}",
        box_width=_BOX_W,
        box_height=_BOX_H,
        edges=_edge_paths(layout),
        boxes=_boxes(graph, layout),
        rows=_rows(graph, layout),
    )
