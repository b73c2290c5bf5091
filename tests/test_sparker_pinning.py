"""Tests that pin SparKer's method: each fails when the line it names is broken."""

import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binom

import skhyper._sparker.twosample as twosample
import skhyper._utils.base as base
from skhyper import SparKerDetector
from skhyper._utils.base import weighted_percentile

from conftest import SPARKER as FAST
from conftest import bump_sample


def _f(Z, mu, a, width):
    """f(x) = sum_k a_k softmax_k(l) exp(l_k), in numpy."""
    ell = -((Z[:, None, :] - mu[None]) ** 2).sum(-1) / (2.0 * width**2)
    top = ell.max(1, keepdims=True)
    lse = top + np.log(np.exp(ell - top).sum(1, keepdims=True))
    return (a * np.exp(2.0 * ell - lse)).sum(1)


def test_statistic_is_minus_twice_the_loss_of_the_fitted_kernels():
    """t = -2 L(a, mu) with L = (W_D / N_R) sum_R (e^f - 1) - sum_D w f
    (doc/sparker.md), recomputed in numpy from the fitted kernels.
    Pins ``stats = -2.0 * loss.min(axis=2)`` (twosample) and the loss in
    ``KernelEnsemble.loss_and_grad``."""
    data, ref, _, _ = bump_sample(0, n_data=300, n_ref=900)
    w = np.random.default_rng(0).integers(1, 4, size=len(data)).astype(float)
    det = SparKerDetector(n_kernels=4, n_steps=60, calibration=None, random_state=0)
    det.fit(data, X_ref=ref, sample_weight=w)
    assert det.width_ == det.widths_[-1]  # uncalibrated: the narrowest held width
    mu = det.kernels_.centers[0].detach().numpy()
    f_d = _f(det.transform_.transform(data), mu, det.amplitudes_, det.width_)
    f_r = _f(det.transform_.transform(ref), mu, det.amplitudes_, det.width_)
    loss = w.sum() / len(ref) * np.sum(np.expm1(f_r)) - np.sum(w * f_d)
    assert det.test_statistic_ > 10
    assert det.test_statistic_ == pytest.approx(-2.0 * loss, rel=1e-4)
    # and f itself is what score_samples returns
    np.testing.assert_allclose(-det.score_samples(data), f_d, rtol=1e-9, atol=1e-12)


def test_amplitudes_and_f_are_bounded_by_the_clip():
    """|a_k| <= amplitude_clip and |f| <= max |a_k| <= amplitude_clip. Pins
    ``model.amplitudes.clamp_(...)`` in ``train_kernels``."""
    data, ref, _, _ = bump_sample(0, n_data=300, n_ref=900)
    det = SparKerDetector(amplitude_clip=0.5, n_permutations=0, random_state=0)
    det.fit(data, X_ref=ref)
    assert np.abs(det.amplitudes_).max() == 0.5  # the clip binds
    rng = np.random.default_rng(0)
    rows = np.vstack([data, ref, det.centers_, 3 * rng.normal(size=(500, 4))])
    f = -det.score_samples(rows)
    assert np.abs(f).max() <= np.abs(det.amplitudes_).max()
    assert np.abs(f).max() > 0.4


def test_reference_toys_never_see_data_rows(monkeypatch):
    """Under calibration="reference" every toy's pseudo-data and reference
    come from X_ref only. Pins ``is_ref[:n_d] = False`` in ``split_weights``."""
    data, ref, _, _ = bump_sample(1, n_data=50, n_ref=400)
    calls = []
    original = twosample.train_kernels

    def recording(X, w_data, w_ref, *args, **kwargs):
        calls.append((w_data.clone(), w_ref.clone()))
        return original(X, w_data, w_ref, *args, **kwargs)

    monkeypatch.setattr(twosample, "train_kernels", recording)
    SparKerDetector(
        n_kernels=3, n_steps=20, calibration="reference", n_permutations=30, random_state=0
    ).fit(data, X_ref=ref)
    n_d = len(data)
    observed, toys = calls[0], calls[1:]
    assert torch.all(observed[0][:, :n_d] == 1) and torch.all(observed[1][:, :n_d] == 0)
    assert sum(wd.shape[0] for wd, _ in toys) == 30
    for wd, wr in toys:
        assert torch.all(wd[:, :n_d] == 0) and torch.all(wr[:, :n_d] == 0)
        assert torch.all(wd.sum(1) == n_d)  # pseudo-data of the data's size
        assert torch.all((wd > 0) & (wr > 0) == 0)  # disjoint


@pytest.mark.filterwarnings("ignore::skhyper.sparker.NoReferenceWarning")
def test_no_reference_mode_is_scale_invariant():
    """Scaling X, or one of its columns, leaves the ranking unchanged (the
    synthetic reference is fitted to X and the kernels live behind the
    per-feature transform). Pins ``Z = to_tensor(transform.transform(pooled), ...)``
    in ``run_sparker`` and the draw through the correlation matrix in
    ``synthetic_reference``."""
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(400, 3)), [1.5, 1.5, 0] + 0.1 * rng.normal(size=(30, 3))])
    params = dict(n_kernels=4, n_steps=60, n_permutations=0, random_state=0)
    scores = SparKerDetector(**params).fit(X).score_samples(X)
    one_column = X * [1.0, 1e4, 1.0]
    for Xs in (X * 1e3, one_column, X * 1e100):
        other = SparKerDetector(**params).fit(Xs).score_samples(Xs)
        np.testing.assert_allclose(other, scores, atol=1e-3)
        top = np.argsort(scores)[:30]
        assert set(np.argsort(other)[:30]) == set(top)


@settings(max_examples=200, deadline=None)
@given(
    data=st.lists(
        st.tuples(
            st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False),
            st.integers(0, 5),
        ),
        min_size=1,
        max_size=30,
    ).filter(lambda rows: any(w > 0 for _, w in rows)),
    q=st.floats(0, 100),
)
def test_weighted_percentile_is_the_percentile_of_the_repeated_sample(data, q):
    """Integer weights = repeated rows, under numpy's default (method="linear").
    Pins ``pos = q / 100.0 * (cum[-1] - 1.0)`` in ``weighted_percentile``."""
    values = np.array([v for v, _ in data])
    weights = np.array([w for _, w in data], dtype=float)
    repeated = np.repeat(values, weights.astype(int))
    expected = np.percentile(repeated, q, method="linear")
    got = weighted_percentile(values, q, weights)
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_null_rejection_rate_reference_calibration():
    """D and R from one distribution under calibration="reference": with 19 toys
    P(p <= 0.05) = 1/20 for a valid test, and P(Binomial(20, 0.05) >= 4) = 0.016.
    Pins the toys' reference (``is_ref = ~is_data`` in ``split_weights``)."""
    reps, bound = 20, 3
    assert binom.sf(bound, reps, 0.05) < 0.02
    rejections = 0
    for seed in range(reps):
        rng = np.random.default_rng(300 + seed)
        det = SparKerDetector(
            n_kernels=3, n_steps=30, calibration="reference", n_permutations=19,
            random_state=seed,
        ).fit(rng.normal(size=(60, 2)), X_ref=rng.normal(size=(600, 2)))
        rejections += det.pvalue_ <= 0.05
    assert rejections <= bound


def test_widths_are_in_units_of_the_median_pairwise_distance():
    """Held width = width_end * the median pairwise distance of the transformed
    pooled rows (all of them, when there are at most 1,000). Pins
    ``torch.pdist(...).median()`` in ``typical_distance``."""
    data, ref, _, _ = bump_sample(3, n_data=100, n_ref=300)
    det = SparKerDetector(
        n_kernels=2, n_steps=10, width_end=(0.5, 0.2), n_permutations=0, random_state=0
    ).fit(data, X_ref=ref)
    Z = det.transform_.transform(np.vstack([data, ref])).astype(np.float32)
    dist = torch.pdist(torch.from_numpy(Z).double())
    assert float(dist.mean()) > 1.01 * float(dist.median())  # the two differ here
    np.testing.assert_allclose(det.widths_, np.array([0.5, 0.2]) * float(dist.median()), rtol=1e-12)


def test_row_pvalue_of_an_excess_on_a_grid_level_counts_the_null_rows_at_that_level():
    """p(x) = (1 + C) / (1 + W) with C the null rows with f >= f(x) rounded down
    to the grid: an excess exactly on a level counts the rows at that level.
    Pins ``side="right"`` in ``SparKerDetector.row_pvalues``."""
    data, ref, _, _ = bump_sample(0, n_data=100, n_ref=300)
    det = SparKerDetector(n_kernels=2, n_steps=10, n_permutations=2, random_state=0)
    det.fit(data, X_ref=ref)
    f = -det.score_samples(data[:1])[0]
    # counts[j]: weight of the null rows with f >= levels[j]
    det.null_excess_levels_ = np.array([f - 1.0, f, f + 1.0])
    det.null_excess_counts_ = np.array([10.0, 6.0, 2.0])
    det.null_excess_total_ = 12.0
    assert det.row_pvalues(data[:1])[0] == 7.0 / 13.0
    # below the grid every null row counts; above it, those at the top level
    det.null_excess_levels_ = np.array([f + 1.0, f + 2.0, f + 3.0])
    assert det.row_pvalues(data[:1])[0] == 1.0
    det.null_excess_levels_ = np.array([f - 3.0, f - 2.0, f - 1.0])
    assert det.row_pvalues(data[:1])[0] == 3.0 / 13.0


def _fitted_detector():
    data, ref, _, _ = bump_sample(2, n_data=200, n_ref=600)
    return SparKerDetector(**FAST).fit(data, X_ref=ref), data


def test_unpickling_moves_no_sparker_state(monkeypatch):
    """The kernels stay on the CPU wherever they were fitted (scoring runs on
    the CPU), so nothing moves with ``device_`` on unpickling. Emulated here
    by a device every moved tensor would land on and that cannot compute (meta).
    Pins ``_device_attributes = ()`` of ``SparKerDetector``."""
    det, data = _fitted_detector()
    before = det.score_samples(data)
    det.device_ = torch.device("cuda")  # as if fitted on a GPU
    monkeypatch.setattr(base, "usable_device", lambda device: torch.device("meta"))
    with pytest.warns(base.DeviceFallbackWarning):
        loaded = pickle.loads(pickle.dumps(det))
    assert loaded.device_ == torch.device("cuda")
    assert loaded.kernels_.centers.device.type == "cpu"
    np.testing.assert_array_equal(loaded.score_samples(data), before)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_fit_unpickles_and_scores_on_cuda_machine():
    data, ref, _, _ = bump_sample(2, n_data=200, n_ref=600)
    det = SparKerDetector(**{**FAST, "device": "cuda"}).fit(data, X_ref=ref)
    assert det.device_.type == "cuda" and det.kernels_.centers.device.type == "cpu"
    before = det.score_samples(data)
    loaded = pickle.loads(pickle.dumps(det))
    assert loaded.device_.type == "cuda"
    assert loaded.kernels_.centers.device.type == "cpu"
    np.testing.assert_array_equal(loaded.score_samples(data), before)
    assert loaded.row_pvalues(data).shape == (len(data),)
