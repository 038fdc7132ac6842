"""Sphinx configuration of crossent's documentation.

Sphinx with the PyData theme and numpydoc (as NumPy and SciPy), tutorials as MyST
notebooks executed at every build by myst-nb (a failing cell fails the build), MathJax
served from the site itself (no network needed to read the pages).  Built by
``python3 tasks.py docs`` into ``site/`` with warnings as errors, every
cross-reference checked (``nitpicky``).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

import crossent  # noqa: E402

project = "crossent"
author = "the crossent maintainers"
copyright = "2026, the crossent maintainers"
version = release = crossent.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_nb",
    "sphinx-mathjax-offline",  # MathJax 3 copied into the site: math renders offline
    "crossent_api",  # writes api/index.rst from crossent.__all__
    "crossent_order",  # the pages that share kernels with the Numba cache tests read last
    "crossent_streams",  # a cell's printed lines as printed (myst-nb broke mid-line flushes)
]

exclude_patterns = ["_build", "jupyter_execute", "**.ipynb_checkpoints"]
templates_path = ["_templates"]  # autosummary/class.rst: each class's methods, documented

# Every cross-reference must resolve (``-W`` turns a broken one into an error), except
# those to other libraries (no intersphinx: the site builds offline) and to private
# modules, which have no page by design.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(numpy|scipy|sklearn|torch|torchvision|torchmetrics|nn)\..*"),
    (r"py:.*", r"crossent(\.\w+)*\._\w+.*"),
]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb"}

# API reference
autosummary_generate = True
autodoc_typehints = "none"  # numpydoc's Parameters section carries the types
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# Notebooks: every cell executed at build time, a failing cell fails the build.
nb_execution_mode = "force"
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_execution_timeout = 300
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3

# HTML
html_theme = "pydata_sphinx_theme"
html_title = f"crossent {release}"
html_static_path: list[str] = []
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "header_links_before_dropdown": 6,
}
html_context = {"default_mode": "light"}  # else a first visit logs "invalid theme mode"
html_show_sourcelink = False
html_copy_source = False
