"""A lineage view for people without Marquez: the OpenLineage event log as a graph, traced and drawn.

The one import for callers (`guardflow lineage show`): the graph and its traces (`lineage/graph.py`), the
terminal listing (`lineage/text.py`) and the HTML page (`lineage/page.py`). No Prefect, no MLflow, no network:
the event log is the only source of truth here.
"""

from guardflow.lineage.graph import (
    DatasetKey,
    Edge,
    LineageGraph,
    NodeKey,
    RunKey,
    build_graph,
    load_events,
    model_version_name,
    trace_dataset,
    trace_model_version,
)
from guardflow.lineage.labels import dataset_facts, node_label, run_facts
from guardflow.lineage.page import render_html
from guardflow.lineage.text import render_text

__all__ = [
    "DatasetKey",
    "Edge",
    "LineageGraph",
    "NodeKey",
    "RunKey",
    "build_graph",
    "dataset_facts",
    "load_events",
    "model_version_name",
    "node_label",
    "render_html",
    "render_text",
    "run_facts",
    "trace_dataset",
    "trace_model_version",
]
