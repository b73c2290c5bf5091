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
from .._utils.preprocessing import TRANSFORMS, canonical_sample, weighted_quantiles

CALIBRATIONS = ("permutation", "reference")
INITS = ("excess", "k-means++", "random")
# a feature's scale is taken as set by a few rows when the interquartile range
# of the rows it was fitted on is below this in scale units (1.35 for a
# Gaussian feature under "standard"): the other rows then collapse together,
# and the kernels, whose steps are in scale units, cannot resolve them
_BULK_IQR_MIN = 0.05
# the rows a warning names, per sample
_ROWS_NAMED = 5
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
    "n_jobs": [None, Interval(Integral, None, None, closed="neither")],
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
    data: np.ndarray  # the data as given, float64


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
    return Samples(rows, weights, R, w, D)


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


def dominating_rows(
    transform: Any,
    X: np.ndarray,
    w: np.ndarray,
    R: np.ndarray | None,
    fitted_on_reference: bool,
) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Features whose scale a few rows set, with those rows of X and of R.

    ``transform`` is the fitted scaling, ``X`` the data rows as given (weights
    ``w``), ``R`` the reference or None. On the rows the scaling was fitted on
    (the reference alone when ``fitted_on_reference``), a feature counts when
    its interquartile range is positive but below ``_BULK_IQR_MIN`` scale
    units; the rows named are those more than one scale unit from the
    median. Returns ``(feature, rows of X, rows of R)`` per such feature.
    """
    ZX = transform.transform(X)
    ZR = np.empty((0, X.shape[1])) if R is None else transform.transform(R)
    rows, weights = [ZR], [np.ones(ZR.shape[0])]
    if not fitted_on_reference or R is None:
        rows.append(ZX[w > 0])
        weights.append(w[w > 0])
    q25, q50, q75 = weighted_quantiles(
        np.vstack(rows), np.concatenate(weights), np.array([0.25, 0.5, 0.75])
    )
    iqr = q75 - q25
    return [
        (
            int(j),
            np.flatnonzero((np.abs(ZX[:, j] - q50[j]) > 1.0) & (w > 0)),
            np.flatnonzero(np.abs(ZR[:, j] - q50[j]) > 1.0),
        )
        for j in np.flatnonzero((iqr > 0) & (iqr < _BULK_IQR_MIN))
    ]


def warn_if_dominated(
    transform: Any,
    X: np.ndarray,
    w: np.ndarray,
    R: np.ndarray | None,
    options: SparKerOptions,
    stacklevel: int,
    names: tuple[str, str] = ("X", "X_ref"),
) -> None:
    """A :class:`ScaleDominatedWarning` naming the rows that set a feature's scale.

    When a few huge rows set the scale of a feature (mean and standard
    deviation), every other row collapses to one point in the kernels' space
    and the test sees nothing there: see :func:`dominating_rows`.
    """
    on_reference = options.calibration == "reference" and options.n_toys > 0
    found = dominating_rows(transform, X, w, R, on_reference)
    if not found:
        return
    j, far_x, far_r = found[0]

    def rows(name: str, idx: np.ndarray) -> str:
        more = f" and {idx.size - _ROWS_NAMED} more" if idx.size > _ROWS_NAMED else ""
        return f"{name} rows {idx[:_ROWS_NAMED].tolist()}{more}"

    named = [rows(n, i) for n, i in zip(names, (far_x, far_r)) if i.size]
    others = f" (and on features {[f for f, _, _ in found[1:6]]})" if len(found) > 1 else ""
    warnings.warn(
        f"A few rows set the {options.preprocessing!r} scale of feature {j}{others}: "
        f"{'; '.join(named) or 'rows'} lie more than one scale unit from the median, "
        "and the other rows collapse to a sliver of it (interquartile range below "
        f"{_BULK_IQR_MIN:g} scale units), where the test cannot resolve them. Check "
        "those rows (a unit error, a sensor spike), or scale with "
        "preprocessing='robust' or 'quantile'.",
        ScaleDominatedWarning,
        stacklevel=stacklevel + 1,
    )


class ScaleDominatedWarning(UserWarning):
    """A few rows set the scale of a feature in a SparKer test.

    Public as ``skhyper.sparker.ScaleDominatedWarning``. The rows it names
    lie so far out that the other rows collapse together in the kernels'
    space; the test then cannot see a difference among them.
    """
