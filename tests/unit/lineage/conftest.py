"""The sample graph the lineage tests read."""

from __future__ import annotations

from typing import Any

import pytest

from guardflow.lineage.graph import (
    LineageGraph,
    build_graph,
    load_events,
)
from tests.unit.lineage.sample import SAMPLE, failed_contract_run


@pytest.fixture(scope="module")
def sample_events() -> list[dict[str, Any]]:
    return load_events(SAMPLE)


@pytest.fixture(scope="module")
def graph(sample_events: list[dict[str, Any]]) -> LineageGraph:
    return build_graph(sample_events + failed_contract_run())
