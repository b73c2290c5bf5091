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
    "sphinx.ext.intersphinx",
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

# Types in the Parameters, Returns and Attributes sections link to their
# documentation: only the names below are linked ("all" leaves any other word
# as it is). Every link uses a Python-domain role, which stays plain text
# when its inventory could not be loaded; numpydoc's own defaults for some of
# these names use :term: and :ref:, which warn then, and are replaced here.
numpydoc_xref_param_type = True
numpydoc_xref_ignore = "all"
numpydoc_xref_aliases = {
    # Python
    "None": ":data:`None`",
    "True": ":data:`True`",
    "False": ":data:`False`",
    "bool": ":class:`bool`",
    "int": ":class:`int`",
    "float": ":class:`float`",
    "str": ":class:`str`",
    "list": ":class:`list`",
    "tuple": ":class:`tuple`",
    "dict": ":class:`dict`",
    "object": ":class:`object`",
    "callable": ":func:`callable`",
    "iterable": ":class:`iterable <collections.abc.Iterable>`",
    "sequence": ":class:`sequence <collections.abc.Sequence>`",
    "path-like": ":class:`path-like <os.PathLike>`",
    # NumPy, pandas, PyTorch, matplotlib, scikit-learn, dask
    "ndarray": ":class:`ndarray <numpy.ndarray>`",
    "array": ":class:`ndarray <numpy.ndarray>`",
    "array-like": ":data:`array-like <numpy.typing.ArrayLike>`",
    "array_like": ":data:`array_like <numpy.typing.ArrayLike>`",
    "RandomState": ":class:`RandomState <numpy.random.RandomState>`",
    "scalar": ":class:`scalar <numpy.generic>`",
    "DataFrame": ":class:`DataFrame <pandas.DataFrame>`",
    "Series": ":class:`Series <pandas.Series>`",
    "Tensor": ":class:`Tensor <torch.Tensor>`",
    "torch.device": ":class:`torch.device`",
    "torch.nn.Module": ":class:`torch.nn.Module`",
    "Axes": ":class:`Axes <matplotlib.axes.Axes>`",
    "sklearn.neighbors.NearestNeighbors": ":class:`sklearn.neighbors.NearestNeighbors`",
    "Pipeline": ":class:`Pipeline <sklearn.pipeline.Pipeline>`",
    "dask.array.Array": ":class:`dask.array.Array`",
    "dask.dataframe.DataFrame": ":class:`dask.dataframe.DataFrame`",
    # skhyper
    "CompVAEDetector": ":class:`~skhyper.CompVAEDetector`",
    "VMFDetector": ":class:`~skhyper.VMFDetector`",
    "SparKerDetector": ":class:`~skhyper.SparKerDetector`",
    "LatentEncoder": ":class:`~skhyper.LatentEncoder`",
    "ReferencePipeline": ":class:`~skhyper.sparker.ReferencePipeline`",
    "SparKerTestResult": ":class:`~skhyper.stats.SparKerTestResult`",
    "SparKerKernels": ":class:`~skhyper.stats.SparKerKernels`",
    "PowerMetrics": ":class:`~skhyper.stats.PowerMetrics`",
    "OneClassSplit": ":class:`~skhyper.datasets.OneClassSplit`",
    "MethodResult": ":class:`~skhyper.evaluation.MethodResult`",
    "KNNMean": ":class:`~skhyper.evaluation.KNNMean`",
}

# -- Links to the documentation of other projects -----------------------------------
# Each project's inventory is read from doc/_intersphinx/<name>.inv when that
# file exists (an objects.inv saved from the URL below, for builds without
# network access) and fetched from the URL otherwise. intersphinx keeps a
# fetched inventory with the build's doctrees for intersphinx_cache_limit days
# (5 by default), so a later build into the same folder reuses it.
# Without either, the build still succeeds: the links stay plain text and
# intersphinx warns once per missing inventory.
_INVENTORY_URLS = {
    "python": "https://docs.python.org/3/",
    "numpy": "https://numpy.org/doc/stable/",
    "scipy": "https://docs.scipy.org/doc/scipy/",
    "sklearn": "https://scikit-learn.org/stable/",
    "torch": "https://docs.pytorch.org/docs/stable/",
    "pandas": "https://pandas.pydata.org/docs/",
    "matplotlib": "https://matplotlib.org/stable/",
    "dask": "https://docs.dask.org/en/stable/",
}
_LOCAL_INVENTORIES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_intersphinx")


def _inventory(name, url):
    """(URL, locations): the local copy first when there is one."""
    local = os.path.join(_LOCAL_INVENTORIES, f"{name}.inv")
    return url, ((local, None) if os.path.isfile(local) else None)


intersphinx_mapping = {name: _inventory(name, url) for name, url in _INVENTORY_URLS.items()}
intersphinx_timeout = 10

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

