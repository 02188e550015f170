"""Sphinx configuration for flask-rediscache."""

project = "flask-rediscache"
author = "flask-rediscache developers"
copyright = "2026, flask-rediscache developers"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
intersphinx_mapping = {}
html_theme = "furo"
html_title = "flask-rediscache"
nitpicky = False
exclude_patterns = ["_build"]
