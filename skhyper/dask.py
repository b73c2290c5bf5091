"""Scale-out with dask: score a fitted detector block by block on a cluster.

Needs the optional extra ``pip install -e ".[dask]"``; dask is imported
only when a function here is called, never at ``import skhyper``.

Two more pieces of skhyper run on dask through joblib, with nothing from
this module: the null toys of :class:`~skhyper.SparKerDetector` and
:func:`~skhyper.stats.sparker_test` (``n_jobs``), and any scikit-learn search
over skhyper detectors (``GridSearchCV(n_jobs=...)``), both inside
``with joblib.parallel_config(backend="dask"):`` once a
``distributed.Client`` is connected.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

__all__ = ["score_blocks"]

_METHODS = {
    "score_samples": np.float64,
    "decision_function": np.float64,
    "predict": np.int64,
}


def _apply(block: Any, estimator: Any, method: str) -> np.ndarray:
    out = np.asarray(getattr(estimator, method)(block))
    return out.astype(_METHODS[method], copy=False)


def _apply_frame(part: Any, estimator: Any, method: str) -> Any:
    import pandas as pd

    return pd.Series(_apply(part, estimator, method), index=part.index)


def _check_columns(estimator: Any, n_columns: float, names: list | None) -> None:
    """The estimator's own width and name checks, now, not when the graph runs."""
    expected = getattr(estimator, "n_features_in_", None)
    # a dask array's width is NaN when its chunks are unknown: checked per block then
    if expected is not None and not np.isnan(n_columns) and n_columns != expected:
        raise ValueError(
            f"X has {n_columns} features, but {type(estimator).__name__} is expecting "
            f"{expected} features as input."
        )
    fitted_names = getattr(estimator, "feature_names_in_", None)
    if fitted_names is None or names is None:
        return
    if [str(n) for n in names] != list(fitted_names):
        missing = [n for n in fitted_names if n not in set(map(str, names))]
        raise ValueError(
            "The feature names of X should match those that were passed during fit, "
            f"in the same order. Missing or out of order: {missing[:5] or list(names)[:5]}."
        )


def score_blocks(estimator: Any, X: Any, method: str = "score_samples") -> Any:
    """Lazy, blockwise ``estimator.<method>(X)`` for a dask array or DataFrame.

    Each block (chunk of rows, or partition) is scored on whichever worker
    holds it; the fitted estimator enters the task graph once, as one shared
    task, so it is sent to each worker once rather than with every chunk.
    Scores of a row do not depend on its block, so the result equals
    scoring all of ``X`` in memory. Works for skhyper's detectors and for any
    fitted scikit-learn outlier detector.

    Parameters
    ----------
    estimator : fitted estimator
        Has the method named by ``method``.
    X : dask.array.Array of shape (n_samples, n_features) or dask.dataframe.DataFrame
        Rows to score. An array's feature axis is brought into one chunk;
        a DataFrame keeps its columns, so feature names are checked as usual.
    method : {"score_samples", "decision_function", "predict"}, default="score_samples"
        The estimator method applied to each block.

    Returns
    -------
    scores : dask.array.Array of shape (n_samples,)
        float64 for ``score_samples`` and ``decision_function``, int64 for
        ``predict``. Nothing is computed until ``.compute()``. For a DataFrame
        the chunk sizes are unknown until computed (as with
        ``DataFrame.to_dask_array()``).

    Examples
    --------
    >>> import numpy as np
    >>> import dask.array as da
    >>> from sklearn.ensemble import IsolationForest
    >>> from skhyper.dask import score_blocks
    >>> X = np.random.RandomState(0).normal(size=(1000, 3))
    >>> det = IsolationForest(random_state=0).fit(X)
    >>> lazy = score_blocks(det, da.from_array(X, chunks=(250, 3)))
    >>> bool(np.allclose(lazy.compute(), det.score_samples(X), rtol=0, atol=1e-12))
    True
    """
    try:
        import dask
        import dask.array as da
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            'skhyper.dask needs dask: pip install -e ".[dask]" '
            '(or pip install "dask[distributed]")'
        ) from exc
    if method not in _METHODS:
        raise ValueError(f"method must be one of {sorted(_METHODS)}, got {method!r}.")
    if not hasattr(estimator, method):
        raise ValueError(f"{type(estimator).__name__} has no method {method!r}.")
    check_is_fitted(estimator)
    shared = dask.delayed(estimator, pure=True, traverse=False)
    dtype = _METHODS[method]
    if isinstance(X, da.Array):
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (rows, features); got {X.ndim} dimension(s).")
        _check_columns(estimator, X.shape[1], None)
        X = X.rechunk({1: -1})
        return X.map_blocks(
            _apply, shared, method, drop_axis=1, dtype=dtype, meta=np.empty((0,), dtype)
        )
    try:
        import dask.dataframe as dd
    except ImportError:  # pragma: no cover - dask without its dataframe extra
        dd = None
    if dd is not None and isinstance(X, dd.DataFrame):
        import pandas as pd

        _check_columns(estimator, len(X.columns), list(X.columns))

        series = X.map_partitions(
            _apply_frame, shared, method, meta=pd.Series([], dtype=dtype), align_dataframes=False
        )
        return series.to_dask_array()
    raise TypeError(
        f"X must be a dask array or a dask DataFrame, got {type(X).__name__}; "
        "for data in memory call the estimator's method directly."
    )
