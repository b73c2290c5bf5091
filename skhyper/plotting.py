"""Figures of fitted detectors (matplotlib is imported only when a function runs)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

__all__ = ["plot_kernels"]


def plot_kernels(
    detector: Any,
    X: Any,
    *,
    ax: Any = None,
    max_points: int = 5000,
    random_state: int = 0,
) -> Any:
    """Draw a fitted SparKer's kernels over the data, in two dimensions.

    The rows of ``X`` and the kernel centres are mapped into the space the
    kernels live in (``detector.transform_``) and projected on the first two
    principal axes of ``X`` there (with two features, the transformed
    features themselves). Each kernel is a circle of radius ``width_`` (an
    orthogonal projection keeps it), red for a positive amplitude (``X``
    over-dense), blue for a negative one, more opaque the larger ``|a_k|``,
    labelled with its index ``k``.

    Parameters
    ----------
    detector : SparKerDetector
        A fitted detector (or the last step of a fitted pipeline).
    X : array-like of shape (n_samples, n_features)
        Rows to draw, in the units the detector was fitted in; usually the
        data sample.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure's axes when None.
    max_points : int, default=5000
        Rows drawn at most (a random subset beyond that; the projection uses
        every row).
    random_state : int, default=0
        Seeds the subset.

    Returns
    -------
    ax : matplotlib Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from skhyper import SparKerDetector
    >>> from skhyper.plotting import plot_kernels
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(size=(300, 3)), rng.normal(2, 0.1, size=(30, 3))])
    >>> det = SparKerDetector(n_permutations=0, random_state=0).fit(
    ...     X, X_ref=rng.normal(size=(1000, 3)))
    >>> ax = plot_kernels(det, X)
    >>> len(ax.patches) == det.n_kernels
    True
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle

    check_is_fitted(detector, "kernels_")
    X = detector._validate_predict_data(X)
    Z = detector.transform_.transform(np.asarray(X, dtype=np.float64))
    centers = detector.kernels_.centers[0].detach().cpu().numpy().astype(np.float64)
    amplitudes = np.asarray(detector.amplitudes_, dtype=np.float64)
    d = Z.shape[1]
    if d == 1:
        basis, labels = np.array([[1.0], [0.0]]).T, ("feature 0 (scaled)", "")
        mean = np.zeros(1)
    elif d == 2:
        basis, mean = np.eye(2), np.zeros(2)
        names = getattr(detector, "feature_names_in_", ["feature 0", "feature 1"])
        labels = (f"{names[0]} (scaled)", f"{names[1]} (scaled)")
    else:
        mean = Z.mean(axis=0)
        # principal axes: right singular vectors of the centred rows
        _, _, vt = np.linalg.svd(Z - mean, full_matrices=False)
        basis, labels = vt[:2].T, ("PC 1 (scaled units)", "PC 2 (scaled units)")
    P = (Z - mean) @ basis
    C = (centers - mean) @ basis

    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 5.0))
    rows = np.arange(P.shape[0])
    if rows.size > max_points:
        rows = np.sort(np.random.default_rng(random_state).choice(rows, max_points, replace=False))
    ax.scatter(P[rows, 0], P[rows, 1], s=4, c="0.6", alpha=0.5, linewidths=0, label="rows")
    top = max(float(np.abs(amplitudes).max()), 1e-12)
    for k, (centre, a) in enumerate(zip(C, amplitudes)):
        colour = "tab:red" if a > 0 else "tab:blue"
        strength = 0.25 + 0.75 * abs(a) / top
        ax.add_patch(
            Circle(
                tuple(centre),
                detector.width_,
                facecolor=colour,
                edgecolor=colour,
                alpha=0.35 * strength,
                linewidth=1.5,
            )
        )
        ax.annotate(str(k), tuple(centre), ha="center", va="center", fontsize=8)
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_title("SparKer kernels: red = excess in X, blue = deficit")
    ax.autoscale_view()
    return ax
