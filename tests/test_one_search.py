"""SparKer (reference mode) and IsolationForest as candidates of one search:
the guide's recipe as written, and the ReferencePipeline behaviour it rests on."""

import pathlib
import re

import numpy as np
import pytest
from sklearn import config_context
from sklearn.ensemble import IsolationForest
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skhyper import SparKerDetector
from skhyper.metrics import outlier_roc_auc_scorer
from skhyper.sparker import ReferencePipeline

from conftest import SPARKER as FAST

GUIDE = pathlib.Path(__file__).resolve().parents[1] / "doc" / "guide" / "model_selection.rst"


def _recipe_blocks():
    """The python code blocks of the guide's one-search section, dedented."""
    section = GUIDE.read_text().split(".. _one-search:", 1)[1]
    section = re.split(r"\n\.\. _", section, maxsplit=1)[0]
    blocks = re.findall(r"\.\. code-block:: python\n\n((?:   .*\n|\n)+)", section)
    return ["\n".join(line[3:] for line in b.splitlines()) for b in blocks]


def test_guide_one_search_recipe_runs_and_scores_every_candidate(capsys):
    blocks = _recipe_blocks()
    assert len(blocks) == 2
    ns: dict = {}
    for code in blocks:
        exec(compile(code, str(GUIDE), "exec"), ns)
    results = ns["search"].cv_results_
    kinds = {type(p["det"]).__name__ for p in results["params"]}
    assert kinds == {"SparKerDetector", "IsolationForest"}
    assert np.all(np.isfinite(results["mean_test_score"]))
    assert np.all(np.isfinite(ns["routed"].cv_results_["mean_test_score"]))
    for key in ("test_outlier_roc_auc", "test_outlier_average_precision", "test_neg_fpr95"):
        assert np.all(np.isfinite(ns["scores"][key]))
    out = capsys.readouterr().out.splitlines()
    # one line per candidate, best first, then cross_validate's and the routed run's
    assert len(out) == len(results["params"]) + 2
    assert out[-1] == "True"


def _sample(seed=0):
    rng = np.random.RandomState(seed)
    R = rng.normal(size=(500, 3)) * [1.0, 50.0, 0.1]
    X = np.r_[rng.normal(size=(150, 3)), rng.normal([1.5, 1.5, 0], 0.1, size=(12, 3))]
    y = np.r_[np.zeros(150), np.ones(12)]
    return X * [1.0, 50.0, 0.1], y, R


def test_one_sample_last_step_fits_as_a_plain_pipeline():
    X, _, R = _sample()
    ours = ReferencePipeline(
        [("scale", StandardScaler()), ("det", IsolationForest(random_state=0))]
    ).fit(X, X_ref=R)
    plain = make_pipeline(StandardScaler(), IsolationForest(random_state=0)).fit(X)
    # the scaler saw X alone, and the forest is the same forest
    np.testing.assert_allclose(ours[0].mean_, X.mean(axis=0))
    np.testing.assert_array_equal(ours.score_samples(X), plain.score_samples(X))
    # a SparKer last step still gets the transformed reference
    with_sparker = ReferencePipeline(
        [("scale", StandardScaler()), ("det", SparKerDetector(**FAST))]
    ).fit(X, X_ref=R)
    np.testing.assert_allclose(with_sparker[0].mean_, np.r_[X, R].mean(axis=0))


@pytest.mark.parametrize("template", ["iforest", "sparker"])
@pytest.mark.parametrize("routing", [False, True])
def test_one_search_holds_both_whatever_the_template_and_routing(template, routing):
    X, y, R = _sample(1)
    first = {
        "iforest": IsolationForest(random_state=0),
        "sparker": SparKerDetector(**FAST),
    }[template]
    pipe = ReferencePipeline([("scale", StandardScaler()), ("det", first)])
    grid = [
        {"det": [SparKerDetector(**FAST)], "det__n_kernels": [2, 4]},
        {"det": [IsolationForest(random_state=0)], "det__n_estimators": [20, 50]},
    ]
    cv = StratifiedKFold(n_splits=2, shuffle=True, random_state=0)
    with config_context(enable_metadata_routing=routing):
        search = GridSearchCV(
            pipe, grid, scoring=outlier_roc_auc_scorer, cv=cv, error_score="raise"
        ).fit(X, y, X_ref=R)
        # the pipeline requests X_ref itself, whatever its last step
        assert pipe.get_metadata_routing().consumes("fit", ["X_ref"]) == {"X_ref"}
    scores = search.cv_results_["mean_test_score"]
    assert np.all(np.isfinite(scores))
    # the SparKer candidates were given the reference: the cluster is their excess
    assert scores[:2].min() > 0.9
