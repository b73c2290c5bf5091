"""Pins of the integrated gradients (skhyper/_utils/attribution.py) on functions whose
attributions are known: the trapezoid's path weights, the refinement's depth and
tolerance, the fitted weights across a jump and the chunking. The detectors' tests check
the explanations through them; these state the rule. benchmarks/generated_mutants.py
reports the mutants they kill."""

import numpy as np
import pytest
import torch

from skhyper._utils import attribution as A


def _ig(f, X, baseline=None, *, n_segments=4, rtol=1e-4, max_points=10_000, max_rows=1000):
    X = torch.as_tensor(X, dtype=torch.float64)
    baseline = torch.zeros(X.shape[1], dtype=torch.float64) if baseline is None else baseline
    return A.integrated_gradients(f, X, torch.as_tensor(baseline, dtype=torch.float64),
                                  n_segments=n_segments, rtol=rtol, max_points=max_points,
                                  max_rows=max_rows).numpy()


def _square(points, rows):
    return (points**2).sum(1)


X = np.array([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0], [2.0, 2.0, 2.0]])


@pytest.mark.parametrize("n_segments", [1, 2, 5])
def test_a_gradient_linear_along_the_path_is_integrated_exactly(n_segments):
    """f = sum x^2 from 0: df/dx_j = 2 t x_j is linear in t, which the trapezoid rule
    (weights 1/2 at each end of a segment) integrates exactly: A = x^2 at any grid."""
    out = _ig(_square, X, n_segments=n_segments, rtol=0.5)
    np.testing.assert_allclose(out, X**2, rtol=1e-14, atol=1e-14)
    assert out.dtype == np.float64


def test_a_baseline_shifts_the_path():
    b = np.array([1.0, 1.0, -1.0])
    out = _ig(_square, X, b, rtol=0.5)
    np.testing.assert_allclose(out, X**2 - b**2, rtol=1e-13, atol=1e-13)


def _cube(points, rows):
    return (points**3).sum(1)


@pytest.mark.parametrize("rtol", [1e-2, 1e-4])
def test_refinement_meets_its_tolerance(rtol):
    """f = sum x^3: the trapezoid errs by h^2/4 of the change per segment; halving until
    within rtol of the row's variation leaves completeness within rtol of it, and the
    coarse grid alone would not."""
    exact = X**3
    out = _ig(_cube, X, n_segments=2, rtol=rtol)
    variation = np.abs(exact).sum(1)  # f is monotone along each feature's path
    assert np.all(np.abs(out.sum(1) - exact.sum(1)) <= rtol * variation + 1e-12)
    coarse = _ig(_cube, X, n_segments=2, rtol=1.0)
    assert np.abs(coarse.sum(1) - exact.sum(1)).max() > 0.01 * variation.max()


def test_refinement_stops_at_max_depth():
    """rtol=0 halves every segment MAX_DEPTH (6) times: n_segments * 64 + 1 points per
    row, and no more; path_bytes counts those knots."""
    seen = []

    def recording(points, rows):
        seen.append(points.detach().clone())
        return _cube(points, rows)

    _ig(recording, X[:1], n_segments=3, rtol=0.0)
    t = torch.cat(seen)[:, 0] / X[0, 0]
    assert len(torch.unique(t)) == 3 * 2**A.MAX_DEPTH + 1 == 193
    assert A.path_bytes(5, 3) == 3 * 8 * (3 * 64 + 1) * (5 + 4)


def _step(points, rows):
    # gradient 1 in x_0 past 0.3, 0 before: one jump along the path
    return torch.relu(points[:, 0] - 0.3) + 0.0 * points[:, 1]


def test_a_jump_gets_the_fitted_end_weights_and_completeness_holds_exactly():
    """Across the gradient's jump the finest segment gets end weights fitted (in [0, 1])
    to the change of f: a row's attributions sum to f(x) - f(b) exactly."""
    rows = np.array([[1.0, 5.0], [0.9, -1.0], [2.0, 0.0]])
    for n_segments in (1, 3, 8):
        out = _ig(_step, rows, n_segments=n_segments, rtol=1e-6)
        np.testing.assert_allclose(out[:, 0], rows[:, 0] - 0.3, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(out[:, 1], 0.0)


def test_fitted_weights_are_clamped_and_half_where_the_ends_agree():
    h = torch.tensor([0.5, 0.5, 0.5, 0.5], dtype=torch.float64)
    T0 = torch.tensor([[2.0, 0.0], [2.0, 0.0], [2.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    T1 = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    change = torch.tensor([0.25, 5.0, -5.0, 7.0], dtype=torch.float64)
    terms = A._fitted(h, change, T0, T1)
    # w = (change / h - s1) / (s0 - s1): 0.25; past 1 and below 0 clamped; ends of equal
    # sums (no fit possible): w = 1/2, the trapezoid
    np.testing.assert_allclose(terms.numpy(), [[0.25, 0.0], [1.0, 0.0], [0.0, 0.0],
                                               [0.25, 0.25]], rtol=1e-15)


@pytest.mark.parametrize("max_points, max_rows", [(1, 1), (7, 2), (3, 1000), (1, 0)])
def test_chunks_do_not_change_the_result(max_points, max_rows):
    """Rows are integrated alike whatever the chunks of points and rows (a budget below
    one row still takes one row at a time)."""
    rows = np.vstack([X, [[0.5, 0.7, -0.2]]])

    def f(points, r):
        return _step(points, r) + _cube(points, r)

    full = _ig(f, rows, n_segments=2, rtol=1e-3)
    np.testing.assert_array_equal(_ig(f, rows, n_segments=2, rtol=1e-3,
                                      max_points=max_points, max_rows=max_rows), full)


def test_a_function_constant_in_the_points_gets_zero():
    out = _ig(lambda points, rows: torch.ones(len(points), dtype=points.dtype), X)
    np.testing.assert_array_equal(out, 0.0)


def test_mean_distance_leaves_out_the_own_entry_else_the_last_candidate():
    points = torch.tensor([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0], [0.0, 1.0]],
                          dtype=torch.float64)
    queries = torch.zeros((2, 2), dtype=torch.float64, requires_grad=True)
    candidates = torch.tensor([[0, 3, 1], [0, 3, 1]])
    own = torch.tensor([0, -1])
    d = A.mean_distance_to(queries, points, candidates, own)
    # row 0 drops its own entry 0: mean(1, 5); row 1 drops the last candidate: mean(0, 1)
    np.testing.assert_allclose(d.detach().numpy(), [3.0, 0.5], rtol=1e-15)
    (grad,) = torch.autograd.grad(d.sum(), queries)
    assert torch.isfinite(grad).all()  # the zero distance's gradient is taken as 0
    np.testing.assert_allclose(grad[1].numpy(), [0.0, -0.5], rtol=1e-15)
