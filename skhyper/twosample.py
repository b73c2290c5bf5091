"""The SparKer two-sample test: observed fit, null toys and calibration in one place.

:func:`run_sparker` takes a weighted data sample and a reference, scales
them, trains the observed split and every null toy as one batched tensor
program (:mod:`skhyper.kernels`), and calibrates ``t`` at each held width
with the min-p rule. :class:`~skhyper.SparKerDetector` and
:func:`skhyper.stats.sparker_test` both call it. Nothing here knows about
scikit-learn.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import ndtri

from ._torch import make_generator, to_tensor
from .kernels import (
    held_widths,
    kmeans_plus_plus,
    random_rows,
    train_kernels,
    width_schedule,
)
from .preprocessing import InputTransform

# reference calibration draws pseudo-data of the size of X from X_ref
REFERENCE_MIN_RATIO = 5
# synthetic reference: size relative to the data, and bounds
SYNTH_RATIO, SYNTH_MIN, SYNTH_MAX = 5, 1000, 50_000
# rows used to measure the typical distance that sets the width scale
_DISTANCE_ROWS = 1000
CALIBRATIONS = ("permutation", "reference")


@dataclass(frozen=True)
class SparKerOptions:
    """The training settings of one test (the estimator's parameters)."""

    n_kernels: int = 8
    n_steps: int = 100
    learning_rate: float = 0.15
    amplitude_clip: float = 5.0
    width_start: float = 1.0
    width_end: float | tuple[float, ...] = (0.6, 0.1)
    anneal_fraction: float = 0.5
    n_restarts: int = 1
    init: str = "k-means++"
    preprocessing: str = "standard"
    chunk_size: int = 4096


@dataclass(frozen=True)
class SparKerResult:
    """Everything one test produces. Kernel centres are in the transformed space."""

    transform: InputTransform
    centers: torch.Tensor  # (M, d), float64, CPU, transformed space
    data_centers: np.ndarray  # (M, d), in the units of the data
    amplitudes: torch.Tensor  # (M,)
    width: float
    widths: np.ndarray  # (S,)
    statistic: float
    scale_statistics: np.ndarray  # (S,)
    pvalue: float | None
    zscore: float | None
    scale_pvalues: np.ndarray | None  # (S,)
    null_statistics: np.ndarray | None  # (K,)
    null_scale_statistics: np.ndarray | None  # (K, S)
    history: dict


def synthetic_reference(
    X: np.ndarray, w: np.ndarray, calibration: str | None, rng: np.random.Generator
) -> np.ndarray:
    """A Gaussian with the weighted mean and covariance of X.

    ``max(1000, 5 * sum(w))`` rows, at most 50,000 unless pseudo-data are
    drawn from it (``calibration="reference"``).
    """
    total = float(w.sum())
    n = max(SYNTH_MIN, int(math.ceil(SYNTH_RATIO * total)))
    if calibration != "reference":
        n = min(n, SYNTH_MAX)
    mean = np.average(X, axis=0, weights=w)
    centred = X - mean
    cov = (centred * w[:, None]).T @ centred / total
    vals, vecs = np.linalg.eigh(cov)
    root = vecs * np.sqrt(np.clip(vals, 0.0, None))
    return mean + rng.standard_normal((n, X.shape[1])) @ root.T


def upper_tail_ranks(stats: np.ndarray) -> np.ndarray:
    """``#{j: t[s, j] >= t[s, i]} / n`` for every scale s and fit i, shape (S, n).

    Over the observed fit and its toys together, so that under the null all
    of them are exchangeable (for the observed fit, the usual permutation
    p-value ``(1 + #{null >= t}) / (1 + K)``).
    """
    n = stats.shape[1]
    out = np.empty_like(stats)
    for s, row in enumerate(stats):
        out[s] = (n - np.searchsorted(np.sort(row), row, side="left")) / n
    return out


def typical_distance(Z: torch.Tensor, w: torch.Tensor, gen: torch.Generator) -> float:
    """Median pairwise distance of up to 1,000 rows drawn with probability ~ w."""
    k = int(min(_DISTANCE_ROWS, int((w > 0).sum())))
    idx = torch.multinomial(w, k, replacement=False, generator=gen)
    med = float(torch.pdist(Z[idx].double()).median()) if k > 1 else 0.0
    return med if med > 0 and np.isfinite(med) else 1.0


def toy_weights(
    omega: torch.Tensor, n_d: int, n_toys: int, calibration: str | None, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """(data, reference) weights of shape (1 + n_toys, N); row 0 is the observed split.

    Rows ``:n_d`` of the pooled sample are data, the rest reference.
    Permutation toys relabel the pooled rows keeping the sizes; reference
    toys draw pseudo-data of the data's size from the reference rows only.
    """
    N = omega.shape[0]
    is_data = torch.zeros(1 + n_toys, N, dtype=torch.bool, device=omega.device)
    is_data[0, :n_d] = True
    is_ref = ~is_data
    if calibration == "permutation":
        ranks = torch.rand(n_toys, N, generator=gen, device=omega.device).argsort(1)
        is_data[1:] = ranks < n_d
        is_ref[1:] = ~is_data[1:]
    elif calibration == "reference":
        n_r = N - n_d
        n_pseudo = max(int(round(float(omega[:n_d].sum()))), 1)
        ranks = torch.rand(n_toys, n_r, generator=gen, device=omega.device).argsort(1)
        is_data[1:, n_d:] = ranks < n_pseudo
        is_ref[1:, :n_d] = False
        is_ref[1:, n_d:] = ~is_data[1:, n_d:]
    # toys' pseudo-data from the reference carry unit weights
    return omega * is_data, omega * is_ref


def run_sparker(
    X: np.ndarray,
    w: np.ndarray,
    R: np.ndarray | None,
    options: SparKerOptions,
    *,
    calibration: str | None,
    n_toys: int,
    device: torch.device,
    seeds: np.random.SeedSequence,
    callback: Callable[[int, torch.Tensor], None] | None = None,
) -> SparKerResult:
    """Fit the observed split of (X, w) against R and ``n_toys`` null toys; calibrate.

    ``X`` holds distinct data rows with positive weights ``w``; ``R`` the
    reference rows (unit weights), or None for a synthetic Gaussian reference
    (:func:`synthetic_reference`). ``calibration`` None (or ``n_toys`` 0)
    fits the observed split only. Every random draw comes from ``seeds``.
    """
    if n_toys == 0:
        calibration = None
    ends = held_widths(options.width_end, options.n_steps)
    rng = np.random.default_rng(seeds)
    generator = make_generator(int(rng.integers(2**31 - 1)), device)
    if R is None:
        R = synthetic_reference(X, w, calibration, rng)
    if calibration == "reference":
        n_pseudo = max(int(round(w.sum())), 1)
        if R.shape[0] < REFERENCE_MIN_RATIO * n_pseudo:
            raise ValueError(
                f"X_ref has {R.shape[0]} rows, too few for calibration='reference' "
                f"with {n_pseudo} data rows: it needs at least "
                f"{REFERENCE_MIN_RATIO} times as many reference rows. Use "
                "calibration='permutation' or a larger X_ref."
            )
    pooled = np.vstack([X, R])
    base_w = np.concatenate([w, np.ones(R.shape[0])])
    n_d = X.shape[0]
    if calibration == "reference":
        transform = InputTransform(options.preprocessing, R, np.ones(R.shape[0]))
        scale_rows = slice(n_d, None)
    else:
        transform = InputTransform(options.preprocessing, pooled, base_w)
        scale_rows = slice(0, None)
    Z = to_tensor(transform.transform(pooled), device)
    omega = to_tensor(base_w, device)
    scale = typical_distance(Z[scale_rows], omega[scale_rows], generator)

    w_data, w_ref = toy_weights(omega, n_d, n_toys, calibration, generator)
    n_fits = w_data.shape[0]
    S = options.n_restarts
    w_data = w_data.repeat_interleave(S, dim=0)
    w_ref = w_ref.repeat_interleave(S, dim=0)
    seed_rows = kmeans_plus_plus if options.init == "k-means++" else random_rows
    init = seed_rows(Z, w_data, options.n_kernels, generator)
    widths, stages = width_schedule(
        options.width_start * scale, ends * scale, options.n_steps, options.anneal_fraction
    )
    fit = train_kernels(
        Z,
        w_data,
        w_ref,
        init,
        widths=widths,
        stages=stages,
        learning_rate=options.learning_rate,
        clip=options.amplitude_clip,
        chunk_size=options.chunk_size,
        # Adam steps every coordinate by ~lr, so a centre's step grows like
        # sqrt(d); hold it at its size in 8 dimensions
        center_lr=options.learning_rate * min(1.0, math.sqrt(8.0 / Z.shape[1])),
        callback=callback,
    )

    # per scale: the best restart of every fit (observed = fit 0)
    loss = fit.loss.view(len(ends), n_fits, S)
    best = loss.argmin(dim=2) + torch.arange(n_fits, device=loss.device) * S
    stats = (-2.0 * loss.min(dim=2).values).cpu().numpy().astype(np.float64)
    best_np = best.cpu().numpy()
    scale_p = upper_tail_ranks(stats)
    # t standardised per width over all fits (observed and toys alike)
    z = (stats - stats.mean(1, keepdims=True)) / np.maximum(stats.std(1, keepdims=True), 1e-12)
    chosen = int(np.lexsort((-z[:, 0], scale_p[:, 0]))[0]) if calibration else len(ends) - 1
    obs = int(best_np[chosen, 0])
    pvalue = zscore = None
    if calibration is not None:
        # min-p over widths, calibrated by the same toys; ties in min-p
        # (several fits topping one width each) go by the largest z
        min_p, max_z = scale_p.min(axis=0), z.max(axis=0)
        as_extreme = (min_p < min_p[0]) | ((min_p == min_p[0]) & (max_z >= max_z[0]))
        pvalue = float(np.mean(as_extreme))
        zscore = float(ndtri(1.0 - pvalue))
    calibrated = calibration is not None
    centers = fit.centers[chosen, obs].detach().to("cpu", torch.float64)
    return SparKerResult(
        transform=transform,
        centers=centers,
        data_centers=transform.inverse_transform(centers.numpy()),
        amplitudes=fit.amplitudes[chosen, obs].detach().to("cpu", torch.float64),
        width=float(fit.widths[chosen]),
        widths=fit.widths.copy(),
        statistic=float(stats[chosen, 0]),
        scale_statistics=stats[:, 0].copy(),
        pvalue=pvalue,
        zscore=zscore,
        scale_pvalues=scale_p[:, 0].copy() if calibrated else None,
        null_statistics=stats[chosen, 1:].copy() if calibrated else None,
        null_scale_statistics=stats[:, 1:].T.copy() if calibrated else None,
        history={
            "loss": fit.history[:, obs].copy(),
            "width": widths,
            "null_loss": fit.history[:, best_np[-1, 1:]].copy() if calibrated else None,
        },
    )
