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
from joblib import Parallel, delayed
from scipy.special import ndtri

from .._utils.runtime import make_generator, seed_of, to_tensor, usable_device
from .kernels import (
    KernelFit,
    excess_seeding,
    held_widths,
    kmeans_plus_plus,
    pooled_neighbours,
    random_rows,
    scale_widths,
    train_kernels,
    value_histogram,
    width_schedule,
)
from .._utils.preprocessing import InputTransform

# reference calibration draws pseudo-data of the size of X from X_ref
REFERENCE_MIN_RATIO = 5
# synthetic reference: size relative to the data, and bounds
SYNTH_RATIO, SYNTH_MIN, SYNTH_MAX = 5, 1000, 50_000
# null toys trained together in one tensor program (and shipped to a worker
# together); fixed, so that results do not depend on n_jobs
TOY_BATCH = 25
# rows used to measure the typical distance that sets the width scale
_DISTANCE_ROWS = 1000
CALIBRATIONS = ("permutation", "reference")
# levels of f (over [-clip, clip]) at which the toys' per-row excesses are counted
N_EXCESS_LEVELS = 1001
# init="excess": candidate rows for the seeds, and how many of each one's
# nearest pooled rows its excess is summed over
EXCESS_CANDIDATES, EXCESS_NEIGHBOURS = 2000, 20
# total data weight below which the loss's gradients shrink towards Adam's
# epsilon (1e-8) and the kernels stop training; above which float32 overflows
_MIN_TOTAL_WEIGHT, _MAX_TOTAL_WEIGHT = 1e-3, 1e30


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
    init: str = "excess"
    preprocessing: str = "standard"
    positive_amplitudes: bool = False
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
    # the null toys' excesses f over their own data rows at the selected
    # width, pooled over toys: weighted count of rows with f >= each level,
    # and the weight of all of them
    excess_levels: np.ndarray | None = None  # (G,)
    null_excess_counts: np.ndarray | None = None  # (G,)
    null_excess_total: float | None = None


def synthetic_reference(
    X: np.ndarray, w: np.ndarray, calibration: str | None, rng: np.random.Generator
) -> np.ndarray:
    """A Gaussian with the weighted mean and covariance of X.

    ``max(1000, 5 * sum(w))`` rows, at most 50,000 unless pseudo-data are
    drawn from it (``calibration="reference"``). Drawn through the
    correlation matrix, which rescaling a feature leaves unchanged, so that
    the same draws give the same sample in the scaled units (the detector's
    ranking does not depend on the units of the features).
    """
    total = float(w.sum())
    n = max(SYNTH_MIN, int(math.ceil(SYNTH_RATIO * total)))
    if calibration != "reference":
        n = min(n, SYNTH_MAX)
    mean = np.average(X, axis=0, weights=w)
    centred = X - mean
    std = np.sqrt(np.average(centred * centred, axis=0, weights=w))
    std = np.where(std > 0, std, 1.0)
    scaled = centred / std
    corr = (scaled * w[:, None]).T @ scaled / total
    vals, vecs = np.linalg.eigh(corr)
    root = vecs * np.sqrt(np.clip(vals, 0.0, None))
    return mean + (rng.standard_normal((n, X.shape[1])) @ root.T) * std


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


def check_sample(X: np.ndarray, w: np.ndarray, R: np.ndarray | None) -> None:
    """Raise a ``ValueError`` for values or weights the test cannot represent.

    The weights are frequencies: the statistic scales with them. A total
    data weight below 1e-3 leaves gradients near Adam's epsilon (the kernels
    would not move); above 1e30 the float32 loss overflows. Features so large
    that their squared deviations overflow float64 cannot be standardised.
    """
    total = float(w.sum())
    if not _MIN_TOTAL_WEIGHT <= total <= _MAX_TOTAL_WEIGHT:
        raise ValueError(
            f"sample_weight sums to {total:.3g}; SparKer treats weights as row "
            f"counts (t scales with them) and needs a total between "
            f"{_MIN_TOTAL_WEIGHT:g} and {_MAX_TOTAL_WEIGHT:g}. Rescale the weights, "
            "e.g. to a mean of 1 (sample_weight / sample_weight.mean())."
        )
    n_total = total + (0 if R is None else R.shape[0])
    # (x - mean)^2 summed over the rows must stay finite
    limit = 0.25 * math.sqrt(np.finfo(np.float64).max / max(n_total, 1.0))
    for name, A in (("X", X), ("X_ref", R)):
        if A is not None and A.size and float(np.abs(A).max()) > limit:
            raise ValueError(
                f"{name} holds values up to {float(np.abs(A).max()):.3g} in magnitude, "
                f"beyond {limit:.3g}: their squared deviations overflow float64, so "
                "they cannot be standardised. Rescale those features (e.g. divide "
                "by a power of ten) before fitting."
            )


def typical_distance(Z: torch.Tensor, w: torch.Tensor, gen: torch.Generator) -> float:
    """Median pairwise distance of up to 1,000 rows drawn with probability ~ w."""
    k = int(min(_DISTANCE_ROWS, int((w > 0).sum())))
    idx = torch.multinomial(w, k, replacement=False, generator=gen)
    med = float(torch.pdist(Z[idx].double()).median()) if k > 1 else 0.0
    return med if med > 0 and np.isfinite(med) else 1.0


def split_weights(
    omega: torch.Tensor, n_d: int, calibration: str | None, gen: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(data, reference) weights of one split, each of shape (N,).

    Rows ``:n_d`` of the pooled sample are data, the rest reference. With
    ``calibration`` None this is the observed split. A permutation toy
    relabels the pooled rows keeping the sizes; a reference toy draws
    pseudo-data of the data's size from the reference rows only (unit
    weights), the other reference rows serving as its reference.
    """
    N = omega.shape[0]
    is_data = torch.zeros(N, dtype=torch.bool, device=omega.device)
    if calibration is None:
        is_data[:n_d] = True
        is_ref = ~is_data
    elif calibration == "permutation":
        ranks = torch.rand(N, generator=gen, device=omega.device).argsort()
        is_data = ranks < n_d
        is_ref = ~is_data
    else:
        n_pseudo = max(int(round(float(omega[:n_d].sum()))), 1)
        ranks = torch.rand(N - n_d, generator=gen, device=omega.device).argsort()
        is_data[n_d:] = ranks < n_pseudo
        is_ref = ~is_data
        is_ref[:n_d] = False
    return omega * is_data, omega * is_ref


@dataclass(frozen=True)
class _Problem:
    """What every fit of one test shares, shipped once to each worker."""

    Z: np.ndarray  # pooled transformed sample, float32
    omega: np.ndarray  # base weights
    n_d: int
    options: SparKerOptions
    widths: np.ndarray
    stages: np.ndarray
    device: str
    # init="excess": candidate rows (C,), their neighbours and squared
    # distances (C, k)
    candidates: np.ndarray | None = None
    neighbours: np.ndarray | None = None
    sq_distances: np.ndarray | None = None


def _fit_splits(
    problem: _Problem,
    calibration: str | None,
    seeds: list[int],
    callback: Callable[[int, torch.Tensor], None] | None = None,
) -> tuple[KernelFit, torch.Tensor]:
    """Train the splits given by ``seeds`` (one per split) as one tensor program.

    Each split draws its weights and initial centres from its own generator,
    so its fit does not depend on which other splits share the program. Fits
    are ordered split by split, ``n_restarts`` each. Returns the fit and
    every fit's data weights (T, N).
    """
    opts = problem.options
    # a worker without the caller's GPU trains its toys on the CPU
    device = usable_device(torch.device(problem.device))
    Z = torch.from_numpy(problem.Z).to(device)
    omega = torch.from_numpy(problem.omega).to(device)
    gens = [make_generator(seed, device) for seed in seeds]
    splits_data, splits_ref, init = [], [], []
    for gen in gens:
        wd, wr = split_weights(omega, problem.n_d, calibration, gen)
        splits_data.append(wd.unsqueeze(0).repeat(opts.n_restarts, 1))
        splits_ref.append(wr.unsqueeze(0).repeat(opts.n_restarts, 1))
        if opts.init == "k-means++":
            init.append(kmeans_plus_plus(Z, splits_data[-1], opts.n_kernels, gen))
        elif opts.init == "random":
            init.append(random_rows(Z, splits_data[-1], opts.n_kernels, gen))
    reseed = None
    if opts.init == "excess":
        graph = [
            torch.from_numpy(a).to(device)
            for a in (problem.candidates, problem.neighbours, problem.sq_distances)
        ]

        # each scale seeded for its own width, where a kernel there would
        # explain the most excess: in high dimension kernels barely travel
        def reseed(width: float) -> torch.Tensor:
            return torch.cat([
                excess_seeding(Z, wd, wr, *graph, width, opts.n_kernels, gen)
                for wd, wr, gen in zip(splits_data, splits_ref, gens)
            ])

        init = [reseed(float(scale_widths(problem.widths, problem.stages)[0]))]
    w_data = torch.cat(splits_data)
    fit = train_kernels(
        Z,
        w_data,
        torch.cat(splits_ref),
        torch.cat(init),
        widths=problem.widths,
        stages=problem.stages,
        learning_rate=opts.learning_rate,
        clip=opts.amplitude_clip,
        positive=opts.positive_amplitudes,
        chunk_size=opts.chunk_size,
        # Adam steps every coordinate by ~lr, so a centre's step grows like
        # sqrt(d); hold it at its size in 8 dimensions
        center_lr=opts.learning_rate * min(1.0, math.sqrt(8.0 / Z.shape[1])),
        callback=callback,
        reseed=reseed,
    )
    return fit, w_data


def _toy_seeds(seeds: np.random.SeedSequence, n_toys: int) -> list[int]:
    """One seed per toy, from the toy's index alone (not from its batch or worker)."""
    return [
        seed_of(np.random.SeedSequence(seeds.entropy, spawn_key=(*seeds.spawn_key, 1, i)))
        for i in range(n_toys)
    ]


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
    n_jobs: int | None = None,
    callback: Callable[[int, torch.Tensor], None] | None = None,
    on_batch: Callable[[], None] | None = None,
) -> SparKerResult:
    """Fit the observed split of (X, w) against R and ``n_toys`` null toys; calibrate.

    ``X`` holds distinct data rows with positive weights ``w``; ``R`` the
    reference rows (unit weights), or None for a synthetic Gaussian reference
    (:func:`synthetic_reference`). ``calibration`` None (or ``n_toys`` 0)
    fits the observed split only. Every random draw comes from ``seeds``.

    The observed split is trained here; the toys are trained in batches of
    :data:`TOY_BATCH` through ``joblib.Parallel(n_jobs)``, so that a joblib
    backend (e.g. dask's) can spread them over workers. Each toy is seeded
    by its index and the batches are fixed, so the result does not depend on
    ``n_jobs`` or the backend. ``callback(step, loss)`` follows the observed
    fit; ``on_batch()`` is called as each toy batch returns.
    """
    if n_toys == 0:
        calibration = None
    check_sample(X, w, R)
    ends = held_widths(options.width_end, options.n_steps)
    rng = np.random.default_rng(seeds)
    distance_seed, observed_seed = (int(v) for v in rng.integers(2**31 - 1, size=2))
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
    scale = typical_distance(
        Z[scale_rows], omega[scale_rows], make_generator(distance_seed, device)
    )
    widths, stages = width_schedule(
        options.width_start * scale, ends * scale, options.n_steps, options.anneal_fraction
    )
    candidates = neighbours = sq_distances = None
    if options.init == "excess":
        # one neighbour graph of the pooled rows, whatever the labels, for
        # the observed split and every toy
        graph_seed = seed_of(np.random.SeedSequence(seeds.entropy, spawn_key=(*seeds.spawn_key, 2)))
        candidates, neighbours, sq_distances = (
            a.cpu().numpy()
            for a in pooled_neighbours(
                Z, omega, EXCESS_CANDIDATES, EXCESS_NEIGHBOURS,
                make_generator(graph_seed, device),
            )
        )
    problem = _Problem(
        Z.cpu().numpy(), omega.cpu().numpy(), n_d, options, widths, stages, str(device),
        candidates, neighbours, sq_distances,
    )
    observed, _ = _fit_splits(problem, None, [observed_seed], callback)
    losses, histories = [observed.loss.cpu().numpy().astype(np.float64)], [observed.history]
    excesses = []
    if calibration is not None:
        toy_seeds = _toy_seeds(seeds, n_toys)
        batches = [toy_seeds[i : i + TOY_BATCH] for i in range(0, n_toys, TOY_BATCH)]
        for loss, history, excess in Parallel(n_jobs=n_jobs, return_as="generator")(
            delayed(_toy_batch)(problem, calibration, batch) for batch in batches
        ):
            losses.append(loss)
            histories.append(history)
            excesses.append(excess)
            if on_batch is not None:
                on_batch()
    n_fits = 1 + (n_toys if calibration is not None else 0)
    S = options.n_restarts
    all_loss = np.concatenate(losses, axis=1)
    history = np.concatenate(histories, axis=1)

    # per scale: the best restart of every fit (observed = fit 0)
    loss = all_loss.reshape(len(ends), n_fits, S)
    best_np = loss.argmin(axis=2) + np.arange(n_fits) * S
    stats = -2.0 * loss.min(axis=2)
    scale_p = upper_tail_ranks(stats)
    # t standardised per width over all fits (observed and toys alike)
    z = (stats - stats.mean(1, keepdims=True)) / np.maximum(stats.std(1, keepdims=True), 1e-12)
    chosen = int(np.lexsort((-z[:, 0], scale_p[:, 0]))[0]) if calibration else len(ends) - 1
    obs = int(best_np[chosen, 0])  # the observed fit's best restart
    pvalue = zscore = None
    levels = excess_levels(options.amplitude_clip)
    if calibration is not None:
        # the histograms hold the toys' columns of all_loss (past the observed S)
        hist = np.concatenate(excesses, axis=1)[chosen, best_np[chosen, 1:] - S].sum(0)
        # counts[j + 1]: weighted toy data rows with f >= levels[j]; counts[0]: all
        counts = np.cumsum(hist[::-1])[::-1]
        # min-p over widths, calibrated by the same toys; ties in min-p
        # (several fits topping one width each) go by the largest z
        min_p, max_z = scale_p.min(axis=0), z.max(axis=0)
        as_extreme = (min_p < min_p[0]) | ((min_p == min_p[0]) & (max_z >= max_z[0]))
        pvalue = float(np.mean(as_extreme))
        zscore = float(ndtri(1.0 - pvalue))
    calibrated = calibration is not None
    centers = observed.centers[chosen, obs].detach().to("cpu", torch.float64)
    return SparKerResult(
        transform=transform,
        centers=centers,
        data_centers=transform.inverse_transform(centers.numpy()),
        amplitudes=observed.amplitudes[chosen, obs].detach().to("cpu", torch.float64),
        width=float(observed.widths[chosen]),
        widths=observed.widths.copy(),
        statistic=float(stats[chosen, 0]),
        scale_statistics=stats[:, 0].copy(),
        pvalue=pvalue,
        zscore=zscore,
        scale_pvalues=scale_p[:, 0].copy() if calibrated else None,
        null_statistics=stats[chosen, 1:].copy() if calibrated else None,
        null_scale_statistics=stats[:, 1:].T.copy() if calibrated else None,
        excess_levels=levels if calibrated else None,
        null_excess_counts=counts[1:] if calibrated else None,
        null_excess_total=float(counts[0]) if calibrated else None,
        history={
            "loss": history[:, obs].copy(),
            "width": widths,
            "null_loss": history[:, best_np[-1, 1:]].copy() if calibrated else None,
        },
    )


def excess_levels(clip: float) -> np.ndarray:
    """The levels of f at which the toys' per-row excesses are counted."""
    return np.linspace(-clip, clip, N_EXCESS_LEVELS)


def _toy_batch(
    problem: _Problem,
    calibration: str,
    seeds: list[int],
    levels: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A batch of toys on a worker: only their losses, loss histories and
    excess histograms (S, T, G + 1) travel back, not their kernels.

    A toy's excess histogram counts its data rows (weighted) by the f of its
    kept kernels at each held width, in bins between ``levels`` (default:
    :func:`excess_levels` of the clip): the null distribution of the per-row
    excess against which rows of the observed data are tested.
    """
    if levels is None:
        levels = excess_levels(problem.options.amplitude_clip)
    with torch.no_grad():
        fit, w_data = _fit_splits(problem, calibration, seeds)
        Z = torch.from_numpy(problem.Z).to(w_data.device)
        grid = torch.from_numpy(levels).to(w_data.device)
        excess = np.stack(
            [
                value_histogram(
                    Z,
                    fit.centers[s],
                    fit.amplitudes[s],
                    float(width),
                    w_data,
                    grid,
                    problem.options.chunk_size,
                ).cpu().numpy()
                for s, width in enumerate(fit.widths)
            ]
        )
    return fit.loss.cpu().numpy().astype(np.float64), fit.history, excess
