"""Integrated gradients of per-row scalar functions, for explaining anomaly scores.

- :func:`integrated_gradients`: the attribution of ``f(x) - f(baseline)`` to
  the coordinates of ``x``, integrating ``grad f`` along the straight path by
  an adaptive trapezoid rule, in chunks so that memory is bounded.
- :func:`mean_distance_to`: a mean distance to chosen neighbours, one left
  out, differentiable in the queries (a latent kNN score along a path).
- :func:`frame_like`: per-feature values as a DataFrame when the input was one.

Nothing here knows about scikit-learn or the detectors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

# f(points, rows) -> values: points (P, d), rows (P,) the row of X each point
# lies on (for functions that treat rows differently), values (P,)
PathFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# times a segment of the initial grid may be halved: down to 1/64 of it
MAX_DEPTH = 6


def path_bytes(n_features: int, n_segments: int) -> int:
    """Most bytes one row's path holds at once (every segment halved to the end)."""
    knots = n_segments * 2**MAX_DEPTH + 1
    return 3 * 8 * knots * (n_features + 4)


def integrated_gradients(
    f: PathFunction,
    X: torch.Tensor,
    baseline: torch.Tensor,
    *,
    n_segments: int,
    rtol: float,
    max_points: int,
    max_rows: int,
) -> torch.Tensor:
    """Integrated gradients of ``f`` from ``baseline`` to each row of ``X``.

    ``A[i, j] = (X[i, j] - b[j]) * integral_0^1 df/dx_j(b + t (X[i] - b)) dt``,
    so that a row's attributions sum to ``f(X[i]) - f(b)`` (completeness).

    The integral is a trapezoid rule on ``n_segments`` equal segments, each
    halved (at most ``MAX_DEPTH`` times) while the rule misses the change of
    ``f`` over it by more than ``rtol`` times the segment's share of the
    row's total variation of ``f`` on the initial grid. Refinement gathers
    where the gradient jumps (a kNN score changing neighbours, a ReLU
    switching): there a Riemann sum converges only as ``1/n_segments``. A
    segment still missing at the finest level gets the weights of its two
    ends fitted (within [0, 1]) to the change of ``f`` over it, which is exact
    across one jump of a piecewise-constant gradient. So the attributions of
    a row sum to ``f(X[i]) - f(b)`` within about ``rtol`` times that total
    variation.

    ``f`` must treat rows independently (row ``p`` of its value depends on
    point ``p`` alone); the gradient is taken with respect to the points
    only, so the model ``f`` evaluates is left as it was.

    Parameters
    ----------
    f : callable
        ``f(points, rows)``: ``points`` of shape (P, d) in the dtype and on the
        device of ``X``, ``rows`` of shape (P,) (int64) the row of ``X`` each
        point lies on; returns shape (P,).
    X : Tensor of shape (N, d)
    baseline : Tensor of shape (d,)
    n_segments : int
        Segments of the initial grid (>= 1).
    rtol : float
        Tolerance of the refinement (>= 0; 0 halves every segment to the end).
    max_points : int
        Points given to ``f`` at once.
    max_rows : int
        Rows whose paths are integrated together (see :func:`path_bytes`).

    Returns
    -------
    attributions : Tensor of shape (N, d), float64, on the CPU
    """
    n, d = X.shape
    baseline = baseline.to(device=X.device, dtype=X.dtype)
    out = torch.zeros((n, d), dtype=torch.float64)
    grid = torch.arange(n_segments + 1, dtype=torch.float64, device=X.device) / n_segments
    for start in range(0, n, max(1, max_rows)):
        rows = torch.arange(start, min(start + max(1, max_rows), n), device=X.device)
        _integrate(f, X, baseline, rows, grid, rtol, max_points, out)
    return out


def _integrate(
    f: PathFunction,
    X: torch.Tensor,
    baseline: torch.Tensor,
    rows: torch.Tensor,
    grid: torch.Tensor,
    rtol: float,
    max_points: int,
    out: torch.Tensor,
) -> None:
    """Add the attributions of ``rows``, consecutive, to ``out`` (see
    :func:`integrated_gradients`)."""
    m = len(grid)
    # segments are flat arrays: their row, ends t0 < t1, f and the per-feature
    # terms (x_j - b_j) df/dx_j at both ends
    row = rows.repeat_interleave(m)
    t = grid.repeat(len(rows))
    F, T = _at(f, X, baseline, row, t, max_points)
    F, T = F.reshape(len(rows), m), T.reshape(len(rows), m, -1)
    row = rows.repeat_interleave(m - 1)
    t0, t1 = grid[:-1].repeat(len(rows)), grid[1:].repeat(len(rows))
    F0, F1 = F[:, :-1].reshape(-1), F[:, 1:].reshape(-1)
    T0, T1 = T[:, :-1].flatten(0, 1), T[:, 1:].flatten(0, 1)
    # the tolerance of a segment: its share of the row's total variation
    tol = rtol * (F[:, 1:] - F[:, :-1]).abs().sum(dim=1)
    first = int(rows[0])
    for depth in range(MAX_DEPTH + 1):
        h = t1 - t0
        terms = 0.5 * h[:, None] * (T0 + T1)
        change = F1 - F0
        missed = (change - terms.sum(dim=1)).abs() > tol[row - first] * h
        if depth == MAX_DEPTH:
            terms[missed] = _fitted(h[missed], change[missed], T0[missed], T1[missed])
            missed[:] = False
        done = ~missed
        # on the CPU, index_add_ sums in order: a row's result does not depend
        # on the other rows
        out.index_add_(0, row[done].cpu(), terms[done].cpu())
        if not missed.any():
            return
        row, t0, t1, F0, F1, T0, T1 = (v[missed] for v in (row, t0, t1, F0, F1, T0, T1))
        tm = 0.5 * (t0 + t1)
        Fm, Tm = _at(f, X, baseline, row, tm, max_points)
        row = torch.cat([row, row])
        t0, t1 = torch.cat([t0, tm]), torch.cat([tm, t1])
        F0, F1 = torch.cat([F0, Fm]), torch.cat([Fm, F1])
        T0, T1 = torch.cat([T0, Tm]), torch.cat([Tm, T1])


def _at(
    f: PathFunction,
    X: torch.Tensor,
    baseline: torch.Tensor,
    row: torch.Tensor,
    t: torch.Tensor,
    max_points: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """f and the terms ``(x_j - b_j) df/dx_j`` at ``b + t (x - b)``, float64."""
    values, terms = [], []
    for s in range(0, len(t), max(1, max_points)):
        r, ts = row[s : s + max_points], t[s : s + max_points]
        delta = X[r] - baseline
        points = (baseline + ts.to(X.dtype)[:, None] * delta).detach().requires_grad_(True)
        with torch.enable_grad():
            v = f(points, r)
            grad = None
            if v.requires_grad:
                (grad,) = torch.autograd.grad(v.sum(), points, allow_unused=True)
        values.append(v.detach().double())
        if grad is None:  # f is constant here
            terms.append(torch.zeros(delta.shape, dtype=torch.float64, device=X.device))
        else:
            terms.append(grad.detach().double() * delta.double())
    return torch.cat(values), torch.cat(terms)


def _fitted(
    h: torch.Tensor, change: torch.Tensor, T0: torch.Tensor, T1: torch.Tensor
) -> torch.Tensor:
    """A segment's terms ``h (w T0 + (1 - w) T1)``, ``w`` in [0, 1] fitted so
    that they sum to the change of f (1/2, the trapezoid, where both ends agree)."""
    s0, s1 = T0.sum(dim=1), T1.sum(dim=1)
    gap = s0 - s1
    ok = gap != 0
    w = torch.where(ok, (change / h - s1) / torch.where(ok, gap, 1.0), 0.5).clamp(0.0, 1.0)
    return h[:, None] * (w[:, None] * T0 + (1.0 - w[:, None]) * T1)


def mean_distance_to(
    queries: torch.Tensor, points: torch.Tensor, candidates: torch.Tensor, own: torch.Tensor
) -> torch.Tensor:
    """Mean Euclidean distance from each query to its candidates but one.

    Left out is the query's own entry when it is listed, otherwise the last
    candidate (candidates sorted by increasing distance, one more than the k
    averaged). Differentiable in ``queries``; computed in their dtype.

    Parameters
    ----------
    queries : Tensor of shape (P, dim)
    points : Tensor of shape (n_points, dim)
    candidates : Tensor of shape (P, k + 1), int64
        Indices into ``points``, nearest first.
    own : Tensor of shape (P,), int64
        Index of each query's own entry in ``points``, or -1.

    Returns
    -------
    distances : Tensor of shape (P,)
    """
    k = candidates.shape[1] - 1
    is_own = candidates == own[:, None]
    drop = torch.where(is_own.any(dim=1), is_own.int().argmax(dim=1), k)
    keep = torch.ones_like(is_own)
    keep[torch.arange(len(drop), device=drop.device), drop] = False
    chosen = candidates[keep].reshape(-1, k)
    diff = queries[:, None, :] - points.to(queries.dtype)[chosen]
    squared = (diff * diff).sum(dim=2)
    # the norm's gradient at a zero distance (a duplicate row) is taken as 0
    positive = squared > 0
    dist = torch.where(positive, torch.where(positive, squared, 1.0).sqrt(), 0.0)
    return dist.mean(dim=1)


def frame_like(values: np.ndarray, X: Any) -> Any:
    """``values`` as a pandas DataFrame with ``X``'s index and columns when ``X``
    is one; any other ``X`` gives ``values`` back as they are."""
    if not (hasattr(X, "iloc") and hasattr(X, "columns")):
        return values
    import pandas as pd

    return pd.DataFrame(values, index=X.index, columns=X.columns)
