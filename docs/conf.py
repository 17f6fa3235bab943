"""Sphinx configuration: MyST Markdown pages, API reference from the docstrings."""

from __future__ import annotations

import loadmanager

project = "loadmanager"
author = "loadmanager developers"
release = loadmanager.__version__
extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]
source_suffix = {".md": "markdown"}
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3
html_theme = "furo"
html_title = f"loadmanager {release}"
exclude_patterns = ["_build"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# attrs generates __init__ signatures; the class docstrings describe the fields.
autodoc_class_signature = "separated"
suppress_warnings = ["myst.header"]
