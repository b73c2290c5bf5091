"""Conformal p-values, the Benjamini–Hochberg selection and split-conformal calibration."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skhyper import CompVAEDetector, SparKerDetector, VMFDetector
from skhyper.conformal import SplitConformalDetector, select_outliers

from conftest import FAST_SPARKER, FAST_VAE

RNG = np.random.default_rng(5)
X = RNG.normal(size=(300, 4))
REF = RNG.normal(size=(600, 4))
WEIGHTS = RNG.integers(0, 4, size=X.shape[0]).astype(float)
NEW = np.vstack([RNG.normal(size=(60, 4)) * 1.5, X[:20], [[7.0, 7.0, 7.0, 7.0]]])


@pytest.fixture(scope="module")
def fitted():
    return [
        (CompVAEDetector(random_state=0, **FAST_VAE).fit(X), np.ones(X.shape[0])),
        (VMFDetector(random_state=0, **FAST_VAE).fit(X), np.ones(X.shape[0])),
        (
            SparKerDetector(random_state=0, **FAST_SPARKER).fit(
                X, X_ref=REF, sample_weight=WEIGHTS
            ),
            WEIGHTS,
        ),
    ]


# -- the p-values of a detector -----------------------------------------------------


def test_pvalues_are_the_rank_among_training_scores(fitted):
    for det, weights in fitted:
        s = det.score_samples(NEW)
        at_or_below = (det.training_scores_[None, :] <= s[:, None]) @ weights
        expected = (1.0 + at_or_below) / (weights.sum() + 1.0)
        p = det.conformal_pvalues(NEW)
        assert p.dtype == np.float64 and p.shape == (NEW.shape[0],)
        np.testing.assert_allclose(p, expected, rtol=0, atol=1e-12)
        np.testing.assert_allclose(p, 1.0 - det.outlier_probability(NEW), rtol=0, atol=1e-12)


def test_a_row_below_every_training_score_gets_the_smallest_pvalue(fitted):
    det, _ = fitted[0]
    p = det.conformal_pvalues([[9.0, 9.0, 9.0, 9.0]])
    assert p[0] == 1.0 / (X.shape[0] + 1)


def test_select_outliers_method_is_bh_on_the_pvalues(fitted):
    for det, _ in fitted:
        for fdr in (0.05, 0.3):
            np.testing.assert_array_equal(
                det.select_outliers(NEW, fdr=fdr),
                select_outliers(det.conformal_pvalues(NEW), fdr=fdr),
            )
    det, _ = fitted[0]
    assert det.select_outliers(NEW)[-1]  # the far row, at the default fdr


VAE_LARGE = dict(latent_dim=4, hidden_layer_sizes=(16,), epochs=2, batch_size=256)
SPARKER_LARGE = dict(n_kernels=4, n_steps=30, n_permutations=0)


@pytest.mark.parametrize(
    "make, fit_kwargs",
    [
        (lambda: CompVAEDetector(random_state=0, **VAE_LARGE), lambda rng: {}),
        (lambda: VMFDetector(random_state=0, **VAE_LARGE), lambda rng: {}),
        (
            lambda: SparKerDetector(random_state=0, **SPARKER_LARGE),
            lambda rng: {"X_ref": rng.normal(size=(10_001, 4))},
        ),
    ],
    ids=["compvae", "vmf", "sparker"],
)
def test_pvalues_of_null_rows_are_uniform(make, fit_kwargs):
    """1,000 rows drawn like the training rows: uniform p-values, both calibrations.

    Given one calibration set the p-values are uniform up to the calibration
    scores' empirical distribution (about 1 / sqrt(n_cal) apart): 8,000
    calibration rows keep that well inside the KS test's noise for 1,000 rows.
    """
    rng = np.random.default_rng(0)
    train, null = rng.normal(size=(10_000, 4)), rng.normal(size=(1_000, 4))
    kwargs = fit_kwargs(rng)
    det = make().fit(train, **kwargs)
    assert stats.kstest(det.conformal_pvalues(null), "uniform").pvalue > 0.01
    split = SplitConformalDetector(make(), calibration_size=0.8, random_state=0)
    split.fit(train, **kwargs)
    assert stats.kstest(split.conformal_pvalues(null), "uniform").pvalue > 0.01


def test_pvalue_of_an_outlier_is_small_for_every_detector(fitted):
    for det, _ in fitted[:2]:
        assert det.conformal_pvalues([[7.0, 7.0, 7.0, 7.0]])[0] < 0.05


def test_detector_methods_refuse_bad_fdr_and_unfitted(fitted):
    det, _ = fitted[0]
    for fdr in (0.0, 1.0, -0.1, 1.5, "0.1"):
        with pytest.raises(ValueError, match="fdr"):
            det.select_outliers(NEW, fdr=fdr)
    with pytest.raises(NotFittedError):
        CompVAEDetector().conformal_pvalues(X)
    with pytest.raises(NotFittedError):
        CompVAEDetector().select_outliers(X)


# -- Benjamini–Hochberg ------------------------------------------------------------------


@pytest.mark.parametrize(
    "pvalues, fdr, expected",
    [
        ([0.001, 0.02, 0.03, 0.5, 0.9], 0.1, [1, 1, 1, 0, 0]),
        # step-up: the smallest fails its own bound, the larger ones pass theirs
        ([0.03, 0.035, 0.04], 0.06, [1, 1, 1]),
        ([0.04, 0.03, 0.035], 0.06, [1, 1, 1]),
        ([0.03, 0.045, 0.07], 0.06, [0, 0, 0]),
        # a p-value exactly at its bound is selected
        ([0.05, 0.05], 0.1, [1, 1]),
        ([0.02, 0.9, 0.9, 0.9, 0.9], 0.1, [1, 0, 0, 0, 0]),
        ([0.021, 0.9, 0.9, 0.9, 0.9], 0.1, [0, 0, 0, 0, 0]),
        ([], 0.1, []),
    ],
)
def test_bh_known_answers(pvalues, fdr, expected):
    out = select_outliers(pvalues, fdr=fdr)
    assert out.dtype == bool
    np.testing.assert_array_equal(out, np.asarray(expected, dtype=bool))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(0.0, 1.0), min_size=1, max_size=40),
    st.floats(0.001, 0.999),
)
def test_bh_matches_its_definition(pvalues, fdr):
    p = np.asarray(pvalues)
    m = len(p)
    ordered = np.sort(p)
    passing = [i for i in range(1, m + 1) if ordered[i - 1] <= fdr * i / m]
    expected = p <= ordered[max(passing) - 1] if passing else np.zeros(m, bool)
    out = select_outliers(p, fdr=fdr)
    np.testing.assert_array_equal(out, expected)
    # a permutation of the rows permutes the selection
    perm = np.random.default_rng(len(p)).permutation(m)
    np.testing.assert_array_equal(select_outliers(p[perm], fdr=fdr), out[perm])


def test_bh_controls_fdr_with_uniform_nulls():
    rng = np.random.default_rng(0)
    m0, m1, fdr, reps = 90, 10, 0.2, 4000
    fdp = np.empty(reps)
    for r in range(reps):
        p = np.r_[rng.uniform(size=m0), rng.beta(0.05, 1.0, size=m1)]
        sel = select_outliers(p, fdr=fdr)
        fdp[r] = sel[:m0].sum() / max(sel.sum(), 1)
    # BH's level is fdr * m0 / m = 0.18 with independent uniform nulls
    assert abs(fdp.mean() - fdr * m0 / (m0 + m1)) < 3 * fdp.std() / np.sqrt(reps)


def test_select_outliers_refuses_bad_input():
    for fdr in (0.0, 1.0, 2, None):
        with pytest.raises(ValueError, match="fdr"):
            select_outliers([0.5], fdr=fdr)
    with pytest.raises(ValueError, match="one-dimensional"):
        select_outliers([[0.1, 0.2]])
    for bad in ([0.1, 1.5], [-0.1], [np.nan, 0.2]):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            select_outliers(bad)


# -- split-conformal calibration -----------------------------------------------------


def test_split_fits_and_calibrates_on_disjoint_rows():
    det = SplitConformalDetector(
        CompVAEDetector(random_state=0, **FAST_VAE), calibration_size=0.25, random_state=0
    ).fit(X)
    cal = det.calibration_indices_
    assert len(cal) == 75 and len(np.unique(cal)) == 75 and np.all(np.diff(cal) > 0)
    train = np.setdiff1d(np.arange(X.shape[0]), cal)
    assert det.estimator_.training_scores_.shape == (225,)
    # the detector was fitted on the other rows: their scores are its training scores
    np.testing.assert_allclose(
        det.estimator_.score_samples(X[train]), det.estimator_.training_scores_, rtol=1e-12
    )
    np.testing.assert_array_equal(det.calibration_scores_, det.estimator_.score_samples(X[cal]))
    s = det.score_samples(NEW)
    expected = (1.0 + (det.calibration_scores_[None, :] <= s[:, None]).sum(1)) / 76.0
    np.testing.assert_allclose(det.conformal_pvalues(NEW), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(det.outlier_probability(NEW), 1 - expected, atol=1e-12)
    np.testing.assert_array_equal(
        det.select_outliers(NEW, fdr=0.2), select_outliers(expected, fdr=0.2)
    )
    assert det.offset_ == det.estimator_.offset_
    np.testing.assert_array_equal(det.decision_function(NEW), s - det.offset_)
    np.testing.assert_array_equal(det.predict(NEW), det.estimator_.predict(NEW))
    assert det.n_features_in_ == 4


def test_split_is_reproducible_and_sized_by_count():
    make = lambda size, seed: SplitConformalDetector(  # noqa: E731
        CompVAEDetector(random_state=0, **FAST_VAE), calibration_size=size, random_state=seed
    ).fit(X)
    a, b, c = make(40, 1), make(40, 1), make(40, 2)
    assert len(a.calibration_indices_) == 40
    np.testing.assert_array_equal(a.calibration_indices_, b.calibration_indices_)
    np.testing.assert_array_equal(a.conformal_pvalues(NEW), b.conformal_pvalues(NEW))
    assert not np.array_equal(a.calibration_indices_, c.calibration_indices_)
    assert len(make(0.5, 0).calibration_indices_) == 150


def test_split_weights_and_fit_params_are_routed():
    det = SplitConformalDetector(
        SparKerDetector(random_state=0, **FAST_SPARKER), random_state=0
    ).fit(X, X_ref=REF, sample_weight=WEIGHTS)
    cal = det.calibration_indices_
    train = np.setdiff1d(np.arange(X.shape[0]), cal)
    w_cal = WEIGHTS[cal]
    s = det.score_samples(NEW)
    expected = (1.0 + (det.calibration_scores_[None, :] <= s[:, None]) @ w_cal) / (
        w_cal.sum() + 1.0
    )
    np.testing.assert_allclose(det.conformal_pvalues(NEW), expected, rtol=0, atol=1e-12)
    # the detector was fitted with the training part of the weights
    refit = SparKerDetector(random_state=0, **FAST_SPARKER).fit(
        X[train], X_ref=REF, sample_weight=WEIGHTS[train]
    )
    np.testing.assert_array_equal(det.estimator_.training_scores_, refit.training_scores_)


def test_split_passes_y_split_like_x():
    y = np.r_[np.zeros(150, int), np.ones(150, int)]
    det = SplitConformalDetector(
        CompVAEDetector(random_state=0, class_conditional=True, **{**FAST_VAE, "latent_dim": 12}),
        random_state=0,
    ).fit(X, y)
    np.testing.assert_array_equal(det.estimator_.classes_, [0, 1])
    # the labels follow their rows: a misaligned y would mix the classes
    train = np.setdiff1d(np.arange(300), det.calibration_indices_)
    refit = clone(det.estimator).fit(X[train], y[train])
    np.testing.assert_array_equal(det.estimator_.training_scores_, refit.training_scores_)


def test_split_in_a_pipeline_and_around_one():
    frame = pd.DataFrame(X * 10 + 3, columns=list("abcd"))
    new = pd.DataFrame(NEW * 10 + 3, columns=list("abcd"))
    inner = make_pipeline(StandardScaler(), CompVAEDetector(random_state=0, **FAST_VAE))
    around = SplitConformalDetector(inner, random_state=0).fit(frame)
    assert list(around.feature_names_in_) == list("abcd")
    expected = (
        1.0
        + (around.calibration_scores_[None, :] <= around.score_samples(new)[:, None]).sum(1)
    ) / (len(around.calibration_scores_) + 1.0)
    np.testing.assert_allclose(around.conformal_pvalues(new), expected, atol=1e-12)
    # as a pipeline's last step: fit, predict and score through the pipeline
    pipe = make_pipeline(
        StandardScaler(),
        SplitConformalDetector(CompVAEDetector(random_state=0, **FAST_VAE), random_state=0),
    ).fit(frame)
    assert set(np.unique(pipe.predict(new))) <= {-1, 1}
    last = pipe[-1]
    inside = pipe[:-1].transform(new)
    np.testing.assert_array_equal(pipe.score_samples(new), last.score_samples(inside))
    assert last.select_outliers(inside, fdr=0.1)[-1]


def test_split_clone_and_params():
    det = SplitConformalDetector(CompVAEDetector(**FAST_VAE), calibration_size=10)
    copy = clone(det)
    assert copy.get_params()["calibration_size"] == 10
    assert copy.get_params()["estimator__latent_dim"] == FAST_VAE["latent_dim"]


def test_split_refusals():
    with pytest.raises(NotFittedError):
        SplitConformalDetector(CompVAEDetector()).conformal_pvalues(X)
    for size in (0.0, 1.0, 0, -3, "half"):
        with pytest.raises(ValueError, match="calibration_size"):
            SplitConformalDetector(CompVAEDetector(), calibration_size=size).fit(X)
    # 299 calibration rows leave one to fit; 0.001 of 300 rows leaves none to calibrate
    for size in (299, 0.001):
        with pytest.raises(ValueError, match="at least 1 and 2"):
            SplitConformalDetector(CompVAEDetector(), calibration_size=size).fit(X)
    with pytest.raises(ValueError, match="estimator"):
        SplitConformalDetector(StandardScaler()).fit(X)
    det = SplitConformalDetector(CompVAEDetector(random_state=0, **FAST_VAE), calibration_size=30)
    det.fit(X)
    with pytest.raises(ValueError, match="fdr"):
        det.select_outliers(NEW, fdr=1.0)


def test_split_controls_fdr_over_splits():
    """Realised FDR of split-conformal BH over 30 splits: within noise of the level."""
    rng = np.random.default_rng(1)
    fdr, fdp = 0.2, []
    for seed in range(30):
        train = rng.normal(size=(300, 4))
        test = np.vstack([rng.normal(size=(90, 4)), rng.normal(size=(10, 4)) + 2.5])
        det = SplitConformalDetector(
            VMFDetector(random_state=seed, latent_dim=3, hidden_layer_sizes=(8,), epochs=2),
            random_state=seed,
        ).fit(train)
        sel = det.select_outliers(test, fdr=fdr)
        fdp.append(sel[:90].sum() / max(sel.sum(), 1))
    fdp = np.asarray(fdp)
    assert fdp.mean() <= fdr + 2 * fdp.std(ddof=1) / np.sqrt(len(fdp))
    assert fdp.max() > 0  # some false discoveries: the level is used, not avoided


def test_split_passes_scikit_learn_estimator_checks():
    from sklearn.ensemble import IsolationForest
    from sklearn.utils.estimator_checks import check_estimator

    det = SplitConformalDetector(IsolationForest(n_estimators=5, random_state=0), random_state=0)
    results = check_estimator(det, on_fail=None)
    failed = [r["check_name"] for r in results if r["status"] == "failed"]
    assert not failed
