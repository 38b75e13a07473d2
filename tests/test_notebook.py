"""The post as a Jupyter notebook (post/index.ipynb in the rendered site), run top to bottom.

    PATH=/path/to/quarto/bin:$PATH .venv/bin/python -m pytest tests/test_notebook.py

The notebook Quarto writes next to the page is executed with nbclient in a fresh kernel of this
interpreter (where the package is installed), in quick mode, as a reader would run it after
`pip install -e .`; it reuses the quick models the render trained.
"""

import os
import tempfile
import time
from pathlib import Path

import nbformat
import qmd
from conftest import MEASURED, QUICK_CACHE
from nbclient import NotebookClient


def test_notebook_says_how_to_install_and_has_no_page_only_cells(rendered_site):
    nb = nbformat.read(rendered_site / "post" / "index.ipynb", as_version=4)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and "pip install -e ." in first.source
    sources = "\n".join(c.source for c in nb.cells)
    assert "ojs_define" not in sources and "viewof" not in sources  # the explorers are HTML-only
    assert "{python}" not in sources, "inline expressions left unevaluated"


def test_notebook_runs_top_to_bottom_in_a_fresh_kernel(rendered_site, tmp_path):
    nb = nbformat.read(rendered_site / "post" / "index.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    # the quick models the render used (conftest.quick_models): trained once per run
    env = {"LOWRANK_QUICK": "1", "LOWRANK_CACHE": QUICK_CACHE}
    with tempfile.TemporaryDirectory() as spec_dir:
        km = qmd._kernel_manager(Path(spec_dir))
        client = NotebookClient(
            nb,
            km=km,
            timeout=900,
            allow_errors=True,
            resources={"metadata": {"path": str(tmp_path)}},
        )
        start = time.perf_counter()
        client.execute(env={**os.environ, **env})
        seconds = time.perf_counter() - start
    ran = sum(c.cell_type == "code" for c in nb.cells)
    MEASURED.append(f"notebook: {ran} code cells in a fresh kernel, quick mode: {seconds:.1f} s")
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    ]
    assert not errors, errors[0].ename + ": " + errors[0].evalue
