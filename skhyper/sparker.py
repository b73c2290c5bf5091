"""SparKerDetector: a sparse kernel-ensemble likelihood-ratio test as an outlier detector."""

from __future__ import annotations

import dataclasses
import math
import warnings
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from sklearn.utils import gen_batches
from sklearn.utils.validation import check_array

from ._base import BaseTorchDetector, FitContext, fit_method, reject_sparse
from ._compat import Interval, StrOptions, _check_sample_weight, get_chunk_n_rows
from ._progress import Progress
from .kernels import KernelEnsemble
from .preprocessing import TRANSFORMS, canonical_sample
from .twosample import CALIBRATIONS, TOY_BATCH, SparKerOptions, run_sparker


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
    same procedure, in batches of 25 toys each trained as one tensor program
    (``n_jobs`` spreads the batches). Rows in regions
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
    n_jobs : int or None, default=None
        Workers for the null toys, which are trained in batches of 25
        through ``joblib.Parallel`` (None: one, unless inside a
        ``joblib.parallel_config`` context; -1: all cores). Under
        ``joblib.parallel_config(backend="dask")`` the batches run on a dask
        cluster. Each toy is seeded by its index, so results do not depend
        on ``n_jobs`` or the backend. The observed fit always runs here.
    contamination : "auto" or float in (0, 0.5], default="auto"
        ``"auto"`` puts ``offset_`` at ``-log 2``: a row is an outlier where
        the fitted data density exceeds twice the reference density. A float
        sets the offset at that quantile of the weighted training scores.
    batch_size : int, default=4096
        Rows per chunk in training (for a batch of toys at once) and inference.
    device : str or torch.device, default="auto"
        ``"auto"`` uses CUDA when available.
    random_state : int, RandomState instance or None, default=None
        Seeds the synthetic reference, initialisations and toys; an int gives
        bitwise-identical results on CPU.
    verbose : int, default=0
        Progress bar over steps (each step advances every toy) when > 0.

    Attributes
    ----------
    transform_ : skhyper.preprocessing.InputTransform
        The per-feature scaling (``preprocessing``) the kernels live behind.
    kernels_ : skhyper.kernels.KernelEnsemble
        The fitted ensemble in the transformed space (on the CPU), used by
        ``score_samples``.
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
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
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
        "calibration": [StrOptions(set(CALIBRATIONS)), None],
        "n_permutations": [Interval(Integral, 0, None, closed="left")],
        "preprocessing": [StrOptions(set(TRANSFORMS))],
        "n_jobs": [None, Integral],
    }

    # the kernels are small and score on the CPU wherever they were fitted
    _device_attributes: tuple[str, ...] = ()

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
        n_jobs: int | None = None,
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
        self.n_jobs = n_jobs
        self.contamination = contamination
        self.batch_size = batch_size
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # -- fit ------------------------------------------------------------------

    @fit_method
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
        return self._fit_validated(X, y, X_ref=X_ref, sample_weight=sample_weight)

    def _options(self) -> SparKerOptions:
        names = [f.name for f in dataclasses.fields(SparKerOptions) if f.name != "chunk_size"]
        return SparKerOptions(
            **{name: getattr(self, name) for name in names}, chunk_size=self.batch_size
        )

    def _fit(
        self, X: np.ndarray, y: Any, context: FitContext, *, X_ref: Any, sample_weight: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        sample_weight = _check_sample_weight(
            sample_weight, X, dtype=np.float64, ensure_non_negative=True
        )
        X_d, w_d = canonical_sample(np.asarray(X, dtype=np.float64), sample_weight)
        R = None if X_ref is None else self._validate_reference(X_ref, X.shape[0])
        n_toys = self.n_permutations if self.calibration is not None else 0

        n_batches = -(-n_toys // TOY_BATCH)
        desc = f"SparKer (observed fit, then {n_batches} batches of toys)"
        with Progress(self.n_steps + n_batches, desc, self.verbose) as bar:
            result = run_sparker(
                X_d,
                w_d,
                R,
                self._options(),
                calibration=self.calibration,
                n_toys=n_toys,
                device=context.device,
                seeds=context.seeds,
                n_jobs=self.n_jobs,
                on_batch=bar.update,
                callback=lambda step, loss: bar.update(
                    1, postfix=f"t={-2.0 * float(loss[: self.n_restarts].min()):.3g}"
                ),
            )

        self.transform_ = result.transform
        self.kernels_ = KernelEnsemble(result.centers.unsqueeze(0), result.amplitudes.unsqueeze(0))
        self.width_ = result.width
        self.widths_ = result.widths
        self.centers_ = result.data_centers
        self.amplitudes_ = result.amplitudes.numpy().copy()
        self.test_statistic_ = result.statistic
        self.scale_statistics_ = result.scale_statistics
        self.null_statistics_ = result.null_statistics
        self.null_scale_statistics_ = result.null_scale_statistics
        self.scale_pvalues_ = result.scale_pvalues
        self.pvalue_ = result.pvalue
        self.zscore_ = result.zscore
        self.history_ = result.history
        return -self._log_ratio(X), sample_weight

    def _validate_reference(self, X_ref: Any, n_samples: int) -> np.ndarray:
        reject_sparse(X_ref, "X_ref")
        R = check_array(X_ref, dtype=np.float64, ensure_min_samples=2, input_name="X_ref")
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
                stacklevel=7,
            )
        return np.array(R, dtype=np.float64, copy=True)

    # -- inference -----------------------------------------------------------

    def _log_ratio(self, X: np.ndarray) -> np.ndarray:
        M, d = self.kernels_.centers.shape[1:]
        # the (rows, kernels, features) differences dominate memory
        rows = get_chunk_n_rows(row_bytes=8 * M * d, max_n_rows=self.batch_size)
        out = np.empty(X.shape[0], dtype=np.float64)
        with torch.no_grad():
            # transformed batch by batch, so memory is bounded by the batch
            for sl in gen_batches(X.shape[0], rows):
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
            Rows to score, with the training features.

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
