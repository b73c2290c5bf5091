"""Input scaling and sample canonicalisation shared by the detectors.

- :class:`InputTransform`: per-feature standard, robust or quantile-normal
  scaling, fitted on an optionally weighted sample.
- :func:`canonical_sample`: a weighted sample as distinct sorted rows with
  summed weights.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr, ndtri

from .serialization import plain_type

TRANSFORMS = ("standard", "robust", "winsorized", "quantile")

# "winsorized" clips this fraction of rows (at least one) at each end of
# every feature before its mean and std
WINSOR_FRACTION = 0.001

# a feature whose spread is below this fraction of its magnitude is constant
# up to rounding: it is centred but not scaled
_CONSTANT_RTOL = 1e-12


def canonical_sample(
    X: np.ndarray, sample_weight: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows (sorted) with summed weights, zero weights dropped.

    A weighted sample and the same sample with rows repeated (in any order)
    map to bit-identical arrays, so everything downstream agrees exactly.
    """
    keep = sample_weight > 0
    rows, inverse = np.unique(X[keep], axis=0, return_inverse=True)
    weights = np.bincount(inverse.ravel(), weights=sample_weight[keep])
    return rows, weights


def weighted_quantiles(X: np.ndarray, w: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per-column weighted quantiles (Hazen plotting positions), shape (len(probs), d)."""
    out = np.empty((len(probs), X.shape[1]))
    total = w.sum()
    for j in range(X.shape[1]):
        order = np.argsort(X[:, j], kind="stable")
        col, wj = X[order, j], w[order]
        pos = (np.cumsum(wj) - 0.5 * wj) / total
        out[:, j] = np.interp(probs, pos, col)
    return out


# features whose largest magnitude is beyond this, or below its inverse (but
# not zero), are scaled by a power of two before their moments are taken:
# their squares would overflow float64, or underflow to zero (a subnormal
# feature's too)
_SQUARE_SAFE = 1e150


def _power_of_two_scale(X: np.ndarray) -> np.ndarray:
    """Per feature, 1 or the power of two at or above its largest magnitude.

    Dividing by a power of two is exact, so moments of ``X / m`` times ``m``
    are those of ``X`` wherever neither overflows nor underflows, and finite
    and nonzero where they would.
    """
    top = np.max(np.abs(X), axis=0, initial=0.0).astype(np.float64)
    far = np.isfinite(top) & ((top > _SQUARE_SAFE) | ((top > 0) & (top < 1.0 / _SQUARE_SAFE)))
    return np.where(far, np.exp2(np.ceil(np.log2(np.where(far, top, 1.0)))), 1.0)


def moments(X: np.ndarray, w: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-feature mean and std, and where the feature is constant up to rounding."""
    m = _power_of_two_scale(X)
    if np.any(m != 1.0):
        X = X / m
    with np.errstate(over="ignore", invalid="ignore"):
        if w is None:
            mean = X.mean(axis=0, dtype=np.float64)
            std = X.std(axis=0, dtype=np.float64)
        else:
            mean = np.average(X, axis=0, weights=w)
            std = np.sqrt(np.average((X - mean) ** 2, axis=0, weights=w))
        mean, std = mean * m, std * m
    return mean, std, ~(std > _CONSTANT_RTOL * np.abs(mean))


def _mean_std(X: np.ndarray, w: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std, the std of a constant feature set to 1 (centred, not scaled)."""
    mean, std, flat = moments(X, w)
    std[flat] = 1.0
    return mean, std


@plain_type
class InputTransform:
    """Per-feature scaling fitted on a (weighted) sample.

    Parameters
    ----------
    kind : {"standard", "robust", "winsorized", "quantile"}
        Mean/std, median/IQR (scaled to a Gaussian's std; std where the IQR
        is zero), mean/std of the feature with its most extreme 0.1% of rows
        (at least one) at each end clipped to the next value (so a few huge
        values do not set the scale; the unclipped std where the clipped one
        is zero), or weighted-quantile mapping to
        standard-normal scores.
    X : ndarray of shape (n_samples, n_features)
    w : ndarray of shape (n_samples,), default=None
        Row weights; None weighs rows equally.
    clip : float, default=None
        ``transform`` clips its output to ``[-clip, clip]`` (None: no clipping),
        so that one huge row cannot overflow what is computed from it.
    """

    def __init__(
        self, kind: str, X: np.ndarray, w: np.ndarray | None = None, clip: float | None = None
    ) -> None:
        if kind not in TRANSFORMS:
            raise ValueError(f"kind must be one of {TRANSFORMS}, got {kind!r}")
        self.kind = kind
        self.clip = clip
        mean, std = _mean_std(X, w)
        if kind == "standard":
            self.loc, self.scale = mean, std
            self._check_finite()
            return
        w = np.ones(X.shape[0]) if w is None else w
        if kind == "winsorized":
            # the Hazen position of the (k+1)-th row from each end
            total = w.sum()
            k = max(1.0, np.ceil(WINSOR_FRACTION * total))
            p = min((k + 0.5) / total, 0.5)
            lo, hi = weighted_quantiles(X, w, np.array([p, 1.0 - p]))
            c_mean, c_std, flat = moments(np.clip(X, lo, hi), w)
            self.loc, self.scale = c_mean, np.where(flat, std, c_std)
            self._check_finite()
            return
        if kind == "robust":
            q25, q50, q75 = weighted_quantiles(X, w, np.array([0.25, 0.5, 0.75]))
            iqr = (q75 - q25) / 1.3489795
            self.loc, self.scale = q50, np.where(iqr > 0, iqr, std)
        else:
            n_q = int(min(1000, X.shape[0]))
            self.probs = np.linspace(0.0, 1.0, n_q)
            self.quantiles = weighted_quantiles(X, w, self.probs)
            self.eps = max(0.5 / w.sum(), 1e-7)

        self._check_finite()

    def _check_finite(self) -> None:
        for name in ("loc", "scale"):
            bad = np.flatnonzero(~np.isfinite(getattr(self, name, np.zeros(1))))
            if bad.size:
                raise ValueError(
                    f"Feature(s) {bad[:5].tolist()} hold values too large for the "
                    f"{self.kind!r} scaling: their {'centre' if name == 'loc' else 'spread'} "
                    "overflows float64. Rescale those features (e.g. divide them by a "
                    "large constant) before fitting."
                )

    def transform(self, X: np.ndarray) -> np.ndarray:
        Z = self._transform(X)
        return Z if self.clip is None else np.clip(Z, -self.clip, self.clip)

    def _transform(self, X: np.ndarray) -> np.ndarray:
        if self.kind != "quantile":
            return (X - self.loc) / self.scale
        Z = np.empty(X.shape, dtype=np.float64)
        # in tiny (or huge) units the slopes between quantiles overflow:
        # interpolate in exactly rescaled ones
        unit = _power_of_two_scale(self.quantiles)
        for j in range(X.shape[1]):
            q, x = self.quantiles[:, j] / unit[j], X[:, j] / unit[j]
            # average of up- and down-interpolation handles repeated quantiles
            u = 0.5 * (
                np.interp(x, q, self.probs) - np.interp(-x, -q[::-1], -self.probs[::-1])
            )
            Z[:, j] = ndtri(np.clip(u, self.eps, 1.0 - self.eps))
        return Z

    def inverse_transform(self, Z: np.ndarray) -> np.ndarray:
        if self.kind != "quantile":
            return Z * self.scale + self.loc
        X = np.empty(Z.shape, dtype=np.float64)
        for j in range(Z.shape[1]):
            X[:, j] = np.interp(ndtr(Z[:, j]), self.probs, self.quantiles[:, j])
        return X


@plain_type
class IdentityTransform:
    """No scaling (images already in a fixed range)."""

    kind = "none"

    def transform(self, X: np.ndarray) -> np.ndarray:
        return X

    def inverse_transform(self, Z: np.ndarray) -> np.ndarray:
        return Z
