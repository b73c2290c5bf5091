"""The shared base of skhyper's torch-backed outlier detectors.

It holds what every detector does the same way: parameter validation, input
validation, device resolution, local seeding, ``contamination`` /
``offset_`` / ``decision_function`` / ``predict``, restore-on-failure for
refits, and device-portable pickling. Subclasses implement ``_fit`` and
``score_samples`` and choose their ``"auto"`` threshold.
"""

from __future__ import annotations

import functools
from abc import abstractmethod
from collections.abc import Callable
from numbers import Integral, Real
from typing import Any, TypeVar

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from ._torch import (
    resolve_device,
    seed_from_random_state,
    state_to_cpu,
    state_to_device,
    usable_device,
)

F = TypeVar("F", bound=Callable[..., Any])


def restore_on_failure(fit: F) -> F:
    """Decorator for ``fit``: if it raises, put the estimator back as it was.

    Validation sets ``n_features_in_`` early; without this a refit that fails
    half-way would leave a previously fitted estimator inconsistent.
    """

    @functools.wraps(fit)
    def wrapper(self: BaseEstimator, *args: Any, **kwargs: Any) -> Any:
        snapshot = dict(self.__dict__)
        try:
            return fit(self, *args, **kwargs)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(snapshot)
            raise

    return wrapper  # type: ignore[return-value]


def weighted_percentile(
    values: np.ndarray, q: float, sample_weight: np.ndarray | None = None
) -> float:
    """Percentile ``q`` (0-100) with linear interpolation.

    With integer weights it equals ``np.percentile`` of the sample in which
    each value is repeated ``weight`` times, so weights and repetitions give
    the same threshold.
    """
    values = np.asarray(values, dtype=np.float64)
    if sample_weight is None:
        return float(np.percentile(values, q))
    w = np.asarray(sample_weight, dtype=np.float64)
    keep = w > 0
    values, w = values[keep], w[keep]
    order = np.argsort(values, kind="stable")
    values, w = values[order], w[order]
    cum = np.cumsum(w)
    pos = q / 100.0 * (cum[-1] - 1.0)
    lo, hi = np.floor(pos), np.ceil(pos)

    def at(rank: float) -> float:
        idx = min(int(np.searchsorted(cum, rank, side="right")), len(values) - 1)
        return float(values[idx])

    v_lo, v_hi = at(lo), at(hi)
    return v_lo + (pos - lo) * (v_hi - v_lo)


def reject_sparse(X: Any, name: str = "X") -> None:
    if sp.issparse(X):
        raise ValueError(
            f"Sparse input is not supported for {name}: skhyper's detectors need "
            "dense arrays. Convert with X.toarray() if it fits in memory."
        )


class BaseTorchDetector(OutlierMixin, BaseEstimator):
    """Base class of skhyper's torch-backed outlier detectors (not public)."""

    _parameter_constraints: dict = {
        "contamination": [
            StrOptions({"auto"}),
            Interval(Real, 0, 0.5, closed="right"),
        ],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    # -- hooks for subclasses -------------------------------------------------

    @abstractmethod
    def score_samples(self, X: Any) -> np.ndarray:
        """Opposite of the anomaly score: higher means more normal."""

    @abstractmethod
    def _auto_offset(self, train_scores: np.ndarray) -> float:
        """Threshold used when ``contamination="auto"``."""

    # -- fit helpers ------------------------------------------------------------

    def _validate_fit_data(self, X: Any, **kwargs: Any) -> np.ndarray:
        reject_sparse(X)
        return validate_data(
            self,
            X,
            dtype=[np.float64, np.float32],
            ensure_min_samples=2,
            **kwargs,
        )

    def _start_fit(self) -> tuple[torch.device, int]:
        """Resolve the device and draw this fit's seed (no global state used)."""
        return resolve_device(self.device), seed_from_random_state(self.random_state)

    def _set_offset(
        self, train_scores: np.ndarray, sample_weight: np.ndarray | None = None
    ) -> None:
        if self.contamination == "auto":
            self.offset_ = float(self._auto_offset(train_scores))
        else:
            self.offset_ = weighted_percentile(
                train_scores, 100.0 * self.contamination, sample_weight
            )

    # -- predict side -------------------------------------------------------------

    def _validate_predict_data(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        reject_sparse(X)
        return validate_data(self, X, dtype=[np.float64, np.float32], reset=False)

    def _inference_device(self) -> torch.device:
        return usable_device(self.device_)

    def decision_function(self, X: Any) -> np.ndarray:
        """Shifted opposite of the anomaly score; negative means outlier.

        ``decision_function(X) = score_samples(X) - offset_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        decision : ndarray of shape (n_samples,), dtype float64
        """
        return self.score_samples(X) - self.offset_

    def predict(self, X: Any) -> np.ndarray:
        """Predict +1 for inliers and -1 for outliers.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        is_inlier : ndarray of shape (n_samples,), dtype int
        """
        decision = self.decision_function(X)
        is_inlier = np.ones(decision.shape[0], dtype=int)
        is_inlier[decision < 0] = -1
        return is_inlier

    # -- pickling: fitted torch state travels on the CPU -----------------------------

    def __getstate__(self) -> dict[str, Any]:
        return state_to_cpu(super().__getstate__())

    def __setstate__(self, state: dict[str, Any]) -> None:
        device = state.get("device_")
        if isinstance(device, torch.device):
            state_to_device(state, usable_device(device))
        super().__setstate__(state)
