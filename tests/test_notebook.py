"""notebooks/colab_tpu.ipynb runs end to end on the CPU (quick mode), so it cannot rot."""

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "colab_tpu.ipynb"


def test_colab_notebook_executes_on_cpu(tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    params = nb.cells[1]
    assert "INSTALL = True" in params.source and 'DEVICE = "--tpu"' in params.source
    # Like papermill: override the parameters in a cell right after the parameter cell.
    nb.cells.insert(
        2,
        nbformat.v4.new_code_cell(
            f'INSTALL = False\nQUICK = True\nDEVICE = "--cpu"\nWORKDIR = r"{tmp_path / "runs"}"\n'
            f'EXTRA_ARGS = ["--no-progress", "--data-dir", r"{tmp_path / "data"}", "--model", "fse", '
            '"--range", "full", "--set", "data.n_tracks=16000", "--set", "eval.importance_rows=500"]'
        ),
    )
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parents[1])}}
    )
    client.execute()
    outputs = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    assert "run folder:" in outputs and "(1000, 4)" in outputs
    images = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if "image/png" in o.get("data", {})
    ]
    assert images, "the report's figures should be shown inline"
    assert list((tmp_path / "runs" / "pid").glob("*/report.md"))
