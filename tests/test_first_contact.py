"""What a new user meets first: the guide's pointers, the command line's words and
the messages for bad input."""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _rst_blocks(path, after):
    """The python code blocks of the rst section that starts at the title ``after``."""
    text = (ROOT / path).read_text()
    section = text.split(f"\n{after}\n", 1)[1]
    section = re.split(r"\n[^\n]+\n={3,}\n", section, maxsplit=1)[0]
    blocks = re.findall(r"\.\. code-block:: python\n\n((?:   .*\n|\n)+)", section)
    return ["\n".join(line[3:] for line in b.splitlines()) for b in blocks]


def test_guide_verbose_example_draws_progress(capsys):
    (code,) = _rst_blocks("doc/guide/practical.rst", "Progress of long fits")
    exec(compile(code, "practical.rst", "exec"), {})
    err = capsys.readouterr().err
    assert "CompVAE: [" in err and "5/5" in err and "loss=" in err
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "`verbose=1`" in readme and "doc/guide/practical.rst" in readme


# -- the command line ----------------------------------------------------------------


def _note(*pvalues):
    from skhyper.compare import _sparker_note
    from skhyper.evaluation import MethodResult

    return _sparker_note(
        [
            MethodResult(f"split {i}", "sparker", 10, 10, 2, 3, extra={"pvalue": p})
            for i, p in enumerate(pvalues)
        ]
    )


@pytest.mark.parametrize(
    "pvalues, says, never",
    [
        ((0.307,), "p = 0.307 (p >= 0.05: no evidence", "small p"),
        ((0.049,), "p = 0.049 (a small p: the test set is not distributed", "no evidence"),
        ((0.05,), "(p >= 0.05: no evidence", "small p"),
        ((0.01, 0.02), "p < 0.05 on 2 of 2 splits (a small p", "no evidence"),
        ((0.01, 0.4, 0.6), "p < 0.05 on 1 of 3 splits (on the splits with p < 0.05", "small p"),
        ((0.3, 0.4), "p < 0.05 on 0 of 2 splits (p >= 0.05: no evidence", "small p"),
    ],
)
def test_sparker_note_reads_the_pvalue_it_prints(pvalues, says, never):
    note = _note(*pvalues)
    assert says in note and never not in note


def test_help_says_which_column_is_the_label_and_that_1_is_an_anomaly():
    from skhyper.compare import build_parser
    from skhyper.datasets import LABEL_CANDIDATES

    text = " ".join(build_parser().format_help().split())
    assert "labels 0/1 with 1 = anomaly, or -1/+1 with -1 = anomaly" in text
    assert f"the first column named one of {', '.join(LABEL_CANDIDATES)}" in text
    assert "every other column is a feature" in text
    assert "progress bars" in text


def test_a_string_column_is_named(tmp_path):
    from skhyper.datasets import read_labelled_file

    path = tmp_path / "d.csv"
    path.write_text("label,width,colour\n" + "0,1.0,2.0\n" * 3 + "1,2.5,red\n" + "0,1,2\n" * 8)
    with pytest.raises(ValueError, match=r"column 'colour' \(index 2\) must be numeric; row 5 "
                       r"holds 'red'") as info:
        read_labelled_file(str(path))
    assert "\n" not in str(info.value)


def test_main_job_adds_the_collective_anomaly_section(capsys):
    """After the digits table, a planted bump: SparKer finds the bump rows that the
    one-class peers fitted on the reference hardly rank, and the section says which
    method wins where, from the numbers it prints."""
    from skhyper.compare import bump_section, main, run_compare
    from skhyper.datasets import planted_bump_split

    assert main(["--normal-class", "3", "--methods", "knn"]) == 0
    out = capsys.readouterr().out
    table, section = out.split("When to pick skhyper: a collective anomaly.")
    assert "kNN (k=5)" in table and "SparKer" not in table.split("AUROC", 1)[1]
    assert "data: generated: reference 2000 rows" in section
    assert "On the bump, SparKerDetector (reference mode) ranks the anomalies highest" in section
    assert "On the main table's data, kNN (k=5) ranks best" in section
    assert "(with 39 permutations p >= 0.025)" in section

    split = planted_bump_split(0)
    results = {r.method: r for r in run_compare(split, ("sparker", "iforest", "knn"),
                                                 n_permutations=19, progress=None)}
    assert results["sparker"].auroc > 0.95
    assert max(results["iforest"].auroc, results["knn"].auroc) < 0.85
    # the reading follows the numbers: were kNN best, the section would say so
    results["knn"].auroc = 1.0
    text = bump_section(split, list(results.values()), [])
    assert "On the bump, kNN (k=5) ranks the anomalies highest (AUROC 1.000" in text
    assert "main table" not in text


@pytest.mark.parametrize("flag", ["--no-bump", "--quick"])
def test_the_section_can_be_skipped(flag, capsys):
    from skhyper.compare import main

    assert main(["--normal-class", "3", "--methods", "knn", flag]) == 0
    assert "collective anomaly" not in capsys.readouterr().out


# -- the docs ------------------------------------------------------------------------

# an install of one of skhyper's extras, anywhere a user reads it
EXTRA_INSTALL = re.compile(r"""pip install (?:-e )?\\?["']?(?:skhyper|\.)\[\w+\]\\?["']?""")
# the one spelling (a backslash before the quotes inside a Python string)
ONE_WAY = re.compile(r'pip install -e (\\?)"\.\[(\w+)\]\1"')


def _user_facing_files():
    doc = ROOT / "doc"
    skip = {"_build", "auto_examples", "gen_modules"}
    yield ROOT / "README.md"
    for path in sorted(doc.rglob("*")):
        if path.suffix in (".rst", ".md", ".py", ".txt") and not skip & set(path.parts):
            yield path
    yield from sorted((ROOT / "skhyper").rglob("*.py"))


def test_extras_install_is_spelled_one_way():
    pyproject = (ROOT / "pyproject.toml").read_text()
    section = pyproject.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    extras = set(re.findall(r"^([\w-]+) = \[", section, flags=re.M))
    assert {"onnx", "dask", "tests"} <= extras
    seen = {}
    for path in _user_facing_files():
        for found in EXTRA_INSTALL.findall(path.read_text()):
            seen.setdefault(found, path.relative_to(ROOT))
    assert {'pip install -e ".[onnx]"', 'pip install -e ".[dask]"'} <= set(seen)
    for command, path in seen.items():
        match = ONE_WAY.fullmatch(command)
        assert match and match.group(2) in extras, f"{path}: {command}"


def _public_docstrings():
    """(module path, text) of every docstring and ``#:`` comment of the public
    modules, which the API pages render."""
    import ast

    for path in sorted((ROOT / "skhyper").glob("*.py")):
        if path.name.startswith("_"):
            continue
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)):
                doc = ast.get_docstring(node, clean=False)
                if doc:
                    yield path.name, doc
        for line in source.splitlines():
            if line.lstrip().startswith("#:"):
                yield path.name, line


def test_api_pages_link_the_design_notes():
    """A design note named in a docstring is a :doc: link whose page exists (a bare
    ``doc/compvae.md`` rendered as plain text on the API pages)."""
    links = []
    for name, text in _public_docstrings():
        bare = re.findall(r"doc/\w+\.md", text)
        assert not bare, f"skhyper/{name}: {bare[0]} is plain text in the docs; use :doc:"
        links += re.findall(r":doc:`(?:[^`<]*<)?/?([\w/]+)>?`", text)
    assert {"compvae", "sparker", "benchmarks"} <= set(links)
    for target in links:
        assert any((ROOT / "doc" / f"{target}{ext}").exists() for ext in (".rst", ".md")), target


# -- the fewest rows a fit takes -------------------------------------------------------


def test_the_stated_minimum_of_rows_is_the_true_one():
    import numpy as np

    from skhyper import CompVAEDetector, SparKerDetector, VMFDetector

    X = np.random.default_rng(0).normal(size=(6, 3))
    for cls in (CompVAEDetector, VMFDetector):
        for k in (1, 3):
            params = dict(n_neighbors=k, epochs=1, random_state=0)
            for n in range(1, k + 1):
                with pytest.raises(ValueError, match=rf"a minimum of {k + 1} is required"):
                    cls(**params).fit(X[:n])
            # the minimum itself fits and scores
            det = cls(**params).fit(X[: k + 1])
            assert np.all(np.isfinite(det.score_samples(X)))
    with pytest.raises(ValueError, match="a minimum of 2 is required"):
        SparKerDetector(n_permutations=0).fit(X[:1], X_ref=X)
    det = SparKerDetector(n_permutations=0, n_steps=5, random_state=0).fit(X[:2], X_ref=X)
    assert np.all(np.isfinite(det.score_samples(X)))
