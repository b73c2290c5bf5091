"""Pins of SparKer's engine (skhyper/_sparker/twosample.py, kernels.py): sizes, bounds and
scalings that the method computes and no other test states. Each test names the lines
it pins; benchmarks/generated_mutants.py reports the mutants they kill."""

import dataclasses
import math

import numpy as np
import pytest
import torch

import skhyper._sparker.twosample as twosample
from skhyper._sparker.options import SparKerOptions

from conftest import bump_sample

CPU = torch.device("cpu")


def _options(**kwargs):
    # init="random" builds no neighbour graph: prepare_test stays cheap
    return SparKerOptions(**{"init": "random", "preprocessing": "standard", **kwargs})


@pytest.mark.parametrize(
    "n, weight, calibration, expected",
    [
        (100, 1.0, "permutation", 1000),  # the floor
        (300, 1.0, "permutation", 1500),  # five times the data
        (401, 0.5, None, 1003),  # five times the total weight, rounded up
        (20_000, 1.0, "permutation", 50_000),  # the cap
        (20_000, 1.0, "reference", 100_000),  # no cap: pseudo-data are drawn from it
    ],
)
def test_synthetic_reference_size(n, weight, calibration, expected):
    """``max(1000, ceil(5 * sum(w)))`` rows, at most 50,000 unless
    calibration="reference". Pins SYNTH_RATIO, SYNTH_MIN, SYNTH_MAX and the cap's branch."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 2))
    R = twosample.synthetic_reference(X, np.full(n, weight), calibration, rng)
    assert R.shape == (expected, 2)


def test_synthetic_reference_has_the_weighted_moments_of_the_data():
    """The Gaussian's mean and covariance are X's weighted ones (a constant feature
    stays constant). Pins the weighted mean, the std's guard and the correlation."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(2000, 3)) @ np.array([[2.0, 0.0, 0.0], [1.0, 0.5, 0.0], [0, 0, 0]])
    X += [5.0, -3.0, 0.0]
    X[:, 2] = 0.0  # exactly constant
    w = rng.uniform(0.5, 2.0, size=len(X))
    R = twosample.synthetic_reference(X, w, "reference", rng)
    assert len(R) == math.ceil(5 * w.sum())
    mean = np.average(X, axis=0, weights=w)
    cov = np.cov(X, rowvar=False, aweights=w, bias=True)
    # within four standard errors of a sample of len(R) rows
    error = np.abs(R.mean(0) - mean)
    np.testing.assert_array_less(error, 4 * np.sqrt(np.diag(cov) / len(R)) + 1e-12)
    np.testing.assert_allclose(np.cov(R, rowvar=False), cov, rtol=4 * np.sqrt(2 / len(R)),
                               atol=1e-12)
    np.testing.assert_allclose(R[:, 2], 0.0, atol=1e-12)


def test_reference_calibration_needs_five_reference_rows_per_data_row():
    """calibration="reference" takes X_ref of at least 5 x round(sum(w)) rows and refuses
    one row fewer. Pins REFERENCE_MIN_RATIO and its comparison."""
    rng = np.random.default_rng(0)
    X, w = rng.normal(size=(40, 2)), np.full(40, 0.5)  # 20 pseudo-data rows
    options = _options(calibration="reference", n_permutations=2)
    seeds = np.random.SeedSequence(0)
    twosample.prepare_test(X, w, rng.normal(size=(100, 2)), options, CPU, seeds)
    with pytest.raises(ValueError, match="99 rows, too few .* 20 data rows"):
        twosample.prepare_test(X, w, rng.normal(size=(99, 2)), options, CPU, seeds)


def test_reference_calibration_scales_by_the_reference_rows_alone():
    """Under calibration="reference" the transform and the widths come from X_ref alone,
    so moving the data changes neither; under "permutation" they come from the pooled
    rows. Pins ``scale_rows`` and the reference branch's InputTransform."""
    data, ref, _, _ = bump_sample(0, n_data=200, n_ref=1000, d=3)
    w = np.ones(len(data))
    seeds = np.random.SeedSequence(3)
    setups = {}
    for calibration in ("reference", "permutation"):
        options = _options(calibration=calibration, n_permutations=2)
        setups[calibration] = [
            twosample.prepare_test(X, w, ref, options, CPU, seeds)
            for X in (data, 4.0 * data + 10.0)
        ]
    near, far = setups["reference"]
    Z_ref = near.transform.transform(ref)
    np.testing.assert_allclose(Z_ref.mean(0), 0.0, atol=1e-9)
    np.testing.assert_allclose(Z_ref.std(0), 1.0, rtol=1e-9)
    np.testing.assert_array_equal(near.problem.widths, far.problem.widths)
    np.testing.assert_array_equal(near.problem.Z[200:], far.problem.Z[200:])
    near, far = setups["permutation"]
    pooled = near.transform.transform(np.vstack([data, ref]))
    np.testing.assert_allclose(pooled.mean(0), 0.0, atol=1e-9)
    assert not np.allclose(near.problem.widths, far.problem.widths)


def _observed(**kwargs):
    data, ref, _, _ = bump_sample(0, n_data=100, n_ref=400, d=2)
    options = _options(n_kernels=2, n_steps=5, calibration=None, n_permutations=0, **kwargs)
    setup = twosample.prepare_test(data, np.ones(len(data)), ref, options, CPU,
                                   np.random.SeedSequence(0))
    return setup, twosample.fit_observed(setup)


def test_divergence_is_centres_past_ten_row_clips_or_a_non_finite_loss():
    """A fit is diverged when a kept centre lies beyond 10 x ROW_CLIP (rows are clipped to
    ROW_CLIP) or its loss is not finite; a centre at exactly that bound (float32) is not. Pins the
    bound and both of its tests in ``calibrate``."""
    setup, fit = _observed()
    assert not twosample.calibrate(setup, fit, None).diverged
    bound = 10 * twosample.ROW_CLIP
    for reach, diverged in ((bound, False), (1.001 * bound, True),
                            (0.5 * bound, False), (3 * bound, True)):
        centers = fit.centers.clone()
        centers[..., 0, 0] = -reach
        moved = dataclasses.replace(fit, centers=centers)
        assert twosample.calibrate(setup, moved, None).diverged is diverged, reach
    lost = dataclasses.replace(fit, loss=torch.full_like(fit.loss, math.nan))
    assert twosample.calibrate(setup, lost, None).diverged


def test_rows_are_clipped_to_row_clip_scale_units():
    """The engine's transform clips each transformed value to +-ROW_CLIP (1e3) (a robust
    scaling, which the huge row does not set). Pins ROW_CLIP and its use in prepare_test."""
    data, ref, _, _ = bump_sample(0, n_data=100, n_ref=400, d=2)
    data[0, 0] = 1e12
    setup = twosample.prepare_test(data, np.ones(len(data)), ref, _options(
        calibration=None, n_permutations=0, preprocessing="robust"), CPU, np.random.SeedSequence(0))
    assert twosample.ROW_CLIP == 1e3
    assert np.abs(setup.problem.Z).max() == pytest.approx(1e3, rel=1e-6)


@pytest.mark.parametrize("scale", [1.0, 0.1])
def test_kmeans_plus_plus_draws_by_weight_times_squared_distance(scale):
    """After the first centre, each is drawn with probability ~ w * (squared distance to
    the nearest chosen centre), whatever the scale. Rows 0, 2, 5 on a line, first centre
    at 2: the second draw's cdf is (4, 4, 13) / 13 with unit weights, (8, 8, 17) / 17 with
    weight 2 on row 0; a third draw, after 2 and 5, (4, 4, 4) / 4. Rows all covered fall
    back to the weights. Pins the squared distances and the fallback in
    ``kmeans_plus_plus``."""
    from skhyper._sparker.kernels import kmeans_plus_plus, weighted_draw

    X = scale * torch.tensor([[0.0, 0.0], [2.0, 0.0], [5.0, 0.0]], dtype=torch.float64)
    first = torch.tensor([1])
    for weights, split in ((torch.ones(1, 3), 4 / 13), (torch.tensor([[2.0, 1.0, 1.0]]), 8 / 17)):
        for u, expected in ((split - 0.01, 0), (split + 0.01, 2)):
            uniforms = torch.tensor([[0.0, u]], dtype=torch.float64)
            centres = kmeans_plus_plus(X, weights.double(), uniforms, first=first)
            np.testing.assert_array_equal(centres[0].numpy(), X[[1, expected]].numpy())
    # third centre: row 0 is the only one left uncovered
    uniforms = torch.tensor([[0.0, 0.9, 0.5]], dtype=torch.float64)
    centres = kmeans_plus_plus(X, torch.ones(1, 3, dtype=torch.float64), uniforms, first=first)
    np.testing.assert_array_equal(centres[0].numpy(), X[[1, 2, 0]].numpy())
    # every weighted row already chosen: the weights decide (not the last row)
    w = torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64)
    centres = kmeans_plus_plus(X, w, torch.tensor([[0.0, 0.5]], dtype=torch.float64),
                               first=first)
    np.testing.assert_array_equal(centres[0].numpy(), X[[1, 1]].numpy())
    w = torch.tensor([[1.0, 0.0, 3.0]], dtype=torch.float64)
    # the draw itself: the first index whose cumulative weight passes u * total
    draws = [int(weighted_draw(w, torch.tensor([u]))) for u in (0.0, 0.24, 0.26, 0.99)]
    assert draws == [0, 0, 2, 2]
