"""Sphinx configuration of the jbalance API reference and guides.

Build (from the repository root; `make docs` runs exactly this):

    .venv/bin/python -m sphinx -E -W --keep-going -n -b html docs docs/_build/html

``-E``: a fresh environment every time, so a warning is never hidden by an earlier build;
``-W --keep-going -n``: every warning, nitpicky cross-reference warnings included, fails the
build (after reporting all of them). ``pip install -e '.[docs]'`` installs what it needs;
``tests/docs/test_docs_build.py`` (slow) runs the same build into a temporary folder.

What the build reads:

* ``docs/*.md``: the guides, in MyST Markdown (myst-nb parses them).
* ``README.md`` (included by ``docs/index.md``), ``benchmarks/RESULTS.md`` and
  ``notebooks/*.ipynb``: copied into ``docs/_generated/`` at the start of every build (see
  ``_COPIES``); the notebooks are rendered from their stored outputs, nothing is executed
  (``nb_execution_mode = "off"``).
* ``docs/api/*.md``: the API reference; ``docs/api/index.md`` runs autosummary over the public
  modules with ``docs/_templates/autosummary/jbalance_module.rst``, which documents exactly
  each module's ``__all__`` (generated pages go to ``docs/api/generated/``).

No network is used at build time (no intersphinx): references to jax, numpy, optax and the
standard library that cannot be resolved offline are listed in ``nitpick_ignore_regex`` below.
"""

import importlib
import inspect
import os
import pathlib
import posixpath
import re
import sys
import tomllib

DOCS = pathlib.Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))

# The API pages import jbalance (and so jax); the build needs no accelerator.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jbalance  # noqa: E402

project = "jbalance"
author = "jbalance developers"
copyright = "jbalance developers"  # noqa: A001
release = version = jbalance.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "myst_nb",
]

templates_path = ["_templates"]
# _generated/README.md is read through index.md's include, not as a page of its own.
exclude_patterns = ["_build", "_generated/README.md", "**.ipynb_checkpoints"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
root_doc = "index"

html_theme = "furo"
html_title = f"jbalance {release}"
html_static_path: list[str] = []

# -- Notebooks (myst-nb): render the stored outputs, never execute. ---------------------------
nb_execution_mode = "off"
nb_merge_streams = True

# -- Files from outside docs/ ----------------------------------------------------------------
# Sphinx reads only files under docs/, so the notebooks, the README and the benchmark results
# are copied into docs/_generated/ (git-ignored) at the start of every build. A copy is
# rewritten only when its content changes, so an incremental build re-reads only what changed.
# Relative Markdown links are re-pointed so that they resolve from the copy's place: to the
# page in docs/, to another copy, or (any other file of the repository) to the repository.
GENERATED = DOCS / "_generated"
with open(ROOT / "pyproject.toml", "rb") as _f:
    REPOSITORY = tomllib.load(_f)["project"]["urls"]["Homepage"].rstrip("/")

# repository path -> (path of the copy under docs/, the document whose links it becomes part of)
_COPIES = {
    # Included by index.md, so its links are read as if written in index.md.
    "README.md": ("_generated/README.md", "index.md"),
    "benchmarks/RESULTS.md": ("_generated/benchmarks/RESULTS.md",
                              "_generated/benchmarks/RESULTS.md"),
}
_COPIES.update({
    f"notebooks/{p.name}": (f"_generated/notebooks/{p.name}", None)
    for p in sorted((ROOT / "notebooks").glob("*.ipynb"))
})
_LINK = re.compile(r"(\]\()([^)\s]+)(\))")


def _relink(text: str, src: str, doc: str) -> str:
    def repl(m: re.Match) -> str:
        target = m.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith(("#", "/")):
            return m.group(0)
        path, hash_, anchor = target.partition("#")
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(src), path))
        here = posixpath.dirname(doc) or "."
        if resolved.startswith("docs/"):
            new = posixpath.relpath(resolved[len("docs/"):], here)
        elif resolved in _COPIES:
            new = posixpath.relpath(_COPIES[resolved][0], here)
        else:
            kind = "tree" if (ROOT / resolved).is_dir() else "blob"
            new = f"{REPOSITORY}/{kind}/main/{resolved}"
        return f"{m.group(1)}{new}{hash_}{anchor}{m.group(3)}"

    return _LINK.sub(repl, text)


def _copy_sources() -> None:
    wanted = set()
    for src, (dst, doc) in _COPIES.items():
        data = (ROOT / src).read_bytes()
        if doc is not None:
            data = _relink(data.decode("utf-8"), src, doc).encode("utf-8")
        out = DOCS / dst
        wanted.add(out)
        if not out.exists() or out.read_bytes() != data:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)
    for stale in GENERATED.rglob("*"):
        if stale.is_file() and stale not in wanted:
            stale.unlink()


_copy_sources()

# -- MyST ------------------------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "colon_fence", "deflist"]
# `## Heading` anchors, so that links such as `augment.md#how-it-is-made-fast-on-cpu` resolve.
myst_heading_anchors = 4

# -- autodoc / autosummary / napoleon --------------------------------------------------------
autosummary_generate = True
# Document exactly what each public module lists in `__all__` (re-exports from _src included).
autosummary_ignore_module_all = False
autodoc_member_order = "bysource"
# Type hints stay in the signature, where they read as array types (`Float[Array, 'n c']`, see
# jbalance/_src/typing.py); a long signature is broken into one parameter per line.
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
python_maximum_signature_line_length = 88
autodoc_preserve_defaults = True
autodoc_inherit_docstrings = False
python_use_unqualified_type_names = True
add_module_names = False

napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_include_init_with_doc = False
napoleon_use_rtype = False
napoleon_use_ivar = False
# NamedTuple fields show their annotation (`Float[Array, 'b c']`) as the attribute's type
# (made a literal by `_literal_attribute_types` below).
napoleon_attr_annotations = True

# -- Nitpicky: every unresolved reference fails the build, except external names -------------
nitpicky = True
nitpick_ignore_regex = [
    # Third-party and standard-library names: resolvable only through intersphinx, which
    # needs the network, so they are left unlinked.
    (r"py:.*", r"(jax|jaxlib|jaxtyping|numpy|optax|flax|grain|torch|matplotlib)(\..*)?"),
    (r"py:.*", r"(os|pathlib|argparse|collections\.abc|typing)\..*"),
    # The annotation names of jbalance/_src/typing.py, which read like jaxtyping's
    # (`Float[Array, 'n c']`, `ArrayLike`, `PRNGKey`) and stand for jax types: not documented
    # objects. A quoted shape spec is a literal, in case it is ever taken for a class name.
    (r"py:.*", r"jbalance\._src\.typing\..*"),
    (r"py:class",
     r"(Array|ArrayLike|DTypeLike|PRNGKey|HostArray|Float|Int|Bool|Num|Shaped|Key)(\[.*\])?"),
    (r"py:class", r"'.*'"),
]


# -- Hooks -----------------------------------------------------------------------------------
def _skip_namedtuple_fields(app, what, name, obj, skip, options):
    # NamedTuple fields are documented by the class docstring's `Attributes:` section;
    # autodoc's `_tuplegetter` entries ("Alias for field number 0") would repeat them.
    if (what == "class" and (inspect.isdatadescriptor(obj) or isinstance(obj, property))
            and (getattr(obj, "__doc__", "") or "").startswith("Alias for field number")):
        return True
    return None


_ATTR_TYPE = re.compile(r"^(\s+:type: )([^`:].*)$")


def _literal_attribute_types(app, what, name, obj, options, lines):
    # Napoleon writes an attribute's annotation as reST text (`:type: Num[Array, '*b c']`),
    # where `*b` would open emphasis; show it as a literal instead. Runs after napoleon.
    for i, line in enumerate(lines):
        m = _ATTR_TYPE.match(line)
        if m:
            lines[i] = f"{m.group(1)}``{m.group(2)}``"


# The public modules: jbalance/*.py (tests/docs/test_docs_build.py checks that each has a page).
_PUBLIC = sorted(p.stem for p in (ROOT / "jbalance").glob("*.py")
                 if not p.stem.startswith("_"))


def _public_name(target: str) -> str | None:
    """`jbalance._src.x.Name` -> the public path of the same object (`jbalance.x.Name`)."""
    modname, _, attr = target.rpartition(".")
    try:
        obj = getattr(importlib.import_module(modname), attr)
    except (ImportError, AttributeError, ValueError):
        return None
    if obj is getattr(jbalance, "report", None) and attr == "report":
        return "jbalance.report"
    for pub in _PUBLIC:
        mod = importlib.import_module(f"jbalance.{pub}")
        for name in getattr(mod, "__all__", ()):
            if getattr(mod, name, None) is obj:
                return f"jbalance.{pub}.{name}"
    return None


def _resolve_private(app, env, node, contnode):
    # Annotations name the defining module (jbalance._src...); the docs document each object
    # under its public module. Point such references at the public page.
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    if not target.startswith("jbalance._src."):
        return None
    public = _public_name(target)
    if public is None:
        return None
    domain = env.get_domain("py")
    node["reftarget"] = public
    return domain.resolve_xref(env, node.get("refdoc", ""), app.builder, node.get("reftype"),
                               public, node, contnode)


def setup(app):
    app.connect("autodoc-skip-member", _skip_namedtuple_fields)
    app.connect("autodoc-process-docstring", _literal_attribute_types, priority=900)
    app.connect("missing-reference", _resolve_private)
