"""The one-class evaluation protocol, shared by ``python -m skhyper compare`` and
the benchmark scripts: the method registry, the runner, result records and
their files.

The splits are those of :mod:`skhyper.datasets` (re-exported here); the ROC
figure is :func:`skhyper.plotting.plot_roc`.

Every method is fitted on the same training rows and scored on the same
test rows. Inductive methods are fitted on the training rows.
``SparKerDetector`` runs in *reference mode* (transductive): it is fitted on
the test rows with the training rows as ``X_ref`` and then scores the test
rows; its row says so, and its two-sample p-value is kept in ``extra``.
"""

from __future__ import annotations

import csv
import inspect
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from .datasets import SEED, builtin_split, one_class_split
from .metrics import fpr_at_95_tpr, outlier_average_precision, outlier_roc_auc

__all__ = [
    "KNNMean",
    "METHODS",
    "Method",
    "MethodResult",
    "builtin_split",
    "evaluate",
    "make_method",
    "one_class_split",
    "parse_methods",
    "write_results_csv",
]


# ----------------------------------------------------------------------- methods


class KNNMean(OutlierMixin, BaseEstimator):
    """The kNN peer: mean Euclidean distance to the k nearest training rows.

    ``score_samples`` is minus that distance (higher = more normal).

    Parameters
    ----------
    n_neighbors : int, default=5
        Number of neighbours averaged (at most the number of training rows).

    Attributes
    ----------
    nn_ : sklearn.neighbors.NearestNeighbors
        The fitted neighbour index.
    offset_ : float
        The 10% quantile of the training rows' scores (their own match
        included), so that ``predict`` flags about a tenth of them.
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from skhyper.evaluation import KNNMean
    >>> X = np.random.RandomState(0).normal(size=(100, 2))
    >>> KNNMean(n_neighbors=3).fit(X).predict([[0, 0], [9, 9]])
    array([ 1, -1])
    """

    def __init__(self, n_neighbors: int = 5) -> None:
        self.n_neighbors = n_neighbors

    def fit(self, X: Any, y: Any = None) -> KNNMean:
        """Index the training rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored

        Returns
        -------
        self : KNNMean
        """
        from sklearn.neighbors import NearestNeighbors

        X = validate_data(self, X)
        self.nn_ = NearestNeighbors(n_neighbors=min(self.n_neighbors, len(X))).fit(X)
        self.offset_ = float(np.percentile(self._scores(X), 10))
        return self

    def _scores(self, X: np.ndarray) -> np.ndarray:
        return -self.nn_.kneighbors(X)[0].mean(axis=1)

    def score_samples(self, X: Any) -> np.ndarray:
        """Minus the mean distance to the nearest training rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        scores : ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        return self._scores(validate_data(self, X, reset=False))

    def decision_function(self, X: Any) -> np.ndarray:
        """``score_samples(X) - offset_``; negative means outlier."""
        return self.score_samples(X) - self.offset_

    def predict(self, X: Any) -> np.ndarray:
        """+1 for inliers, -1 for outliers."""
        return np.where(self.decision_function(X) < 0, -1, 1)


class _PyOD:
    """A PyOD detector with scikit-learn's sign (``score_samples`` = -decision_function)."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make

    def fit(self, X: np.ndarray) -> _PyOD:
        self.model_ = self.make().fit(X)
        return self

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        return -np.asarray(self.model_.decision_function(X), dtype=np.float64)


@dataclass(frozen=True)
class Method:
    """One entry of the registry.

    ``make`` returns a fresh estimator with ``fit`` / ``score_samples``; it
    takes as keywords the options of :func:`make_method` it uses (``seed``,
    ``epochs``, ``image_shape``, ``n_permutations``, ``verbose``) and is
    passed only those. ``reference_mode`` marks a method fitted on the test
    rows with the training rows as ``X_ref``. ``rescore`` maps method keys to
    a CompVAE ``anomaly_score``: those rows reuse this method's fit, scored
    the other way by its ``score_variants`` (no refit).
    """

    key: str
    label: str
    make: Callable[..., Any]
    reference_mode: bool = False
    rescore: tuple[tuple[str, str], ...] = ()

    def build(self, **options: Any) -> Any:
        """A fresh estimator from the options ``make`` declares (others ignored)."""
        accepted = inspect.signature(self.make).parameters
        return self.make(**{k: v for k, v in options.items() if k in accepted})


def _vae(compression: str | None, **params: Any) -> Callable[..., Any]:
    def make(
        *,
        seed: int,
        epochs: int | None = None,
        image_shape: tuple[int, int, int] | None = None,
        verbose: int = 0,
    ) -> Any:
        from .compvae import CompVAEDetector, VMFDetector

        kw: dict[str, Any] = {"random_state": seed, "verbose": verbose, **params}
        if epochs is not None:
            kw["epochs"] = epochs
        if image_shape is not None:
            kw["image_shape"] = image_shape
        if compression is None:
            return VMFDetector(**kw)
        return CompVAEDetector(compression=compression, **kw)

    return make


def _paper(
    *,
    seed: int,
    epochs: int | None = None,
    image_shape: tuple[int, int, int] | None = None,
    verbose: int = 0,
) -> Any:
    from .compvae import PAPER_PARAMS

    make = _vae("full", **PAPER_PARAMS)
    return make(seed=seed, epochs=epochs, image_shape=image_shape, verbose=verbose)


def _sparker(*, seed: int, n_permutations: int | None = None, verbose: int = 0) -> Any:
    from .sparker import SparKerDetector

    kw: dict[str, Any] = {"calibration": "permutation", "random_state": seed, "verbose": verbose}
    if n_permutations is not None:
        kw["n_permutations"] = n_permutations
    return SparKerDetector(**kw)


def _iforest(*, seed: int) -> Any:
    from sklearn.ensemble import IsolationForest

    return IsolationForest(random_state=seed)


def _lof() -> Any:
    from sklearn.neighbors import LocalOutlierFactor

    return LocalOutlierFactor(novelty=True)


def _knn(k: int) -> Callable[[], Any]:
    def make() -> Any:
        return KNNMean(k)

    return make


def _pyod(name: str) -> Callable[..., Any]:
    def make(*, seed: int) -> Any:
        if name == "vae":
            from pyod.models.vae import VAE

            return _PyOD(lambda: VAE(random_state=seed))
        from pyod.models.auto_encoder import AutoEncoder

        return _PyOD(lambda: AutoEncoder(random_state=seed))

    return make


METHODS: dict[str, Method] = {
    m.key: m
    for m in (
        Method(
            "compvae",
            "CompVAEDetector (default: combined score)",
            _vae("full"),
            rescore=(("compvae_knn", "knn"), ("compvae_rec", "reconstruction")),
        ),
        Method("vmf", "VMFDetector", _vae(None), rescore=(("vmf_knn", "knn"),)),
        Method("vae", "VAE (Gaussian, KL)", _vae("gaussian"), rescore=(("vae_knn", "knn"),)),
        Method("compvae_knn", "CompVAE, kNN score", _vae("full", anomaly_score="knn")),
        Method(
            "compvae_rec",
            "CompVAE, reconstruction score",
            _vae("full", anomaly_score="reconstruction"),
        ),
        Method("vmf_knn", "VMFDetector, kNN score", _vae(None, anomaly_score="knn")),
        Method("vae_knn", "VAE (Gaussian, KL), kNN score", _vae("gaussian", anomaly_score="knn")),
        Method("vae_none", "VAE (compression='none')", _vae("none")),
        Method("compvae_paper", "CompVAE, the authors' setting (kNN)", _paper),
        Method("sparker", "SparKerDetector (reference mode)", _sparker, reference_mode=True),
        Method("iforest", "IsolationForest", _iforest),
        Method("lof", "LOF (novelty)", _lof),
        Method("knn", "kNN (k=5)", _knn(5)),
        Method("knn3", "kNN (k=3)", _knn(3)),
        Method("pyod_vae", "PyOD VAE", _pyod("vae")),
        Method("pyod_ae", "PyOD AutoEncoder", _pyod("ae")),
    )
}


def label(key: str) -> str:
    """The display name of a method key (the key itself when unknown)."""
    return METHODS[key].label if key in METHODS else key


def make_method(
    key: str,
    *,
    seed: int = SEED,
    epochs: int | None = None,
    image_shape: tuple[int, int, int] | None = None,
    n_permutations: int | None = None,
    verbose: int = 0,
) -> Any:
    """A fresh estimator for method ``key`` (higher ``score_samples`` = more normal).

    Parameters
    ----------
    key : str
        A key of :data:`METHODS`.
    seed : int, default=0
        ``random_state`` of the methods that take one.
    epochs : int, default=None
        Training epochs of the skhyper VAEs (None: their default).
    image_shape : tuple of int, default=None
        ``(C, H, W)`` of image rows, for the skhyper VAEs' conv net.
    n_permutations : int, default=None
        SparKer's permutation count (None: its default).
    verbose : int, default=0
        Verbosity of skhyper's detectors.

    Returns
    -------
    estimator : object
        Unfitted; a method ignores the options it has no use for.

    Examples
    --------
    >>> from skhyper.evaluation import make_method
    >>> make_method("iforest", seed=3, epochs=5)
    IsolationForest(random_state=3)
    """
    if key not in METHODS:
        raise ValueError(f"unknown method {key!r}; choose from {list(METHODS)}")
    return METHODS[key].build(
        seed=seed,
        epochs=epochs,
        image_shape=image_shape,
        n_permutations=n_permutations,
        verbose=verbose,
    )


def _pyod_available() -> bool:
    try:
        import pyod  # noqa: F401
    except ImportError:
        return False
    return True


def parse_methods(spec: str | Sequence[str]) -> tuple[list[str], list[str]]:
    """Method keys to run, and notes about those skipped (PyOD when not installed).

    ``spec`` is a comma-separated string or a sequence of keys; an unknown or
    empty list raises a ``ValueError`` naming the known keys.
    """
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    methods = [m.strip() for m in items if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise ValueError(f"unknown method(s) {bad}; choose from {','.join(METHODS)}")
    notes = []
    if any(m.startswith("pyod") for m in methods) and not _pyod_available():
        notes.append("PyOD VAE / AutoEncoder skipped: pyod is not installed (optional)")
        methods = [m for m in methods if not m.startswith("pyod")]
    return methods, notes


# ------------------------------------------------------------------------ runner


@dataclass
class MethodResult:
    """One method on one split: metrics, seconds, and the test rows' anomaly scores."""

    dataset: str
    method: str
    n_train: int
    n_test: int
    n_anomalies: int
    d: int
    auroc: float = float("nan")
    ap: float = float("nan")
    fpr95: float = float("nan")
    fit_s: float = float("nan")
    score_s: float = float("nan")
    error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    anomaly_scores: np.ndarray | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        return label(self.method)

    def as_row(self) -> dict[str, Any]:
        """The record as one results-file row (scores left out)."""
        return {
            "dataset": self.dataset,
            "method": self.method,
            "auroc": self.auroc,
            "ap": self.ap,
            "fpr95": self.fpr95,
            "fit_s": self.fit_s,
            "score_s": self.score_s,
            "n_train": self.n_train,
            "n_test": self.n_test,
            "n_anomalies": self.n_anomalies,
            "d": self.d,
            "error": self.error,
            **self.extra,
        }


def evaluate(
    dataset: str,
    methods: Sequence[str],
    X_train: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    *,
    seed: int = SEED,
    epochs: int | None = None,
    image_shape: tuple[int, int, int] | None = None,
    n_permutations: int | None = None,
    verbose: int = 0,
    progress: TextIO | None = None,
    traceback_on_error: bool = False,
) -> list[MethodResult]:
    """Fit and score every method on one split; one :class:`MethodResult` each.

    A method that raises (or cannot be imported) gets its ``error`` set and
    NaN metrics, and the run goes on. A method with ``rescore`` entries adds
    one result per entry, scored by the fitted estimator's ``score_variants``
    (the estimator is not refitted or changed). With ``progress``, one line per
    method is written there: ``[i/n] label ... AUROC, AP, FPR95, seconds``.

    Parameters
    ----------
    dataset : str
        Name of the split, copied into each result.
    methods : sequence of str
        Keys of :data:`METHODS`.
    X_train : ndarray of shape (n_train, n_features)
        Normal rows.
    X_test : ndarray of shape (n_test, n_features)
    y_test : ndarray of shape (n_test,)
        1 = anomaly, 0 = normal.
    seed, epochs, image_shape, n_permutations, verbose
        Options of :func:`make_method`.
    progress : file-like, default=None
        Where the progress lines go; None for silence.
    traceback_on_error : bool, default=False
        Print the traceback of a method that raises.

    Returns
    -------
    results : list of MethodResult
        In the order of ``methods``, each followed by its rescored rows.

    Examples
    --------
    >>> import numpy as np
    >>> from skhyper.evaluation import evaluate
    >>> rng = np.random.default_rng(0)
    >>> X_test = np.r_[rng.normal(size=(40, 2)), rng.normal(6, 1, size=(10, 2))]
    >>> y_test = np.r_[np.zeros(40, int), np.ones(10, int)]
    >>> res = evaluate("toy", ["knn"], rng.normal(size=(100, 2)), X_test, y_test)
    >>> res[0].label, round(res[0].auroc, 2)
    ('kNN (k=5)', 1.0)
    """
    out = []
    for i, key in enumerate(methods, 1):
        res = MethodResult(
            dataset, key, len(X_train), len(X_test), int(np.sum(y_test)), X_train.shape[1]
        )
        if progress is not None:
            print(f"[{i}/{len(methods)}] {res.label:<34}", end="", file=progress, flush=True)
        try:
            est = make_method(
                key,
                seed=seed,
                epochs=epochs,
                image_shape=image_shape,
                n_permutations=n_permutations,
                verbose=verbose,
            )
            t0 = time.perf_counter()
            if METHODS[key].reference_mode:
                with warnings.catch_warnings():
                    # equal sizes are a coincidence of the split, not a CV slice
                    warnings.filterwarnings("ignore", message="X_ref has exactly as many rows")
                    est.fit(X_test, X_ref=X_train)
            else:
                est.fit(X_train)
            t1 = time.perf_counter()
            scores = np.asarray(est.score_samples(X_test), dtype=np.float64)
            t2 = time.perf_counter()
            if not np.all(np.isfinite(scores)):
                raise FloatingPointError("non-finite scores")
        except ImportError as exc:
            res.error = f"not available ({exc})"
        except Exception as exc:  # recorded; the run goes on
            res.error = f"{type(exc).__name__}: {exc}"[:300]
            if traceback_on_error:
                traceback.print_exc()
        else:
            res.fit_s, res.score_s = t1 - t0, t2 - t1
            _metrics(res, y_test, scores)
            for attr in ("pvalue_", "test_statistic_"):
                if METHODS[key].reference_mode and getattr(est, attr, None) is not None:
                    res.extra[attr.rstrip("_")] = float(getattr(est, attr))
        _report(res, progress)
        out.append(res)
        for other, score in METHODS[key].rescore:
            if res.error:
                break
            again = MethodResult(
                dataset, other, res.n_train, res.n_test, res.n_anomalies, res.d
            )
            t0 = time.perf_counter()
            scores = est.score_variants(X_test, (score,))[score]
            again.fit_s, again.score_s = res.fit_s, time.perf_counter() - t0
            _metrics(again, y_test, scores)
            again.extra["shared_fit"] = key
            if progress is not None:
                print(f"    {again.label:<34}", end="", file=progress)
            _report(again, progress)
            out.append(again)
    return out


def _metrics(res: MethodResult, y_test: np.ndarray, scores: np.ndarray) -> None:
    res.auroc = outlier_roc_auc(y_test, scores)
    res.ap = outlier_average_precision(y_test, scores)
    res.fpr95 = fpr_at_95_tpr(y_test, scores)
    res.anomaly_scores = -scores


def _report(res: MethodResult, progress: TextIO | None) -> None:
    if progress is None:
        return
    if res.error:
        print(f" FAILED {res.error}", file=progress, flush=True)
    else:
        print(
            f" AUROC {res.auroc:.3f}  AP {res.ap:.3f}  FPR95 {res.fpr95:.3f}"
            f"  fit {res.fit_s:7.2f} s  score {res.score_s:6.2f} s",
            file=progress,
            flush=True,
        )


# ------------------------------------------------------------------- results files


def _cell(v: Any) -> Any:
    if isinstance(v, (float, np.floating)):
        return "" if np.isnan(v) else repr(round(float(v), 6))
    return v


def write_results_csv(rows: Sequence[dict[str, Any]], path: str) -> None:
    """Write result rows (e.g. :meth:`MethodResult.as_row`) as CSV; NaN -> empty."""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: _cell(r.get(k, "")) for k in keys})


def roc_points(y: np.ndarray, anomaly: np.ndarray, n: int = 101) -> dict[str, list[float]]:
    """The ROC curve interpolated on ``n`` evenly spaced false-positive rates."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(y, anomaly)
    grid = np.linspace(0, 1, n)
    return {"fpr": grid.round(4).tolist(), "tpr": np.interp(grid, fpr, tpr).round(4).tolist()}
