"""Input scaling and sample canonicalisation (skhyper._utils.preprocessing)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.special import ndtri

from skhyper._utils.preprocessing import (
    TRANSFORMS,
    IdentityTransform,
    InputTransform,
    canonical_sample,
    weighted_quantiles,
)

AFFINE = ("standard", "robust", "winsorized")


def sample(n=500, seed=0):
    """Three features on very different scales and locations."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 3)) * [1.0, 10.0, 0.1] + [0.0, 5.0, -3.0]


# -- round trips --------------------------------------------------------------------------


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("kind", AFFINE)
def test_affine_round_trip(kind, weighted):
    X = sample()
    w = np.random.default_rng(1).uniform(0.5, 2, len(X)) if weighted else None
    t = InputTransform(kind, X, w)
    Z = t.transform(X)
    assert not np.allclose(Z, X)  # the transform does something
    np.testing.assert_allclose(t.inverse_transform(Z), X, rtol=1e-12, atol=1e-12)


def test_quantile_round_trip_inside_the_clip_range():
    X = sample()
    t = InputTransform("quantile", X)
    Z = t.transform(X)
    bound = ndtri(1 - t.eps)
    inside = np.abs(Z) < bound
    assert inside.mean() > 0.99
    back = t.inverse_transform(Z)
    np.testing.assert_allclose(back[inside], X[inside], rtol=1e-9, atol=1e-9)
    # the rest are the tails beyond the outermost kept quantiles, clipped there
    np.testing.assert_allclose(np.abs(Z[~inside]), bound, rtol=1e-12)


def test_identity_transform_round_trip():
    X = sample(50)
    t = IdentityTransform()
    assert t.kind == "none"
    np.testing.assert_array_equal(t.transform(X), X)
    np.testing.assert_array_equal(t.inverse_transform(t.transform(X)), X)


def test_unknown_kind_is_an_error():
    with pytest.raises(ValueError, match="kind must be one of"):
        InputTransform("minmax", sample(20))


# -- each kind's location and scale -----------------------------------------------------------


def test_standard_is_weighted_mean_and_std():
    X = sample()
    w = np.random.default_rng(2).uniform(0.1, 3, len(X))
    t = InputTransform("standard", X, w)
    np.testing.assert_allclose(t.loc, (w @ X) / w.sum(), rtol=1e-12)
    cov = np.cov(X.T, aweights=w, bias=True)
    np.testing.assert_allclose(t.scale, np.sqrt(np.diag(cov)), rtol=1e-12)
    # unweighted: the population (ddof=0) std
    t = InputTransform("standard", X)
    np.testing.assert_allclose(t.loc, X.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(t.scale, X.std(axis=0, ddof=0), rtol=1e-12)


def test_standard_weights_equal_repeated_rows():
    X = sample(60)
    counts = np.random.default_rng(3).integers(1, 5, len(X))
    a = InputTransform("standard", X, counts.astype(float))
    b = InputTransform("standard", np.repeat(X, counts, axis=0))
    np.testing.assert_allclose(a.loc, b.loc, rtol=1e-12)
    np.testing.assert_allclose(a.scale, b.scale, rtol=1e-12)


def test_robust_is_median_and_iqr_over_gaussian_iqr():
    X = sample(2001)
    t = InputTransform("robust", X)
    q25, q50, q75 = np.percentile(X, [25, 50, 75], axis=0, method="hazen")
    np.testing.assert_allclose(t.loc, q50, rtol=1e-12)
    # the IQR of N(0, 1) is 2 * ndtri(0.75) = 1.3489795...
    np.testing.assert_allclose(t.scale, (q75 - q25) / (2 * ndtri(0.75)), rtol=1e-7)
    # so a Gaussian feature gets about its std
    np.testing.assert_allclose(t.scale, [1.0, 10.0, 0.1], rtol=0.1)


def test_robust_falls_back_to_std_where_the_iqr_is_zero():
    rng = np.random.default_rng(4)
    col = np.where(rng.uniform(size=400) < 0.8, 0.0, rng.normal(size=400))
    X = np.c_[col, rng.normal(size=400)]
    t = InputTransform("robust", X)
    assert t.loc[0] == 0.0
    assert t.scale[0] == pytest.approx(col.std(), rel=1e-12)


@pytest.mark.parametrize("n", [200, 2500])
def test_winsorized_clips_the_most_extreme_tenth_percent(n):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(n, 2))
    X[:2, 0] = [1e12, -1e12]  # one huge value at each end must not set the scale
    t = InputTransform("winsorized", X)
    k = max(1, -(-n // 1000))  # 0.1% of the rows, rounded up, at least one
    s = np.sort(X, axis=0)
    clipped = np.clip(X, s[k], s[n - k - 1])  # the k most extreme at each end
    np.testing.assert_allclose(t.loc, clipped.mean(axis=0), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(t.scale, clipped.std(axis=0), rtol=1e-12)
    assert t.scale[0] < 2


def test_winsorized_falls_back_to_unclipped_std_when_clipping_flattens():
    col = np.zeros(500)
    col[7] = 1e6  # clipped to 0: the clipped std is zero
    t = InputTransform("winsorized", col[:, None])
    assert t.loc[0] == 0.0
    assert t.scale[0] == pytest.approx(col.std(), rel=1e-12)


def test_quantile_maps_to_standard_normal_scores():
    # on an evenly spaced sample the Hazen quantile function is linear inside:
    # row x maps to ndtri((x (n - 1) + 0.5) / n)
    n = 101
    t = InputTransform("quantile", np.linspace(0, 1, n)[:, None])
    x = np.linspace(0.05, 0.95, 37)
    np.testing.assert_allclose(
        t.transform(x[:, None])[:, 0], ndtri((x * (n - 1) + 0.5) / n), rtol=1e-12, atol=1e-12
    )
    # a skewed feature comes out close to N(0, 1) (its CDF composed with ndtri)
    rng = np.random.default_rng(6)
    t = InputTransform("quantile", rng.exponential(size=(20_000, 1)))
    fresh = rng.exponential(size=5000)
    Z = t.transform(fresh[:, None])[:, 0]
    true = ndtri(-np.expm1(-fresh))
    bulk = np.abs(true) < 2.5
    np.testing.assert_allclose(Z[bulk], true[bulk], atol=0.1)
    assert abs(Z.mean()) < 0.05 and abs(Z.std() - 1) < 0.05


def test_quantile_clips_at_half_a_row_of_probability():
    X = sample(40)
    t = InputTransform("quantile", X)
    far = np.array([[1e9, 1e9, 1e9], [-1e9, -1e9, -1e9]])
    np.testing.assert_allclose(t.transform(far), [[ndtri(1 - 0.5 / 40)] * 3, [ndtri(0.5 / 40)] * 3])
    # with a large total weight the floor is 1e-7
    t = InputTransform("quantile", X, np.full(40, 1e8))
    np.testing.assert_allclose(t.transform(far)[0], ndtri(1 - 1e-7), rtol=1e-12)


def test_weighted_quantiles_use_hazen_positions():
    X = sample(37)
    probs = np.linspace(0, 1, 21)
    np.testing.assert_allclose(
        weighted_quantiles(X, np.ones(len(X)), probs),
        np.percentile(X, 100 * probs, axis=0, method="hazen"),
        rtol=1e-12,
    )


# -- constant features ------------------------------------------------------------------


@pytest.mark.parametrize("kind", TRANSFORMS)
def test_constant_feature_maps_to_zero_and_back(kind):
    rng = np.random.default_rng(7)
    X = np.c_[np.full(300, 3.5), rng.normal(size=300)]
    t = InputTransform(kind, X)
    Z = t.transform(X)
    assert np.isfinite(Z).all()
    np.testing.assert_array_equal(Z[:, 0], 0.0)
    np.testing.assert_allclose(t.inverse_transform(Z)[:, 0], 3.5, rtol=1e-15)


def test_feature_constant_up_to_rounding_is_centred_not_scaled():
    col = 1e8 + np.r_[np.zeros(50), np.full(50, np.spacing(1e8))]
    t = InputTransform("standard", col[:, None])
    assert t.scale[0] == 1.0
    assert np.abs(t.transform(col[:, None])).max() < 1e-7


# -- canonical samples ----------------------------------------------------------------------


def test_canonical_sample_sorts_merges_and_drops_zero_weights():
    X = np.array([[2.0, 1.0], [1.0, 5.0], [2.0, 1.0], [0.0, 0.0], [1.0, 5.0], [1.0, 4.0]])
    w = np.array([1.0, 2.0, 0.5, 0.0, 1.0, 3.0])
    rows, weights = canonical_sample(X, w)
    np.testing.assert_array_equal(rows, [[1.0, 4.0], [1.0, 5.0], [2.0, 1.0]])
    np.testing.assert_array_equal(weights, [3.0, 3.0, 1.5])


rows_strategy = st.integers(2, 40).flatmap(
    lambda n: st.tuples(
        arrays(np.float64, (n, 2), elements=st.integers(-3, 3).map(float)),
        arrays(np.int64, n, elements=st.integers(0, 4)),
        st.randoms(use_true_random=False),
    )
)


@settings(max_examples=60, deadline=None)
@given(rows_strategy)
def test_canonical_sample_weights_equal_repeated_rows_in_any_order(case):
    X, counts, rnd = case
    if counts.sum() == 0:
        counts[0] = 1
    rows, weights = canonical_sample(X, counts.astype(float))
    repeated = np.repeat(X, counts, axis=0)
    perm = np.array(rnd.sample(range(len(repeated)), len(repeated)))
    rows_r, weights_r = canonical_sample(repeated[perm], np.ones(len(repeated)))
    # bit-identical, so every fit downstream agrees exactly
    np.testing.assert_array_equal(rows_r, rows)
    np.testing.assert_array_equal(weights_r, weights)
    assert weights.sum() == counts.sum()
    for kind in TRANSFORMS:
        a, b = InputTransform(kind, rows, weights), InputTransform(kind, rows_r, weights_r)
        np.testing.assert_array_equal(a.transform(X), b.transform(X))


# -- fitted transforms: shapes, dtypes, row order ---------------------------------------------

eighths = st.integers(-8000, 8000).map(lambda v: v / 8)


@st.composite
def fits(draw):
    n, d = draw(st.integers(2, 50)), draw(st.integers(1, 4))
    w = draw(st.none() | arrays(np.float64, n, elements=st.integers(1, 5).map(float)))
    # weighted quantiles place tied values in row order, so with unequal
    # weights ties make the fit order-dependent: weighted samples have none
    X = draw(arrays(np.float64, (n, d), elements=eighths, unique=w is not None))
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    kind = draw(st.sampled_from(TRANSFORMS))
    return kind, X.astype(dtype), w, draw(st.randoms(use_true_random=False))


@settings(max_examples=80, deadline=None)
@given(fits())
def test_fitted_transform_shape_dtype_and_row_order_invariance(case):
    kind, X, w, rnd = case
    t = InputTransform(kind, X, w)
    Z = t.transform(X)
    assert Z.shape == X.shape and Z.dtype == np.float64
    assert t.transform(X.astype(np.float32)).dtype == np.float64
    assert np.isfinite(Z).all()
    assert t.inverse_transform(Z).shape == X.shape
    perm = np.array(rnd.sample(range(len(X)), len(X)))
    # the fit does not depend on the order of the rows ...
    shuffled = InputTransform(kind, X[perm], None if w is None else w[perm])
    np.testing.assert_allclose(shuffled.transform(X), Z, rtol=1e-9, atol=1e-9)
    # ... and the transform is row-wise
    np.testing.assert_array_equal(t.transform(X[perm]), Z[perm])
    # and non-decreasing in each feature
    order = np.argsort(X, axis=0, kind="stable")
    assert np.all(np.diff(np.take_along_axis(Z, order, axis=0), axis=0) >= -1e-12)
