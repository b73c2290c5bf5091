"""Two-sample tests in the manner of ``scipy.stats``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .sparker import SparKerDetector


@dataclass(frozen=True)
class SparKerKernels:
    """The fitted kernels.

    ``centers`` are in the units of the data; ``width`` is the shared kernel
    width in the space the kernels were fitted in (the inputs after the
    detector's ``preprocessing``, e.g. standardised units), as
    ``SparKerDetector.width_``.
    """

    centers: np.ndarray
    amplitudes: np.ndarray
    width: float


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
    n_kernels: int = 8,
    calibration: str = "permutation",
    n_permutations: int = 100,
    random_state: Any = None,
    **options: Any,
) -> SparKerTestResult:
    """SparKer two-sample test: is ``data`` distributed like ``reference``?

    Fits a :class:`~skhyper.SparKerDetector` with ``X=data`` and
    ``X_ref=reference``; further keyword arguments (``n_steps``,
    ``preprocessing``, ``sample_weight``...) go to the detector, except
    ``sample_weight``, which goes to ``fit``.

    Parameters
    ----------
    data : array-like of shape (n_data, n_features)
    reference : array-like of shape (n_reference, n_features)
    n_kernels : int, default=8
    calibration : {"permutation", "reference"}, default="permutation"
    n_permutations : int, default=100
        Number of null toys; must be at least 1.
    random_state : int, RandomState instance or None, default=None

    Returns
    -------
    result : SparKerTestResult

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
    if calibration is None or n_permutations < 1:
        raise ValueError(
            "sparker_test needs a calibration ('permutation' or 'reference') and "
            f"n_permutations >= 1; got calibration={calibration!r}, "
            f"n_permutations={n_permutations!r}."
        )
    sample_weight = options.pop("sample_weight", None)
    det = SparKerDetector(
        n_kernels=n_kernels,
        calibration=calibration,
        n_permutations=n_permutations,
        random_state=random_state,
        **options,
    )
    det.fit(data, X_ref=reference, sample_weight=sample_weight)
    return SparKerTestResult(
        statistic=det.test_statistic_,
        pvalue=det.pvalue_,
        zscore=det.zscore_,
        kernels=SparKerKernels(det.centers_, det.amplitudes_, det.width_),
        null_statistics=det.null_statistics_,
        scale_statistics=det.scale_statistics_,
        scale_pvalues=det.scale_pvalues_,
        widths=det.widths_,
    )
