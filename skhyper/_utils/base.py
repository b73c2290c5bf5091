"""The shared base of skhyper's torch-backed outlier detectors.

The base owns ``fit``: validate the parameters and X, resolve the device,
root the fit's randomness in one ``SeedSequence``, call the subclass's
``_fit``, which returns the training rows' scores, and set ``offset_`` from
them. It also holds ``decision_function`` / ``predict`` / ``fit_predict``,
restore-on-failure for refits, and versioned, device-aware pickling.
Subclasses implement ``_fit``, ``score_samples`` and ``_auto_offset``.
"""

from __future__ import annotations

import functools
import warnings
from abc import ABCMeta, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, TypeVar

import numpy as np
import scipy.sparse as sp
import torch
from sklearn import config_context, get_config
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from .._version import __version__
from .attribution import path_bytes
from .compat import (
    RANDOM_STATE,
    Interval,
    StrOptions,
    get_chunk_n_rows,
    validate_parameter_constraints,
)
from .conformal import benjamini_hochberg, check_fdr, conformal_pvalues, rank_above
from .runtime import (
    cpu_threads,
    fit_seed_sequence,
    resolve_device,
    usable_device,
)
from .serialization import from_plain, to_plain

F = TypeVar("F", bound=Callable[..., Any])

# Bumped whenever fitted attributes change in a way old pickles cannot follow.
# Since format 5 the state is plain data (see serialization.py): pickles, skops
# files and skhyper.persistence files all hold it.
PICKLE_FORMAT = 5


class IncompatiblePickleError(ValueError):
    """A pickled detector was written in a format this skhyper cannot read.

    Public as ``skhyper.persistence.IncompatiblePickleError``.
    """


class InconsistentVersionWarning(UserWarning):
    """A saved detector was written by another skhyper version (same format).

    Public as ``skhyper.persistence.InconsistentVersionWarning``.
    """


class DeviceFallbackWarning(UserWarning):
    """A loaded detector was fitted on a device this process cannot use; it runs on the CPU.

    Public as ``skhyper.persistence.DeviceFallbackWarning``.
    """


@contextmanager
def fit_context(estimator: BaseEstimator) -> Iterator[None]:
    """What every public ``fit`` runs in: ``with fit_context(self): ...``.

    Validates the parameters (unless scikit-learn's
    ``skip_parameter_validation`` is set), runs the body with nested
    parameter validation skipped, as scikit-learn's
    ``_fit_context(prefer_skip_nested_validation=True)`` does, and puts the
    estimator back as it was if the body raises: validation sets
    ``n_features_in_`` early, and a refit that fails half-way must not leave
    a fitted estimator inconsistent. Unlike a decorator it puts no frame
    between ``fit`` and its body, so a warning's ``stacklevel`` counts only
    the estimator's own calls.
    """
    if not get_config()["skip_parameter_validation"]:
        estimator._validate_params()
    snapshot = dict(estimator.__dict__)
    try:
        with config_context(skip_parameter_validation=True):
            yield
    except BaseException:
        estimator.__dict__.clear()
        estimator.__dict__.update(snapshot)
        raise


def fit_method(fit: F) -> F:
    """Decorator form of :func:`fit_context`, for a ``fit`` that issues no warnings."""

    @functools.wraps(fit)
    def wrapper(self: BaseEstimator, *args: Any, **kwargs: Any) -> Any:
        with fit_context(self):
            return fit(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def weighted_percentile(
    values: np.ndarray, q: float, sample_weight: np.ndarray | None = None
) -> float:
    """Percentile ``q`` (0-100) with linear interpolation.

    With integer weights it equals ``np.percentile(..., method="linear")``
    (numpy's default) of the sample in which each value is repeated
    ``weight`` times, so weights and repetitions give the same threshold.
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


@dataclass(frozen=True)
class FitContext:
    """What the base resolves before ``_fit``: the device and the seed root."""

    device: torch.device
    seeds: np.random.SeedSequence


class BaseTorchDetector(OutlierMixin, BaseEstimator, metaclass=ABCMeta):
    """Base class of skhyper's torch-backed outlier detectors (not public)."""

    _parameter_constraints: dict = {
        "contamination": [
            StrOptions({"auto"}),
            Interval(Real, 0, 0.5, closed="right"),
        ],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "device": [str, torch.device],
        "random_state": RANDOM_STATE,
        "verbose": ["verbose"],
    }

    # fitted attributes holding torch state on ``device_``; loading puts them on
    # that device again (the others' tensors live on the CPU)
    _device_attributes: tuple[str, ...] = ()

    # what a fitted detector must hold for scoring; unpickling checks them
    _fitted_attributes: tuple[str, ...] = (
        "offset_",
        "device_",
        "n_features_in_",
        "training_scores_",
        "_training_weights",
    )

    # -- hooks for subclasses -------------------------------------------------

    @abstractmethod
    def _fit(
        self, X: np.ndarray, y: Any, context: FitContext, **fit_params: Any
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Fit on validated ``X``; return the training rows' ``score_samples``
        (row for row with ``X``) and the weights to put ``offset_`` with."""

    @abstractmethod
    def score_samples(self, X: Any) -> np.ndarray:
        """Opposite of the anomaly score: higher means more normal."""

    @abstractmethod
    def _auto_offset(self, train_scores: np.ndarray) -> float:
        """Threshold used when ``contamination="auto"``."""

    # -- fit ------------------------------------------------------------------------

    def _fit_validated(self, X: Any, y: Any = None, **fit_params: Any) -> BaseTorchDetector:
        """validate X -> resolve device and seeds -> ``_fit`` -> ``offset_``."""
        X = self._validate_fit_data(X)
        context = FitContext(resolve_device(self.device), fit_seed_sequence(self.random_state))
        with cpu_threads():
            train_scores, weights = self._fit(X, y, context, **fit_params)
        self.device_ = context.device
        self.training_scores_ = np.asarray(train_scores, dtype=np.float64)
        self._training_weights = None if weights is None else np.asarray(weights, np.float64)
        self.offset_ = self._offset_for(self.contamination)
        return self

    def _offset_for(self, contamination: str | float) -> float:
        if contamination == "auto":
            return float(self._auto_offset(self.training_scores_))
        return weighted_percentile(
            self.training_scores_, 100.0 * contamination, self._training_weights
        )

    def _min_fit_samples(self) -> int:
        """The fewest training rows ``fit`` accepts (its error says this number)."""
        return 2

    def _validate_fit_data(self, X: Any, **kwargs: Any) -> np.ndarray:
        reject_sparse(X)
        return validate_data(
            self,
            X,
            dtype=[np.float64, np.float32],
            ensure_min_samples=self._min_fit_samples(),
            **kwargs,
        )

    # -- predict side -------------------------------------------------------------

    def _validate_predict_data(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        reject_sparse(X)
        return validate_data(self, X, dtype=[np.float64, np.float32], reset=False)

    def _inference_device(self) -> torch.device:
        return usable_device(self.device_)

    def _validate_contributions_call(self, X: Any, n_segments: int, rtol: float) -> np.ndarray:
        """``feature_contributions``' checks: the fitted detector, X, the options."""
        X = self._validate_predict_data(X)
        validate_parameter_constraints(
            {
                "n_segments": [Interval(Integral, 1, None, closed="left")],
                "rtol": [Interval(Real, 0, None, closed="left")],
            },
            {"n_segments": n_segments, "rtol": rtol},
            caller_name="feature_contributions",
        )
        return X

    @staticmethod
    def _paths_per_chunk(n_features: int, n_segments: int, points: int) -> int:
        """Rows whose paths are integrated together when ``points`` path points
        go to the model at once, within scikit-learn's ``working_memory``."""
        return get_chunk_n_rows(
            row_bytes=path_bytes(n_features, n_segments),
            max_n_rows=max(1, points // (n_segments + 1)),
        )

    def decision_function(self, X: Any) -> np.ndarray:
        """Shifted opposite of the anomaly score; negative means outlier.

        ``decision_function(X) = score_samples(X) - offset_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to score, with the training features.

        Returns
        -------
        decision : ndarray of shape (n_samples,), dtype float64
        """
        return self.score_samples(X) - self.offset_

    def set_threshold(
        self, *, contamination: str | float | None = None, offset: float | None = None
    ) -> BaseTorchDetector:
        """Move the outlier threshold of a fitted detector without refitting it.

        The new ``offset_`` comes from the training rows' scores kept at fit
        (``training_scores_``), so ``decision_function`` and ``predict`` follow
        at once and the model itself is left as it is. Give exactly one of the
        two arguments.

        Parameters
        ----------
        contamination : "auto" or float in (0, 0.5], default=None
            The new expected proportion of outliers. ``offset_`` becomes what a
            refit with this ``contamination`` (and the same data and
            ``random_state``) would set, and the ``contamination`` parameter
            is set to it, so that ``get_params`` and a refit agree with the
            threshold.
        offset : float, default=None
            An explicit threshold on ``score_samples``: rows scoring below it
            are outliers. The ``contamination`` parameter is left unchanged
            (a refit sets the threshold from it again).

        Returns
        -------
        self : object
            The detector, with its new ``offset_``.

        Examples
        --------
        >>> import numpy as np
        >>> from skhyper import CompVAEDetector
        >>> X = np.random.default_rng(0).normal(size=(200, 4))
        >>> det = CompVAEDetector(epochs=2, random_state=0).fit(X)
        >>> float((det.set_threshold(contamination=0.05).predict(X) == -1).mean())
        0.05
        """
        check_is_fitted(self)
        if (contamination is None) == (offset is None):
            raise ValueError("Give exactly one of contamination and offset.")
        if offset is not None:
            # a bool is an int, but True is no threshold
            if isinstance(offset, (bool, np.bool_)) or not (
                isinstance(offset, Real) and np.isfinite(offset)
            ):
                raise ValueError(f"offset must be a finite number, got {offset!r}.")
            self.offset_ = float(offset)
            return self
        # the parameter's own constraint, and its own error message
        previous = self.contamination
        self.contamination = contamination
        try:
            self._validate_params()
        except ValueError:
            self.contamination = previous
            raise
        self.offset_ = self._offset_for(contamination)
        return self

    def outlier_probability(self, X: Any) -> np.ndarray:
        """How unusual each row is among the training rows, in [0, 1).

        The fraction of the training rows (weighted, where ``fit`` had
        ``sample_weight``) that score as more normal than the row, over
        ``n + 1``: ``#{i : training_scores_[i] > s(x)} / (n + 1)`` with
        ``s = score_samples``. It is one minus the conformal p-value of the
        row against the training rows, so for a row drawn like the training
        rows it is uniform: ``outlier_probability(X) > 1 - a`` flags a
        fraction ``a`` of such rows, and with ``contamination=a`` it agrees
        with ``predict`` up to ties and the ``1 / (n + 1)`` step. It is a
        calibrated rank, not the probability that the row is an anomaly,
        which no one-class detector knows without the anomalies' prevalence.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to score, with the training features.

        Returns
        -------
        probability : ndarray of shape (n_samples,), dtype float64
            Higher means more anomalous, the opposite of ``score_samples``.

        Examples
        --------
        >>> import numpy as np
        >>> from skhyper import CompVAEDetector
        >>> X = np.random.default_rng(0).normal(size=(200, 4))
        >>> det = CompVAEDetector(epochs=2, random_state=0).fit(X)
        >>> p = det.outlier_probability([[0.0, 0.0, 0.0, 0.0], [9.0, 9.0, 9.0, 9.0]])
        >>> bool(p[0] < 0.5 < p[1]), float(p[1])  # no training row is more unusual
        (True, 0.9950248756218906)
        """
        above, total = rank_above(
            self.score_samples(X), self.training_scores_, self._training_weights
        )
        return above / total

    def conformal_pvalues(self, X: Any) -> np.ndarray:
        """Conformal p-values of the rows against the training rows' scores.

        ``p(x) = (1 + #{i : training_scores_[i] <= s(x)}) / (n + 1)`` with
        ``s = score_samples`` (weighted, where ``fit`` had ``sample_weight``):
        small for rows that score as less normal than most training rows. It
        is ``1 - outlier_probability(X)``. The null hypothesis of a row is
        that it is drawn like the training rows; :meth:`select_outliers`
        applies the Benjamini–Hochberg procedure to these p-values.

        The training rows' scores are in-sample: a detector's score of a
        training row depends on that row (CompVAE leaves the row's own entry
        out of its latent bank, but its network was trained on the row; SparKer's
        kernels were fitted to it), so these p-values are uniform for new
        rows only as far as the training rows score like new rows. For
        p-values with the finite-sample guarantee ``P(p(x) <= a) <= a``, fit
        and calibrate on separate rows with
        :class:`~skhyper.conformal.SplitConformalDetector`.

        Read more in the :ref:`User Guide <conformal>`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to test, with the training features.

        Returns
        -------
        pvalues : ndarray of shape (n_samples,), dtype float64
            In ``[1 / (n + 1), 1]``; smaller means more anomalous.

        Examples
        --------
        >>> import numpy as np
        >>> from skhyper import CompVAEDetector
        >>> X = np.random.default_rng(0).normal(size=(200, 4))
        >>> det = CompVAEDetector(epochs=2, random_state=0).fit(X)
        >>> p = det.conformal_pvalues([[0.0, 0.0, 0.0, 0.0], [9.0, 9.0, 9.0, 9.0]])
        >>> bool(p[0] > 0.5), float(p[1])  # no training row scores lower: 1 / (n + 1)
        (True, 0.004975124378109453)
        """
        return conformal_pvalues(
            self.score_samples(X), self.training_scores_, self._training_weights
        )

    def select_outliers(self, X: Any, fdr: float = 0.1) -> np.ndarray:
        """Rows declared outliers with the false discovery rate controlled at ``fdr``.

        The Benjamini–Hochberg procedure on :meth:`conformal_pvalues`: with
        p-values that are valid for the rows drawn like the training rows,
        the expected fraction of such rows among the selected ones is at
        most ``fdr`` (times the fraction of such rows in X). See
        :func:`skhyper.conformal.select_outliers` and the
        :ref:`User Guide <conformal>` for when the p-values are valid.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to test together, with the training features.
        fdr : float, default=0.1
            The nominal false discovery rate, in (0, 1).

        Returns
        -------
        selected : ndarray of shape (n_samples,), dtype bool
            True for the rows declared outliers.

        Examples
        --------
        >>> import numpy as np
        >>> from skhyper import CompVAEDetector
        >>> rng = np.random.default_rng(0)
        >>> det = CompVAEDetector(epochs=2, random_state=0).fit(rng.normal(size=(500, 4)))
        >>> X = np.vstack([rng.normal(size=(95, 4)), rng.normal(size=(5, 4)) + 9.0])
        >>> np.flatnonzero(det.select_outliers(X, fdr=0.1))
        array([95, 96, 97, 98, 99])
        """
        check_fdr(fdr, "select_outliers")
        return benjamini_hochberg(self.conformal_pvalues(X), fdr)

    @staticmethod
    def _labels(decision: np.ndarray) -> np.ndarray:
        is_inlier = np.ones(decision.shape[0], dtype=int)
        is_inlier[decision < 0] = -1
        return is_inlier

    def predict(self, X: Any) -> np.ndarray:
        """Predict +1 for inliers and -1 for outliers.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to score, with the training features.

        Returns
        -------
        is_inlier : ndarray of shape (n_samples,), dtype int
        """
        return self._labels(self.decision_function(X))

    def fit_predict(self, X: Any, y: Any = None, **kwargs: Any) -> np.ndarray:
        """Fit, then label the training rows +1 (inlier) or -1 (outlier).

        Equal to ``fit(X, y, **kwargs).predict(X)``, but reuses the scores that
        ``fit`` computed for ``offset_`` instead of scoring X again.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training rows.
        y : array-like of shape (n_samples,), default=None
            Ignored unless the estimator's ``fit`` uses it.
        **kwargs : dict
            Further arguments of ``fit``.

        Returns
        -------
        is_inlier : ndarray of shape (n_samples,), dtype int
        """
        self.fit(X, y, **kwargs)
        return self._labels(self.training_scores_ - self.offset_)

    # -- pickling -------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        # plain data only: no torch object, so loading it runs no torch unpickler
        # and skops needs to trust no type but the detector's own
        state = to_plain(super().__getstate__())
        state["_skhyper_version"] = __version__
        state["_skhyper_pickle_format"] = PICKLE_FORMAT
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        name = type(self).__name__
        fmt = state.pop("_skhyper_pickle_format", None)
        version = state.pop("_skhyper_version", None)
        if fmt != PICKLE_FORMAT:
            raise IncompatiblePickleError(
                f"This {name} was pickled by skhyper {version or '< 0.2'} in pickle "
                f"format {fmt or 1}; skhyper {__version__} reads format {PICKLE_FORMAT}. "
                f"Load it with skhyper {version or '0.1'} or fit it again."
            )
        if version != __version__:
            warnings.warn(
                f"This {name} was pickled by skhyper {version}; it is loaded by skhyper "
                f"{__version__}. The pickle format is the same, but results may differ.",
                InconsistentVersionWarning,
                stacklevel=2,
            )
        self._check_state(state)
        device = from_plain(state.get("device_"))
        target = torch.device("cpu")
        if isinstance(device, torch.device):
            target = usable_device(device)
            if target.type != device.type:
                warnings.warn(
                    f"This {name} was fitted on {device}, which this process cannot "
                    f"use; it scores on {target} (device_ still says where it was fitted).",
                    DeviceFallbackWarning,
                    stacklevel=2,
                )
        cpu = torch.device("cpu")
        state = {
            key: from_plain(value, target if key in self._device_attributes else cpu)
            for key, value in state.items()
        }
        super().__setstate__(state)

    def _check_state(self, state: dict[str, Any]) -> None:
        """Refuse a state that lacks a parameter or, once fitted, a fitted attribute."""
        missing = [p for p in self._get_param_names() if p not in state]
        if any(a in state for a in self._fitted_attributes):
            missing += [a for a in self._fitted_attributes if a not in state]
        if missing:
            raise IncompatiblePickleError(
                f"This pickled {type(self).__name__} is incomplete: it has no "
                f"{', '.join(repr(m) for m in missing)}. It was not written by "
                f"skhyper {__version__}'s pickling; fit the detector again."
            )
