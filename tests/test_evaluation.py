"""Tests for skhyper.evaluation: splits, the method registry, the runner."""

from __future__ import annotations

import csv
import dataclasses
import inspect
import io

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest
from sklearn.neighbors import LocalOutlierFactor

from skhyper import CompVAEDetector, SparKerDetector, VMFDetector
from skhyper import evaluation as E
from skhyper.compvae import PAPER_PARAMS
from skhyper.evaluation import (
    METHODS,
    KNNMean,
    Method,
    MethodResult,
    builtin_split,
    evaluate,
    make_method,
    one_class_split,
    parse_methods,
    write_results_csv,
)
from skhyper.metrics import fpr_at_95_tpr, outlier_average_precision, outlier_roc_auc

TINY_VAE = dict(latent_dim=4, hidden_layer_sizes=(16,), batch_size=64)


def _ids(n_rows):
    """Rows whose single feature is their index, so a split's rows can be traced."""
    return np.arange(n_rows, dtype=np.float64).reshape(-1, 1)


def _toy_split(seed=0, n_train=120, n_normal=40, n_anomaly=12, d=3):
    rng = np.random.default_rng(seed)
    X_train = rng.normal(size=(n_train, d))
    X_test = np.r_[rng.normal(size=(n_normal, d)), rng.normal(3.0, 1.0, size=(n_anomaly, d))]
    y_test = np.r_[np.zeros(n_normal, int), np.ones(n_anomaly, int)]
    return X_train, X_test, y_test


# ------------------------------------------------------------------------ splits


@pytest.mark.parametrize("seed", [0, 1])
def test_builtin_split_is_disjoint_with_the_stated_sizes(seed):
    X = _ids(200)
    normal = np.arange(200) < 150
    X_train, X_test, y_test = builtin_split(X, normal, 0.5, seed)
    train, test = set(X_train[:, 0]), set(X_test[:, 0])
    assert not train & test and len(test) == len(X_test)
    assert len(X_train) == round(0.7 * 150)
    n_test_normal = 150 - len(X_train)
    assert int((y_test == 0).sum()) == n_test_normal
    assert int(y_test.sum()) == round(0.5 * n_test_normal)
    assert all(normal[int(i)] for i in X_train[:, 0])
    np.testing.assert_array_equal(normal[X_test[:, 0].astype(int)], y_test == 0)


def test_builtin_split_caps_the_anomalies_at_those_there_are():
    X = _ids(110)
    normal = np.arange(110) < 100
    _, _, y_test = builtin_split(X, normal, 5.0, seed=0)
    assert int(y_test.sum()) == 10


def test_one_class_split_is_disjoint_with_the_stated_sizes():
    X = _ids(300)
    y = (np.arange(300) >= 260).astype(int)  # 260 normal rows, 40 anomalies
    X_train, X_test, y_test = one_class_split(X, y, seed=0, standardize=False)
    assert not set(X_train[:, 0]) & set(X_test[:, 0])
    assert len(X_train) == round(0.7 * 260)
    assert len(X_test) == 260 - len(X_train) + 40 and int(y_test.sum()) == 40
    np.testing.assert_array_equal(y[X_test[:, 0].astype(int)], y_test)
    assert np.all(y[X_train[:, 0].astype(int)] == 0)
    # the caps: at most max_train training rows, max_test test rows drawn at random
    X_train, X_test, y_test = one_class_split(X, y, seed=0, max_train=50, max_test=60,
                                              standardize=False)
    assert len(X_train) == 50 and len(X_test) == 60
    assert not set(X_train[:, 0]) & set(X_test[:, 0])


def test_one_class_split_standardises_on_the_training_rows():
    rng = np.random.default_rng(0)
    X = rng.normal(5.0, 3.0, size=(200, 2))
    y = (np.arange(200) >= 180).astype(int)
    X_train, X_test, _ = one_class_split(X, y, seed=0)
    np.testing.assert_allclose(X_train.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(X_train.std(axis=0), 1)
    raw_train, raw_test, _ = one_class_split(X, y, seed=0, standardize=False)
    scale = raw_train.std(axis=0)
    np.testing.assert_allclose(X_test, (raw_test - raw_train.mean(axis=0)) / scale)


# ---------------------------------------------------------------------- registry


def _available(key):
    if key.startswith("pyod"):
        pytest.importorskip("pyod")
    return key


EXPECTED = {
    "compvae": (CompVAEDetector, {"compression": "full", "anomaly_score": "combined"}),
    "vmf": (VMFDetector, {"anomaly_score": "combined"}),
    "vae": (CompVAEDetector, {"compression": "gaussian", "anomaly_score": "combined"}),
    "compvae_knn": (CompVAEDetector, {"compression": "full", "anomaly_score": "knn"}),
    "compvae_rec": (CompVAEDetector, {"compression": "full", "anomaly_score": "reconstruction"}),
    "vmf_knn": (VMFDetector, {"anomaly_score": "knn"}),
    "vae_knn": (CompVAEDetector, {"compression": "gaussian", "anomaly_score": "knn"}),
    "vae_none": (CompVAEDetector, {"compression": "none"}),
    "compvae_paper": (CompVAEDetector, {"compression": "full"}),
    "sparker": (SparKerDetector, {"calibration": "permutation"}),
    "iforest": (IsolationForest, {}),
    "lof": (LocalOutlierFactor, {"novelty": True}),
    "knn": (KNNMean, {"n_neighbors": 5}),
    "knn3": (KNNMean, {"n_neighbors": 3}),
}


def test_every_method_has_an_expectation():
    assert set(METHODS) - set(EXPECTED) == {"pyod_vae", "pyod_ae"}


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_factories_build_what_they_name_with_the_seed(key):
    cls, params = EXPECTED[key]
    est = make_method(key, seed=7, epochs=2, n_permutations=3, verbose=0)
    assert type(est) is cls
    got = est.get_params()
    assert {k: got[k] for k in params} == params
    if "random_state" in got:
        assert got["random_state"] == 7
    if cls in (CompVAEDetector, VMFDetector):
        assert got["epochs"] == 2
    if cls is SparKerDetector:
        assert got["n_permutations"] == 3


def test_options_reach_the_factories_that_use_them():
    assert make_method("compvae", image_shape=(1, 2, 2), verbose=1).image_shape == (1, 2, 2)
    assert make_method("vmf", verbose=1).verbose == 1
    paper = make_method("compvae_paper", seed=3).get_params()
    assert {k: paper[k] for k in PAPER_PARAMS} == PAPER_PARAMS and paper["random_state"] == 3
    assert make_method("compvae_paper", epochs=2).epochs == 2
    assert make_method("sparker").n_permutations == SparKerDetector().n_permutations


def test_factories_take_keywords_only_and_only_known_options():
    options = set(inspect.signature(make_method).parameters) - {"key"}
    for key, method in METHODS.items():
        params = inspect.signature(method.make).parameters.values()
        assert all(p.kind is p.KEYWORD_ONLY for p in params), key
        assert {p.name for p in params} <= options, key


def test_the_registry_passes_only_what_a_factory_declares():
    seen = {}

    def make(*, seed):
        seen["seed"] = seed
        return KNNMean(1)

    Method("x", "x", make).build(seed=4, epochs=9, image_shape=None)
    assert seen == {"seed": 4}
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        make_method("nope")


def test_parse_methods():
    assert parse_methods(" iforest, knn ,") == (["iforest", "knn"], [])
    assert parse_methods(["lof"]) == (["lof"], [])
    for bad in ("iforest,nope", ""):
        with pytest.raises(ValueError, match="choose from"):
            parse_methods(bad)


# ------------------------------------------------------------------------ runner


def test_evaluate_metrics_are_those_of_skhyper_metrics():
    X_train, X_test, y_test = _toy_split()
    progress = io.StringIO()
    results = evaluate("toy", ["iforest", "knn", "lof"], X_train, X_test, y_test, seed=3,
                       progress=progress)
    assert [r.method for r in results] == ["iforest", "knn", "lof"]
    for res in results:
        scores = make_method(res.method, seed=3).fit(X_train).score_samples(X_test)
        assert res.auroc == outlier_roc_auc(y_test, scores)
        assert res.ap == outlier_average_precision(y_test, scores)
        assert res.fpr95 == fpr_at_95_tpr(y_test, scores)
        np.testing.assert_array_equal(res.anomaly_scores, -scores)
        assert (res.dataset, res.n_train, res.n_test, res.n_anomalies, res.d) == (
            "toy", 120, 52, 12, 3)
        assert res.error == "" and res.fit_s >= 0 and res.score_s >= 0
    lines = progress.getvalue().splitlines()
    assert lines[0].startswith("[1/3] IsolationForest") and "AUROC" in lines[0]
    assert len(lines) == 3


def _capturing(monkeypatch, key):
    """Replace METHODS[key]'s factory by a tiny VAE one; return the built estimators
    with their parameters when built."""
    built = []
    method = METHODS[key]
    compression = {"compvae": "full", "vae": "gaussian"}[key]

    def make(*, seed, epochs):
        est = CompVAEDetector(compression=compression, random_state=seed, epochs=epochs,
                              **TINY_VAE)
        built.append((est, est.get_params()))
        return est

    monkeypatch.setitem(METHODS, key, dataclasses.replace(method, make=make))
    return built


@pytest.mark.parametrize("key", ["compvae", "vae"])
def test_rescoring_leaves_the_fitted_estimator_unchanged(monkeypatch, key):
    X_train, X_test, y_test = _toy_split(d=4)
    built = _capturing(monkeypatch, key)
    results = evaluate("toy", [key], X_train, X_test, y_test, epochs=2)
    rescored = dict(METHODS[key].rescore)
    assert [r.method for r in results] == [key, *rescored]
    ((est, params),) = built
    assert est.get_params() == params  # the fitted estimator was not touched
    assert est.anomaly_score == "combined"
    main, *others = results
    np.testing.assert_array_equal(main.anomaly_scores, -est.score_samples(X_test))
    for res in others:
        assert res.extra == {"shared_fit": key} and res.fit_s == main.fit_s
        # the same fit scored the other way: no refit
        variant = rescored[res.method]
        expected = -est.score_variants(X_test, (variant,))[variant]
        np.testing.assert_array_equal(res.anomaly_scores, expected)
        assert res.auroc == outlier_roc_auc(y_test, -expected)


class _Fails:
    def fit(self, X):
        raise ValueError("bad data")


class _NaNScores:
    def fit(self, X):
        return self

    def score_samples(self, X):
        return np.full(len(X), np.nan)


class _Reference:
    """Records how a reference-mode method is fitted."""

    pvalue_, test_statistic_ = 0.25, 3.5

    def fit(self, X, X_ref=None):
        self.fit_args_ = (X, X_ref)
        return self

    def score_samples(self, X):
        return -np.asarray(X)[:, 0]


def _missing():
    raise ImportError("no module named 'nothing'")


def test_errors_are_recorded_and_the_run_goes_on(monkeypatch):
    for key, make in [("fails", _Fails), ("nan", _NaNScores), ("missing", _missing)]:
        monkeypatch.setitem(METHODS, key, Method(key, key.title(), make))
    X_train, X_test, y_test = _toy_split()
    progress = io.StringIO()
    results = evaluate("toy", ["fails", "nan", "missing", "knn"], X_train, X_test, y_test,
                       progress=progress)
    errors = [r.error for r in results]
    assert errors[:3] == ["ValueError: bad data", "FloatingPointError: non-finite scores",
                          "not available (no module named 'nothing')"]
    for res in results[:3]:
        assert np.isnan([res.auroc, res.ap, res.fpr95, res.fit_s]).all()
        assert res.anomaly_scores is None
    assert errors[3] == "" and results[3].auroc > 0.9
    assert progress.getvalue().count(" FAILED ") == 3


def test_reference_mode_fits_on_the_test_rows_against_the_training_rows(monkeypatch):
    built = []

    def make():
        built.append(_Reference())
        return built[-1]

    monkeypatch.setitem(METHODS, "ref", Method("ref", "Ref", make, reference_mode=True))
    X_train, X_test, y_test = _toy_split()
    (res,) = evaluate("toy", ["ref"], X_train, X_test, y_test)
    X_fit, X_ref = built[0].fit_args_
    assert X_fit is X_test and X_ref is X_train
    assert res.extra == {"pvalue": 0.25, "test_statistic": 3.5}
    assert res.as_row()["pvalue"] == 0.25


def test_results_rows_and_csv(tmp_path):
    res = MethodResult("toy", "knn", 10, 5, 2, 3, auroc=0.5, extra={"pvalue": 0.1})
    row = res.as_row()
    assert res.label == "kNN (k=5)" and row["pvalue"] == 0.1 and np.isnan(row["ap"])
    path = tmp_path / "r.csv"
    write_results_csv([row, {**row, "method": "lof", "more": 1}], str(path))
    read = list(csv.DictReader(path.open()))
    assert read[0]["ap"] == "" and read[0]["auroc"] == "0.5" and read[1]["more"] == "1"
    assert E.label("unknown") == "unknown"
