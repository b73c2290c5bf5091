"""The README's Python examples run as written."""

import pathlib
import re

import numpy as np
import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_examples():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs(code, capsys):
    exec(compile(code, str(README), "exec"), {})
    assert capsys.readouterr().out.strip()


def test_readme_search_ranks_candidates_as_its_text_says(capsys):
    """The search example's candidates differ, it prints them best first, and the
    order is the one the text after it describes."""
    (code,) = [b for b in BLOCKS if "GridSearchCV(" in b]
    ns: dict = {}
    exec(compile(code, str(README), "exec"), ns)
    res = ns["search"].cv_results_
    means = res["mean_test_score"]
    assert len(set(np.round(means, 3))) == len(means)  # no tie: "best" is not the grid's first
    lines = capsys.readouterr().out.strip().splitlines()
    printed = [float(line.split("AUROC ")[1].split(" ")[0]) for line in lines]
    assert printed == sorted(printed, reverse=True) and len(printed) == len(means)
    order = [
        (type(res["params"][i]["det"]).__name__, res["params"][i].get("det__anomaly_score"))
        for i in np.argsort(-means)
    ]
    assert order[0] == ("CompVAEDetector", "combined")
    assert [name for name, _ in order[1:3]] == ["IsolationForest"] * 2
    assert order[3] == ("CompVAEDetector", "reconstruction")
    assert "combined score ranks first, both IsolationForest candidates next" in " ".join(
        README.read_text().split()
    )
