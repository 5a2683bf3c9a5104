"""The getting-started notebook runs top to bottom (at the tiny sizes ``ART_RSLAD_NOTEBOOK_TINY=1`` selects), and its
committed copy shows the outputs of a full run."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "getting-started.ipynb"


def outputs(notebook: nbformat.NotebookNode, output_type: str) -> list[nbformat.NotebookNode]:
    return [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
            if output.output_type == output_type]


def test_committed_notebook_shows_a_full_run() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1))
    assert not outputs(notebook, "error")
    printed = "".join(output.text for output in outputs(notebook, "stream"))
    assert "train (9000, 1, 28, 28)" in printed  # the committed sizes, not the tiny ones
    shown = [output.data for output in outputs(notebook, "display_data")]
    assert any("| RSLAD |" in data.get("text/markdown", "") for data in shown)
    assert any("image/png" in data for data in shown)


def test_notebook_runs_at_tiny_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ART_RSLAD_NOTEBOOK_TINY", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the kernel imports this checkout
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    assert not outputs(notebook, "error")
    printed = "".join(output.text for output in outputs(notebook, "stream"))
    assert "train (461, 1, 28, 28)" in printed and "RSLAD: lr" in printed and "SAT: lr" in printed
    shown = [output.data for output in outputs(notebook, "display_data")]
    assert any("| SAT |" in data.get("text/markdown", "") for data in shown)
    assert any("image/png" in data for data in shown)
