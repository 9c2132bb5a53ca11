"""Notebooks are valid nbformat-4 JSON whose code cells compile (running them trains a model: see the README)."""

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def test_there_is_a_notebook() -> None:
    assert NOTEBOOKS, "notebooks/ must hold at least one notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_code_compiles(path: Path) -> None:
    notebook = json.loads(path.read_text())
    assert notebook["nbformat"] == 4, f"{path.name} must be nbformat 4"
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] == "code":
            compile("".join(cell["source"]), f"{path.name}[{index}]", "exec")
