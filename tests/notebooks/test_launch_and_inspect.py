"""The notebook runs top to bottom in a real kernel, on a slice of Adult, and shows what the run decided.

The parameters cell (tagged `parameters`) is replaced by one naming slices of Adult's train and test files and a
config with a gate a slice can pass; every other cell runs as a reader would run it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from guardflow.io.datasets import read_split, write_table
from guardflow.settings import Settings
from tests.conftest import ROOT, WIRING_POISONING, write_adult_config
from tests.flows.conftest import LENIENT_GATE

NOTEBOOK = ROOT / "notebooks" / "launch_and_inspect.ipynb"
TRAIN_ROWS, TEST_ROWS = 4_000, 2_000
MODEL_NAME = "adult-notebook"


def _text(cell: Any) -> str:
    """Everything a cell printed or returned as text."""
    parts = []
    for output in cell.outputs:
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type in ("execute_result", "display_data"):
            parts.append(output.data.get("text/plain", ""))
    return "".join(parts)


def _cell(notebook: Any, fragment: str) -> Any:
    cells = [cell for cell in notebook.cells if cell.cell_type == "code" and fragment in cell.source]
    assert len(cells) == 1, f"expected one code cell containing {fragment!r}, found {len(cells)}"
    return cells[0]


@pytest.fixture
def executed(adult_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The notebook after a run on 4,000 training and 2,000 test rows, in a kernel with its own home."""
    dataset = adult_settings.dataset
    train, test = tmp_path / "train.data.gz", tmp_path / "test.data.gz"
    write_table(read_split(dataset, "train").rows.head(TRAIN_ROWS), train, dataset)
    write_table(read_split(dataset, "test").rows.head(TEST_ROWS), test, dataset)
    config = write_adult_config(
        tmp_path, poisoning=WIRING_POISONING, gate=LENIENT_GATE, registry={"model_name": MODEL_NAME}
    )
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    parameters = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(parameters) == 1, "the notebook must have one cell tagged `parameters`"
    parameters[
        0
    ].source = f"CONFIG = Path({str(config)!r})\nTRAIN_FILE = {str(train)!r}\nTEST_FILE = {str(test)!r}"
    # The kernel inherits this environment: this checkout's code, and a home of its own.
    monkeypatch.setenv("GUARDFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT / "src"), str(ROOT)]))
    for name in ("PREFECT_HOME", "PREFECT_API_URL", "MLFLOW_TRACKING_URI", "OPENLINEAGE_URL"):
        monkeypatch.delenv(name, raising=False)
    client = NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    )
    return client.execute()


@pytest.mark.slow
def test_the_notebook_runs_on_a_slice_and_shows_the_run(executed: Any) -> None:
    # given the notebook run on a slice of Adult (the fixture fails if any cell raised)
    # then it printed the summary of a promoted run that read every row of the slice
    summary = _text(_cell(executed, "print(format_summary(summary))"))
    assert re.search(r"^safety-train: PROMOTED in [\d.]+s", summary, re.M), f"summary printed: {summary!r}"
    assert f"data       {TRAIN_ROWS:,} rows in," in summary, (
        f"the slice's rows are accounted for: {summary!r}"
    )
    assert "gate       passed (compared with no champion yet)" in summary, f"gate line: {summary!r}"
    # and it drew the fairness figure as a PNG
    figure = _cell(executed, "plt.subplots")
    images = [output for output in figure.outputs if "image/png" in output.get("data", {})]
    assert len(images) == 1, (
        f"one figure expected, outputs were {[output.output_type for output in figure.outputs]}"
    )
    # and it showed the model card and found the new model as the champion
    card = _cell(executed, "Markdown(")
    markdown = [
        output.data["text/markdown"] for output in card.outputs if "text/markdown" in output.get("data", {})
    ]
    assert markdown and markdown[0].startswith(f"# Model card: {MODEL_NAME}"), "the card is rendered"
    champion = _text(_cell(executed, "registry.champion_version"))
    assert f"name='{MODEL_NAME}', version='1'" in champion and "'champion'" in champion, champion
    # and it listed the run's lineage events, ending with the flow's COMPLETE
    events = _text(_cell(executed, "events = [json.loads"))
    assert "COMPLETE" in events and "safety-train.adult" in events, f"lineage table: {events[-500:]!r}"
