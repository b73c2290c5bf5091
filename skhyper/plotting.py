"""Figures of fitted detectors (matplotlib is imported only when a function runs)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from ._utils.base import reject_sparse

__all__ = ["plot_kernels", "plot_roc"]


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
    kernels live in (``detector.transform_``, or the test's
    ``kernels.transform``) and projected on the first two
    principal axes of ``X`` there (with two features, the transformed
    features themselves). Each kernel is a circle of radius ``width_`` (an
    orthogonal projection keeps it), red for a positive amplitude (``X``
    over-dense), blue for a negative one, more opaque the larger ``|a_k|``,
    labelled with its index ``k`` (moved a little aside where centres
    nearly coincide).

    Parameters
    ----------
    detector : SparKerDetector, SparKerTestResult or SparKerKernels
        A fitted detector (or the last step of a fitted pipeline), or the
        result of :func:`skhyper.stats.sparker_test` (or its ``kernels``).
    X : array-like of shape (n_samples, n_features)
        Rows to draw, in the units the detector or test was fitted in;
        usually the data sample.
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

    The result of a two-sample test draws the same way:

    >>> from skhyper.stats import sparker_test
    >>> res = sparker_test(X, rng.normal(size=(1000, 3)), n_permutations=9,
    ...                    random_state=0)
    >>> len(plot_kernels(res, X).patches) == len(res.kernels.amplitudes)
    True
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle

    Z, centers, amplitudes, width, names = _kernels_and_rows(detector, X)
    d = Z.shape[1]
    if d == 1:
        basis, labels = np.array([[1.0], [0.0]]).T, ("feature 0 (scaled)", "")
        mean = np.zeros(1)
    elif d == 2:
        basis, mean = np.eye(2), np.zeros(2)
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
    for centre, a in zip(C, amplitudes):
        colour = "tab:red" if a > 0 else "tab:blue"
        strength = 0.25 + 0.75 * abs(a) / top
        ax.add_patch(
            Circle(
                tuple(centre),
                width,
                facecolor=colour,
                edgecolor=colour,
                alpha=0.35 * strength,
                linewidth=1.5,
            )
        )
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_aspect("equal", adjustable="datalim")
    ax.autoscale_view()
    _label_kernels(ax, C)
    ax.set_title("SparKer kernels: red = excess in X, blue = deficit")
    return ax


def _kernels_and_rows(
    fitted: Any, X: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, Any]:
    """The rows and kernel centres in the kernels' space, the amplitudes, the
    width and the feature names, from a fitted SparKer or a test's result."""
    from .sparker import SparKerDetector
    from .stats import SparKerKernels, SparKerTestResult

    reject_sparse(X)
    if isinstance(fitted, SparKerDetector):
        check_is_fitted(fitted, "kernels_")
        X = validate_data(fitted, X, dtype=[np.float64, np.float32], reset=False)
        centers, _ = fitted.kernels_.single_parameters()
        names = getattr(fitted, "feature_names_in_", ["feature 0", "feature 1"])
        return (
            fitted.transform_.transform(np.asarray(X, dtype=np.float64)),
            centers.detach().cpu().numpy().astype(np.float64),
            np.asarray(fitted.amplitudes_, dtype=np.float64),
            fitted.width_,
            names,
        )
    kernels = fitted.kernels if isinstance(fitted, SparKerTestResult) else fitted
    if not isinstance(kernels, SparKerKernels):
        raise TypeError(
            "plot_kernels draws a fitted SparKerDetector or a sparker_test result; got "
            f"{type(fitted).__name__} (for a fitted pipeline, pass pipe[-1] and "
            "pipe[:-1].transform(X))."
        )
    if kernels.transform is None:
        raise ValueError(
            "These SparKerKernels carry no transform; pass the sparker_test result "
            "they come from."
        )
    X = check_array(X, dtype=np.float64, input_name="X")
    n_features = kernels.centers.shape[1]
    if X.shape[1] != n_features:
        raise ValueError(
            f"X has {X.shape[1]} features, but the test was run on {n_features}."
        )
    return (
        kernels.transform.transform(X),
        kernels.transform.transform(np.asarray(kernels.centers, dtype=np.float64)),
        np.asarray(kernels.amplitudes, dtype=np.float64),
        kernels.width,
        ["feature 0", "feature 1"],
    )


def _label_kernels(ax: Any, centres: np.ndarray, fontsize: float = 8) -> None:
    """Write each kernel's index on its centre, moved aside where it would
    cover an index already written (kernels whose centres nearly coincide)."""
    ax.apply_aspect()  # the final limits, so that points on screen are known
    to_screen = ax.transData.transform
    points = ax.figure.dpi / 72.0
    step = 1.2 * fontsize  # about one label's size, in points
    angles = np.linspace(0.0, 2.0 * np.pi, 8, endpoint=False)
    offsets = [(0.0, 0.0)] + [
        (ring * step * np.cos(t), ring * step * np.sin(t)) for ring in (1, 2, 3) for t in angles
    ]
    written: list[np.ndarray] = []
    for k, centre in enumerate(centres):
        base = to_screen(centre)
        for dx, dy in offsets:
            at = base + points * np.array([dx, dy])
            if all(np.hypot(*(at - w)) >= points * step for w in written):
                break
        written.append(at)
        ax.annotate(
            str(k),
            tuple(centre),
            xytext=(dx, dy),
            textcoords="offset points",
            ha="center",
            va="center",
            fontsize=fontsize,
        )


def plot_roc(
    curves: Any,
    *,
    ax: Any = None,
    log_fpr: bool = True,
    min_fpr: float = 1e-3,
    title: str | None = None,
    linewidth: float = 1.5,
) -> Any:
    """Draw ROC curves of outlier detectors, with the chance diagonal.

    The one ROC figure of ``python -m skhyper compare`` (one axes per method,
    or one for a single split) and of the benchmark report (the mean curve
    over data sets). The false-positive rate is the fraction of inliers
    flagged, the true-positive rate the fraction of outliers flagged.

    Parameters
    ----------
    curves : iterable of (str or None, array-like, array-like)
        ``(label, fpr, tpr)`` per curve, e.g. from
        ``sklearn.metrics.roc_curve(y, anomaly_score)``; the points are joined
        by straight lines (the ROC curve of ties). A legend is drawn when a
        curve has a label.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure's axes when None.
    log_fpr : bool, default=True
        Logarithmic false-positive axis from ``min_fpr`` to 1, where detectors
        that all reach the top-left corner still differ.
    min_fpr : float, default=1e-3
        Left end of the logarithmic axis; below one false positive in the
        test set it shows nothing.
    title : str, default=None
        Title of the axes.
    linewidth : float, default=1.5
        Width of the curves.

    Returns
    -------
    ax : matplotlib Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from sklearn.metrics import roc_curve
    >>> from skhyper.plotting import plot_roc
    >>> y = np.r_[np.zeros(50), np.ones(10)]
    >>> anomaly = np.random.default_rng(0).normal(size=60) + 2 * y
    >>> fpr, tpr, _ = roc_curve(y, anomaly)
    >>> ax = plot_roc([("a detector", fpr, tpr)], min_fpr=0.01)
    >>> ax.get_xscale(), len(ax.lines)
    ('log', 2)
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 5))
    curves = list(curves)
    # past the default cycle's ten colours, dashes tell the second round apart
    dashes = ("-", "--", "-.", ":")
    labelled = False
    for i, (name, fpr, tpr) in enumerate(curves):
        ax.plot(
            np.asarray(fpr), np.asarray(tpr), label=name, lw=linewidth, color=f"C{i % 10}",
            ls=dashes[(i // 10) % len(dashes)],
        )
        labelled = labelled or bool(name)
    low = min_fpr if log_fpr else 0.0
    grid = np.logspace(np.log10(low), 0, 50) if log_fpr else np.linspace(0, 1, 50)
    ax.plot(grid, grid, ls=":", c="grey", lw=1, label="chance" if labelled else None)
    if log_fpr:
        ax.set_xscale("log")
    ax.set_xlim(low, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(
        "false-positive rate (inliers flagged)" + (", log scale" if log_fpr else ""), fontsize=8
    )
    ax.set_ylabel("true-positive rate (outliers flagged)", fontsize=8)
    if title is not None:
        ax.set_title(title, fontsize=9)
    if labelled:
        ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3, which="both")
    return ax
