"""Sphinx configuration: the Markdown pages in docs/ plus generated CLI and API references.

Build (warnings are errors): ``tox -e docs`` or
``python3 -m sphinx -W -b html docs docs/_build/html``.
"""

from importlib.metadata import version as _version

project = "astro_morph"
author = "astro_morph developers"
release = _version("astro_morph")
extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx_click",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "figures/**"]  # data and tables the pages include
myst_heading_anchors = 3
napoleon_numpy_docstring = True
napoleon_google_docstring = False
autodoc_typehints = "description"
autodoc_member_order = "bysource"
html_theme = "alabaster"
# Pages link to source files and to ../shared data that are not part of the site.
suppress_warnings = ["myst.xref_missing"]
