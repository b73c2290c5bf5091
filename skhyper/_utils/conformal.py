"""Conformal ranks of scores among calibration scores, and Benjamini–Hochberg.

Pure NumPy: the detectors' ``outlier_probability``, ``conformal_pvalues`` and
``select_outliers`` and :class:`skhyper.conformal.SplitConformalDetector` all
rank through :func:`rank_above`, so the two quantities cannot drift apart.
"""

from __future__ import annotations

from numbers import Real

import numpy as np

from .compat import Interval, validate_parameter_constraints


def check_fdr(fdr: float, caller: str) -> None:
    """Refuse an ``fdr`` outside (0, 1), in scikit-learn's words."""
    validate_parameter_constraints(
        {"fdr": [Interval(Real, 0, 1, closed="neither")]}, {"fdr": fdr}, caller_name=caller
    )


def rank_above(
    scores: np.ndarray, calibration: np.ndarray, weights: np.ndarray | None = None
) -> tuple[np.ndarray, float]:
    """Weight of the calibration scores strictly above each score, and the total plus one.

    Returns ``(above, total)`` with ``above[j] = sum(w[i] : calibration[i] > scores[j])``
    and ``total = sum(w) + 1`` (unit weights when ``weights`` is None): the
    conformal p-value of score ``s`` (higher = more normal) is
    ``(total - above) / total`` and its outlier probability ``above / total``.
    """
    calibration = np.asarray(calibration, dtype=np.float64)
    w = np.ones(calibration.shape[0]) if weights is None else np.asarray(weights, np.float64)
    order = np.argsort(calibration, kind="stable")
    # weight of the calibration rows scoring strictly above each position
    above = np.concatenate([np.cumsum(w[order][::-1])[::-1], [0.0]])
    pos = np.searchsorted(calibration[order], np.asarray(scores, np.float64), side="right")
    return above[pos], float(w.sum()) + 1.0


def conformal_pvalues(
    scores: np.ndarray, calibration: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    """``(1 + #{i : calibration[i] <= s}) / (n + 1)`` for each score ``s`` (weighted)."""
    above, total = rank_above(scores, calibration, weights)
    return (total - above) / total


def benjamini_hochberg(pvalues: np.ndarray, fdr: float) -> np.ndarray:
    """The Benjamini–Hochberg selection at level ``fdr``: a boolean mask.

    With the p-values sorted, ``p_(1) <= ... <= p_(m)``, the largest ``i``
    with ``p_(i) <= i * fdr / m`` is found and every p-value at most
    ``p_(i)`` is selected; none when there is no such ``i``.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    m = p.shape[0]
    if m == 0:
        return np.zeros(0, dtype=bool)
    ordered = np.sort(p)
    passing = np.nonzero(ordered <= fdr * np.arange(1, m + 1) / m)[0]
    if passing.size == 0:
        return np.zeros(m, dtype=bool)
    return p <= ordered[passing[-1]]
