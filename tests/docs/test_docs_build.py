"""The API reference site: `make docs` (Sphinx, nitpicky, warnings are errors) must pass."""

import importlib.util
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
_NEEDED = ("sphinx", "myst_nb", "furo")


def _documented_modules() -> set[str]:
    """Module names that docs/api/*.md document with `automodule` or list for autosummary."""
    names = set()
    for page in (DOCS / "api").glob("*.md"):
        text = page.read_text(encoding="utf-8")
        names.update(re.findall(r"\.\. automodule:: (jbalance[\w.]*)", text))
        names.update(re.findall(r"^\s+(jbalance\.\w+)\s*$", text, flags=re.M))
    return names


def test_every_public_module_has_an_api_page():
    # A new jbalance/<name>.py must be added to docs/api/index.md's autosummary list.
    public = {"jbalance"} | {f"jbalance.{p.stem}" for p in (ROOT / "jbalance").glob("*.py")
                             if not p.stem.startswith("_")}
    documented = _documented_modules()
    assert public <= documented, f"no API page for {sorted(public - documented)}"
    assert documented <= public, f"API pages for missing modules {sorted(documented - public)}"


def test_every_guide_is_in_the_toctree():
    # Sphinx warns about orphans too; this names the page without a full build.
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    entries = set(re.findall(r"^([\w/.-]+)\s*$", index, flags=re.M))
    guides = {p.stem for p in DOCS.glob("*.md")} - {"index"}
    assert guides <= entries, f"not in docs/index.md's toctree: {sorted(guides - entries)}"


@pytest.mark.slow
def test_docs_build_without_warnings(tmp_path):
    missing = [m for m in _NEEDED if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"docs packages not installed ({', '.join(missing)}): "
                    "pip install -e '.[docs]'")
    out, doctrees = tmp_path / "html", tmp_path / "doctrees"
    # What `make docs` runs, into a temporary folder: every warning fails (-W), nitpicky
    # cross-references included (-n); --keep-going lists all of them before failing.
    cmd = [sys.executable, "-m", "sphinx", "-E", "-W", "--keep-going", "-n", "-q",
           "-b", "html", "-d", str(doctrees), str(DOCS), str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    warnings = [line for line in proc.stderr.splitlines() if "WARNING" in line or
                "ERROR" in line]
    assert proc.returncode == 0, (
        f"sphinx-build exited {proc.returncode} with {len(warnings)} warnings:\n"
        + "\n".join(warnings[:50]) + "\n--- stderr tail ---\n" + proc.stderr[-3000:])
    for page in ("index.html", "api/index.html", "api/generated/jbalance.losses.html",
                 "_generated/notebooks/01_exploring_imbalance.html",
                 "_generated/benchmarks/RESULTS.html"):
        assert (out / page).is_file(), f"{page} was not built"
    # The autosummary tables link every public name: one check that the reference is real.
    losses = (out / "api/generated/jbalance.losses.html").read_text(encoding="utf-8")
    assert 'id="jbalance.losses.sigmoid_focal_loss"' in losses
