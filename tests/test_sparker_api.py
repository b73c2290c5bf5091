"""SparKer's reference pipeline, no-reference warning, explanations, row selection,
positive amplitudes, plots, power metrics and bad values."""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn import config_context
from sklearn.base import clone
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

import skhyper.sparker as sparker_module
from skhyper import SparKerDetector
from skhyper.sparker import (
    EqualLengthReferenceWarning,
    NoReferenceWarning,
    ReferenceFeatureNamesWarning,
    ReferencePipeline,
    _check_same_units,
    make_reference_pipeline,
)
from skhyper.stats import power_metrics

from conftest import SPARKER as FAST
from conftest import bump_sample

# features in very different units, as raw data come
UNITS = np.array([100.0, 0.01, 5.0, 1.0])
SHIFT = np.array([1000.0, -3.0, 0.0, 2.0])


def _in_units(*arrays):
    return [a * UNITS + SHIFT for a in arrays]


# -- X_ref in the units of X ---------------------------------------------------------


def test_reference_pipeline_matches_scaling_by_hand():
    data, ref, labels, _ = bump_sample(0)
    D, R = _in_units(data, ref)
    params = dict(n_permutations=0, random_state=0)
    pipe = make_reference_pipeline(StandardScaler(), SparKerDetector(**params))
    assert isinstance(pipe, ReferencePipeline)
    pipe.fit(D, X_ref=R)
    auc = roc_auc_score(labels, -pipe.score_samples(D))
    scaler = StandardScaler().fit(np.vstack([D, R]))  # "auto": pooled rows
    by_hand = SparKerDetector(**params).fit(scaler.transform(D), X_ref=scaler.transform(R))
    assert auc >= 0.9
    np.testing.assert_allclose(
        pipe.score_samples(D), by_hand.score_samples(scaler.transform(D)), atol=1e-9
    )
    # the plain fit-parameter name works too, and so does fit_predict
    named = make_reference_pipeline(StandardScaler(), SparKerDetector(**params))
    labels_pred = named.fit_predict(D, sparkerdetector__X_ref=R)
    np.testing.assert_array_equal(labels_pred, pipe.predict(D))


@pytest.mark.parametrize("fit_on, rows", [("reference", "R"), ("data", "D")])
def test_reference_pipeline_fits_transformers_where_asked(fit_on, rows):
    data, ref, _, _ = bump_sample(1, n_data=200, n_ref=600)
    D, R = _in_units(data, ref)
    pipe = make_reference_pipeline(
        StandardScaler(), SparKerDetector(**FAST), fit_transformers_on=fit_on
    ).fit(D, X_ref=R)
    np.testing.assert_allclose(pipe[0].mean_, {"R": R, "D": D}[rows].mean(axis=0))
    # "auto" follows the detector's calibration
    auto = make_reference_pipeline(
        StandardScaler(), SparKerDetector(**{**FAST, "calibration": "reference"})
    )
    assert auto.fit(D[:100], X_ref=R)._transformers_fit_on() == "reference"


def test_plain_pipeline_with_a_transformer_raises():
    data, ref, _, _ = bump_sample(0, n_data=200, n_ref=600)
    D, R = _in_units(data, ref)
    pipe = make_pipeline(StandardScaler(), SparKerDetector(**FAST))
    with pytest.raises(ValueError, match="make_reference_pipeline"):
        pipe.fit(D, sparkerdetector__X_ref=R)
    with config_context(enable_metadata_routing=True):
        requesting = SparKerDetector(**FAST).set_fit_request(X_ref=True)
        routed = make_pipeline(StandardScaler(), requesting)
        with pytest.raises(ValueError, match="transform X but not X_ref"):
            routed.fit(D, X_ref=R)
        # scikit-learn's own way with routing on: transform_input
        native = Pipeline(
            [("sc", StandardScaler()), ("sk", clone(requesting).set_fit_request(X_ref=True))],
            transform_input=["X_ref"],
        ).fit(D, X_ref=R)
    ours = make_reference_pipeline(
        StandardScaler(), SparKerDetector(**FAST), fit_transformers_on="data"
    ).fit(D, X_ref=R)
    np.testing.assert_allclose(native.score_samples(D), ours.score_samples(D), atol=1e-9)


def test_reference_pipeline_in_gridsearch():
    data, ref, _, _ = bump_sample(2, n_data=200, n_ref=600)
    D, R = _in_units(data, ref)

    def statistic(est, X, y=None):
        return est[-1].test_statistic_

    pipe = make_reference_pipeline(StandardScaler(), SparKerDetector(**FAST))
    grid = {"sparkerdetector__n_kernels": [2, 4]}
    search = GridSearchCV(pipe, grid, scoring=statistic, cv=2).fit(D, X_ref=R)
    assert isinstance(search.best_estimator_, ReferencePipeline)
    with config_context(enable_metadata_routing=True):
        pipe = make_reference_pipeline(
            StandardScaler(), SparKerDetector(**FAST).set_fit_request(X_ref=True)
        )
        GridSearchCV(pipe, grid, scoring=statistic, cv=2).fit(D, X_ref=R)


def test_reference_feature_names_must_match():
    rng = np.random.default_rng(0)
    cols = ["a", "b", "c"]
    X = pd.DataFrame(rng.normal(size=(60, 3)), columns=cols)
    R = pd.DataFrame(rng.normal(size=(200, 3)), columns=cols)
    SparKerDetector(**FAST).fit(X, X_ref=R)
    with pytest.raises(ValueError, match="another order"):
        SparKerDetector(**FAST).fit(X, X_ref=R[["b", "a", "c"]])
    with pytest.raises(ValueError, match=r"Missing from X_ref: \['c'\]"):
        SparKerDetector(**FAST).fit(X, X_ref=R.rename(columns={"c": "z"}))
    with pytest.warns(UserWarning, match="X has feature names but X_ref does not"):
        SparKerDetector(**FAST).fit(X, X_ref=R.to_numpy())


@pytest.mark.parametrize(
    "units, shift, rule",
    [(UNITS, 0.0, "spreads"), (1.0, SHIFT, "medians")],
)
def test_reference_in_other_units_raises(units, shift, rule):
    """A scaler before the detector in a plain Pipeline: the spreads (or, for
    features with unit spread, the medians) of X and X_ref part by far more
    than the factor; through make_reference_pipeline the same data fit."""
    data, ref, _, _ = bump_sample(0, n_data=200, n_ref=600)
    D, R = data * units + shift, ref * units + shift
    with pytest.raises(ValueError, match="different units") as info:
        make_pipeline(StandardScaler(), SparKerDetector(**FAST)).fit(
            D, sparkerdetector__X_ref=R
        )
    assert "make_reference_pipeline" in str(info.value)
    assert "transform_input=['X_ref']" in str(info.value)
    scaled = StandardScaler().fit_transform(D)
    with pytest.raises(ValueError, match="different units"):
        SparKerDetector(**FAST).fit(scaled, X_ref=R)
    pipe = make_reference_pipeline(StandardScaler(), SparKerDetector(**FAST)).fit(D, X_ref=R)
    assert np.isfinite(pipe[-1].test_statistic_)
    # the check names the feature, by name when X has names
    cols = ["a", "b", "c", "d"]
    with pytest.raises(ValueError, match="on feature 'a'" if rule == "spreads" else "feature"):
        SparKerDetector(**FAST).fit(
            pd.DataFrame(scaled, columns=cols), X_ref=pd.DataFrame(R, columns=cols)
        )


def test_samples_in_the_same_units_pass_the_units_check():
    """Samples that differ as two-sample tests see them pass: a shifted
    sample, a few rows, heavy tails, rare flags, constant features."""
    rng = np.random.default_rng(0)
    R = rng.normal(size=(2000, 3))
    flags = np.r_[np.ones(2), np.zeros(1998)]  # a flag rare in the reference
    cases = {
        "all shifted": R[:300] + 5.0,
        "narrow": 0.1 * R[:300],
        "few rows": R[:2] + 1.0,
        "ten rows": rng.normal(size=(10, 3)),
        "heavy tails": rng.standard_cauchy(size=(300, 3)),
        "constant in X": np.c_[np.full(300, 1.0), R[:300, 1:]],
    }
    ones = np.ones
    for X in cases.values():
        _check_same_units(X, ones(len(X)), R, None)
    # a flag set in 40% of the data rows, in 0.1% of the reference's
    X = np.c_[rng.normal(size=(300, 2)), rng.random(300) < 0.4]
    _check_same_units(X, ones(300), np.c_[R[:, :2], flags], None)
    # constant in both, at different values
    _check_same_units(np.zeros((50, 1)), ones(50), np.ones((200, 1)), None)
    with pytest.raises(ValueError, match="different units"):
        _check_same_units(R[:300] * 30.0, ones(300), R, None)
    with pytest.raises(ValueError, match="different units"):
        _check_same_units(R[:300] + 30.0, ones(300), R, None)


def test_mostly_constant_features_pass_the_units_check():
    """A feature at one value in most rows (a blank pixel) has an IQR that
    flickers between samples of one distribution; its spread is judged by the
    std too, so such samples pass, and a rescaled copy still raises."""
    def draw(rng, n):
        return np.c_[rng.normal(size=n), (rng.random(n) < 0.25) * rng.random(n)]

    for seed in range(40):
        rng = np.random.default_rng(seed)
        X, R = draw(rng, 1000), draw(rng, 4000)
        _check_same_units(X, np.ones(1000), R, None)
    with pytest.raises(ValueError, match="different units"):
        _check_same_units(X * 30.0, np.ones(1000), R, None)


def test_fit_warnings_have_their_classes_and_point_at_the_caller():
    rng = np.random.default_rng(0)
    cols = ["a", "b"]
    X = pd.DataFrame(rng.normal(size=(60, 2)), columns=cols)
    cases = [
        (NoReferenceWarning, {}),
        (EqualLengthReferenceWarning, {"X_ref": X[::-1] + 0.01}),
        (ReferenceFeatureNamesWarning, {"X_ref": rng.normal(size=(200, 2))}),
    ]
    for category, kwargs in cases:
        assert issubclass(category, UserWarning)
        assert category.__name__ in sparker_module.__all__
        with pytest.warns(category) as record:
            SparKerDetector(**FAST).fit(X, **kwargs)
        assert [(w.category, w.filename) for w in record] == [(category, __file__)]


def test_reference_pipeline_memory_and_verbose(tmp_path, capsys):
    """The transformers are fitted as a Pipeline of their own: memory caches
    them and verbose reports them, as in a Pipeline."""
    data, ref, _, _ = bump_sample(1, n_data=200, n_ref=600)
    D, R = _in_units(data, ref)
    pipe = make_reference_pipeline(
        StandardScaler(), SparKerDetector(**FAST), memory=str(tmp_path), verbose=True
    ).fit(D, X_ref=R)
    assert "standardscaler" in capsys.readouterr().out
    assert any(tmp_path.iterdir())  # the cache
    np.testing.assert_allclose(pipe[0].mean_, np.vstack([D, R]).mean(axis=0))
    plain = make_reference_pipeline(StandardScaler(), SparKerDetector(**FAST)).fit(D, X_ref=R)
    np.testing.assert_array_equal(pipe.score_samples(D), plain.score_samples(D))
    assert pipe[:1].memory == str(tmp_path) and pipe[:1].verbose


# -- without a reference -----------------------------------------------------------------


def test_no_reference_warns_and_ranks_scattered_outliers_badly():
    """Documented "clumps only" mode: scattered outliers rank below chance, so
    fit(X) without X_ref must say so."""
    rng = np.random.default_rng(0)
    inliers = np.vstack(
        [0.5 * rng.normal(size=(300, 2)) + 2.0, 0.5 * rng.normal(size=(300, 2)) - 2.0]
    )
    X = np.vstack([inliers, rng.uniform(-6, 6, size=(60, 2))])
    y = np.r_[np.zeros(600), np.ones(60)]
    with pytest.warns(NoReferenceWarning, match="X_ref") as record:
        det = SparKerDetector(n_permutations=0, random_state=0).fit(X)
    assert record[0].filename == __file__
    auc = roc_auc_score(y, -det.score_samples(X))
    iso = roc_auc_score(y, -IsolationForest(random_state=0).fit(X).score_samples(X))
    assert auc < iso - 0.05  # why the warning is there (0.07 against 0.99)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SparKerDetector(**FAST).fit(X, X_ref=rng.normal(size=(700, 2)))


# -- the paper's outputs ----------------------------------------------------------------


def test_kernel_terms_sum_to_f_and_follow_the_formula():
    data, ref, _, _ = bump_sample(3, n_data=200, n_ref=600)
    det = SparKerDetector(**FAST).fit(data, X_ref=ref)
    rows = np.vstack([data[:50], det.centers_])
    terms = det.kernel_terms(rows)
    assert terms.shape == (len(rows), det.n_kernels) and terms.dtype == np.float64
    np.testing.assert_array_equal(terms.sum(axis=1), -det.score_samples(rows))
    Z = det.transform_.transform(rows)
    mu = det.kernels_.centers[0].detach().numpy()
    ell = -((Z[:, None, :] - mu[None]) ** 2).sum(-1) / (2 * det.width_**2)
    p = np.exp(ell - ell.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(terms, det.amplitudes_ * p * np.exp(ell), rtol=1e-10, atol=1e-300)


def test_row_selection_against_the_null_toys():
    data, ref, labels, _ = bump_sample(0)
    det = SparKerDetector(n_permutations=19, random_state=0).fit(data, X_ref=ref)
    # every toy relabels len(data) pooled rows of unit weight as its data
    assert det.null_excess_total_ == 19 * len(data)
    assert np.all(np.diff(det.null_excess_counts_) <= 0)
    p = det.row_pvalues(data)
    assert p.shape == (len(data),) and np.all((p > 0) & (p <= 1))
    selected = det.select_rows(data, alpha=0.01)
    assert selected[labels == 1].mean() >= 0.8
    assert selected[labels == 0].mean() <= 0.03
    # against the same distribution, about alpha of the rows
    rng = np.random.default_rng(5)
    null = SparKerDetector(n_permutations=19, random_state=0).fit(
        rng.normal(size=(500, 4)), X_ref=rng.normal(size=(2000, 4))
    )
    assert null.select_rows(rng.normal(size=(2000, 4)), alpha=0.05).mean() <= 0.08
    with pytest.raises(ValueError, match="null toys"):
        SparKerDetector(**{**FAST, "n_permutations": 0}).fit(data, X_ref=ref).row_pvalues(data)
    with pytest.raises(ValueError, match="alpha"):
        det.select_rows(data, alpha=1.5)


def test_row_pvalues_count_the_null_rows():
    data, ref, _, _ = bump_sample(1, n_data=200, n_ref=600)
    det = SparKerDetector(**FAST).fit(data, X_ref=ref)
    f = -det.score_samples(data)
    j = np.searchsorted(det.null_excess_levels_, f, side="right") - 1
    expected = (1 + det.null_excess_counts_[j]) / (1 + det.null_excess_total_)
    np.testing.assert_array_equal(det.row_pvalues(data), expected)


def test_positive_amplitudes():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(1500, 2))
    data = rng.normal(size=(600, 2))
    data = data[data[:, 0] > -0.5]  # a deficit below x0 = -0.5
    data = np.vstack([data, [1.5, 1.0] + 0.1 * rng.normal(size=(20, 2))])  # an excess
    signed = SparKerDetector(n_permutations=0, random_state=0).fit(data, X_ref=ref)
    assert signed.amplitudes_.min() < 0
    positive = SparKerDetector(n_permutations=0, positive_amplitudes=True, random_state=0)
    positive.fit(data, X_ref=ref)
    assert np.all(positive.amplitudes_ >= 0) and positive.amplitudes_.max() > 0
    assert np.all(positive.score_samples(ref) <= 0)  # f >= 0 everywhere


def test_plot_kernels():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from skhyper.plotting import plot_kernels

    data, ref, _, _ = bump_sample(0, n_data=300, n_ref=900)
    det = SparKerDetector(**FAST).fit(data, X_ref=ref)
    fig, ax = plt.subplots()
    try:
        assert plot_kernels(det, data, ax=ax, max_points=100) is ax
        assert len(ax.patches) == det.n_kernels
        for patch, a in zip(ax.patches, det.amplitudes_):
            assert patch.get_radius() == det.width_
            red = patch.get_facecolor()[0] > patch.get_facecolor()[2]
            assert red == (a > 0)
        assert len(ax.collections[0].get_offsets()) == 100
    finally:
        plt.close(fig)


def test_power_metrics():
    t_null = np.arange(1.0, 20.0)  # 19 null statistics
    res = power_metrics([0.5, 10.0, 19.0, 25.0], t_null)
    np.testing.assert_allclose(res.pvalues, [20 / 20, 11 / 20, 2 / 20, 1 / 20])
    from scipy.stats import norm

    np.testing.assert_allclose(res.zscores, norm.isf(res.pvalues))
    assert res.median_zscore == pytest.approx(np.median(norm.isf(res.pvalues)))
    assert res.power == 0.25  # only p = 0.05 <= alpha
    assert power_metrics([25.0], t_null, alpha=0.01).power == 0.0
    with pytest.raises(ValueError, match="alpha"):
        power_metrics([1.0], t_null, alpha=0.0)
    with pytest.raises(ValueError):
        power_metrics([np.nan], t_null)


# -- bad values ------------------------------------------------------------------------


def test_far_rows_score_finite_not_nan():
    data, ref, _, _ = bump_sample(0, n_data=200, n_ref=600)
    det = SparKerDetector(**FAST).fit(data, X_ref=ref)
    far = np.array([[1e154] * 4, [-1e200, 0, 0, 0], [1e300] * 4, [1e10] * 4])
    scores = det.score_samples(far)
    # beyond the clip: the largest excess of the kernels (test_extreme_values.py)
    np.testing.assert_array_equal(scores, -np.abs(det.amplitudes_).max())
    np.testing.assert_array_equal(det.kernel_terms(far), 0.0)  # their limit far away


@pytest.mark.parametrize("which", ["X", "X_ref"])
def test_overflowing_values_raise(which):
    data, ref, _, _ = bump_sample(0, n_data=100, n_ref=300)
    args = {"X": data, "X_ref": ref}
    args[which] = args[which] * 1e155
    with pytest.raises(ValueError, match=f"{which} holds values up to .* overflow"):
        SparKerDetector(**FAST).fit(args["X"], X_ref=args["X_ref"])


def test_tiny_and_huge_weights_raise():
    data, ref, _, _ = bump_sample(0, n_data=100, n_ref=300)
    for w in (1e-300, 1e35):
        with pytest.raises(ValueError, match="sample_weight sums to"):
            SparKerDetector(**FAST).fit(data, X_ref=ref, sample_weight=np.full(100, w))
    # weights summing to one (probability weights) still train
    det = SparKerDetector(**FAST).fit(data, X_ref=ref, sample_weight=np.full(100, 0.01))
    assert np.isfinite(det.test_statistic_) and np.abs(det.amplitudes_).max() > 0


@pytest.mark.parametrize("preprocessing", ["standard", "robust", "winsorized", "quantile"])
def test_one_huge_data_row_is_survived_by_every_scaling(preprocessing):
    """A 1e30 row is clipped in the kernels' space (1e3 scale units): it used to
    overflow float32 and fail in torch's sampler under the robust scaling."""
    data, ref, _, _ = bump_sample(0, n_data=300, n_ref=1200)
    data[0, 0] = 1e30
    det = SparKerDetector(**{**FAST, "n_permutations": 4, "preprocessing": preprocessing})
    det.fit(data, X_ref=ref)
    assert np.isfinite(det.score_samples(data)).all()
    assert np.isfinite(det.test_statistic_)


def test_a_diverging_fit_warns():
    """With a learning rate that throws the centres away, t and p mean nothing."""
    from sklearn.exceptions import ConvergenceWarning

    data, ref, _, _ = bump_sample(0, n_data=300, n_ref=1200)
    with pytest.warns(ConvergenceWarning, match="diverged") as record:
        SparKerDetector(**{**FAST, "learning_rate": 1e10}).fit(data, X_ref=ref)
    assert record[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        SparKerDetector(**FAST).fit(data, X_ref=ref)


def test_wrong_types_are_refused_before_use():
    from sklearn.utils._param_validation import InvalidParameterError

    from skhyper.stats import sparker_test

    data, ref, _, _ = bump_sample(0, n_data=100, n_ref=400)
    with pytest.raises(InvalidParameterError, match="n_permutations"):
        sparker_test(data, ref, n_permutations="5")
    det = SparKerDetector(**{**FAST, "n_permutations": 4}).fit(data, X_ref=ref)
    with pytest.raises(InvalidParameterError, match="alpha"):
        det.select_rows(data, alpha="0.05")
    with pytest.raises(InvalidParameterError, match="alpha"):
        power_metrics([1.0], [0.5, 2.0], alpha="0.05")


def test_reference_pipeline_refuses_a_reference_of_another_width():
    data, ref, _, _ = bump_sample(0, n_data=100, n_ref=400)
    pipe = make_reference_pipeline(StandardScaler(), SparKerDetector(**FAST))
    with pytest.raises(ValueError, match="X_ref must have the columns of X"):
        pipe.fit(data, X_ref=ref[:, :3])
