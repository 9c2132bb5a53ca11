"""Short texts about the nodes of a lineage graph: labels, versions, row counts, facts from facets.

Shared by the terminal listing (`lineage/text.py`) and the page (`lineage/page.py`), so both say the same.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from guardflow.lineage.graph import DatasetKey, LineageGraph, NodeKey, RunKey

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def version_text(version: str, short: bool = False) -> str:
    if _SHA256.match(version):
        return f"sha256 {version[:12]}…" if short else f"sha256 {version}"
    return f"version {version}"


def rows_text(counts: Iterable[int]) -> str:
    counts = list(counts)
    if not counts:
        return ""
    return " / ".join(f"{count:,}" for count in counts) + (" row" if counts == [1] else " rows")


def time_text(timestamp: str | None, with_date: bool = True) -> str:
    if not timestamp:
        return ""
    text = timestamp.replace("T", " ")[:19]
    return text if with_date else text[11:]


def stage_name(graph: LineageGraph, run: RunKey) -> str:
    node = graph.runs.get(run)
    parent = node.parent if node else None
    if parent is not None and run.job.startswith(parent.job + "."):
        return run.job[len(parent.job) + 1 :]
    return run.job


def node_label(graph: LineageGraph, key: NodeKey) -> str:
    """A short name for a node: a file's base name, `<model> version <n>`, or a stage's name within its flow."""
    if isinstance(key, RunKey):
        return stage_name(graph, key)
    parts = key.name.split("/")
    if len(parts) == 3 and parts[0] == "models":
        return f"{parts[1]} version {parts[2]}"
    if key.namespace == "file":
        return parts[-1] or key.name
    return key.name


def facet_text(name: str, facet: Mapping[str, Any]) -> str:
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


def contract_figures(graph: LineageGraph, run: RunKey) -> tuple[int, int | None] | None:
    """Rows in and rows accepted of a contract run, from its input and output row counts."""
    if stage_name(graph, run).rsplit(".", 1)[-1] != "validate_contract":
        return None
    rows_in = [edge.row_count for edge in graph.incoming(run) if edge.row_count is not None]
    rows_out = [edge.row_count for edge in graph.outgoing(run) if edge.row_count is not None]
    return (rows_in[0], rows_out[0] if rows_out else None) if rows_in else None


def contract_text(graph: LineageGraph, run: RunKey) -> str:
    figures = contract_figures(graph, run)
    if figures is None:
        return ""
    rows_in, accepted = figures
    if accepted is None:
        return f"contract: {rows_in:,} rows in"
    return f"contract: {rows_in:,} rows in, {accepted:,} accepted, {rows_in - accepted:,} quarantined"


def run_facts(graph: LineageGraph, run: RunKey) -> list[str]:
    """What a run's events say beyond its inputs and outputs: contract figures, the error, custom facets."""
    node = graph.runs[run]
    facts = [contract_text(graph, run)]
    if node.error:
        facts.append(f"error: {node.error}")
    facts += [facet_text(name, facet) for name, facet in node.facets.items()]
    return [fact for fact in facts if fact]


def dataset_facts(graph: LineageGraph, dataset: DatasetKey) -> list[str]:
    """A dataset's versions (sha256), row counts and custom facets, as short phrases."""
    facts = [version_text(version) for version in graph.versions(dataset)]
    facts.append(rows_text(graph.row_counts(dataset)))
    node = graph.datasets.get(dataset)
    facts += [facet_text(name, facet) for name, facet in (node.facets if node else {}).items()]
    return [fact for fact in facts if fact]


def describe(graph: LineageGraph, key: NodeKey, run_facets: bool = True) -> str:
    """One line about a node; `run_facets=False` keeps a run's line to its state, contract figures and error."""
    if isinstance(key, DatasetKey):
        where = "" if key.namespace == "file" else f"  [{key.namespace}]"
        return "  ".join([key.name + where, *dataset_facts(graph, key)])
    run = graph.runs[key]
    head = f"{stage_name(graph, key)}  {run.state}  {time_text(run.time)}  run {key.run_id}"
    facts = run_facts(graph, key)
    if not run_facets:  # a custom facet is a long line: the tree keeps to what tracing needs
        facts = [fact for fact in facts if fact.startswith(("contract: ", "error: "))]
    return "  ".join([head, *facts])
