"""Tests for skhyper.metrics: known answers, label/sign conventions, scorer traps."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.neighbors import LocalOutlierFactor

from skhyper.metrics import (
    OUTLIER_SCORERS,
    as_outlier_labels,
    fpr95_scorer,
    fpr_at_95_tpr,
    fpr_at_tpr,
    outlier_average_precision,
    outlier_average_precision_scorer,
    outlier_roc_auc,
    outlier_roc_auc_scorer,
)

# --- known answers -----------------------------------------------------------


def test_auroc_known_answer_score_samples_sign():
    # score_samples output: higher = more normal; outliers are rows 2 and 3
    y = [0, 0, 1, 1]
    s = [0.9, 0.1, 0.2, 0.05]
    # anomaly = -s: pairs (outlier, inlier) ranked right: (0.2 vs 0.9) yes,
    # (0.2 vs 0.1) no, (0.05 vs 0.9) yes, (0.05 vs 0.1) yes -> 3/4
    assert outlier_roc_auc(y, s) == pytest.approx(0.75)
    assert outlier_roc_auc(y, -np.asarray(s), higher_is_normal=False) == pytest.approx(
        0.75
    )


def test_pm1_labels_mean_minus_one_is_outlier():
    y01 = np.array([0, 0, 1, 1, 0, 1])
    ypm = np.where(y01 == 1, -1, 1)
    s = np.array([3.0, 1.0, 2.0, -1.0, 0.5, 0.0])
    assert outlier_roc_auc(ypm, s) == outlier_roc_auc(y01, s)
    assert outlier_average_precision(ypm, s) == outlier_average_precision(y01, s)
    assert fpr_at_95_tpr(ypm, s) == fpr_at_95_tpr(y01, s)
    assert outlier_roc_auc(y01.astype(bool), s) == outlier_roc_auc(y01, s)
    np.testing.assert_array_equal(as_outlier_labels(ypm), y01)


def test_perfect_and_reversed():
    y = np.array([0] * 5 + [1] * 5)
    s = np.arange(10, 0, -1).astype(float)  # outliers score lowest = most abnormal
    assert outlier_roc_auc(y, s) == 1.0
    assert outlier_average_precision(y, s) == 1.0
    assert fpr_at_95_tpr(y, s) == 0.0
    assert outlier_roc_auc(y, -s) == 0.0
    assert fpr_at_95_tpr(y, -s) == 1.0


def test_average_precision_known_answer():
    # anomaly ranking: outlier, inlier, outlier, inlier
    y = [1, 0, 1, 0]
    anomaly = [4.0, 3.0, 2.0, 1.0]
    # precision at each outlier hit: 1/1, 2/3 -> mean 5/6
    assert outlier_average_precision(
        y, anomaly, higher_is_normal=False
    ) == pytest.approx(5 / 6)


def test_fpr_at_tpr_known_answer():
    # 20 outliers, 10 inliers; anomaly scores: outliers 1..20, inliers at
    # 0.5, 2.5, 4.5, ..., 18.5 (10 values)
    out = np.arange(1, 21, dtype=float)
    inl = np.arange(10) * 2 + 0.5
    y = np.r_[np.ones(20), np.zeros(10)]
    a = np.r_[out, inl]
    # 95% TPR = 19 of 20 outliers: threshold 2 -> inliers above 2: 2.5..18.5 = 9
    assert fpr_at_tpr(y, a, tpr=0.95, higher_is_normal=False) == pytest.approx(0.9)
    # 50% TPR = 10 outliers: threshold 11 -> inliers 12.5..18.5 = 4
    assert fpr_at_tpr(y, a, tpr=0.5, higher_is_normal=False) == pytest.approx(0.4)
    # 100% TPR: threshold 1 -> every inlier but 0.5 = 9
    assert fpr_at_tpr(y, a, tpr=1.0, higher_is_normal=False) == pytest.approx(0.9)


def test_matches_sklearn_on_random_data():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = rng.normal(size=200) - y
    assert outlier_roc_auc(y, s) == pytest.approx(roc_auc_score(y, -s))


@pytest.mark.parametrize(
    "y, match",
    [
        (None, "y_true is None"),
        ([0, 0, 0], "single class"),
        ([1, 1, 1], "single class"),
        ([-1, -1, -1], "single class"),
        ([0, 1, 2], "label values"),
        ([-1, 0, 1], "label values"),
        (["a", "b", "a"], "numeric"),
        ([], "empty"),
        ([0.0, np.nan, 1.0], "NaN"),
    ],
)
def test_bad_labels(y, match):
    with pytest.raises(ValueError, match=match):
        outlier_roc_auc(y, np.arange(len(y) if y is not None else 3, dtype=float))


def test_bad_scores():
    with pytest.raises(ValueError, match="shape"):
        outlier_roc_auc([0, 1, 1], [1.0, 2.0])
    with pytest.raises(ValueError, match="NaN"):
        outlier_average_precision([0, 1, 1], [1.0, np.nan, 2.0])
    with pytest.raises(ValueError, match="tpr"):
        fpr_at_tpr([0, 1], [1.0, 2.0], tpr=0.0)


# --- scorers -----------------------------------------------------------------


def _planted(seed=0, n_in=300, n_out=30, d=2):
    rng = np.random.default_rng(seed)
    X_in = rng.normal(size=(n_in, d))
    # outliers on a ring around the inliers
    ang = rng.uniform(0, 2 * np.pi, n_out)
    X_out = np.c_[np.cos(ang), np.sin(ang)] * rng.uniform(3.5, 5.0, n_out)[:, None]
    if d > 2:
        X_out = np.c_[X_out, rng.normal(size=(n_out, d - 2))]
    X = np.r_[X_in, X_out]
    y = np.r_[np.zeros(n_in, int), np.ones(n_out, int)]
    return X, y


def test_scorers_use_minus_score_samples():
    X, y = _planted()
    est = IsolationForest(n_estimators=50, random_state=0).fit(X)
    auc = outlier_roc_auc_scorer(est, X, y)
    assert auc == pytest.approx(roc_auc_score(y, -est.score_samples(X)))
    assert auc > 0.9
    assert outlier_average_precision_scorer(est, X, y) == pytest.approx(
        outlier_average_precision(y, est.score_samples(X))
    )
    fpr = fpr_at_95_tpr(y, est.score_samples(X))
    assert fpr95_scorer(est, X, y) == pytest.approx(-fpr)
    # ±1 labels (-1 = outlier) give the same values
    assert outlier_roc_auc_scorer(est, X, np.where(y == 1, -1, 1)) == auc


def test_plain_roc_auc_scorer_trap_is_avoided():
    # The trap: sklearn's "roc_auc" scorer ranks by decision_function (higher =
    # more normal) with label 1 positive, so 1 = outlier labels give 1 - AUC.
    X, y = _planted(seed=1)
    est = IsolationForest(n_estimators=50, random_state=0)
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    plain = cross_val_score(est, X, y, cv=cv, scoring="roc_auc")
    ours = cross_val_score(est, X, y, cv=cv, scoring=outlier_roc_auc_scorer)
    np.testing.assert_allclose(plain, 1.0 - ours, atol=1e-12)
    assert ours.mean() > 0.9


def test_scorer_without_y_raises_clearly():
    X, _ = _planted()
    est = IsolationForest(n_estimators=10, random_state=0).fit(X)
    for scorer in OUTLIER_SCORERS.values():
        with pytest.raises(ValueError, match="without y"):
            scorer(est, X)
    # In GridSearchCV with error_score="raise" the error reaches the user ...
    gs = GridSearchCV(
        IsolationForest(n_estimators=10, random_state=0),
        {"max_samples": [0.5, 1.0]},
        scoring=outlier_roc_auc_scorer,
        cv=2,
        error_score="raise",
    )
    with pytest.raises(ValueError, match="without y"):
        gs.fit(X)
    # ... and with the default error_score=nan it is at least named in the warning
    gs.set_params(error_score=np.nan)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        gs.fit(X)
    assert any("without y" in str(w.message) for w in rec)


def test_gridsearch_selects_better_setting_on_planted_problem():
    # Planted problem: inliers lie on two tight, far-apart clusters of 60 rows;
    # outliers are scattered between them. LOF with 20 neighbours compares each
    # point with its own cluster; with 100 neighbours (more than a cluster)
    # neighbourhoods straddle both clusters and the outliers look ordinary.
    rng = np.random.default_rng(0)
    c1 = rng.normal(0, 0.3, size=(60, 2))
    c2 = rng.normal(0, 0.3, size=(60, 2)) + [8.0, 0.0]
    out = np.c_[rng.uniform(1.5, 6.5, 20), rng.uniform(-2.0, 2.0, 20)]
    X = np.r_[c1, c2, out]
    y = np.r_[np.zeros(120, int), np.ones(20, int)]
    cv = StratifiedKFold(4, shuffle=True, random_state=0)
    grid = {"n_neighbors": [20, 100]}
    gs = GridSearchCV(
        LocalOutlierFactor(novelty=True),
        grid,
        scoring=OUTLIER_SCORERS,
        refit="outlier_roc_auc",
        cv=cv,
        error_score="raise",
    )
    gs.fit(X, y)
    assert gs.best_params_ == {"n_neighbors": 20}
    res = gs.cv_results_
    assert res["mean_test_outlier_roc_auc"][0] > 0.9
    assert res["mean_test_outlier_roc_auc"][1] < 0.8
    assert np.all(np.isfinite(res["mean_test_neg_fpr95"]))
    assert np.all(res["mean_test_neg_fpr95"] <= 0)
    assert res["mean_test_neg_fpr95"][0] > res["mean_test_neg_fpr95"][1]
    # the plain "roc_auc" scorer with the same 1 = outlier labels picks the
    # worse setting, because it scores 1 - AUROC
    plain = GridSearchCV(
        LocalOutlierFactor(novelty=True), grid, scoring="roc_auc", cv=cv
    ).fit(X, y)
    assert plain.best_params_ == {"n_neighbors": 100}


def test_scorer_repr_and_sign():
    assert "fpr_at_95_tpr" in repr(fpr95_scorer)
    assert fpr95_scorer.sign == -1
    assert outlier_roc_auc_scorer.sign == 1
