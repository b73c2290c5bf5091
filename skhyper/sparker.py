"""SparKerDetector: a sparse kernel-ensemble likelihood-ratio test as an outlier detector."""

from __future__ import annotations

import math
import warnings
from numbers import Real
from typing import Any

import numpy as np
import torch
from sklearn import config_context
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.utils import gen_batches
from sklearn.utils.validation import check_is_fitted, has_fit_parameter

from ._sparker.options import (
    DEFAULTS,
    PARAMETER_CONSTRAINTS,
    ScaleDominatedWarning,
    options_from_params,
    validate_samples,
    warn_if_diverged,
    warn_if_dominated,
)
from ._sparker.twosample import run_sparker
from ._utils.attribution import frame_like, integrated_gradients
from ._utils.base import BaseTorchDetector, FitContext, fit_context
from ._utils.compat import Interval, StrOptions, get_chunk_n_rows, validate_parameter_constraints
from ._utils.preprocessing import moments, weighted_quantiles
from ._utils.runtime import cpu_threads

__all__ = [
    "EqualLengthReferenceWarning",
    "NoReferenceWarning",
    "ReferenceFeatureNamesWarning",
    "ReferencePipeline",
    "ScaleDominatedWarning",
    "SparKerDetector",
    "make_reference_pipeline",
]


class NoReferenceWarning(UserWarning):
    """``SparKerDetector`` was fitted without ``X_ref``.

    Without a reference it compares ``X`` with a Gaussian fit of ``X`` and
    flags clumps (places where ``X`` is denser than that Gaussian), not
    isolated outliers: on scattered outliers it can rank them *below*
    chance. Silence it with
    ``warnings.filterwarnings("ignore", category=NoReferenceWarning)`` when
    clumps are what you look for.
    """


class EqualLengthReferenceWarning(UserWarning):
    """``X_ref`` has exactly as many rows as ``X``.

    scikit-learn's cross-validation slices fit arguments of the length of
    ``X`` per fold, so inside a CV splitter each fold would see only part of
    the reference. Give the reference a different length, or silence it
    with ``warnings.filterwarnings("ignore",
    category=EqualLengthReferenceWarning)`` outside cross-validation.
    """


class ReferenceFeatureNamesWarning(UserWarning):
    """One of ``X`` and ``X_ref`` has feature names and the other has not.

    The columns of ``X_ref`` are then taken to be those of ``X``, in the
    same order.
    """


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
    isolated far-out rows are *not* flagged in that mode, and scattered
    outliers, which widen the Gaussian, can even rank as more normal than
    the bulk. ``fit`` without ``X_ref`` warns with a
    :class:`NoReferenceWarning`; for a drop-in outlier detector use e.g.
    ``IsolationForest``.

    With transformers before the detector, build the pipeline with
    :func:`make_reference_pipeline`, which transforms ``X_ref`` as it
    transforms ``X``; a plain ``Pipeline`` would pass ``X_ref`` untransformed
    (``fit`` raises a ``ValueError`` when the two samples then look like
    they are in different units; see Notes).

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
        each step. Since the softmax weights sum to one and each kernel is at
        most one, ``|f(x)| <= max_k |a_k| <= amplitude_clip`` everywhere.
    positive_amplitudes : bool, default=False
        Clip the amplitudes to ``[0, amplitude_clip]`` instead (after each
        step, observed fit and toys alike): the kernels can only describe
        excesses of ``X`` over the reference, as in the paper's figures;
        deficits are then not modelled.
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
    init : {"excess", "k-means++", "random"}, default="excess"
        Initial centres. ``"excess"``: each held width starts afresh from
        k-means++ seeds on up to 2,000 candidate rows, weighted by the excess
        of data over reference that a kernel of that width would explain
        there (measured on each candidate's 20 nearest rows of the pooled
        sample); in high dimension a centre barely travels during training,
        so it has to start near an over-density. ``"k-means++"``: weighted
        k-means++ on the data rows, once, annealed through every width.
        ``"random"``: random data rows (the plain start). Observed fit and
        toys are seeded alike; amplitudes start at zero.
    calibration : {"permutation", "reference"} or None, default="permutation"
        How the null distribution of ``t`` is sampled. ``"permutation"`` pools
        ``X`` and ``X_ref``, standardises on the pool and relabels rows with
        the sizes kept (valid for any sizes). ``"reference"`` draws pseudo-data
        of ``X``'s size from ``X_ref`` (the rest serving as reference) and
        scales by ``X_ref``; it needs ``len(X_ref) >= 5 * len(X)``. ``None``
        fits the observed split only.
    n_permutations : int, default=100
        Number of null toys K; 0 disables calibration.
    preprocessing : {"standard", "robust", "winsorized", "quantile"}, default="standard"
        Per-feature input transform, fitted on the pooled sample (or on the
        reference under ``"reference"`` calibration): mean/std, median/IQR,
        mean/std with the most extreme 0.1% of rows (at least one) at each
        end of a feature clipped, or weighted-quantile mapping to
        standard-normal scores. The last three keep single rows in heavy
        tails from dominating ``t``.
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
    transform_ : object
        The fitted per-feature scaling (``preprocessing``); its
        ``transform(X)`` maps rows into the space the kernels live in.
    kernels_ : object
        The fitted kernels in that space (torch tensors on the CPU), used by
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
    null_excess_levels_ : ndarray of shape (1001,) or None
        Levels of ``f``, evenly spaced over ``[-amplitude_clip, amplitude_clip]``.
    null_excess_counts_ : ndarray of shape (1001,) or None
        The null distribution of the per-row excess: the number of rows
        (weighted), over every toy's own pseudo-data rows, where the toy's
        fitted kernels at ``width_`` give ``f >= null_excess_levels_[j]``.
        :meth:`row_pvalues` and :meth:`select_rows` compare rows with it.
        None when not calibrated.
    null_excess_total_ : float or None
        The weight of all those rows (number of toys times the data weight).
    history_ : dict
        ``"loss"`` (per step, observed fit), ``"width"`` (per step) and
        ``"null_loss"`` (per step and toy, or None).
    offset_ : float
        ``decision_function = score_samples - offset_``; moved without
        refitting by ``set_threshold``.
    training_scores_ : ndarray of shape (n_samples,)
        ``score_samples`` of the rows of ``X`` (with ``sample_weight``, the
        weights of the thresholds computed from them).
    device_ : torch.device
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Defined only when ``X`` has string feature names.

    Notes
    -----
    The defaults were chosen by measuring power on planted Gaussian bumps
    and on CMS dimuon events (:doc:`/sparker` gives the runs); power
    beside a classifier test and an MMD test is in :doc:`/benchmarks`.

    ``X_ref`` is fit metadata. With metadata routing off, ``Pipeline`` and
    ``GridSearchCV`` pass it whole when its length differs from ``len(X)``;
    an ``X_ref`` with exactly ``len(X)`` rows would be sliced per fold, and
    ``fit`` warns about it. With routing on, request it with
    ``set_fit_request(X_ref=True)``. Transformers earlier in a plain
    ``Pipeline`` transform ``X`` but not ``X_ref``;
    :func:`make_reference_pipeline` (or, with routing on,
    ``Pipeline(..., transform_input=["X_ref"])``) transforms both.
    ``X_ref``'s feature names, when it has any, must be those of ``X`` in the
    same order.

    ``fit`` checks that ``X`` and ``X_ref`` are in the same units, which a
    scaler that transformed ``X`` alone would break. Per feature it compares
    the (weighted) medians and spreads of the two samples, a spread being
    the interquartile range divided by 1.349 (the standard deviation where
    that is zero). It raises a ``ValueError`` when on some feature the
    spreads, and the standard deviations too, differ by more than 25 times
    either way (compared only where both interquartile ranges are positive
    and each sample has at least 10 distinct rows; a feature at one value in
    most rows, such as a blank pixel, can have interquartile ranges far
    apart by chance, its standard deviations not), or the medians are more
    than 25 times the larger spread apart (features constant in both
    samples are skipped). Samples that differ by an anomaly, or by a shift
    of a few spreads, pass; samples that fail are too far apart for the
    test to say more than that they differ.

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

    _parameter_constraints: dict = dict(PARAMETER_CONSTRAINTS)

    # the kernels are small and score on the CPU wherever they were fitted
    _device_attributes: tuple[str, ...] = ()
    _fitted_attributes = (
        *BaseTorchDetector._fitted_attributes,
        "_batch_size",
        "transform_",
        "kernels_",
        "width_",
        "amplitudes_",
        "centers_",
        "null_excess_levels_",
        "null_excess_counts_",
        "null_excess_total_",
    )

    def __init__(
        self,
        *,
        n_kernels: int = DEFAULTS.n_kernels,
        n_steps: int = DEFAULTS.n_steps,
        learning_rate: float = DEFAULTS.learning_rate,
        amplitude_clip: float = DEFAULTS.amplitude_clip,
        positive_amplitudes: bool = DEFAULTS.positive_amplitudes,
        width_start: float = DEFAULTS.width_start,
        width_end: float | tuple[float, ...] = DEFAULTS.width_end,
        anneal_fraction: float = DEFAULTS.anneal_fraction,
        n_restarts: int = DEFAULTS.n_restarts,
        init: str = DEFAULTS.init,
        calibration: str | None = DEFAULTS.calibration,
        n_permutations: int = DEFAULTS.n_permutations,
        preprocessing: str = DEFAULTS.preprocessing,
        n_jobs: int | None = DEFAULTS.n_jobs,
        contamination: str | float = "auto",
        batch_size: int = DEFAULTS.chunk_size,
        device: str | torch.device = "auto",
        random_state: Any = None,
        verbose: int = 0,
    ) -> None:
        self.n_kernels = n_kernels
        self.n_steps = n_steps
        self.learning_rate = learning_rate
        self.amplitude_clip = amplitude_clip
        self.positive_amplitudes = positive_amplitudes
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
            Not used, present for API consistency by convention.
        X_ref : array-like of shape (n_ref, n_features), default=None
            The nominal reference sample R, in the units of ``X`` (with the
            same feature names, if any). When None, a synthetic Gaussian
            reference is drawn and a :class:`NoReferenceWarning` is issued
            (see the class docstring).
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the rows of ``X``, as row counts: integer weights are
            equivalent to repeated rows, and ``t`` scales with them. Their
            sum must lie between 1e-3 and 1e30.

        Returns
        -------
        self : SparKerDetector
            Fitted estimator.
        """
        with fit_context(self):
            return self._fit_validated(X, y, X_ref=X_ref, sample_weight=sample_weight)

    def _fit(
        self, X: np.ndarray, y: Any, context: FitContext, *, X_ref: Any, sample_weight: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        samples = validate_samples(X, X_ref, sample_weight)
        n_ref = None if samples.reference is None else samples.reference.shape[0]
        for message, category in self._reference_warnings(X_ref, n_ref, X.shape[0]):
            warnings.warn(message, category, stacklevel=_CALLER_OF_FIT)
        if samples.reference is not None:
            _check_same_units(
                samples.rows,
                samples.weights,
                samples.reference,
                getattr(self, "feature_names_in_", None),
            )
        options = options_from_params(self.get_params(deep=False))
        result = run_sparker(
            samples.rows,
            samples.weights,
            samples.reference,
            options,
            device=context.device,
            seeds=context.seeds,
            verbose=self.verbose,
        )
        warn_if_diverged(result, stacklevel=_CALLER_OF_FIT)
        warn_if_dominated(
            result.transform,
            samples.data,
            samples.sample_weight,
            samples.reference,
            options,
            stacklevel=_CALLER_OF_FIT,
        )
        # scoring reads this copy, so set_params after fit changes nothing
        self._batch_size = self.batch_size
        self.transform_ = result.transform
        self.kernels_ = result.kernels
        self.width_ = result.width
        self.widths_ = result.widths
        self.centers_ = result.data_centers
        self.amplitudes_ = result.amplitudes
        self.test_statistic_ = result.statistic
        self.scale_statistics_ = result.scale_statistics
        self.null_statistics_ = result.null_statistics
        self.null_scale_statistics_ = result.null_scale_statistics
        self.null_excess_levels_ = result.excess_levels
        self.null_excess_counts_ = result.null_excess_counts
        self.null_excess_total_ = result.null_excess_total
        self.scale_pvalues_ = result.scale_pvalues
        self.pvalue_ = result.pvalue
        self.zscore_ = result.zscore
        self.history_ = result.history
        return -self._log_ratio(X), samples.sample_weight

    def _reference_warnings(
        self, X_ref: Any, n_ref: int | None, n_samples: int
    ) -> list[tuple[str, type[Warning]]]:
        """The warnings ``fit`` issues about ``X_ref``; raises on mismatched names."""
        if X_ref is None:
            return [(
                "SparKerDetector was fitted without X_ref: it compares X with a "
                "Gaussian fit of X and flags clumps, not isolated outliers (on "
                "scattered outliers it can rank worse than chance). Pass the "
                "nominal reference as X_ref for the two-sample test; for a "
                "drop-in outlier detector use e.g. IsolationForest.",
                NoReferenceWarning,
            )]
        found = []
        names_warning = self._check_reference_names(X_ref)
        if names_warning is not None:
            found.append((names_warning, ReferenceFeatureNamesWarning))
        if n_ref == n_samples:
            found.append((
                f"X_ref has exactly as many rows as X ({n_samples}). Under "
                "cross-validation scikit-learn slices such fit arguments per fold "
                "(with metadata routing off, and on), so each fold would see only "
                "part of the reference. Give the reference a different length "
                "(e.g. drop or add a row) if this fit runs inside a CV splitter.",
                EqualLengthReferenceWarning,
            ))
        return found

    def _check_reference_names(self, X_ref: Any) -> str | None:
        """Raise if X and X_ref name their columns differently; the warning
        to issue when only one of them has names."""
        fitted = getattr(self, "feature_names_in_", None)
        names = _feature_names(X_ref)
        if fitted is None and names is None:
            return None
        if fitted is None or names is None:
            which, other = ("X", "X_ref") if names is None else ("X_ref", "X")
            return (
                f"{which} has feature names but {other} does not; the columns of "
                "X_ref are taken to be those of X, in the same order."
            )
        if len(names) != len(fitted) or np.any(names != fitted):
            missing = [n for n in fitted if n not in set(names)]
            unexpected = [n for n in names if n not in set(fitted)]
            detail = (
                f" Missing from X_ref: {missing[:5]}; not in X: {unexpected[:5]}."
                if missing or unexpected
                else " The same names appear in another order."
            )
            raise ValueError(
                "The feature names of X_ref should match those of X, in the same "
                f"order.{detail} Reorder with X_ref[X.columns]."
            )
        return None

    # -- inference -----------------------------------------------------------

    def _kernel_terms(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each kernel's term of f per row (n, M), and which rows lie beyond the clip."""
        centers, _ = self.kernels_.single_parameters()
        M, d = centers.shape
        # the (rows, kernels, features) differences dominate memory
        rows = get_chunk_n_rows(row_bytes=8 * M * d, max_n_rows=self._batch_size)
        out = np.empty((X.shape[0], M), dtype=np.float64)
        far = np.zeros(X.shape[0], dtype=bool)
        clip = self.transform_.clip
        with torch.no_grad(), cpu_threads(X.shape[0] * M * d):
            # transformed batch by batch, so memory is bounded by the batch
            for sl in gen_batches(X.shape[0], rows):
                Z = self.transform_.transform(np.asarray(X[sl], dtype=np.float64))
                terms = self.kernels_.single_contributions(torch.from_numpy(Z), self.width_)
                out[sl] = terms.numpy()
                if clip is not None:
                    far[sl] = np.any(np.abs(Z) >= clip, axis=1)
        return out, far

    def _log_ratio(self, X: np.ndarray) -> np.ndarray:
        terms, far = self._kernel_terms(X)
        # beyond the clip a row is farther from both samples than any kernel
        # reaches: the kernels give it their limit far away, 0, as if it were an
        # ordinary row; the reference has no mass there, so it takes the
        # largest excess the kernels can give
        return np.where(far, self._far_excess(), terms.sum(axis=1))

    def _far_excess(self) -> float:
        """``f`` of a row beyond the scaling's clip, ``max_k |a_k|`` (see :meth:`score_samples`)."""
        return float(np.max(np.abs(self.amplitudes_), initial=0.0))

    def kernel_terms(self, X: Any) -> np.ndarray:
        """Each kernel's contribution ``a_k p_k(x) k_k(x)`` to ``f(x)``.

        ``p_k`` is the softmax competition between kernels and ``k_k`` the
        Gaussian kernel (see the class docstring); the terms of a row sum to
        ``f(x) = -score_samples(x)``, except for a row beyond the scaling's
        clip (see :meth:`score_samples`), whose terms are the kernels' own
        there (about 0). A large positive term says which kernel
        (``centers_[k]``) makes the row anomalous.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to explain, with the training features.

        Returns
        -------
        terms : ndarray of shape (n_samples, n_kernels), dtype float64
        """
        X = self._validate_predict_data(X)
        return self._kernel_terms(X)[0]

    def feature_contributions(self, X: Any, *, n_segments: int = 32, rtol: float = 1e-4) -> Any:
        """Each feature's contribution to the anomaly score ``f(x)`` of each row.

        The anomaly score is ``f(x) = -score_samples(x)`` (larger is more
        anomalous); a positive contribution pushes the row toward outlier.
        Contributions are computed in the transformed space the kernels live
        in; the transform acts on each feature alone and is monotone, so
        feature j there is feature j of X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to explain, with the training features.
        n_segments : int, default=32
            Equal segments of each row's path before they are refined (see
            Notes).
        rtol : float, default=1e-4
            Tolerance of the path integral, relative to the variation of
            ``f`` along the row's path (see Notes).

        Returns
        -------
        contributions : ndarray of shape (n_samples, `n_features_in_`), dtype float64
            When X is a pandas DataFrame, a DataFrame with X's index and
            columns (``feature_names_in_`` when fitted with feature names).

        See Also
        --------
        kernel_terms : The same score split over the kernels instead.

        Notes
        -----
        Integrated gradients of the smooth ``f``: along the straight path in
        the transformed space from the baseline z = 0 (the centre of the
        ``preprocessing`` transform: the mean with ``"standard"``, the clipped
        mean with ``"winsorized"``, the median with ``"robust"`` and
        ``"quantile"``), feature j gets the integral of ``df/dz_j`` along the
        path times ``z_j``. The integral is a trapezoid rule on ``n_segments``
        segments, each halved (up to 6 times) while the rule misses the
        change of ``f`` over it by more than ``rtol`` times its share of the
        variation of ``f`` along the path. So every row's contributions
        satisfy, up to that error::

            contributions.sum(axis=1) == -score_samples(X) - f(baseline)

        where ``f(baseline)``, one constant for all rows, is the anomaly score
        of the centre of the transform; a row beyond the scaling's clip (see
        :meth:`score_samples`) gets the kernels' own change of ``f`` along
        its path instead. The fitted detector is not changed.

        Examples
        --------
        >>> import numpy as np
        >>> from skhyper import SparKerDetector
        >>> rng = np.random.default_rng(0)
        >>> R = rng.normal(size=(2000, 2))
        >>> X = np.vstack([rng.normal(size=(400, 2)),
        ...                rng.normal([2.0, 0.0], 0.1, size=(40, 2))])
        >>> det = SparKerDetector(n_permutations=0, random_state=0).fit(X, X_ref=R)
        >>> rows = np.array([[2.0, 0.0], [0.0, -1.0]])
        >>> contributions = det.feature_contributions(rows)
        >>> int(contributions[0].argmax())
        0
        >>> centre = det.transform_.inverse_transform(np.zeros((1, 2)))
        >>> f_baseline = -det.score_samples(centre)
        >>> np.allclose(contributions.sum(axis=1), -det.score_samples(rows) - f_baseline,
        ...             atol=1e-3)
        True
        """
        X_in, X = X, self._validate_contributions_call(X, n_segments, rtol)
        centers, _ = self.kernels_.single_parameters()
        M, d = centers.shape
        # the (points, kernels, features) differences and their gradients
        points = get_chunk_n_rows(row_bytes=4 * 8 * M * d, max_n_rows=self._batch_size)
        max_rows = self._paths_per_chunk(d, n_segments, points)

        def log_ratio(path: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            return self.kernels_(path, self.width_)[0]

        with cpu_threads(X.shape[0] * M * d * n_segments):
            Z = torch.from_numpy(self.transform_.transform(np.asarray(X, dtype=np.float64)))
            contributions = integrated_gradients(
                log_ratio,
                Z,
                Z.new_zeros(d),
                n_segments=n_segments,
                rtol=rtol,
                max_points=points,
                max_rows=max_rows,
            ).numpy()
        return frame_like(contributions, X_in)

    def score_samples(self, X: Any) -> np.ndarray:
        """Opposite of the learned log density ratio: ``-f(x)``.

        Rows where the data sample is over-dense relative to the reference
        score low. ``|f(x)| <= amplitude_clip``.

        A row beyond the clip of the scaling on some feature (``1e3`` scale
        units from its centre, e.g. a thousand standard deviations under
        ``"standard"``) lies farther from both samples than any kernel
        reaches. The kernels give it their limit far away, 0, which would
        rank it among ordinary rows; the reference has no mass there, so it
        scores ``-max_k |amplitudes_[k]|`` instead, the most anomalous score
        of the fitted kernels (no training row scores lower).

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

    def row_pvalues(self, X: Any) -> np.ndarray:
        """Per-row p-values of the excess ``f(x)`` against the null toys.

        Each null toy's kernels, fitted on data drawn from the null, give an
        excess ``f`` on each of its own pseudo-data rows; pooled over the
        toys these are the null distribution of a row's excess
        (``null_excess_counts_``). ``p(x) = (1 + C) / (1 + W)``, where ``C`` is
        the weight of null rows with ``f`` at least ``f(x)`` (``f(x)`` rounded
        down to the grid ``null_excess_levels_``, so ``p`` errs on the large
        side) and ``W`` that of all of them.

        This is a *per-row* p-value: when ``X`` is distributed like the
        reference, each row has ``p <= alpha`` with probability about
        ``alpha``, so about ``alpha * n_samples`` rows would be selected by
        chance. For a false-discovery-rate guarantee pass the p-values to
        ``scipy.stats.false_discovery_control``; for a statement about the
        whole sample use ``pvalue_``. With several held widths the toys are
        taken at ``width_``, the width the observed test selected. Meant for
        the rows of the ``X`` the detector was fitted on.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to test, usually the data sample given to ``fit``.

        Returns
        -------
        pvalues : ndarray of shape (n_samples,), dtype float64
        """
        check_is_fitted(self)
        if self.null_excess_counts_ is None:
            raise ValueError(
                "row_pvalues needs null toys: fit with calibration='permutation' "
                "or 'reference' and n_permutations >= 1."
            )
        excess = -self.score_samples(X)
        level = np.searchsorted(self.null_excess_levels_, excess, side="right") - 1
        counts = self.null_excess_counts_[np.clip(level, 0, None)]
        total = self.null_excess_total_
        # below the lowest level every null row is at least as large
        counts = np.where(level < 0, total, counts)
        return (1.0 + counts) / (1.0 + total)

    def select_rows(self, X: Any, alpha: float = 0.05) -> np.ndarray:
        """Rows whose excess is significant against the null toys.

        ``row_pvalues(X) <= alpha``, a per-row test: under the null about
        ``alpha * n_samples`` rows are selected (see :meth:`row_pvalues`);
        take a small ``alpha`` (e.g. 0.01), or check ``pvalue_`` first.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to test, usually the data sample given to ``fit``.
        alpha : float, default=0.05
            Per-row level, in (0, 1).

        Returns
        -------
        selected : ndarray of shape (n_samples,), dtype bool
        """
        validate_parameter_constraints(
            {"alpha": [Interval(Real, 0, 1, closed="neither")]},
            {"alpha": alpha},
            caller_name="select_rows",
        )
        return self.row_pvalues(X) <= alpha

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags


# -- X_ref in the units of X -------------------------------------------------------


def _feature_names(X: Any) -> np.ndarray | None:
    """String column names of a DataFrame-like ``X``, else None (as scikit-learn)."""
    columns = getattr(X, "columns", None)
    if columns is None:
        return None
    names = np.asarray(columns, dtype=object)
    return names if names.size and all(isinstance(n, str) for n in names) else None


# frames from SparKerDetector._fit, where fit's warnings are issued, to the
# caller of fit: _fit < BaseTorchDetector._fit_validated < fit < caller
_CALLER_OF_FIT = 4

# X and X_ref are taken to be in different units when, on some feature, their
# spreads differ by more than this factor either way, or their medians are
# more than this many of the larger spread apart (see the Notes of
# SparKerDetector): a scaler before the detector in a plain Pipeline changes
# a feature's spread or median by its scale and mean, often far more
_UNITS_FACTOR = 25.0
# rows each sample needs before spreads are compared: a few rows can lie
# close together by chance
_UNITS_MIN_ROWS = 10
# the interquartile range of a Gaussian in units of its standard deviation
_IQR_PER_STD = 1.3489795


def _location_and_spread(
    A: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-feature weighted median, interquartile spread (IQR / 1.349) and std."""
    q25, q50, q75 = weighted_quantiles(A, w, np.array([0.25, 0.5, 0.75]))
    _, std, _ = moments(A, w)  # exact in tiny units too
    return q50, (q75 - q25) / _IQR_PER_STD, std


def _check_same_units(
    X: np.ndarray, w: np.ndarray, R: np.ndarray, feature_names: np.ndarray | None
) -> None:
    """Raise a ``ValueError`` when X and X_ref look like they are in different units.

    ``X`` holds the distinct data rows with weights ``w``, ``R`` the
    reference rows. See the Notes of :class:`SparKerDetector` for the rule.
    """
    med_x, iqr_x, std_x = _location_and_spread(X, w)
    med_r, iqr_r, std_r = _location_and_spread(R, np.ones(R.shape[0]))
    # a feature with few distinct values can have a zero IQR: its std stands in
    spread_x = np.where(iqr_x > 0, iqr_x, std_x)
    spread_r = np.where(iqr_r > 0, iqr_r, std_r)
    comparable = (iqr_x > 0) & (iqr_r > 0)
    comparable &= min(X.shape[0], R.shape[0]) >= _UNITS_MIN_ROWS
    with np.errstate(divide="ignore", invalid="ignore"):
        # a rescaled feature changes its IQR and its std alike; on a feature
        # with most rows at one value (a blank pixel, a rare count) the IQR of
        # one sample can be a sliver of the other's by chance alone, while the
        # stds agree: the smaller of the two ratios is the evidence
        iqr_ratio = np.maximum(iqr_x / iqr_r, iqr_r / iqr_x)
        std_ratio = np.where(
            (std_x > 0) & (std_r > 0), np.maximum(std_x / std_r, std_r / std_x), np.inf
        )
        ratio = np.where(comparable, np.minimum(iqr_ratio, std_ratio), 1.0)
        larger = np.maximum(spread_x, spread_r)
        offset = np.where(larger > 0, np.abs(med_x - med_r) / larger, 0.0)
    bad = np.flatnonzero((ratio > _UNITS_FACTOR) | (offset > _UNITS_FACTOR))
    if bad.size == 0:
        return
    j = int(bad[0])
    feature = repr(feature_names[j]) if feature_names is not None else str(j)
    raise ValueError(
        f"X and X_ref look like they are in different units: on feature {feature}, X "
        f"has median {med_x[j]:.3g} and spread {spread_x[j]:.3g}, X_ref median "
        f"{med_r[j]:.3g} and spread {spread_r[j]:.3g} (spread: interquartile range "
        f"/ 1.349), more than {_UNITS_FACTOR:g} times apart. Transformers before "
        "SparKerDetector in a plain Pipeline transform X but not X_ref, which "
        "reaches the last step untransformed. Build the pipeline with "
        "skhyper.sparker.make_reference_pipeline(...) (same steps), which "
        "transforms X_ref as it transforms X; or, with metadata routing on, "
        "Pipeline(..., transform_input=['X_ref']). Otherwise give X_ref in the "
        "units of X."
    )


FIT_ON = ("auto", "pooled", "reference", "data")


class ReferencePipeline(Pipeline):
    """A ``Pipeline`` that transforms the reference ``X_ref`` as it transforms ``X``.

    In a plain ``Pipeline`` a routed fit parameter such as ``X_ref`` reaches
    the last step untransformed, so a scaler before a
    :class:`SparKerDetector` would compare scaled data with a raw reference.
    Here ``fit(X, X_ref=R)`` fits the transformers (on the pooled rows of
    ``X`` and ``R``, on ``R`` alone, or on ``X`` alone: ``fit_transformers_on``),
    transforms both samples with them and fits the last step on the
    transformed ``X`` with the transformed ``R`` as its ``X_ref``. Scoring
    (``score_samples``, ``decision_function``, ``predict``) is that of
    ``Pipeline``. Build one with :func:`make_reference_pipeline`.

    A last step whose ``fit`` takes no ``X_ref`` (a one-sample detector such
    as ``IsolationForest``) is fitted as in a plain ``Pipeline``, the
    reference unused, so that one search can hold SparKer and one-sample
    candidates, all given the reference by ``search.fit(X, y, X_ref=R)``.
    The pipeline consumes ``X_ref`` itself: with metadata routing on it is
    requested by default, whatever the last step.

    Parameters
    ----------
    steps : list of (str, estimator) tuples
        Transformers, then a final estimator, usually one whose ``fit`` takes
        ``X_ref``.
    fit_transformers_on : {"auto", "pooled", "reference", "data"}, default="auto"
        Rows the transformers are fitted on. ``"pooled"`` (X and X_ref
        together) keeps a permutation test's relabellings exchangeable;
        ``"reference"`` fits them on the nominal sample alone, as NPLM scales
        by the reference (consistent with ``calibration="reference"``).
        ``"auto"`` is ``"reference"`` when the final step has
        ``calibration="reference"`` and ``"pooled"`` otherwise.
    memory : str or object with the joblib.Memory interface, default=None
        Caches the fitted transformers, as ``Pipeline``'s ``memory``.
    verbose : bool, default=False
        Print the time each transformer takes to fit, as ``Pipeline``'s
        ``verbose``.

    Attributes
    ----------
    named_steps, n_features_in_, feature_names_in_ :
        As ``Pipeline``'s.

    See Also
    --------
    make_reference_pipeline : Build one from estimators, naming the steps.

    Notes
    -----
    Fit parameters other than ``X_ref`` are given as ``step__param`` (as in a
    ``Pipeline`` with metadata routing off); ``<last step>__X_ref`` is taken
    as ``X_ref``. Transformer fit parameters are row-aligned with ``X``, so
    they are accepted only with ``fit_transformers_on="data"``. Without
    ``X_ref``, or with a last step whose ``fit`` has no ``X_ref`` parameter,
    it fits as a plain ``Pipeline``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skhyper.sparker import make_reference_pipeline
    >>> rng = np.random.default_rng(0)
    >>> R = rng.normal(size=(2000, 2)) * [1.0, 1000.0]
    >>> X = np.vstack([rng.normal(size=(400, 2)),
    ...                rng.normal(2.0, 0.1, size=(40, 2))]) * [1.0, 1000.0]
    >>> pipe = make_reference_pipeline(
    ...     StandardScaler(), SparKerDetector(n_permutations=19, random_state=0))
    >>> pipe.fit(X, X_ref=R)[-1].pvalue_ <= 0.05
    True
    >>> pipe.predict([[2.0, 2000.0], [0.0, -1000.0]])
    array([-1,  1])
    """

    _parameter_constraints: dict = {
        "steps": Pipeline._parameter_constraints["steps"],
        "memory": Pipeline._parameter_constraints["memory"],
        "verbose": Pipeline._parameter_constraints["verbose"],
        "fit_transformers_on": [StrOptions(set(FIT_ON))],
    }
    # the pipeline consumes X_ref itself (routing on), whatever its last step
    __metadata_request__fit = {"X_ref": True}

    def __init__(
        self,
        steps: list,
        *,
        fit_transformers_on: str = "auto",
        memory: Any = None,
        verbose: bool = False,
    ) -> None:
        super().__init__(steps, memory=memory, verbose=verbose)
        self.fit_transformers_on = fit_transformers_on

    def __getitem__(self, ind: Any) -> Any:
        if isinstance(ind, slice):
            if ind.step not in (None, 1):
                raise ValueError("Pipeline slicing only supports a step of 1")
            return type(self)(
                self.steps[ind],
                fit_transformers_on=self.fit_transformers_on,
                memory=self.memory,
                verbose=self.verbose,
            )
        return super().__getitem__(ind)

    def get_metadata_routing(self) -> Any:
        """Get metadata routing of this object: ``Pipeline``'s, with ``X_ref``
        consumed by the pipeline itself.

        Returns
        -------
        routing : MetadataRouter
            The routing of ``Pipeline`` plus this pipeline's own request.
        """
        return super().get_metadata_routing().add_self_request(self)

    def _final_takes_reference(self) -> bool:
        """Whether the last step is given ``X_ref`` (a missing step: the
        transformers still see it)."""
        final = self.steps[-1][1]
        if final is None or (isinstance(final, str) and final == "passthrough"):
            return True
        return has_fit_parameter(final, "X_ref")

    def _transformers_fit_on(self) -> str:
        if self.fit_transformers_on != "auto":
            return self.fit_transformers_on
        final = self.steps[-1][1]
        return "reference" if getattr(final, "calibration", None) == "reference" else "pooled"

    def fit(
        self, X: Any, y: Any = None, *, X_ref: Any = None, **params: Any
    ) -> ReferencePipeline:
        """Fit the transformers, transform ``X`` and ``X_ref``, fit the last step.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The data sample.
        y : Ignored
            Passed to the transformers only when they are fitted on ``X``.
        X_ref : array-like of shape (n_ref, n_features), default=None
            The reference sample, in the units of ``X``. None fits a plain
            ``Pipeline`` (the detector then has no reference), as does a last
            step whose ``fit`` takes no ``X_ref``.
        **params : dict
            ``step__param`` fit parameters (see Notes of the class).

        Returns
        -------
        self : ReferencePipeline
            This pipeline, fitted.
        """
        validate_parameter_constraints(
            self._parameter_constraints,
            self.get_params(deep=False),
            caller_name=type(self).__name__,
        )
        names = [name for name, _ in self.steps]
        final_name = names[-1]
        if X_ref is None:
            X_ref = params.pop(f"{final_name}__X_ref", None)
        if X_ref is None or not self._final_takes_reference():
            return super().fit(X, y, **params)
        fit_on = self._transformers_fit_on()
        final_params: dict[str, Any] = {}
        transformer_params: dict[str, Any] = {}
        for key, value in params.items():
            name, sep, param = key.partition("__")
            if not sep or name not in names:
                raise TypeError(
                    f"Unexpected fit parameter {key!r}: give fit parameters as "
                    f"'<step>__<param>' with one of the steps {names}."
                )
            if name == final_name:
                final_params[param] = value
            elif fit_on != "data":
                raise ValueError(
                    f"Fit parameter {key!r} is row-aligned with X, but the "
                    f"transformers are fitted on {fit_on!r} rows; use "
                    "fit_transformers_on='data' to pass transformer fit parameters."
                )
            else:
                transformer_params[key] = value
        X, X_ref = self._fit_transformers(X, y, X_ref, fit_on, transformer_params)
        final = self.steps[-1][1]
        if final is not None and not (isinstance(final, str) and final == "passthrough"):
            final.fit(X, y, X_ref=X_ref, **final_params)
        return self

    def _fit_transformers(
        self, X: Any, y: Any, X_ref: Any, fit_on: str, params: dict[str, Any]
    ) -> tuple[Any, Any]:
        """Fit the transformers, a ``Pipeline`` of their own, on the ``fit_on``
        rows; return ``X`` and ``X_ref`` transformed."""
        if len(self.steps) == 1:
            return X, X_ref
        transformers = Pipeline(self.steps[:-1], memory=self.memory, verbose=self.verbose)
        rows = {"data": X, "reference": X_ref}.get(fit_on)
        if rows is None:
            rows = _stack(X, X_ref)
        # the parameters are step__param whatever the routing (see Notes)
        with config_context(enable_metadata_routing=False):
            rows = transformers.fit_transform(rows, y if fit_on == "data" else None, **params)
        # with memory, the fitted steps are clones: keep them, as Pipeline does
        self.steps = [*transformers.steps, self.steps[-1]]
        X_t = rows if fit_on == "data" else transformers.transform(X)
        R_t = rows if fit_on == "reference" else transformers.transform(X_ref)
        return X_t, R_t

    def fit_predict(
        self, X: Any, y: Any = None, *, X_ref: Any = None, **params: Any
    ) -> np.ndarray:
        """Fit as :meth:`fit`, then label the rows of ``X`` (+1 inlier, -1 outlier).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The data sample.
        y : Ignored
            Passed to the transformers only when they are fitted on ``X``.
        X_ref : array-like of shape (n_ref, n_features), default=None
            The reference sample, in the units of ``X``.
        **params : dict
            ``step__param`` fit parameters.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            +1 for inliers, -1 for outliers.
        """
        return self.fit(X, y, X_ref=X_ref, **params).predict(X)


def _stack(X: Any, X_ref: Any) -> Any:
    """The pooled rows of X and X_ref, keeping DataFrames (and their names) whole."""
    width, ref_width = np.shape(X)[1:], np.shape(X_ref)[1:]
    if len(width) != 1 or width != ref_width:
        raise ValueError(
            f"X_ref must have the columns of X: X has shape {np.shape(X)}, X_ref "
            f"{np.shape(X_ref)}. Pass the reference with the data's features."
        )
    if hasattr(X, "iloc") and hasattr(X_ref, "iloc"):
        import pandas as pd

        return pd.concat([X, X_ref], axis=0, ignore_index=True)
    return np.vstack([np.asarray(X), np.asarray(X_ref)])


def make_reference_pipeline(
    *steps: Any,
    fit_transformers_on: str = "auto",
    memory: Any = None,
    verbose: bool = False,
) -> ReferencePipeline:
    """Build a :class:`ReferencePipeline`, naming the steps as ``make_pipeline`` does.

    The way to put transformers (scalers, PCA...) before a
    :class:`SparKerDetector`: ``fit(X, X_ref=R)`` transforms the reference
    with the same fitted transformers as the data.

    Parameters
    ----------
    *steps : list of estimators
        Transformers, then the detector.
    fit_transformers_on : {"auto", "pooled", "reference", "data"}, default="auto"
        Rows the transformers are fitted on (see :class:`ReferencePipeline`).
    memory : str or object with the joblib.Memory interface, default=None
        Caches the fitted transformers.
    verbose : bool, default=False
        Print the time each transformer takes to fit.

    Returns
    -------
    pipeline : ReferencePipeline
        The pipeline, not fitted.

    Examples
    --------
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skhyper.sparker import make_reference_pipeline
    >>> make_reference_pipeline(StandardScaler(), SparKerDetector()).steps[0][0]
    'standardscaler'
    """
    named = make_pipeline(*steps).steps
    return ReferencePipeline(
        named, fit_transformers_on=fit_transformers_on, memory=memory, verbose=verbose
    )
