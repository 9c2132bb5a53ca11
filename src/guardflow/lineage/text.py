"""The lineage graph as an indented listing for the terminal: the trace as a tree, then every run by flow run."""

from __future__ import annotations

from collections import defaultdict

from guardflow.lineage.graph import LineageGraph, NodeKey, RunKey
from guardflow.lineage.labels import describe, node_label, run_facts, stage_name, time_text


def _tree_neighbours(graph: LineageGraph, node: NodeKey, upstream: bool) -> list[NodeKey]:
    edges = graph.incoming(node) if upstream else graph.outgoing(node)
    neighbours = [edge.source if upstream else edge.target for edge in edges]
    # The flow run's own inputs and outputs repeat its stages': the tree follows the stages.
    return [key for key in neighbours if not (isinstance(key, RunKey) and graph.is_flow(key))]


def _tree_lines(graph: LineageGraph, root: NodeKey, upstream: bool) -> list[str]:
    lines = [describe(graph, root)]
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
        lines.append(f"{prefix}{branch}{describe(graph, node, run_facets=False)}")
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
    head = (
        f"{indent}{time_text(node.time, with_date=False)}  {stage_name(graph, run):<{width}}  {node.state:<8}"
    )
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
            span = f"{time_text(flow_node.started_at)} -> {time_text(flow_node.ended_at, with_date=False)}"
            lines.append(f"flow {flow.job}  {flow_node.state}  {span}  run {flow.run_id}")
            lines += [f"          {fact}" for fact in run_facts(graph, flow)]
        width = max((len(stage_name(graph, stage)) for stage in stages), default=0)
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
