"""Conformal p-values with false-discovery control.

- :func:`select_outliers`: the Benjamini–Hochberg selection of a vector of
  p-values at a nominal false discovery rate.
- :class:`SplitConformalDetector`: fits a detector on part of the training
  rows and calibrates its p-values on the rest (split conformal), for the
  finite-sample guarantee that in-sample training scores do not give.

Every skhyper detector also has ``conformal_pvalues(X)`` and
``select_outliers(X, fdr)``, calibrated on its own training rows' scores.
Read more in the :ref:`User Guide <conformal>`.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, OutlierMixin, clone
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ._utils.compat import HasMethods, Interval, _fit_context, _num_samples, _safe_indexing
from ._utils.conformal import benjamini_hochberg, check_fdr, conformal_pvalues, rank_above

__all__ = ["SplitConformalDetector", "select_outliers"]


def select_outliers(pvalues: Any, *, fdr: float = 0.1) -> np.ndarray:
    """Benjamini–Hochberg selection of p-values at false discovery rate ``fdr``.

    With the ``m`` p-values sorted, ``p_(1) <= ... <= p_(m)``, the largest
    ``i`` with ``p_(i) <= i * fdr / m`` is found and the rows of the ``i``
    smallest p-values are selected (none when there is no such ``i``). When
    the p-values of the null rows are valid (``P(p <= a) <= a``) and
    independent, or positively dependent as conformal p-values sharing one
    calibration set are, the expected fraction of null rows among the
    selected rows is at most ``fdr * m0 / m``, with ``m0`` the number of null
    rows.

    Read more in the :ref:`User Guide <conformal>`.

    Parameters
    ----------
    pvalues : array-like of shape (n_samples,)
        P-values in [0, 1], e.g. a detector's ``conformal_pvalues(X)``.
    fdr : float, default=0.1
        The nominal false discovery rate, in (0, 1).

    Returns
    -------
    selected : ndarray of shape (n_samples,), dtype bool
        True for the selected rows (the declared outliers).

    Raises
    ------
    ValueError
        If ``fdr`` is not in (0, 1), or ``pvalues`` is not one-dimensional or
        has values outside [0, 1] or NaN.

    See Also
    --------
    sklearn.feature_selection.SelectFdr : The same procedure over features.

    Examples
    --------
    >>> from skhyper.conformal import select_outliers
    >>> select_outliers([0.001, 0.02, 0.03, 0.5, 0.9], fdr=0.1)
    array([ True,  True,  True, False, False])
    """
    check_fdr(fdr, "select_outliers")
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"pvalues must be one-dimensional, got shape {p.shape}.")
    if not np.all((p >= 0) & (p <= 1)):
        raise ValueError("pvalues must lie in [0, 1] (and not be NaN).")
    return benjamini_hochberg(p, fdr)


class SplitConformalDetector(OutlierMixin, BaseEstimator):
    """Split-conformal calibration of an outlier detector.

    ``fit`` splits the training rows at random: the detector is fitted on one
    part and scores the other, held-out part (the calibration rows), whose
    scores the p-values are ranked against. Because the calibration rows
    took no part in the fit, a new row drawn like the training rows is
    exchangeable with them and its p-value is valid in finite samples:
    ``P(p(x) <= a) <= a`` for every ``a``, whatever the detector, and
    :meth:`select_outliers` controls the false discovery rate. Calibrating
    on the training rows' own scores (the detectors' ``conformal_pvalues``)
    uses every row for the fit but has no such guarantee.

    Read more in the :ref:`User Guide <conformal>`.

    Parameters
    ----------
    estimator : estimator object
        An outlier detector with ``fit`` and ``score_samples`` (higher = more
        normal): a skhyper detector, a scikit-learn one or a ``Pipeline``
        ending in one. It is cloned.
    calibration_size : float or int, default=0.5
        The held-out calibration rows: a fraction of the rows in (0, 1), or a
        number of rows. More calibration rows give p-values closer to
        uniform for one fitted detector (steps of ``1 / (n_cal + 1)``), fewer
        leave more rows to fit the detector.
    random_state : int, RandomState instance or None, default=None
        The split's randomness.

    Attributes
    ----------
    estimator_ : estimator object
        The detector fitted on the rows not held out.
    calibration_scores_ : ndarray of shape (n_calibration,)
        ``estimator_.score_samples`` of the calibration rows.
    calibration_indices_ : ndarray of shape (n_calibration,)
        The calibration rows' positions in the ``X`` given to ``fit``.
    offset_ : float
        ``estimator_.offset_`` where it has one, else 0:
        ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Defined only when ``X`` has string feature names.

    See Also
    --------
    select_outliers : The Benjamini–Hochberg selection of p-values.
    skhyper.CompVAEDetector.conformal_pvalues : P-values calibrated on the training rows.

    Examples
    --------
    >>> import numpy as np
    >>> from skhyper import CompVAEDetector
    >>> from skhyper.conformal import SplitConformalDetector
    >>> rng = np.random.default_rng(0)
    >>> det = SplitConformalDetector(
    ...     CompVAEDetector(epochs=2, random_state=0), random_state=0
    ... ).fit(rng.normal(size=(600, 4)))
    >>> det.calibration_scores_.shape
    (300,)
    >>> X = np.vstack([rng.normal(size=(95, 4)), rng.normal(size=(5, 4)) + 9.0])
    >>> np.flatnonzero(det.select_outliers(X, fdr=0.1))
    array([95, 96, 97, 98, 99])
    """

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["fit", "score_samples"])],
        "calibration_size": [
            Interval(Real, 0, 1, closed="neither"),
            Interval(Integral, 1, None, closed="left"),
        ],
        "random_state": ["random_state"],
    }

    def __init__(
        self, estimator: Any, *, calibration_size: float | int = 0.5, random_state: Any = None
    ) -> None:
        self.estimator = estimator
        self.calibration_size = calibration_size
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X: Any, y: Any = None, **fit_params: Any) -> SplitConformalDetector:
        """Fit the detector on part of the rows and score the held-out rest.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training rows (an array or a DataFrame).
        y : array-like of shape (n_samples,), default=None
            Passed, split like ``X``, to the detector's ``fit``.
        **fit_params : dict
            Further arguments of the detector's ``fit``. ``sample_weight`` is
            split like ``X`` (its calibration part weights the p-values);
            the others (e.g. SparKer's ``X_ref``) are passed as they are.

        Returns
        -------
        self : object
            The fitted calibrated detector.
        """
        if sp.issparse(X):
            X = X.tocsr()  # a format whose rows can be indexed
        elif not hasattr(X, "iloc"):
            X = np.asarray(X)  # lists and array-likes, indexed below
        n = _num_samples(X)
        n_cal = self._n_calibration(n)
        order = check_random_state(self.random_state).permutation(n)
        cal, train = np.sort(order[:n_cal]), np.sort(order[n_cal:])
        weights = fit_params.pop("sample_weight", None)
        if weights is not None:
            weights = np.asarray(weights, dtype=np.float64)
            fit_params["sample_weight"] = weights[train]
        y_train = None if y is None else _safe_indexing(np.asarray(y), train)
        self.estimator_ = clone(self.estimator).fit(
            _safe_indexing(X, train), y_train, **fit_params
        )
        X_cal = _safe_indexing(X, cal)
        self.calibration_scores_ = np.asarray(
            self.estimator_.score_samples(X_cal), dtype=np.float64
        )
        self.calibration_indices_ = cal
        self._calibration_weights = None if weights is None else weights[cal]
        self.offset_ = float(getattr(self.estimator_, "offset_", 0.0))
        for name in ("n_features_in_", "feature_names_in_"):
            if hasattr(self.estimator_, name):
                setattr(self, name, getattr(self.estimator_, name))
        return self

    def _n_calibration(self, n: int) -> int:
        size = self.calibration_size
        n_cal = int(np.floor(size * n)) if isinstance(size, float) else int(size)
        if n_cal < 1 or n - n_cal < 2:
            raise ValueError(
                f"calibration_size={size!r} leaves {n_cal} calibration row(s) and "
                f"{n - n_cal} row(s) to fit of the n_samples={n} given: at least 1 and 2 "
                "are needed."
            )
        return n_cal

    def score_samples(self, X: Any) -> np.ndarray:
        """The fitted detector's ``score_samples`` (higher = more normal).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to score.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        return np.asarray(self.estimator_.score_samples(X), dtype=np.float64)

    def decision_function(self, X: Any) -> np.ndarray:
        """``score_samples(X) - offset_``; negative means outlier.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to score.

        Returns
        -------
        decision : ndarray of shape (n_samples,)
        """
        return self.score_samples(X) - self.offset_

    def predict(self, X: Any) -> np.ndarray:
        """+1 for inliers and -1 for outliers, by the fitted detector's threshold.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to label.

        Returns
        -------
        is_inlier : ndarray of shape (n_samples,), dtype int
        """
        return np.where(self.decision_function(X) < 0, -1, 1)

    def conformal_pvalues(self, X: Any) -> np.ndarray:
        """Split-conformal p-values: ``(1 + #{i : calibration_scores_[i] <= s(x)}) / (n_cal + 1)``.

        For a row drawn like the training rows, ``P(p(x) <= a) <= a`` for
        every ``a`` (over the split and the row), weighted where ``fit`` had
        ``sample_weight``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to test.

        Returns
        -------
        pvalues : ndarray of shape (n_samples,), dtype float64
            In ``[1 / (n_cal + 1), 1]``; smaller means more anomalous.
        """
        return conformal_pvalues(
            self.score_samples(X), self.calibration_scores_, self._calibration_weights
        )

    def outlier_probability(self, X: Any) -> np.ndarray:
        """``1 - conformal_pvalues(X)``: the weight of calibration rows scoring
        above each row over ``n_cal + 1``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to score.

        Returns
        -------
        probability : ndarray of shape (n_samples,), dtype float64
        """
        above, total = rank_above(
            self.score_samples(X), self.calibration_scores_, self._calibration_weights
        )
        return above / total

    def select_outliers(self, X: Any, fdr: float = 0.1) -> np.ndarray:
        """Benjamini–Hochberg on :meth:`conformal_pvalues`: the rows declared
        outliers, with the false discovery rate at most ``fdr``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to test together.
        fdr : float, default=0.1
            The nominal false discovery rate, in (0, 1).

        Returns
        -------
        selected : ndarray of shape (n_samples,), dtype bool
        """
        check_fdr(fdr, "select_outliers")
        return benjamini_hochberg(self.conformal_pvalues(X), fdr)

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        inner = self.estimator.__sklearn_tags__()
        tags.input_tags.allow_nan = inner.input_tags.allow_nan
        tags.input_tags.sparse = inner.input_tags.sparse
        tags.non_deterministic = inner.non_deterministic
        return tags
