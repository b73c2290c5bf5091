"""The SparKer two-sample test: prepare, fit the observed split and the toys, calibrate.

:func:`run_sparker` takes a weighted data sample and a reference checked by
:func:`.options.validate_samples` and runs the test in three steps:
:func:`prepare_test` scales the samples and fixes what every fit shares
(:class:`Setup`); :func:`fit_observed` and :func:`fit_toys` train the
observed split and the null toys, each batch of toys as one tensor program
(:mod:`.kernels`); :func:`calibrate` ranks ``t`` at each held width, applies
the min-p rule and assembles the :class:`SparKerResult`.
:class:`~skhyper.SparKerDetector` and :func:`skhyper.stats.sparker_test`
both call :func:`run_sparker`. Nothing here knows about scikit-learn.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from joblib import Parallel, delayed
from scipy.special import ndtri

from .._utils.preprocessing import InputTransform, moments
from .._utils.progress import Progress
from .._utils.runtime import make_generator, seed_of, to_tensor, usable_device
from .kernels import (
    KernelEnsemble,
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
from .options import SparKerOptions

# reference calibration draws pseudo-data of the size of X from X_ref
REFERENCE_MIN_RATIO = 5
# synthetic reference: size relative to the data, and bounds
SYNTH_RATIO, SYNTH_MIN, SYNTH_MAX = 5, 1000, 50_000
# null toys trained together in one tensor program (and shipped to a worker
# together): at least TOY_BATCH, more while a batch's (row, kernel, toy)
# triples stay within BATCH_TRIPLES, so that small problems run as one
# program. Set by the problem's size alone, so results do not depend on n_jobs
TOY_BATCH, BATCH_TRIPLES = 25, 12_000_000
# rows used to measure the typical distance that sets the width scale
_DISTANCE_ROWS = 1000
# levels of f (over [-clip, clip]) at which the toys' per-row excesses are counted
N_EXCESS_LEVELS = 1001
# init="excess": candidate rows for the seeds, and how many of each one's
# nearest pooled rows its excess is summed over
EXCESS_CANDIDATES, EXCESS_NEIGHBOURS = 2000, 20
# transformed rows are clipped to this many scale units: farther is far at any
# width, and squared distances stay finite in float32
ROW_CLIP = 1e3


@dataclass(frozen=True)
class SparKerResult:
    """Everything one test produces. Kernel centres are in the transformed space."""

    transform: InputTransform
    kernels: KernelEnsemble  # the observed fit's, single (T = 1), float64, CPU
    data_centers: np.ndarray  # (M, d), in the units of the data
    amplitudes: np.ndarray  # (M,)
    width: float
    widths: np.ndarray  # (S,) the held widths (scales)
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
    # the observed fit's centres left the clipped range of the rows (a learning
    # rate too large for the data), or its loss is not finite
    diverged: bool = False


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
    # exact moments in tiny or huge units too (squares that would underflow)
    mean, std, _ = moments(X, w)
    std = np.where(std > 0, std, 1.0)
    scaled = (X - mean) / std
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
    splits_data, splits_ref = [], []
    for gen in gens:
        wd, wr = split_weights(omega, problem.n_d, calibration, gen)
        splits_data.append(wd.unsqueeze(0).repeat(opts.n_restarts, 1))
        splits_ref.append(wr.unsqueeze(0).repeat(opts.n_restarts, 1))
    w_data, w_ref = torch.cat(splits_data), torch.cat(splits_ref)

    def uniforms() -> torch.Tensor:
        # each split's seeding draws from its own generator (T, M)
        return torch.cat([
            torch.rand(opts.n_restarts, opts.n_kernels, generator=gen, device=device)
            for gen in gens
        ])

    reseed = None
    if opts.init == "excess":
        graph = [
            torch.from_numpy(a).to(device)
            for a in (problem.candidates, problem.neighbours, problem.sq_distances)
        ]

        # each scale seeded for its own width, where a kernel there would
        # explain the most excess: in high dimension kernels barely travel
        def reseed(width: float) -> torch.Tensor:
            return excess_seeding(Z, w_data, w_ref, *graph, width, uniforms())

        init = reseed(float(scale_widths(problem.widths, problem.stages)[0]))
    elif opts.init == "k-means++":
        init = kmeans_plus_plus(Z, w_data, uniforms())
    else:
        init = random_rows(Z, w_data, uniforms())
    fit = train_kernels(
        Z,
        w_data,
        w_ref,
        init,
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


@dataclass(frozen=True)
class Setup:
    """A prepared test (:func:`prepare_test`): the shared problem and the seeds."""

    problem: _Problem
    transform: InputTransform
    calibration: str | None  # None when no toys are trained
    observed_seed: int
    toy_seeds: list[int]


@dataclass(frozen=True)
class ToyFits:
    """The null toys' results, fits ordered toy by toy, ``n_restarts`` each (F fits)."""

    loss: np.ndarray  # (S, F) lowest loss at each held width
    history: np.ndarray  # (n_steps, F)
    excess: np.ndarray  # (S, F, G + 1) histograms of f over each fit's data rows


def prepare_test(
    X: np.ndarray,
    w: np.ndarray,
    R: np.ndarray | None,
    options: SparKerOptions,
    device: torch.device,
    seeds: np.random.SeedSequence,
) -> Setup:
    """Scale the samples, set the width schedule and draw every seed of the test.

    ``R`` None draws a synthetic Gaussian reference
    (:func:`synthetic_reference`). Under ``calibration="reference"`` the
    transform and the width scale come from the reference rows, otherwise
    from the pooled rows. ``init="excess"`` also builds the pooled rows'
    neighbour graph, shared by the observed split and every toy.
    """
    calibration = options.calibration if options.n_toys > 0 else None
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
        transform = InputTransform(options.preprocessing, R, np.ones(R.shape[0]), clip=ROW_CLIP)
        scale_rows = slice(n_d, None)
    else:
        transform = InputTransform(options.preprocessing, pooled, base_w, clip=ROW_CLIP)
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
    toy_seeds = _toy_seeds(seeds, options.n_toys) if calibration is not None else []
    return Setup(problem, transform, calibration, observed_seed, toy_seeds)


def fit_observed(
    setup: Setup, callback: Callable[[int, torch.Tensor], None] | None = None
) -> KernelFit:
    """Train the observed split (``n_restarts`` fits); ``callback(step, loss)`` follows it."""
    observed, _ = _fit_splits(setup.problem, None, [setup.observed_seed], callback)
    return observed


def toy_batch_size(problem: _Problem) -> int:
    """Null toys per tensor program: :data:`TOY_BATCH`, or more on small problems."""
    opts = problem.options
    triples = problem.Z.shape[0] * opts.n_kernels * opts.n_restarts
    return int(min(max(opts.n_toys, 1), max(TOY_BATCH, BATCH_TRIPLES // triples)))


def fit_toys(
    setup: Setup,
    n_jobs: int | None = None,
    on_batch: Callable[[], None] | None = None,
) -> ToyFits | None:
    """Train the null toys in batches (:func:`toy_batch_size`); None without calibration.

    The batches go through ``joblib.Parallel(n_jobs)``, so that a joblib
    backend (e.g. dask's) can spread them over workers. Each toy is seeded
    by its index and the batches are fixed, so the result does not depend on
    ``n_jobs`` or the backend. ``on_batch()`` is called as each batch returns.
    """
    if setup.calibration is None:
        return None
    seeds = setup.toy_seeds
    size = toy_batch_size(setup.problem)
    batches = [seeds[i : i + size] for i in range(0, len(seeds), size)]
    losses, histories, excesses = [], [], []
    for loss, history, excess in Parallel(n_jobs=n_jobs, return_as="generator")(
        delayed(_toy_batch)(setup.problem, setup.calibration, batch) for batch in batches
    ):
        losses.append(loss)
        histories.append(history)
        excesses.append(excess)
        if on_batch is not None:
            on_batch()
    return ToyFits(
        np.concatenate(losses, axis=1),
        np.concatenate(histories, axis=1),
        np.concatenate(excesses, axis=1),
    )


def calibrate(setup: Setup, observed: KernelFit, toys: ToyFits | None) -> SparKerResult:
    """Statistics, p-values and the selected kernels of a trained test.

    Per held width, each fit (the observed split is fit 0, then the toys)
    keeps its best restart, ``t = -2 min L``. Without toys the narrowest
    width is selected; with them, each width's rank p-value is taken over
    all fits, the observed min-p over widths is ranked among the fits'
    min-p values (ties by the largest standardised ``t``), and the width
    with the observed fit's smallest p-value is selected.
    """
    options = setup.problem.options
    n_restarts = options.n_restarts
    calibrated = toys is not None
    loss = observed.loss.cpu().numpy().astype(np.float64)
    history = observed.history
    if calibrated:
        loss = np.concatenate([loss, toys.loss], axis=1)
        history = np.concatenate([history, toys.history], axis=1)
    n_scales = loss.shape[0]
    n_fits = loss.shape[1] // n_restarts
    by_fit = loss.reshape(n_scales, n_fits, n_restarts)
    # per scale: the best restart of every fit, as a column of loss
    best = by_fit.argmin(axis=2) + np.arange(n_fits) * n_restarts
    stats = -2.0 * by_fit.min(axis=2)
    scale_p = upper_tail_ranks(stats)
    # t standardised per width over all fits (observed and toys alike)
    z = (stats - stats.mean(1, keepdims=True)) / np.maximum(stats.std(1, keepdims=True), 1e-12)
    chosen = int(np.lexsort((-z[:, 0], scale_p[:, 0]))[0]) if calibrated else n_scales - 1
    obs = int(best[chosen, 0])  # the observed fit's best restart
    pvalue = zscore = None
    if calibrated:
        # the histograms hold the toys' columns of loss (past the observed restarts)
        hist = toys.excess[chosen, best[chosen, 1:] - n_restarts].sum(0)
        # counts[j + 1]: weighted toy data rows with f >= levels[j]; counts[0]: all
        counts = np.cumsum(hist[::-1])[::-1]
        # min-p over widths, calibrated by the same toys; ties in min-p
        # (several fits topping one width each) go by the largest z
        min_p, max_z = scale_p.min(axis=0), z.max(axis=0)
        as_extreme = (min_p < min_p[0]) | ((min_p == min_p[0]) & (max_z >= max_z[0]))
        pvalue = float(np.mean(as_extreme))
        zscore = float(ndtri(1.0 - pvalue))
    reach = float(observed.centers[:, : options.n_restarts].detach().abs().max())
    # a centre may start on a clipped row and move a little past it
    diverged = not (np.all(np.isfinite(stats[:, 0])) and reach <= 10 * ROW_CLIP)
    centers = observed.centers[chosen, obs].detach().to("cpu", torch.float64)
    amplitudes = observed.amplitudes[chosen, obs].detach().to("cpu", torch.float64)
    transform = setup.transform
    return SparKerResult(
        transform=transform,
        kernels=KernelEnsemble.single(centers, amplitudes),
        data_centers=transform.inverse_transform(centers.numpy()),
        amplitudes=amplitudes.numpy().copy(),
        width=float(observed.widths[chosen]),
        widths=observed.widths.copy(),
        statistic=float(stats[chosen, 0]),
        scale_statistics=stats[:, 0].copy(),
        pvalue=pvalue,
        zscore=zscore,
        scale_pvalues=scale_p[:, 0].copy() if calibrated else None,
        null_statistics=stats[chosen, 1:].copy() if calibrated else None,
        null_scale_statistics=stats[:, 1:].T.copy() if calibrated else None,
        excess_levels=excess_levels(options.amplitude_clip) if calibrated else None,
        null_excess_counts=counts[1:] if calibrated else None,
        null_excess_total=float(counts[0]) if calibrated else None,
        diverged=diverged,
        history={
            "loss": history[:, obs].copy(),
            "width": setup.problem.widths,
            "null_loss": history[:, best[-1, 1:]].copy() if calibrated else None,
        },
    )


def run_sparker(
    X: np.ndarray,
    w: np.ndarray,
    R: np.ndarray | None,
    options: SparKerOptions,
    *,
    device: torch.device,
    seeds: np.random.SeedSequence,
    verbose: int = 0,
) -> SparKerResult:
    """The whole test: :func:`prepare_test`, the fits, :func:`calibrate`.

    ``X`` holds distinct data rows with positive weights ``w``; ``R`` the
    reference rows (unit weights), or None for a synthetic Gaussian
    reference. Without a calibration (or with no toys) only the observed
    split is fitted. Every random draw comes from ``seeds``. With
    ``verbose > 0`` a progress bar follows the observed fit's steps, then
    the toys' batches.
    """
    setup = prepare_test(X, w, R, options, device, seeds)
    n_batches = -(-options.n_toys // toy_batch_size(setup.problem))
    desc = f"SparKer (observed fit, then {n_batches} batches of toys)"
    with Progress(options.n_steps + n_batches, desc, verbose) as bar:

        def step_done(step: int, loss: torch.Tensor) -> None:
            # loss holds the observed fit's restarts
            bar.update(1, postfix=f"t={-2.0 * float(loss[: options.n_restarts].min()):.3g}")

        observed = fit_observed(setup, step_done)
        toys = fit_toys(setup, options.n_jobs, bar.update)
    return calibrate(setup, observed, toys)


def excess_levels(clip: float) -> np.ndarray:
    """The levels of f at which the toys' per-row excesses are counted."""
    return np.linspace(-clip, clip, N_EXCESS_LEVELS)


def _toy_batch(
    problem: _Problem, calibration: str, seeds: list[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A batch of toys on a worker: only their losses, loss histories and
    excess histograms (S, T, G + 1) travel back, not their kernels.

    A toy's excess histogram counts its data rows (weighted) by the f of its
    kept kernels at each held width, in bins between the levels of
    :func:`excess_levels`: the null distribution of the per-row excess
    against which rows of the observed data are tested.
    """
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
