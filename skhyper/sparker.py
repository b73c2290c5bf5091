"""SparKerDetector: a sparse kernel-ensemble likelihood-ratio test as an outlier detector."""

from __future__ import annotations

import math
import warnings
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from scipy.special import ndtr, ndtri
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _check_sample_weight, check_array

from ._base import BaseTorchDetector, reject_sparse, restore_on_failure
from ._progress import Progress
from ._torch import batch_slices, make_generator, to_tensor
from .kernels import (
    KernelEnsemble,
    kmeans_plus_plus,
    random_rows,
    train_kernels,
    width_schedule,
)

# reference calibration draws pseudo-data of the size of X from X_ref
REFERENCE_MIN_RATIO = 5
# unsupervised mode: size of the synthetic Gaussian reference
_SYNTH_RATIO, _SYNTH_MIN, _SYNTH_MAX = 5, 1000, 50_000
# rows used to measure the typical distance that sets the width scale
_DISTANCE_ROWS = 1000
# scoring keeps batch * kernels * features below this many float64s
_SCORE_ELEMENTS = 1 << 22


def canonical_sample(
    X: np.ndarray, sample_weight: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows (sorted) with summed weights, zero weights dropped.

    A weighted sample and the same sample with rows repeated (in any order)
    map to bit-identical arrays, so everything downstream agrees exactly.
    """
    keep = sample_weight > 0
    rows, inverse = np.unique(X[keep], axis=0, return_inverse=True)
    weights = np.bincount(inverse.ravel(), weights=sample_weight[keep])
    return rows, weights


def _weighted_quantiles(X: np.ndarray, w: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per-column weighted quantiles (Hazen plotting positions), shape (len(probs), d)."""
    out = np.empty((len(probs), X.shape[1]))
    total = w.sum()
    for j in range(X.shape[1]):
        order = np.argsort(X[:, j], kind="stable")
        col, wj = X[order, j], w[order]
        pos = (np.cumsum(wj) - 0.5 * wj) / total
        out[:, j] = np.interp(probs, pos, col)
    return out


def _upper_tail_ranks(stats: np.ndarray) -> np.ndarray:
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


class _InputTransform:
    """Standard, robust or quantile-normal scaling, fitted on a weighted sample."""

    def __init__(self, kind: str, X: np.ndarray, w: np.ndarray) -> None:
        self.kind = kind
        mean = np.average(X, axis=0, weights=w)
        std = np.sqrt(np.average((X - mean) ** 2, axis=0, weights=w))
        std[~(std > 0)] = 1.0
        if kind == "standard":
            self.loc, self.scale = mean, std
        elif kind == "robust":
            q25, q50, q75 = _weighted_quantiles(X, w, np.array([0.25, 0.5, 0.75]))
            iqr = (q75 - q25) / 1.3489795
            self.loc, self.scale = q50, np.where(iqr > 0, iqr, std)
        else:
            n_q = int(min(1000, X.shape[0]))
            self.probs = np.linspace(0.0, 1.0, n_q)
            self.quantiles = _weighted_quantiles(X, w, self.probs)
            self.eps = max(0.5 / w.sum(), 1e-7)

    def transform(self, X: np.ndarray) -> np.ndarray:
        if self.kind != "quantile":
            return (X - self.loc) / self.scale
        Z = np.empty(X.shape, dtype=np.float64)
        for j in range(X.shape[1]):
            q = self.quantiles[:, j]
            # average of up- and down-interpolation handles repeated quantiles
            u = 0.5 * (
                np.interp(X[:, j], q, self.probs)
                - np.interp(-X[:, j], -q[::-1], -self.probs[::-1])
            )
            Z[:, j] = ndtri(np.clip(u, self.eps, 1.0 - self.eps))
        return Z

    def inverse_transform(self, Z: np.ndarray) -> np.ndarray:
        if self.kind != "quantile":
            return Z * self.scale + self.loc
        X = np.empty(Z.shape, dtype=np.float64)
        for j in range(Z.shape[1]):
            X[:, j] = np.interp(ndtr(Z[:, j]), self.probs, self.quantiles[:, j])
        return X


class SparKerDetector(BaseTorchDetector):
    """Sparse kernel ensemble trained as a Neyman-Pearson two-sample test.

    SparKer (Grosso et al. 2025, after NPLM) learns the log density ratio
    ``f(x) = log n_D(x) / (w n_R(x))`` between a data sample ``X`` and a
    nominal reference ``X_ref`` with a handful of competing Gaussian kernels
    (shared isotropic width, signed amplitudes)::

        f(x) = sum_k a_k softmax_k(l(x)) exp(l_k(x)),  l_k = -|x - mu_k|^2 / (2 sigma^2)

    by minimising the extended-likelihood loss
    ``L = w sum_R (exp(f) - 1) - sum_D f`` with full-batch Adam while the
    width is annealed from broad to narrow and then held. The statistic is
    ``t = -2 min L``; its p-value comes from null toys (label permutations of
    the pooled sample, or pseudo-data drawn from the reference) trained by the
    same procedure, all toys as one batched tensor program. Rows in regions
    where ``X`` is over-dense relative to the reference get a large ``f`` and
    so a low ``score_samples``.

    **Reference mode** (``fit(X, X_ref=R)``) is the intended use. Without
    ``X_ref`` the reference is *synthetic*: a Gaussian with the weighted mean
    and covariance of ``X`` (``max(1000, 5 * sum(sample_weight))`` rows, at
    most 50,000 under permutation calibration). The detector then flags rows
    in places where ``X`` is denser than its Gaussian fit (clusters, spikes);
    isolated far-out rows are *not* flagged in that mode.

    Parameters
    ----------
    n_kernels : int, default=8
        Number of kernels M.
    n_steps : int, default=100
        Full-batch Adam steps.
    learning_rate : float, default=0.15
        Adam learning rate (inputs are transformed first). Adam moves an
        amplitude by about this much per step, so it sets how fast the
        amplitudes can grow to ``amplitude_clip`` within a held phase.
    amplitude_clip : float, default=5.0
        Amplitudes are clipped to ``[-amplitude_clip, amplitude_clip]`` after
        each step; ``|f| <= amplitude_clip``.
    width_start : float, default=1.0
        Kernel width at the start of annealing, in units of the median
        pairwise distance of the (transformed) sample that sets the scaling,
        so the widths need no retuning across data sets.
    width_end : float or tuple of float, default=(0.6, 0.1)
        Width(s) held after annealing, in the same units. With several
        (a multi-scale test), the steps are split evenly between them, broad
        to narrow: the width falls to each in turn and is held there, ``t``
        is recorded at each, and the p-value is the min-p over the widths
        calibrated by the same null toys. Broad widths find anomalies spread
        along some directions (e.g. a shifted mass window), narrow ones small
        dense bumps. The fitted kernels are those of the width with the
        smallest p-value.
    anneal_fraction : float, default=0.5
        Fraction of each width's steps over which the width falls
        geometrically to it; it is then held, and the parameters with the
        lowest loss while held are kept.
    n_restarts : int, default=1
        Independent initialisations per fit (observed and toys alike, batched);
        the lowest loss is kept.
    init : {"k-means++", "random"}, default="k-means++"
        Initial centres: weighted k-means++ seeding on the data rows, or
        random data rows (the plain start). Amplitudes start at zero.
    calibration : {"permutation", "reference"} or None, default="permutation"
        How the null distribution of ``t`` is sampled. ``"permutation"`` pools
        ``X`` and ``X_ref``, standardises on the pool and relabels rows with
        the sizes kept (valid for any sizes). ``"reference"`` draws pseudo-data
        of ``X``'s size from ``X_ref`` (the rest serving as reference) and
        scales by ``X_ref``; it needs ``len(X_ref) >= 5 * len(X)``. ``None``
        fits the observed split only.
    n_permutations : int, default=100
        Number of null toys K; 0 disables calibration.
    preprocessing : {"standard", "robust", "quantile"}, default="standard"
        Per-feature input transform, fitted on the pooled sample (or on the
        reference under ``"reference"`` calibration): mean/std, median/IQR,
        or weighted-quantile mapping to standard-normal scores. The last two
        keep single rows in heavy tails from dominating ``t``.
    contamination : "auto" or float in (0, 0.5], default="auto"
        ``"auto"`` puts ``offset_`` at ``-log 2``: a row is an outlier where
        the fitted data density exceeds twice the reference density. A float
        sets the offset at that quantile of the weighted training scores.
    batch_size : int, default=4096
        Rows per chunk in training (for all toys at once) and inference.
    device : str or torch.device, default="auto"
        ``"auto"`` uses CUDA when available.
    random_state : int, RandomState instance or None, default=None
        Seeds the synthetic reference, initialisations and toys; an int gives
        bitwise-identical results on CPU.
    verbose : int, default=0
        Progress bar over steps (each step advances every toy) when > 0.

    Attributes
    ----------
    centers_ : ndarray of shape (n_kernels, n_features)
        Kernel centres in the units of ``X``.
    amplitudes_ : ndarray of shape (n_kernels,)
        Signed amplitudes; positive where ``X`` is over-dense.
    width_ : float
        Width of the fitted kernels (the held width with the smallest
        p-value; without calibration, the narrowest) in the transformed space.
    widths_ : ndarray of shape (n_widths,)
        All held widths, broad to narrow, in the transformed space.
    test_statistic_ : float
        ``t = -2 min L`` of the observed split at ``width_``.
    scale_statistics_ : ndarray of shape (n_widths,)
        ``t`` of the observed split at each held width.
    pvalue_ : float or None
        With one held width ``(1 + #{t_null >= t}) / (1 + K)``; with several,
        the fraction of fits (observed and toys) whose smallest per-width
        p-value is below the observed one, or equal to it with a largest
        standardised ``t`` at least as large (min-p, ties broken by max-z).
        None when not calibrated.
    scale_pvalues_ : ndarray of shape (n_widths,) or None
        Each width's own permutation p-value, before the min-p correction.
    zscore_ : float or None
        ``Phi^-1(1 - pvalue_)``; None when not calibrated.
    null_statistics_ : ndarray of shape (n_permutations,) or None
        Statistics of the null toys at ``width_``; None when not calibrated.
    null_scale_statistics_ : ndarray of shape (n_permutations, n_widths) or None
        Statistics of the null toys at every held width.
    history_ : dict
        ``"loss"`` (per step, observed fit), ``"width"`` (per step) and
        ``"null_loss"`` (per step and toy, or None).
    offset_ : float
        ``decision_function = score_samples - offset_``.
    device_ : torch.device
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Defined only when ``X`` has string feature names.

    Notes
    -----
    The defaults were chosen by measuring power on planted Gaussian bumps
    and on CMS dimuon events (``doc/sparker.md`` gives the runs); power
    beside a classifier test and an MMD test is in ``doc/benchmarks.md``.

    ``X_ref`` is fit metadata. With metadata routing off, ``Pipeline`` and
    ``GridSearchCV`` pass it whole when its length differs from ``len(X)``;
    an ``X_ref`` with exactly ``len(X)`` rows would be sliced per fold, and
    ``fit`` warns about it. With routing on, request it with
    ``set_fit_request(X_ref=True)``. Transformers earlier in a ``Pipeline``
    do not transform ``X_ref``.

    Examples
    --------
    >>> import numpy as np
    >>> from skhyper import SparKerDetector
    >>> rng = np.random.default_rng(0)
    >>> R = rng.normal(size=(2000, 2))
    >>> X = np.vstack([rng.normal(size=(400, 2)),
    ...                rng.normal(2.0, 0.1, size=(40, 2))])
    >>> det = SparKerDetector(n_permutations=19, random_state=0).fit(X, X_ref=R)
    >>> det.pvalue_ <= 0.05
    True
    >>> det.predict([[2.0, 2.0], [0.0, -1.0]])
    array([-1,  1])
    """

    _parameter_constraints: dict = {
        **BaseTorchDetector._parameter_constraints,
        "n_kernels": [Interval(Integral, 1, None, closed="left")],
        "n_steps": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "amplitude_clip": [Interval(Real, 0, None, closed="neither")],
        "width_start": [Interval(Real, 0, None, closed="neither")],
        "width_end": [Interval(Real, 0, None, closed="neither"), tuple, list],
        "anneal_fraction": [Interval(Real, 0, 1, closed="right")],
        "n_restarts": [Interval(Integral, 1, None, closed="left")],
        "init": [StrOptions({"k-means++", "random"})],
        "calibration": [StrOptions({"permutation", "reference"}), None],
        "n_permutations": [Interval(Integral, 0, None, closed="left")],
        "preprocessing": [StrOptions({"standard", "robust", "quantile"})],
    }

    def __init__(
        self,
        *,
        n_kernels: int = 8,
        n_steps: int = 100,
        learning_rate: float = 0.15,
        amplitude_clip: float = 5.0,
        width_start: float = 1.0,
        width_end: float | tuple[float, ...] = (0.6, 0.1),
        anneal_fraction: float = 0.5,
        n_restarts: int = 1,
        init: str = "k-means++",
        calibration: str | None = "permutation",
        n_permutations: int = 100,
        preprocessing: str = "standard",
        contamination: str | float = "auto",
        batch_size: int = 4096,
        device: str | torch.device = "auto",
        random_state: Any = None,
        verbose: int = 0,
    ) -> None:
        self.n_kernels = n_kernels
        self.n_steps = n_steps
        self.learning_rate = learning_rate
        self.amplitude_clip = amplitude_clip
        self.width_start = width_start
        self.width_end = width_end
        self.anneal_fraction = anneal_fraction
        self.n_restarts = n_restarts
        self.init = init
        self.calibration = calibration
        self.n_permutations = n_permutations
        self.preprocessing = preprocessing
        self.contamination = contamination
        self.batch_size = batch_size
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # -- fit ------------------------------------------------------------------

    @restore_on_failure
    def fit(
        self,
        X: Any,
        y: Any = None,
        *,
        X_ref: Any = None,
        sample_weight: Any = None,
    ) -> SparKerDetector:
        """Fit the kernels to ``X`` against ``X_ref`` and calibrate ``t``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The data sample D.
        y : Ignored
        X_ref : array-like of shape (n_ref, n_features), default=None
            The nominal reference sample R. When None, a synthetic Gaussian
            reference is drawn (see the class docstring).
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the rows of ``X``; integer weights are equivalent to
            repeated rows.

        Returns
        -------
        self : SparKerDetector
        """
        self._validate_params()
        ends = self._held_widths()
        X = self._validate_fit_data(X)
        sample_weight = _check_sample_weight(
            sample_weight, X, dtype=np.float64, ensure_non_negative=True
        )
        device, seed = self._start_fit()
        rng = np.random.default_rng(seed)
        gen = make_generator(int(rng.integers(2**31 - 1)), device)
        X_d, w_d = canonical_sample(np.asarray(X, dtype=np.float64), sample_weight)
        n_toys = self.n_permutations if self.calibration is not None else 0
        calibration = self.calibration if n_toys > 0 else None

        if X_ref is None:
            R = self._synthetic_reference(X_d, w_d, calibration, rng)
        else:
            R = self._validate_reference(X_ref, X.shape[0])
        if calibration == "reference":
            n_pseudo = max(int(round(w_d.sum())), 1)
            if R.shape[0] < REFERENCE_MIN_RATIO * n_pseudo:
                raise ValueError(
                    f"X_ref has {R.shape[0]} rows, too few for calibration='reference' "
                    f"with {n_pseudo} data rows: it needs at least "
                    f"{REFERENCE_MIN_RATIO} times as many reference rows. Use "
                    "calibration='permutation' or a larger X_ref."
                )

        pooled = np.vstack([X_d, R])
        base_w = np.concatenate([w_d, np.ones(R.shape[0])])
        n_d = X_d.shape[0]
        if calibration == "reference":
            transform = _InputTransform(self.preprocessing, R, np.ones(R.shape[0]))
            scale_rows = slice(n_d, None)
        else:
            transform = _InputTransform(self.preprocessing, pooled, base_w)
            scale_rows = slice(0, None)
        Z = to_tensor(transform.transform(pooled), device)
        omega = to_tensor(base_w, device)
        scale = self._typical_distance(Z[scale_rows], omega[scale_rows], gen)

        w_data, w_ref = self._toy_weights(omega, n_d, n_toys, calibration, gen)
        n_fits = w_data.shape[0]
        S = self.n_restarts
        w_data = w_data.repeat_interleave(S, dim=0)
        w_ref = w_ref.repeat_interleave(S, dim=0)
        if self.init == "k-means++":
            init = kmeans_plus_plus(Z, w_data, self.n_kernels, gen)
        else:
            init = random_rows(Z, w_data, self.n_kernels, gen)
        widths, stages = width_schedule(
            self.width_start * scale, ends * scale, self.n_steps, self.anneal_fraction
        )
        desc = f"SparKer ({n_fits} fits x {S} restarts)"
        with Progress(self.n_steps, desc, self.verbose) as bar:
            result = train_kernels(
                Z,
                w_data,
                w_ref,
                init,
                widths=widths,
                stages=stages,
                learning_rate=self.learning_rate,
                clip=self.amplitude_clip,
                chunk_size=self.batch_size,
                # Adam steps every coordinate by ~lr, so a centre's step grows
                # like sqrt(d); hold it at its size in 8 dimensions
                center_lr=self.learning_rate * min(1.0, math.sqrt(8.0 / Z.shape[1])),
                callback=lambda step, loss: bar.update(
                    1, postfix=f"t={-2.0 * float(loss[:S].min()):.3g}"
                ),
            )

        # per scale: the best restart of every fit (observed = fit 0)
        loss = result.loss.view(len(ends), n_fits, S)
        best = loss.argmin(dim=2) + torch.arange(n_fits, device=loss.device) * S
        stats = (-2.0 * loss.min(dim=2).values).cpu().numpy().astype(np.float64)
        best_np = best.cpu().numpy()
        scale_p = _upper_tail_ranks(stats)
        # t standardised per width over all fits (observed and toys alike)
        z = (stats - stats.mean(1, keepdims=True)) / np.maximum(
            stats.std(1, keepdims=True), 1e-12
        )
        if calibration is not None:
            chosen = int(np.lexsort((-z[:, 0], scale_p[:, 0]))[0])
        else:
            chosen = len(ends) - 1
        obs = int(best_np[chosen, 0])
        centers_t = result.centers[chosen, obs].detach().to("cpu", torch.float64)
        amplitudes = result.amplitudes[chosen, obs].detach().to("cpu", torch.float64)

        self.device_ = device
        self.transform_ = transform
        self.kernels_ = KernelEnsemble(centers_t.unsqueeze(0), amplitudes.unsqueeze(0))
        self.width_ = float(result.widths[chosen])
        self.widths_ = result.widths.copy()
        self.centers_ = transform.inverse_transform(centers_t.numpy())
        self.amplitudes_ = amplitudes.numpy().copy()
        self.test_statistic_ = float(stats[chosen, 0])
        self.scale_statistics_ = stats[:, 0].copy()
        if calibration is not None:
            self.null_statistics_ = stats[chosen, 1:].copy()
            self.null_scale_statistics_ = stats[:, 1:].T.copy()
            self.scale_pvalues_ = scale_p[:, 0].copy()
            # min-p over widths, calibrated by the same toys; ties in min-p
            # (several fits topping one width each) go by the largest z
            min_p, max_z = scale_p.min(axis=0), z.max(axis=0)
            as_extreme = (min_p < min_p[0]) | ((min_p == min_p[0]) & (max_z >= max_z[0]))
            self.pvalue_ = float(np.mean(as_extreme))
            self.zscore_ = float(ndtri(1.0 - self.pvalue_))
        else:
            self.null_statistics_ = self.pvalue_ = self.zscore_ = None
            self.null_scale_statistics_ = self.scale_pvalues_ = None
        self.history_ = {
            "loss": result.history[:, obs].copy(),
            "width": widths,
            "null_loss": (
                result.history[:, best_np[-1, 1:]].copy() if n_toys and calibration else None
            ),
        }
        self._set_offset(-self._log_ratio(X_d), w_d)
        return self

    def _held_widths(self) -> np.ndarray:
        """``width_end`` as distinct widths, broad to narrow."""
        ends = np.atleast_1d(np.asarray(self.width_end, dtype=np.float64))
        if ends.ndim != 1 or ends.size == 0 or not np.all(np.isfinite(ends) & (ends > 0)):
            raise ValueError(
                f"width_end must be a positive number or a non-empty sequence of "
                f"positive numbers; got {self.width_end!r}."
            )
        ends = np.unique(ends)[::-1]
        if self.n_steps < ends.size:
            raise ValueError(
                f"n_steps={self.n_steps} is too few for {ends.size} held widths "
                "(width_end): each needs at least one step."
            )
        return ends

    def _validate_reference(self, X_ref: Any, n_samples: int) -> np.ndarray:
        reject_sparse(X_ref, "X_ref")
        R = check_array(
            X_ref, dtype=np.float64, ensure_min_samples=2, input_name="X_ref"
        )
        if R.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X_ref has {R.shape[1]} features, but X has {self.n_features_in_}: "
                "the reference must have the same features as the data."
            )
        if R.shape[0] == n_samples:
            warnings.warn(
                f"X_ref has exactly as many rows as X ({n_samples}). Under "
                "cross-validation scikit-learn slices such fit arguments per fold "
                "(with metadata routing off, and on), so each fold would see only "
                "part of the reference. Give the reference a different length "
                "(e.g. drop or add a row) if this fit runs inside a CV splitter.",
                UserWarning,
                stacklevel=4,
            )
        return np.array(R, dtype=np.float64, copy=True)

    def _synthetic_reference(
        self, X: np.ndarray, w: np.ndarray, calibration: str | None, rng: np.random.Generator
    ) -> np.ndarray:
        total = float(w.sum())
        n = max(_SYNTH_MIN, int(math.ceil(_SYNTH_RATIO * total)))
        if calibration != "reference":
            n = min(n, _SYNTH_MAX)
        mean = np.average(X, axis=0, weights=w)
        centred = X - mean
        cov = (centred * w[:, None]).T @ centred / total
        vals, vecs = np.linalg.eigh(cov)
        root = vecs * np.sqrt(np.clip(vals, 0.0, None))
        return mean + rng.standard_normal((n, X.shape[1])) @ root.T

    @staticmethod
    def _typical_distance(Z: torch.Tensor, w: torch.Tensor, gen: torch.Generator) -> float:
        n = Z.shape[0]
        k = int(min(_DISTANCE_ROWS, int((w > 0).sum())))
        idx = torch.multinomial(w, k, replacement=False, generator=gen)
        med = float(torch.pdist(Z[idx].double()).median()) if k > 1 else 0.0
        return med if med > 0 and np.isfinite(med) else 1.0

    @staticmethod
    def _toy_weights(
        omega: torch.Tensor,
        n_d: int,
        n_toys: int,
        calibration: str | None,
        gen: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(data, reference) weights of shape (1 + n_toys, N); row 0 is observed."""
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

    # -- inference -----------------------------------------------------------

    def _log_ratio(self, X: np.ndarray) -> np.ndarray:
        M, d = self.kernels_.centers.shape[1:]
        rows = max(1, min(self.batch_size, _SCORE_ELEMENTS // max(M * d, 1)))
        out = np.empty(X.shape[0], dtype=np.float64)
        with torch.no_grad():
            # transformed batch by batch, so memory is bounded by the batch
            for sl in batch_slices(X.shape[0], rows):
                Z = self.transform_.transform(np.asarray(X[sl], dtype=np.float64))
                out[sl] = self.kernels_(torch.from_numpy(Z), self.width_)[0].numpy()
        return out

    def score_samples(self, X: Any) -> np.ndarray:
        """Opposite of the learned log density ratio: ``-f(x)``.

        Rows where the data sample is over-dense relative to the reference
        score low.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        scores : ndarray of shape (n_samples,), dtype float64
        """
        X = self._validate_predict_data(X)
        return -self._log_ratio(X)

    def _auto_offset(self, train_scores: np.ndarray) -> float:
        return -math.log(2.0)

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags
