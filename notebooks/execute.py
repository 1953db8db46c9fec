"""Executes the notebooks in place and stores their outputs (the docs site renders them).

Usage, from the repository root (the venv's kernel; full sizes unless JBALANCE_SMALL=1):

  .venv/bin/python notebooks/execute.py [notebooks/02_*.ipynb ...]

Figures are stored as low-resolution JPEG (the photographs would be ~270 KB each as PNG),
and the per-cell execution timestamps are dropped so that re-running changes only what the
cells print.
"""

import pathlib
import sys

import nbclient
import nbformat

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Runs before the notebook's own cells (and is removed again): small inline figures.
SETUP = ("%matplotlib inline\nimport matplotlib\nmatplotlib.rcParams['figure.dpi'] = 60\n"
         "matplotlib.rcParams['savefig.dpi'] = 60\n%config InlineBackend.figure_formats = ['jpeg']")


def execute(path: pathlib.Path) -> None:
    nb = nbformat.read(path, as_version=4)
    setup = nbformat.v4.new_code_cell(SETUP)
    setup.id = "store-setup"
    nb.cells.insert(0, setup)
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=1200,
                            resources={"metadata": {"path": str(ROOT)}}).execute()
    nb.cells.pop(0)
    count = 0
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            count += 1  # renumber from 1 (the removed set-up cell took 1)
            cell.execution_count = count
            for out in cell.outputs:
                if "execution_count" in out:
                    out["execution_count"] = count
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, path)
    print(f"{path.name}: {path.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    paths = [pathlib.Path(p) for p in sys.argv[1:]] or sorted((ROOT / "notebooks").glob("*.ipynb"))
    for p in paths:
        execute(p)
