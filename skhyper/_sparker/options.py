"""SparKer's settings in one place: defaults, constraints and the input checks.

:class:`~skhyper.SparKerDetector` and :func:`skhyper.stats.sparker_test`
both take their defaults from :data:`DEFAULTS`, validate their parameters
against :data:`PARAMETER_CONSTRAINTS` and check their two samples with
:func:`validate_samples`; the engine (:mod:`.twosample`) runs on the
resulting :class:`SparKerOptions`. This is the engine's only module that
imports scikit-learn.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace
from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_array

from .._utils.base import BaseTorchDetector, reject_sparse
from .._utils.compat import Interval, StrOptions, _check_sample_weight
from .._utils.preprocessing import TRANSFORMS, canonical_sample

CALIBRATIONS = ("permutation", "reference")
INITS = ("excess", "k-means++", "random")
# total data weight below which the loss's gradients shrink towards Adam's
# epsilon (1e-8) and the kernels stop training; above which float32 overflows
_MIN_TOTAL_WEIGHT, _MAX_TOTAL_WEIGHT = 1e-3, 1e30


@dataclass(frozen=True)
class SparKerOptions:
    """The settings of one test, with the defaults of both entry points.

    The fields are the estimator's parameters of the same names, except
    ``chunk_size``, which the estimator calls ``batch_size`` (rows per
    chunk of the loss, of a histogram and of scoring). The estimator's
    runtime parameters (``contamination``, ``device``, ``random_state``,
    ``verbose``) belong to its base class and are not here.
    """

    n_kernels: int = 8
    n_steps: int = 100
    learning_rate: float = 0.15
    amplitude_clip: float = 5.0
    positive_amplitudes: bool = False
    width_start: float = 1.0
    width_end: float | tuple[float, ...] = (0.6, 0.1)
    anneal_fraction: float = 0.5
    n_restarts: int = 1
    init: str = "excess"
    calibration: str | None = "permutation"
    n_permutations: int = 100
    preprocessing: str = "standard"
    n_jobs: int | None = None
    chunk_size: int = 4096

    @property
    def n_toys(self) -> int:
        """Null toys to train: none without a calibration."""
        return self.n_permutations if self.calibration is not None else 0


DEFAULTS = SparKerOptions()

# every parameter of SparKerDetector (the base's runtime parameters included):
# sparker_test's keyword arguments are checked against the same entries
PARAMETER_CONSTRAINTS: dict[str, list] = {
    **BaseTorchDetector._parameter_constraints,
    "n_kernels": [Interval(Integral, 1, None, closed="left")],
    "n_steps": [Interval(Integral, 1, None, closed="left")],
    "learning_rate": [Interval(Real, 0, None, closed="neither")],
    "amplitude_clip": [Interval(Real, 0, None, closed="neither")],
    "positive_amplitudes": ["boolean"],
    "width_start": [Interval(Real, 0, None, closed="neither")],
    "width_end": [Interval(Real, 0, None, closed="neither"), tuple, list],
    "anneal_fraction": [Interval(Real, 0, 1, closed="right")],
    "n_restarts": [Interval(Integral, 1, None, closed="left")],
    "init": [StrOptions(set(INITS))],
    "calibration": [StrOptions(set(CALIBRATIONS)), None],
    "n_permutations": [Interval(Integral, 0, None, closed="left")],
    "preprocessing": [StrOptions(set(TRANSFORMS))],
    "n_jobs": [None, Integral],
}


# the estimator's parameters that set how it runs, not the test
RUNTIME_PARAMETERS = ("contamination", "device", "random_state", "verbose")


def options_from_params(params: dict[str, Any]) -> SparKerOptions:
    """The :class:`SparKerOptions` of (validated) estimator parameters.

    ``batch_size`` gives ``chunk_size``; the runtime parameters are left
    out and parameters not given keep their defaults.
    """
    settings = {k: v for k, v in params.items() if k not in RUNTIME_PARAMETERS}
    if "batch_size" in settings:
        settings["chunk_size"] = settings.pop("batch_size")
    return replace(DEFAULTS, **settings)


@dataclass(frozen=True)
class Samples:
    """The two samples of one test, validated (see :func:`validate_samples`)."""

    rows: np.ndarray  # distinct data rows, sorted, float64
    weights: np.ndarray  # their summed positive weights
    reference: np.ndarray | None  # a float64 copy, or None (synthetic reference)
    sample_weight: np.ndarray  # the weights row for row with the data as given


def validate_samples(
    X: Any,
    X_ref: Any,
    sample_weight: Any = None,
    *,
    names: tuple[str, str] = ("X", "X_ref"),
) -> Samples:
    """Check the data and reference samples of a test and canonicalise the data.

    Both must be dense, finite, two-dimensional with at least two rows and
    the same number of columns; ``X_ref`` may be None. The weights must be
    non-negative, one per data row, and the values representable
    (:func:`check_representable`). ``names`` are the argument names the
    errors use.
    """
    data_name, ref_name = names
    reject_sparse(X, data_name)
    reject_sparse(X_ref, ref_name)
    D = check_array(X, dtype=np.float64, ensure_min_samples=2, input_name=data_name)
    R = None
    if X_ref is not None:
        R = check_array(X_ref, dtype=np.float64, ensure_min_samples=2, input_name=ref_name)
        if R.shape[1] != D.shape[1]:
            raise ValueError(
                f"{ref_name} has {R.shape[1]} features, but {data_name} has "
                f"{D.shape[1]}: the reference must have the same features as the data."
            )
        R = np.array(R, dtype=np.float64, copy=True)
    w = _check_sample_weight(sample_weight, D, dtype=np.float64, ensure_non_negative=True)
    rows, weights = canonical_sample(D, w)
    check_representable(rows, weights, R, names)
    return Samples(rows, weights, R, w)


def check_representable(
    X: np.ndarray, w: np.ndarray, R: np.ndarray | None, names: tuple[str, str] = ("X", "X_ref")
) -> None:
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
    for name, A in zip(names, (X, R)):
        if A is not None and A.size and float(np.abs(A).max()) > limit:
            raise ValueError(
                f"{name} holds values up to {float(np.abs(A).max()):.3g} in magnitude, "
                f"beyond {limit:.3g}: their squared deviations overflow float64, so "
                "they cannot be standardised. Rescale those features (e.g. divide "
                "by a power of ten) before fitting."
            )


def warn_if_diverged(result: Any, stacklevel: int) -> None:
    """A ``ConvergenceWarning`` when the observed fit of a test diverged.

    A learning rate too large for the data throws the centres out of the
    rows' range; the kernels then explain nothing and ``t`` is meaningless.
    """
    if result.diverged:
        warnings.warn(
            "SparKer's kernels diverged: their centres left the range of the "
            "(transformed) rows or the loss is not finite, so the statistic and "
            "p-value say nothing about the data. Lower learning_rate.",
            ConvergenceWarning,
            stacklevel=stacklevel + 1,
        )
