"""Sphinx configuration of the skhyper documentation.

Build with ``python -m sphinx -b html doc doc/_build/html`` after
``pip install -e ".[docs]"``.
"""

import os

import torch

import skhyper

# The gallery's examples fit small models, for which one thread is as fast as
# several and much faster when the cores are busy with other work.
torch.set_num_threads(1)

project = "skhyper"
author = "skhyper developers"
copyright = "skhyper developers"
release = skhyper.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = [
    "_build",
    "examples",
    "auto_examples/*.ipynb",
    "auto_examples/*.py",
    "**/*.md5",
    "**/*.zip",
    "**/*.pickle",
    "**/*.codeobj.json",
]

# -- API reference -------------------------------------------------------------
autosummary_generate = True
autodoc_default_options = {"member-order": "bysource"}
toc_object_entries_show_parents = "hide"
autodoc_typehints = "none"  # numpydoc's Parameters sections carry the types
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True

# -- Markdown pages (the design notes and the generated benchmark report) -------
myst_heading_anchors = 3
myst_enable_extensions = ["dollarmath"]

# -- Example gallery --------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "subsection_order": [
        "examples/one_class",
        "examples/two_sample",
        "examples/scale_out",
        "examples/benchmarks",
    ],
    "within_subsection_order": "FileNameSortKey",
    "doc_module": ("skhyper",),
    "backreferences_dir": os.path.join("generated", "backreferences"),
    "reference_url": {"skhyper": None},
    "download_all_examples": False,
    "show_memory": False,
    "write_computation_times": False,
    "remove_config_comments": True,
}

# -- HTML ---------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"skhyper {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_sidebars = {"index": [], "api": [], "benchmarks": [], "auto_examples/**": []}
html_show_sourcelink = False
