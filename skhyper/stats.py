"""Two-sample tests in the manner of ``scipy.stats``."""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np
from scipy.special import ndtri
from sklearn.utils.validation import check_array

from ._sparker.options import (
    DEFAULTS,
    PARAMETER_CONSTRAINTS,
    options_from_params,
    validate_samples,
    warn_if_diverged,
    warn_if_dominated,
)
from ._sparker.twosample import run_sparker
from ._utils.compat import Interval, validate_parameter_constraints
from ._utils.runtime import cpu_threads, fit_seed_sequence, resolve_device

__all__ = [
    "PowerMetrics",
    "SparKerKernels",
    "SparKerTestResult",
    "power_metrics",
    "sparker_test",
]


@dataclass(frozen=True)
class SparKerKernels:
    """The fitted kernels of a :func:`sparker_test`.

    Attributes
    ----------
    centers : ndarray of shape (n_kernels, n_features)
        Kernel centres in the units of the data.
    amplitudes : ndarray of shape (n_kernels,)
        Signed amplitudes; positive where the data are over-dense relative
        to the reference.
    width : float
        The shared kernel width in the space the kernels were fitted in (the
        inputs after ``preprocessing``, e.g. standardised units), as
        ``SparKerDetector.width_``.
    transform : object or None, default=None
        The fitted input scaling, as ``SparKerDetector.transform_``:
        ``transform.transform(X)`` maps rows in the units of the data to the
        space of ``width``. :func:`skhyper.plotting.plot_kernels` draws with it.
    """

    centers: np.ndarray
    amplitudes: np.ndarray
    width: float
    transform: Any = None


@dataclass(frozen=True)
class SparKerTestResult:
    """Result of :func:`sparker_test`.

    Attributes
    ----------
    statistic : float
        ``t = -2 min L`` of the observed split at the selected width (the
        scale with the smallest p-value).
    pvalue : float
        With one held width, ``(1 + #{null >= t}) / (1 + K)``; with several,
        the min-p over widths calibrated by the same null toys.
    zscore : float
        ``Phi^-1(1 - pvalue)``.
    kernels : SparKerKernels
        Where the data sample departs from the reference (at the selected width).
    null_statistics : ndarray of shape (K,)
        The toys' ``t`` at the selected width.
    scale_statistics : ndarray of shape (S,)
        ``t`` at each held width, broad to narrow.
    scale_pvalues : ndarray of shape (S,)
        Each width's own permutation p-value (before the min-p correction).
    widths : ndarray of shape (S,)
        The held widths, in the units of ``kernels.width``.
    """

    statistic: float
    pvalue: float
    zscore: float
    kernels: SparKerKernels
    null_statistics: np.ndarray
    scale_statistics: np.ndarray
    scale_pvalues: np.ndarray
    widths: np.ndarray


def sparker_test(
    data: Any,
    reference: Any,
    *,
    n_kernels: int = DEFAULTS.n_kernels,
    calibration: str = DEFAULTS.calibration,
    n_permutations: int = DEFAULTS.n_permutations,
    random_state: Any = None,
    sample_weight: Any = None,
    device: Any = "auto",
    verbose: int = 0,
    **options: Any,
) -> SparKerTestResult:
    """SparKer two-sample test of ``data`` against a nominal ``reference``.

    It asks whether ``data`` is distributed like ``reference`` and, if not,
    where it has too many rows.

    Runs the same test as ``SparKerDetector(...).fit(data, X_ref=reference)``
    and gives the same numbers for the same ``random_state``. Further keyword
    arguments (``n_steps``, ``width_end``, ``preprocessing``, ``batch_size``...)
    are :class:`~skhyper.SparKerDetector` parameters, with the same defaults
    and the same constraints.

    Parameters
    ----------
    data : array-like of shape (n_data, n_features)
        The data sample D.
    reference : array-like of shape (n_reference, n_features)
        The nominal reference sample R, with the same features.
    n_kernels : int, default=8
        Number of Gaussian kernels.
    calibration : {"permutation", "reference"}, default="permutation"
        How null toys are drawn: relabelled pooled rows, or pseudo-data drawn
        from the reference (which then needs 5 times as many rows as data).
    n_permutations : int, default=100
        Number of null toys; must be at least 1.
    random_state : int, RandomState instance or None, default=None
        Seeds every random draw; an int gives the same result every time.
    sample_weight : array-like of shape (n_data,), default=None
        Weights of the data rows.
    device : str or torch.device, default="auto"
        ``"auto"`` uses CUDA when available.
    verbose : int, default=0
        Progress bar over the training steps when > 0.
    **options : dict
        Other :class:`~skhyper.SparKerDetector` parameters.

    Returns
    -------
    result : SparKerTestResult
        The statistic, its p-value and the fitted kernels.

    Examples
    --------
    >>> import numpy as np
    >>> from skhyper.stats import sparker_test
    >>> rng = np.random.default_rng(0)
    >>> res = sparker_test(rng.normal(size=(300, 2)), rng.normal(size=(900, 2)),
    ...                    n_permutations=19, random_state=0)
    >>> 0 < res.pvalue <= 1
    True
    """
    unknown = sorted(set(options) - set(PARAMETER_CONSTRAINTS))
    if unknown:
        raise TypeError(f"sparker_test got unexpected keyword argument(s) {unknown}.")
    params = {
        **options,
        "n_kernels": n_kernels,
        "calibration": calibration,
        "n_permutations": n_permutations,
        "random_state": random_state,
        "device": device,
        "verbose": verbose,
    }
    validate_parameter_constraints(PARAMETER_CONSTRAINTS, params, caller_name="sparker_test")
    if calibration is None or n_permutations < 1:
        raise ValueError(
            "sparker_test needs a calibration ('permutation' or 'reference') and "
            f"n_permutations >= 1; got calibration={calibration!r}, "
            f"n_permutations={n_permutations!r}."
        )
    samples = validate_samples(
        data, reference, sample_weight, names=("data", "reference")
    )
    options = options_from_params(params)
    with cpu_threads():
        res = run_sparker(
            samples.rows,
            samples.weights,
            samples.reference,
            options,
            device=resolve_device(device),
            seeds=fit_seed_sequence(random_state),
            verbose=verbose,
        )
    warn_if_diverged(res, stacklevel=2)
    warn_if_dominated(
        res.transform,
        samples.data,
        samples.sample_weight,
        samples.reference,
        options,
        stacklevel=2,
        names=("data", "reference"),
    )
    return SparKerTestResult(
        statistic=res.statistic,
        pvalue=res.pvalue,
        zscore=res.zscore,
        kernels=SparKerKernels(res.data_centers, res.amplitudes, res.width, res.transform),
        null_statistics=res.null_statistics,
        scale_statistics=res.scale_statistics,
        scale_pvalues=res.scale_pvalues,
        widths=res.widths,
    )


@dataclass(frozen=True)
class PowerMetrics:
    """Result of :func:`power_metrics`.

    Attributes
    ----------
    median_zscore : float
        Median of the experiments' ``Z`` (NPLM's summary of power).
    power : float
        Fraction of experiments with ``p <= alpha``, i.e. ``Z >= z*`` with
        ``z* = Phi^-1(1 - alpha)``.
    zscores : ndarray of shape (n_experiments,)
        ``Z = Phi^-1(1 - p)`` of each experiment.
    pvalues : ndarray of shape (n_experiments,)
        ``p = (1 + #{t_null >= t}) / (1 + K)`` of each experiment.
    """

    median_zscore: float
    power: float
    zscores: np.ndarray
    pvalues: np.ndarray


def power_metrics(t_obs: Any, t_null: Any, *, alpha: float = 0.05) -> PowerMetrics:
    """Median Z and power of repeated experiments against one null distribution.

    The NPLM way of reporting a test's sensitivity: each observed statistic
    gets ``p = (1 + #{t_null >= t}) / (1 + K)`` from the K null statistics
    and ``Z = Phi^-1(1 - p)``; the median ``Z`` over experiments and the
    fraction with ``Z >= z* = Phi^-1(1 - alpha)`` (that is, ``p <= alpha``)
    summarise it. With K null statistics no ``Z`` exceeds
    ``Phi^-1(1 - 1 / (1 + K))``, so a large ``Z`` needs many toys.

    Parameters
    ----------
    t_obs : array-like of shape (n_experiments,)
        The statistic of each experiment (larger = more anomalous), e.g.
        ``test_statistic_`` of detectors fitted on independent data samples.
    t_null : array-like of shape (K,)
        Statistics of the same test under the null, e.g. ``null_statistics_``
        or the statistics of experiments with no signal.
    alpha : float, default=0.05
        Level defining ``z*``, in (0, 1).

    Returns
    -------
    result : PowerMetrics

    Examples
    --------
    >>> from skhyper.stats import power_metrics
    >>> res = power_metrics([5.0, 12.0, 30.0], [1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 10.0,
    ...                                          11.0, 13.0, 15.0, 20.0])
    >>> res.pvalues.round(3)
    array([0.667, 0.333, 0.083])
    >>> round(res.median_zscore, 3), res.power
    (0.431, 0.0)
    """
    validate_parameter_constraints(
        {"alpha": [Interval(Real, 0, 1, closed="neither")]},
        {"alpha": alpha},
        caller_name="power_metrics",
    )
    obs = check_array(
        np.atleast_1d(np.asarray(t_obs, dtype=np.float64)),
        ensure_2d=False,
        input_name="t_obs",
    )
    null = check_array(
        np.atleast_1d(np.asarray(t_null, dtype=np.float64)),
        ensure_2d=False,
        input_name="t_null",
    )
    if obs.ndim != 1 or null.ndim != 1:
        raise ValueError("t_obs and t_null must be one-dimensional.")
    null = np.sort(null)
    n_ge = null.size - np.searchsorted(null, obs, side="left")
    pvalues = (1.0 + n_ge) / (1.0 + null.size)
    zscores = ndtri(1.0 - pvalues)
    return PowerMetrics(
        median_zscore=float(np.median(zscores)),
        power=float(np.mean(pvalues <= alpha)),
        zscores=zscores,
        pvalues=pvalues,
    )
