"""Extreme values: tiny units, rows far beyond the others, bools where numbers are meant.

Each test names the failure it pins: a silent collapse of tiny units, one row
that erases a SparKer test, a far row ranked as ordinary, ``True`` taken for 1.
"""

import warnings

import numpy as np
import pytest
from sklearn.utils._param_validation import InvalidParameterError

from skhyper import CompVAEDetector, SparKerDetector, VMFDetector
from skhyper._utils.preprocessing import InputTransform
from skhyper.sparker import ScaleDominatedWarning, _check_same_units
from skhyper.stats import power_metrics, sparker_test

from conftest import SMALL, bump_sample
from conftest import SPARKER as FAST

# tiny units: squares underflow (1e-200), the values are near the smallest
# normal (1e-300) or subnormal (1e-310)
TINY = (1e-200, 1e-300, 1e-310)


# -- tiny units ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["standard", "winsorized", "robust", "quantile"])
@pytest.mark.parametrize("factor", TINY)
def test_scalings_of_tiny_units_are_those_of_ordinary_units(kind, factor):
    """The scaled rows do not depend on the units: tiny units used to give a zero
    std (set to 1, so every row scaled to about 0) or, for the quantile scaling
    of subnormal values, infinite slopes."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3)) * [1.0, 5.0, 0.2] + [0.0, 1.0, -2.0]
    Q = rng.normal(size=(40, 3)) * 2.0
    expected = InputTransform(kind, X).transform(Q)
    scaled = InputTransform(kind, X * factor).transform(Q * factor)
    # subnormal values keep about 40 of float64's 53 bits
    np.testing.assert_allclose(scaled, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("scaling", ["standard", "winsorized", "robust", "quantile"])
def test_tiny_units_rank_rows_as_ordinary_units_do(scaling):
    """CompVAE on data times 1e-200 ... 1e-310 ranks rows as on the data itself
    (it used to give every row one score, AUROC 0.5, or refuse subnormal
    values as 'too large to scale')."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(200, 4))
    Q = np.r_[rng.normal(size=(40, 4)), rng.normal(size=(10, 4)) + 4.0]
    params = {**SMALL, "epochs": 3, "scaling": scaling}
    expected = CompVAEDetector(**params).fit(X).score_samples(Q)
    for factor in TINY:
        det = CompVAEDetector(**params).fit(X * factor)
        scores = det.score_samples(Q * factor)
        assert np.isfinite(scores).all() and np.ptp(scores) > 0
        assert np.array_equal(np.argsort(scores), np.argsort(expected)), factor


@pytest.mark.parametrize("factor", TINY)
def test_sparker_in_tiny_units_tests_as_in_ordinary_units(factor):
    """The statistic, with a reference and with the synthetic one, is that of
    the data in ordinary units (it used to be t = 0, p = 1: every row scaled
    to one point, and the synthetic reference drawn with zero spread)."""
    data, ref, _, _ = bump_sample(0, n_data=300, n_ref=1200)
    plain = sparker_test(data, ref, **FAST)
    tiny = sparker_test(data * factor, ref * factor, **FAST)
    assert tiny.statistic == pytest.approx(plain.statistic, rel=1e-3)
    assert tiny.pvalue == plain.pvalue
    params = {**FAST, "n_permutations": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no reference
        own = SparKerDetector(**params).fit(data).test_statistic_
        tiny_own = SparKerDetector(**params).fit(data * factor).test_statistic_
    assert tiny_own == pytest.approx(own, rel=1e-3)


def test_units_check_sees_spreads_in_tiny_units():
    """A feature at one value in most rows has no interquartile range; its std
    stands in, and in tiny units it used to underflow to zero, so that samples
    100 spreads apart passed."""
    rng = np.random.default_rng(1)
    col = np.where(rng.uniform(size=400) < 0.8, 0.0, rng.normal(size=400))
    X = np.c_[col, rng.normal(size=400)]
    R = np.c_[col + 100.0 * col.std(), rng.normal(size=400)]
    w = np.ones(400)
    for factor in (1.0, 1e-200):
        with pytest.raises(ValueError, match="different units: on feature 0"):
            _check_same_units(X * factor, w, R * factor, None)


# -- bools where numbers are meant ----------------------------------------------------

# every parameter that takes a number (a flag aside): True is not 1 there
NUMERIC_PARAMETERS = {
    CompVAEDetector: [
        "latent_dim", "n_neighbors", "epochs", "learning_rate", "kl_target",
        "sigma_angle_gain", "validation_fraction", "n_iter_no_change", "input_noise",
        "n_estimators", "contamination", "batch_size", "random_state",
    ],
    SparKerDetector: [
        "n_kernels", "n_steps", "learning_rate", "amplitude_clip", "width_start",
        "width_end", "anneal_fraction", "n_restarts", "n_permutations", "n_jobs",
        "contamination", "batch_size", "random_state",
    ],
}
NUMERIC_PARAMETERS[VMFDetector] = NUMERIC_PARAMETERS[CompVAEDetector]


@pytest.mark.parametrize(
    "cls, name", [(cls, name) for cls, names in NUMERIC_PARAMETERS.items() for name in names]
)
@pytest.mark.parametrize("flag", [True, False, np.True_])
def test_bools_are_refused_where_numbers_are_meant(cls, name, flag):
    """A bool is an int to Python; it used to be taken as 1 (or 0) silently."""
    X = np.random.default_rng(0).normal(size=(40, 3))
    with pytest.raises(InvalidParameterError, match=name):
        cls(**{name: flag}).fit(X)


def test_every_numeric_parameter_is_in_the_list():
    """The list above covers every parameter that is neither a flag, a string
    option, a sequence nor the device (a new numeric parameter joins it)."""
    other = {
        "compression", "anomaly_score", "hidden_layer_sizes", "image_shape",
        "conv_channels", "knn_backend", "schedule", "early_stopping",
        "class_conditional", "scaling", "device", "verbose", "positive_amplitudes",
        "init", "calibration", "preprocessing",
    }
    for cls, names in NUMERIC_PARAMETERS.items():
        assert set(cls._parameter_constraints) - other == set(names), cls.__name__


@pytest.mark.parametrize(
    "options",
    [
        {"hidden_layer_sizes": (True, 8)},
        {"conv_channels": (4, True), "image_shape": (1, 2, 2)},
        {"image_shape": (True, 2, 2)},
    ],
)
def test_bools_are_refused_in_layer_sizes_and_shapes(options):
    X = np.random.default_rng(0).normal(size=(40, 4))
    with pytest.raises(ValueError, match=next(iter(options))):
        CompVAEDetector(**{**SMALL, **options}).fit(X)


@pytest.mark.parametrize("width_end", [(True, 0.1), (0.6, np.True_)])
def test_bools_are_refused_among_the_held_widths(width_end):
    data, ref, _, _ = bump_sample(0, n_data=100, n_ref=300)
    with pytest.raises(ValueError, match="width_end must be a positive number"):
        SparKerDetector(**{**FAST, "width_end": width_end}).fit(data, X_ref=ref)


@pytest.mark.parametrize("flag", [True, False])
def test_bools_are_refused_by_sparker_test_and_the_methods(flag):
    data, ref, _, _ = bump_sample(0, n_data=100, n_ref=300)
    for key in ("n_permutations", "n_kernels", "learning_rate", "n_jobs", "random_state"):
        with pytest.raises(InvalidParameterError, match=key):
            sparker_test(data, ref, **{**FAST, key: flag})
    det = SparKerDetector(**FAST).fit(data, X_ref=ref)
    with pytest.raises(ValueError, match="offset must be a finite number"):
        det.set_threshold(offset=flag)
    with pytest.raises(InvalidParameterError, match="contamination"):
        det.set_threshold(contamination=flag)
    for key in ("n_segments", "rtol"):
        with pytest.raises(InvalidParameterError, match=key):
            det.feature_contributions(data[:2], **{key: flag})
    with pytest.raises(InvalidParameterError, match="alpha"):
        det.select_rows(data, alpha=flag)
    with pytest.raises(InvalidParameterError, match="alpha"):
        power_metrics([1.0], [0.5, 2.0], alpha=flag)
    # a number is still a number, and so is a numpy one
    assert det.set_threshold(offset=np.float32(-0.5)).offset_ == -0.5
    assert det.set_threshold(offset=0).offset_ == 0.0


# -- a few rows that set the scale -------------------------------------------------------


def test_rows_that_set_the_scale_are_named():
    """Under mean/std scaling one row of 1e6 squeezes the other rows together;
    the test then says nothing about them, and a warning names the row."""
    data, ref, _, _ = bump_sample(0, n_data=300, n_ref=1200)
    params = {**FAST, "preprocessing": "standard"}
    D = np.r_[data, np.full((1, 4), 1e6)]
    with pytest.warns(ScaleDominatedWarning, match=r"feature 0 .*X rows \[300\] lie") as rec:
        SparKerDetector(**params).fit(D, X_ref=ref)
    assert rec[0].filename == __file__
    R = ref.copy()
    R[[7, 9], 2] = -1e8
    with pytest.warns(ScaleDominatedWarning, match=r"feature 2: reference rows \[7, 9\] lie"):
        sparker_test(data, R, **params)
    # under reference calibration the scale is the reference's alone
    with pytest.warns(ScaleDominatedWarning, match=r"feature 2: X_ref rows \[7, 9\] lie"):
        SparKerDetector(**{**params, "calibration": "reference"}).fit(data[:200], X_ref=R)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ScaleDominatedWarning)
        SparKerDetector(**params).fit(data, X_ref=ref)
        # a row of zero weight sets nothing
        SparKerDetector(**params).fit(D, X_ref=ref, sample_weight=np.r_[np.ones(300), 0.0])
        # a scaling the row does not set: the median and interquartile range
        SparKerDetector(**{**params, "preprocessing": "robust"}).fit(D, X_ref=ref)


# -- a row far beyond the others ------------------------------------------------------


def test_the_most_extreme_row_is_ranked_most_anomalous():
    """A 1e300 row used to score 0, the kernels' limit far from every centre, and
    so rank among ordinary rows (outlier probability 0.36); beyond the clip of
    the scaling it takes the kernels' largest excess."""
    data, ref, _, _ = bump_sample(0, n_data=300, n_ref=1200)
    det = SparKerDetector(**FAST).fit(data, X_ref=ref)
    far = np.array([[1e300] * 4, [0.0, -1e10, 0.0, 0.0], [0.0, 0.0, 0.0, 2e3]])
    top = data.shape[0] / (data.shape[0] + 1.0)  # no training row above
    np.testing.assert_array_equal(det.outlier_probability(far), top)
    np.testing.assert_array_equal(det.score_samples(far), -np.abs(det.amplitudes_).max())
    assert np.all(det.predict(far) == -1)
    # within the clip the kernels' own f: far from them, about 0
    near = det.score_samples([[0.0, 0.0, 0.0, 500.0]])
    assert abs(near[0]) < 1e-9 < np.abs(det.amplitudes_).max()
    # a training row beyond the clip (of a scale it does not set) is the most
    # anomalous training row
    D = np.r_[data, [[0.0, 0.0, 1e9, 0.0]]]
    det = SparKerDetector(**FAST, preprocessing="winsorized").fit(D, X_ref=ref)
    assert np.argsort(det.training_scores_)[0] == data.shape[0]
    assert det.training_scores_[-1] < np.min(det.training_scores_[:-1])
