"""Evaluation helpers for outlier detectors: metrics and ``GridSearchCV`` scorers.

Outlier detectors are easy to score wrongly with scikit-learn's stock tools:

- ``scoring="roc_auc"`` ranks by ``decision_function`` (higher = *more normal*)
  and treats label 1 as the positive class, so labels with 1 = outlier silently
  give ``1 - AUROC``;
- calling ``GridSearchCV.fit(X)`` without ``y`` makes every scorer fail, and
  with the default ``error_score=np.nan`` the search "succeeds" with NaN scores;
- ``scoring="average_precision"`` with ±1 labels measures the *inliers*.

This module fixes one convention and checks it.

Label convention
----------------
``y_true`` marks outliers as the **positive** class. Two encodings are accepted:

- ``{0, 1}`` (or booleans): **1 / True = outlier**, 0 = inlier (the ADBench / ODDS
  convention);
- ``{-1, +1}``: **-1 = outlier**, +1 = inlier (the convention of
  ``OutlierMixin.predict``).

Any other set of label values raises ``ValueError``; so does a ``y_true`` with a
single class, for which none of these metrics is defined.

Score convention
----------------
The plain functions take the output of ``estimator.score_samples`` by default
(``higher_is_normal=True``: higher = more normal, scikit-learn's sign) and negate
it internally. Pass ``higher_is_normal=False`` for anomaly scores (higher = more
anomalous, e.g. PyOD's ``decision_function``). The scorers always use
``-estimator.score_samples(X)`` (``decision_function`` if the estimator has no
``score_samples``; it ranks identically).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

__all__ = [
    "as_outlier_labels",
    "outlier_roc_auc",
    "outlier_average_precision",
    "fpr_at_tpr",
    "fpr_at_95_tpr",
    "OutlierScorer",
    "outlier_roc_auc_scorer",
    "outlier_average_precision_scorer",
    "fpr95_scorer",
    "OUTLIER_SCORERS",
]


def as_outlier_labels(y_true: Any) -> np.ndarray:
    """Convert outlier labels to a 0/1 integer array with 1 = outlier.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Labels in one of two encodings: ``{0, 1}`` or booleans with
        1 / True = outlier, or ``{-1, +1}`` with -1 = outlier (the output
        convention of ``predict``).

    Returns
    -------
    labels : ndarray of shape (n_samples,), dtype int
        1 for outliers, 0 for inliers.

    Raises
    ------
    ValueError
        If ``y_true`` is None, empty, not one-dimensional, contains values other
        than those of one encoding above, or contains a single class.
    """
    if y_true is None:
        raise ValueError(
            "y_true is None: outlier metrics need labels (1 = outlier, 0 = inlier, "
            "or -1 = outlier, +1 = inlier). In GridSearchCV / cross_validate pass "
            "y to fit(X, y); without it every fold's score would be NaN."
        )
    y = np.asarray(y_true)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.ravel()
    if y.ndim != 1:
        raise ValueError(f"y_true must be one-dimensional, got shape {y.shape}.")
    if y.size == 0:
        raise ValueError("y_true is empty.")
    if y.dtype == bool:
        out = y.astype(int)
    else:
        try:
            yf = y.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                "y_true must hold numeric labels (0/1 with 1 = outlier, or "
                f"-1/+1 with -1 = outlier); got dtype {y.dtype}."
            ) from None
        if not np.all(np.isfinite(yf)):
            raise ValueError("y_true contains NaN or infinity.")
        values = set(np.unique(yf).tolist())
        if values <= {0.0, 1.0}:
            out = (yf == 1.0).astype(int)
        elif values <= {-1.0, 1.0}:
            out = (yf == -1.0).astype(int)
        else:
            raise ValueError(
                f"y_true has label values {sorted(values)}; expected {{0, 1}} "
                "(1 = outlier) or {-1, +1} (-1 = outlier)."
            )
    n_out = int(out.sum())
    if n_out == 0 or n_out == out.size:
        raise ValueError(
            "y_true contains a single class "
            f"({'only outliers' if n_out else 'only inliers'}); outlier metrics "
            "need both inliers and outliers. With cross-validation use "
            "StratifiedKFold."
        )
    return out


def _anomaly_scores(scores: Any, higher_is_normal: bool, n: int) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim == 2 and s.shape[1] == 1:
        s = s.ravel()
    if s.ndim != 1 or s.shape[0] != n:
        raise ValueError(
            f"scores must have shape ({n},) to match y_true, got {s.shape}."
        )
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain NaN or infinity.")
    return -s if higher_is_normal else s


def outlier_roc_auc(
    y_true: Any,
    scores: Any,
    *,
    higher_is_normal: bool = True,
    sample_weight: Any = None,
) -> float:
    """Area under the ROC curve with outliers as the positive class.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        ``{0, 1}`` labels with 1 = outlier, or ``{-1, +1}`` with -1 = outlier.
    scores : array-like of shape (n_samples,)
        By default the output of ``score_samples`` (higher = more normal).
    higher_is_normal : bool, default=True
        Set to False when ``scores`` are anomaly scores (higher = more anomalous).
    sample_weight : array-like of shape (n_samples,), default=None
        Weights of the rows in the metric.

    Returns
    -------
    auroc : float
        Probability that a random outlier is ranked as more anomalous than a
        random inlier (ties count one half); 0.5 is chance, 1.0 perfect.

    Examples
    --------
    >>> outlier_roc_auc([0, 0, 1], [3.0, 2.0, 1.0])  # score_samples output
    1.0
    >>> outlier_roc_auc([1, 1, -1], [3.0, 2.0, 1.0])  # -1 = outlier
    1.0
    """
    y = as_outlier_labels(y_true)
    s = _anomaly_scores(scores, higher_is_normal, y.shape[0])
    return float(roc_auc_score(y, s, sample_weight=sample_weight))


def outlier_average_precision(
    y_true: Any,
    scores: Any,
    *,
    higher_is_normal: bool = True,
    sample_weight: Any = None,
) -> float:
    """Average precision with outliers as the positive class.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        ``{0, 1}`` labels with 1 = outlier, or ``{-1, +1}`` with -1 = outlier.
    scores : array-like of shape (n_samples,)
        By default the output of ``score_samples`` (higher = more normal).
    higher_is_normal : bool, default=True
        Set to False when ``scores`` are anomaly scores (higher = more anomalous).
    sample_weight : array-like of shape (n_samples,), default=None
        Weights of the rows in the metric.

    Returns
    -------
    ap : float
        ``sklearn.metrics.average_precision_score`` of the outlier class; its
        chance level is the fraction of outliers.
    """
    y = as_outlier_labels(y_true)
    s = _anomaly_scores(scores, higher_is_normal, y.shape[0])
    return float(average_precision_score(y, s, sample_weight=sample_weight))


def fpr_at_tpr(
    y_true: Any,
    scores: Any,
    *,
    tpr: float = 0.95,
    higher_is_normal: bool = True,
    sample_weight: Any = None,
) -> float:
    """False-positive rate at the first threshold that detects ``tpr`` of outliers.

    The threshold is lowered over the anomaly scores until at least a fraction
    ``tpr`` of the outliers is flagged; the result is the fraction of inliers
    flagged at that threshold (the smallest such fraction). Lower is better.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        ``{0, 1}`` labels with 1 = outlier, or ``{-1, +1}`` with -1 = outlier.
    scores : array-like of shape (n_samples,)
        By default the output of ``score_samples`` (higher = more normal).
    tpr : float, default=0.95
        Target true-positive rate (recall of the outlier class), in (0, 1].
    higher_is_normal : bool, default=True
        Set to False when ``scores`` are anomaly scores (higher = more anomalous).
    sample_weight : array-like of shape (n_samples,), default=None
        Weights of the rows in the metric.

    Returns
    -------
    fpr : float
        In [0, 1].
    """
    if not 0.0 < float(tpr) <= 1.0:
        raise ValueError(f"tpr must be in (0, 1], got {tpr!r}.")
    y = as_outlier_labels(y_true)
    s = _anomaly_scores(scores, higher_is_normal, y.shape[0])
    fprs, tprs, _ = roc_curve(
        y, s, sample_weight=sample_weight, drop_intermediate=False
    )
    # tprs is non-decreasing: the first index reaching the target has the
    # smallest false-positive rate among thresholds that reach it. A small
    # tolerance keeps e.g. 19/20 = 0.95 from failing on rounding.
    idx = int(np.searchsorted(tprs, float(tpr) - 1e-12, side="left"))
    return float(fprs[min(idx, len(fprs) - 1)])


def fpr_at_95_tpr(
    y_true: Any,
    scores: Any,
    *,
    higher_is_normal: bool = True,
    sample_weight: Any = None,
) -> float:
    """FPR at 95% TPR (FPR95): :func:`fpr_at_tpr` with ``tpr=0.95``.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        ``{0, 1}`` labels with 1 = outlier, or ``{-1, +1}`` with -1 = outlier.
    scores : array-like of shape (n_samples,)
        By default the output of ``score_samples`` (higher = more normal).
    higher_is_normal : bool, default=True
        Set to False when ``scores`` are anomaly scores (higher = more anomalous).
    sample_weight : array-like of shape (n_samples,), default=None
        Weights of the rows in the metric.

    Returns
    -------
    fpr : float
        Lower is better.
    """
    return fpr_at_tpr(
        y_true,
        scores,
        tpr=0.95,
        higher_is_normal=higher_is_normal,
        sample_weight=sample_weight,
    )


class OutlierScorer:
    """A scorer ``scorer(estimator, X, y)`` for outlier detectors.

    It computes ``metric(y, estimator.score_samples(X))`` (falling back to
    ``decision_function`` when there is no ``score_samples``) and multiplies by
    ``sign``, so that greater is always better, as ``GridSearchCV`` expects.

    Parameters
    ----------
    metric : callable
        ``metric(y_true, scores, *, higher_is_normal=True, sample_weight=None)``,
        one of this module's metric functions.
    sign : {1, -1}, default=1
        -1 for metrics where lower is better (FPR95): the scorer then returns
        the negated metric.
    name : str, default=None
        Used in ``repr``.

    Notes
    -----
    ``y`` uses outlier labels (1 = outlier, or -1 = outlier with ±1 labels; see
    the module docstring). Calling the scorer without ``y`` raises
    ``ValueError``. ``GridSearchCV`` turns scoring errors into a warning and a
    NaN score unless ``error_score="raise"``; use ``error_score="raise"`` to get
    the error itself.
    """

    def __init__(
        self, metric: Callable[..., float], sign: int = 1, name: str | None = None
    ) -> None:
        if sign not in (1, -1):
            raise ValueError("sign must be 1 or -1.")
        self.metric = metric
        self.sign = sign
        self.name = name if name is not None else metric.__name__

    def __call__(
        self,
        estimator: Any,
        X: Any,
        y_true: Any = None,
        sample_weight: Any = None,
    ) -> float:
        """Score ``estimator`` on ``X`` against outlier labels ``y_true``.

        Parameters
        ----------
        estimator : fitted outlier detector
            Has ``score_samples`` (or ``decision_function``), higher = more normal.
        X : array-like of shape (n_samples, n_features)
            Rows to score.
        y_true : array-like of shape (n_samples,)
            Outlier labels: 1 = outlier / 0 = inlier, or -1 = outlier / +1 = inlier.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the rows in the metric.

        Returns
        -------
        score : float
            The metric, signed so that greater is better.
        """
        if y_true is None:
            raise ValueError(
                f"{self.name} scorer called without y: outlier scorers need "
                "labels (1 = outlier, 0 = inlier, or -1 = outlier, +1 = inlier). "
                "Pass y to GridSearchCV.fit(X, y) / cross_validate(..., y=y)."
            )
        if hasattr(estimator, "score_samples"):
            scores = estimator.score_samples(X)
        elif hasattr(estimator, "decision_function"):
            scores = estimator.decision_function(X)
        else:
            raise TypeError(
                f"{type(estimator).__name__} has neither score_samples nor "
                "decision_function; it cannot be scored as an outlier detector."
            )
        value = self.metric(
            y_true, scores, higher_is_normal=True, sample_weight=sample_weight
        )
        return float(self.sign * value)

    def __repr__(self) -> str:
        sign = "" if self.sign == 1 else ", sign=-1"
        return f"OutlierScorer({self.name}{sign})"


#: Outlier AUROC of ``-score_samples``; greater is better.
outlier_roc_auc_scorer = OutlierScorer(outlier_roc_auc, name="outlier_roc_auc")
#: Outlier average precision of ``-score_samples``; greater is better.
outlier_average_precision_scorer = OutlierScorer(
    outlier_average_precision, name="outlier_average_precision"
)
#: **Negated** FPR at 95% TPR (so that greater is better); report ``-score``.
fpr95_scorer = OutlierScorer(fpr_at_95_tpr, sign=-1, name="fpr_at_95_tpr")

#: The three scorers by name, for ``GridSearchCV(scoring=OUTLIER_SCORERS,
#: refit="outlier_roc_auc")``; ``"neg_fpr95"`` is the negated FPR95.
OUTLIER_SCORERS: dict[str, OutlierScorer] = {
    "outlier_roc_auc": outlier_roc_auc_scorer,
    "outlier_average_precision": outlier_average_precision_scorer,
    "neg_fpr95": fpr95_scorer,
}
