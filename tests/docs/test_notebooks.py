"""Executes the notebooks at toy sizes (JBALANCE_SMALL=1) and checks their stored outputs.

The docs site renders the notebooks from their stored outputs (nothing is executed there), so
they are stored executed, by ``notebooks/execute.py`` at full size: every code cell ran, none
raised, no execution timestamps, and the files stay small (low-resolution JPEG figures).
"""

import json
import pathlib
import sys

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")
pytest.importorskip("flax")

ROOT = pathlib.Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_three_notebooks():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03"]


MAX_NOTEBOOK_BYTES = 1_000_000
MAX_IMAGE_BYTES = 150_000  # one base64 figure


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_with_outputs(path):
    assert path.stat().st_size <= MAX_NOTEBOOK_BYTES, path.name
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    # Executed top to bottom in one kernel, renumbered from 1 by notebooks/execute.py.
    assert [c["execution_count"] for c in code] == list(range(1, len(code) + 1)), path.name
    assert any(c["outputs"] for c in code), path.name
    for cell in nb["cells"]:
        assert "execution" not in cell.get("metadata", {}), path.name  # no timestamps
    for cell in code:
        for out in cell["outputs"]:
            assert out["output_type"] != "error", (path.name, out.get("ename"))
            for mime, data in out.get("data", {}).items():
                if mime.startswith("image/"):
                    assert len("".join(data)) <= MAX_IMAGE_BYTES, (path.name, mime)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, monkeypatch):
    # The kernel inherits this environment: toy sizes, no display, no GPU preallocation.
    monkeypatch.setenv("JBALANCE_SMALL", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    nb = nbformat.read(path, as_version=4)
    # "python3" resolves to the ipykernel of the running interpreter (the project's venv)
    # unless a user kernelspec shadows it: this first cell proves which one ran.
    check = nbformat.v4.new_code_cell(
        f"import sys\nassert sys.prefix == {sys.prefix!r}, sys.prefix\n"
        "assert __import__('os').environ['JBALANCE_SMALL'] == '1'")
    check.id = "kernel-check"
    nb.cells.insert(0, check)
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=300,
                                     resources={"metadata": {"path": str(ROOT)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
