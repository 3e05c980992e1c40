"""The notebooks in `colabs/` run top to bottom (CI-sized: a few steps).

Each notebook reads `XSUP_NOTEBOOK_TINY=1` in its parameters cell and then
trains for a couple of steps on tiny data; any error in any cell fails the
test. Needs `nbclient` and `ipykernel` (the `test` extra of setup.py).
"""

import os

import nbclient
import nbformat
import pytest

from repo_configs import REPO
from xla_flags_for_tests import xla_flags

NOTEBOOKS = ("lifting_quickstart.ipynb", "image_quickstart.ipynb")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_top_to_bottom(name, tmp_path):
  path = os.path.join(REPO, "colabs", name)
  nb = nbformat.read(path, as_version=4)
  tagged = [c for c in nb.cells
            if "parameters" in c.get("metadata", {}).get("tags", [])]
  assert tagged and "XSUP_NOTEBOOK_TINY" in tagged[0].source
  env = dict(os.environ,
             XSUP_NOTEBOOK_TINY="1",
             PYTHONPATH=os.pathsep.join(
                 [REPO] + [p for p in os.environ.get(
                     "PYTHONPATH", "").split(os.pathsep) if p]),
             XLA_FLAGS=xla_flags(1),
             MPLBACKEND="Agg",
             TMPDIR=str(tmp_path))  # The notebooks' mkdtemp lands here.
  client = nbclient.NotebookClient(
      nb, timeout=600, kernel_name="python3",
      resources={"metadata": {"path": os.path.join(REPO, "colabs")}})
  client.execute(env=env)  # Raises CellExecutionError on any error.
  outputs = "".join(o.get("text", "") for c in nb.cells
                    if c.cell_type == "code" for o in c.get("outputs", []))
  assert "Summary: train" in outputs
