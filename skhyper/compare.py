"""``python -m skhyper compare``: skhyper's detectors side by side with IsolationForest.

One run, one machine, one split: every method is fitted on the same training
rows and scored on the same test rows, and the table reports outlier AUROC,
outlier average precision, FPR at 95% TPR, and fit / score wall-clock seconds.

Data (``--dataset``):

- ``digits`` (default; ships with scikit-learn, no download): one-class digits.
  The rows of one digit (``--normal-class``, default 0) are normal; they are
  shuffled (``--seed``) and 70% form the training set. The test set is the other
  30% plus anomalies drawn at random from the other nine digits, as many as
  ``--anomaly-ratio`` (default 0.5) times the test normals. Pixels are scaled to
  [0, 1] (divided by 16).
- ``breast_cancer`` (ships with scikit-learn): benign = normal, malignant =
  anomaly, the same split rule; features standardised on the training set.
- a path to an ``.npz`` file (keys ``X`` and ``y``) or a ``.csv`` file with a
  header and a label column (``--label-column``, default the first of
  ``label``, ``y``, ``target``, ``outlier``, ``anomaly``, ``class``). Labels:
  ``{0, 1}`` with 1 = anomaly or ``{-1, +1}`` with -1 = anomaly. Protocol: the
  normal rows are shuffled, 70% (at most 10,000) are the training set; the test
  set is the other 30% plus every anomaly (at most ``--max-test`` rows in all,
  drawn at random); features standardised on the training set.

SparKerDetector runs in its reference mode: fitted on the test set with the
training set as ``X_ref``, then scoring the test set; its test p-value is printed
under the table.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .metrics import (
    as_outlier_labels,
    fpr_at_95_tpr,
    outlier_average_precision,
    outlier_roc_auc,
)

__all__ = ["CompareData", "load_compare_data", "run_compare", "format_table", "main"]

DEFAULT_METHODS = ("compvae", "vmf", "sparker", "iforest")
ALL_METHODS = ("compvae", "vmf", "sparker", "iforest", "lof", "knn")
_LABEL_CANDIDATES = ("label", "y", "target", "outlier", "anomaly", "class")


@dataclass
class CompareData:
    """A one-class split: training rows (normal only) and labelled test rows."""

    name: str
    protocol: str
    X_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray  # 1 = anomaly


@dataclass
class MethodResult:
    """One method's row of the comparison table."""

    method: str
    auroc: float = float("nan")
    ap: float = float("nan")
    fpr95: float = float("nan")
    fit_s: float = float("nan")
    score_s: float = float("nan")
    anomaly_scores: np.ndarray | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- data


def _standardize(X_train: np.ndarray, X_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test)


def _builtin_split(
    X: np.ndarray,
    normal: np.ndarray,
    anomaly_ratio: float,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    idx_n = rng.permutation(np.flatnonzero(normal))
    n_train = int(round(0.7 * len(idx_n)))
    train, test_n = idx_n[:n_train], idx_n[n_train:]
    idx_a = np.flatnonzero(~normal)
    n_a = min(len(idx_a), max(1, int(round(anomaly_ratio * len(test_n)))))
    test_a = rng.choice(idx_a, size=n_a, replace=False)
    test = np.r_[test_n, test_a]
    y_test = np.r_[np.zeros(len(test_n), int), np.ones(n_a, int)]
    return X[train], X[test], y_test


def _tabular_split(
    X: np.ndarray, y: np.ndarray, seed: int, max_train: int, max_test: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    idx_n = rng.permutation(np.flatnonzero(y == 0))
    n_train = min(int(round(0.7 * len(idx_n))), max_train)
    train = idx_n[:n_train]
    test = np.r_[idx_n[n_train:], np.flatnonzero(y == 1)]
    if len(test) > max_test:
        test = np.sort(rng.choice(test, size=max_test, replace=False))
    return X[train], X[test], y[test]


def _read_csv(path: str, label_column: str | None) -> tuple[np.ndarray, np.ndarray]:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.reader(fh) if r]
    if len(rows) < 2:
        raise ValueError(f"{path}: needs a header row and at least one data row.")
    header = [h.strip() for h in rows[0]]
    if label_column is None:
        found = [h for h in header if h.lower() in _LABEL_CANDIDATES]
        if not found:
            raise ValueError(
                f"{path}: no label column found among {header[:10]}...; "
                "name it with --label-column."
            )
        label_column = found[0]
    if label_column in header:
        li = header.index(label_column)
    elif label_column.lstrip("-").isdigit():
        li = int(label_column) % len(header)
    else:
        raise ValueError(f"{path}: no column named {label_column!r} in {header}.")
    body = rows[1:]
    bad = [i for i, r in enumerate(body) if len(r) != len(header)]
    if bad:
        raise ValueError(
            f"{path}: row {bad[0] + 2} has {len(body[bad[0]])} fields, "
            f"the header has {len(header)}."
        )
    feats = [j for j in range(len(header)) if j != li]
    try:
        X = np.array([[float(r[j]) for j in feats] for r in body], dtype=np.float64)
    except ValueError as exc:
        raise ValueError(
            f"{path}: feature columns must be numeric ({exc}); drop or encode "
            "non-numeric columns first."
        ) from None
    y = np.array([r[li].strip() for r in body])
    try:
        y = y.astype(np.float64)
    except ValueError:
        raise ValueError(
            f"{path}: label column {header[li]!r} must be numeric "
            "(0/1 with 1 = anomaly, or -1/+1 with -1 = anomaly)."
        ) from None
    return X, y


def load_compare_data(
    dataset: str = "digits",
    *,
    label_column: str | None = None,
    normal_class: int = 0,
    anomaly_ratio: float = 0.5,
    seed: int = 0,
    max_train: int = 10_000,
    max_test: int = 10_000,
) -> CompareData:
    """Load a data set and make the one-class split described in the module docstring.

    Parameters
    ----------
    dataset : str, default="digits"
        ``"digits"``, ``"breast_cancer"``, or a path to a ``.npz`` / ``.csv`` file.
    label_column : str, default=None
        CSV only: name (or integer index) of the label column.
    normal_class : int, default=0
        ``digits`` only: the digit that is normal.
    anomaly_ratio : float, default=0.5
        Built-in data sets: anomalies in the test set per test normal.
    seed : int, default=0
        Seed of the shuffles.
    max_train, max_test : int, default=10000
        Caps for ``.npz`` / ``.csv`` data.

    Returns
    -------
    data : CompareData
    """
    if dataset == "digits":
        from sklearn.datasets import load_digits

        X, t = load_digits(return_X_y=True)
        if not 0 <= int(normal_class) <= 9:
            raise ValueError(f"--normal-class must be a digit 0-9, got {normal_class}.")
        Xtr, Xte, yte = _builtin_split(X / 16.0, t == int(normal_class), anomaly_ratio, seed)
        protocol = (
            f"sklearn load_digits one-class: digit {normal_class} normal; train = 70% "
            f"of its rows ({len(Xtr)}), test = the other {int((yte == 0).sum())} plus "
            f"{int(yte.sum())} random other digits; pixels / 16; seed {seed}"
        )
        return CompareData("digits", protocol, Xtr, Xte, yte)
    if dataset == "breast_cancer":
        from sklearn.datasets import load_breast_cancer

        X, t = load_breast_cancer(return_X_y=True)
        # target 1 = benign (normal), 0 = malignant (anomaly)
        Xtr, Xte, yte = _builtin_split(X, t == 1, anomaly_ratio, seed)
        Xtr, Xte = _standardize(Xtr, Xte)
        protocol = (
            f"sklearn load_breast_cancer: benign normal; train = 70% of benign "
            f"({len(Xtr)}), test = the other {int((yte == 0).sum())} benign plus "
            f"{int(yte.sum())} random malignant; standardised on train; seed {seed}"
        )
        return CompareData("breast_cancer", protocol, Xtr, Xte, yte)

    if not os.path.exists(dataset):
        raise ValueError(
            f"--dataset {dataset!r}: not 'digits', 'breast_cancer' or an existing "
            ".npz / .csv file."
        )
    ext = os.path.splitext(dataset)[1].lower()
    if ext == ".npz":
        with np.load(dataset, allow_pickle=False) as z:
            missing = [k for k in ("X", "y") if k not in z.files]
            if missing:
                raise ValueError(f"{dataset}: missing key(s) {missing}; found {z.files}.")
            X, y = np.asarray(z["X"], dtype=np.float64), np.asarray(z["y"])
    elif ext == ".csv":
        X, y = _read_csv(dataset, label_column)
    else:
        raise ValueError(f"{dataset}: unsupported file type {ext!r} (use .npz or .csv).")
    if X.ndim != 2:
        raise ValueError(f"{dataset}: X must be 2-D, got shape {X.shape}.")
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{dataset}: X contains NaN or infinity.")
    y01 = as_outlier_labels(np.asarray(y).ravel())
    if len(y01) != len(X):
        raise ValueError(f"{dataset}: X has {len(X)} rows but y has {len(y01)}.")
    Xtr, Xte, yte = _tabular_split(X, y01, seed, max_train, max_test)
    if len(Xtr) < 5:
        raise ValueError(f"{dataset}: only {len(Xtr)} normal training rows.")
    Xtr, Xte = _standardize(Xtr, Xte)
    protocol = (
        f"{os.path.basename(dataset)}: normal rows shuffled (seed {seed}), 70% train "
        f"({len(Xtr)}); test = other normals + anomalies ({len(Xte)} rows, "
        f"{int(yte.sum())} anomalies); standardised on train"
    )
    return CompareData(os.path.basename(dataset), protocol, Xtr, Xte, yte)


# ------------------------------------------------------------------------ methods


def _method_factories(
    *, epochs: int | None, n_permutations: int | None, seed: int, verbose: int
) -> dict[str, tuple[str, Callable[[], Any]]]:
    deep: dict[str, Any] = {"random_state": seed, "verbose": verbose}
    if epochs is not None:
        deep["epochs"] = epochs

    def compvae() -> Any:
        from .compvae import CompVAEDetector

        return CompVAEDetector(**deep)

    def vmf() -> Any:
        from .compvae import VMFDetector

        return VMFDetector(**deep)

    def sparker() -> Any:
        from .sparker import SparKerDetector

        kw: dict[str, Any] = {
            "calibration": "permutation",
            "random_state": seed,
            "verbose": verbose,
        }
        if n_permutations is not None:
            kw["n_permutations"] = n_permutations
        return SparKerDetector(**kw)

    def iforest() -> Any:
        from sklearn.ensemble import IsolationForest

        return IsolationForest(random_state=seed)

    def lof() -> Any:
        from sklearn.neighbors import LocalOutlierFactor

        return LocalOutlierFactor(novelty=True)

    def knn() -> Any:
        return _KNNMean(n_neighbors=5)

    return {
        "compvae": ("CompVAEDetector", compvae),
        "vmf": ("VMFDetector", vmf),
        "sparker": ("SparKerDetector (ref. mode)", sparker),
        "iforest": ("IsolationForest", iforest),
        "lof": ("LOF (novelty)", lof),
        "knn": ("kNN mean dist (k=5)", knn),
    }


class _KNNMean:
    """Mean Euclidean distance to the k nearest training rows (negated score)."""

    def __init__(self, n_neighbors: int = 5) -> None:
        self.n_neighbors = n_neighbors

    def fit(self, X: np.ndarray) -> _KNNMean:
        from sklearn.neighbors import NearestNeighbors

        self.nn_ = NearestNeighbors(n_neighbors=min(self.n_neighbors, len(X))).fit(X)
        return self

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        dist, _ = self.nn_.kneighbors(X)
        return -dist.mean(axis=1)


def _run_method(
    key: str, label: str, factory: Callable[[], Any], data: CompareData
) -> MethodResult:
    res = MethodResult(label)
    try:
        est = factory()
        t0 = time.perf_counter()
        if key == "sparker":
            est.fit(data.X_test, X_ref=data.X_train)
        else:
            est.fit(data.X_train)
        t1 = time.perf_counter()
        s = np.asarray(est.score_samples(data.X_test), dtype=np.float64)
        t2 = time.perf_counter()
    except ImportError as exc:
        res.error = f"not available ({exc})"
        return res
    except Exception as exc:  # report and go on with the other methods
        res.error = f"{type(exc).__name__}: {exc}"
        if os.environ.get("SKHYPER_COMPARE_TRACEBACK"):
            traceback.print_exc()
        return res
    res.fit_s, res.score_s = t1 - t0, t2 - t1
    if not np.all(np.isfinite(s)):
        res.error = "non-finite scores"
        return res
    res.anomaly_scores = -s
    res.auroc = outlier_roc_auc(data.y_test, s)
    res.ap = outlier_average_precision(data.y_test, s)
    res.fpr95 = fpr_at_95_tpr(data.y_test, s)
    if key == "sparker":
        for attr in ("pvalue_", "test_statistic_"):
            if hasattr(est, attr):
                res.extra[attr.rstrip("_")] = float(getattr(est, attr))
    return res


def run_compare(
    data: CompareData,
    methods: Sequence[str] = DEFAULT_METHODS,
    *,
    epochs: int | None = None,
    n_permutations: int | None = None,
    seed: int = 0,
    verbose: int = 0,
    progress: Any = "stderr",
) -> list[MethodResult]:
    """Fit and score each method on ``data``; return one result per method.

    Parameters
    ----------
    data : CompareData
        From :func:`load_compare_data`.
    methods : sequence of str, default=("compvae", "vmf", "sparker", "iforest")
        Keys among ``compvae``, ``vmf``, ``sparker``, ``iforest``, ``lof``, ``knn``.
    epochs : int, default=None
        Training epochs of CompVAEDetector / VMFDetector (None: their default).
    n_permutations : int, default=None
        SparKer's permutation count (None: its default).
    seed : int, default=0
        ``random_state`` of every method.
    verbose : int, default=0
        Passed to skhyper's detectors (progress bars).
    progress : file-like, "stderr" or None, default="stderr"
        Where one progress line per method goes (``"stderr"``: ``sys.stderr`` at
        call time); None for silence.

    Returns
    -------
    results : list of MethodResult
        A method that fails or cannot be imported has ``error`` set and NaN metrics.
    """
    factories = _method_factories(
        epochs=epochs, n_permutations=n_permutations, seed=seed, verbose=verbose
    )
    if isinstance(progress, str) and progress == "stderr":
        progress = sys.stderr
    unknown = [m for m in methods if m not in factories]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; choose from {list(factories)}.")
    results = []
    for i, key in enumerate(methods, 1):
        label, factory = factories[key]
        if progress is not None:
            print(f"[{i}/{len(methods)}] {label} ...", end="", file=progress, flush=True)
        res = _run_method(key, label, factory, data)
        if progress is not None:
            if res.error:
                print(f" skipped: {res.error}", file=progress, flush=True)
            else:
                print(
                    f" fit {res.fit_s:.2f} s, score {res.score_s:.2f} s, "
                    f"AUROC {res.auroc:.3f}",
                    file=progress,
                    flush=True,
                )
        results.append(res)
    return results


def format_table(results: Sequence[MethodResult]) -> str:
    """The comparison as a fixed-width text table."""
    w = max([len("method")] + [len(r.method) for r in results])
    lines = [
        f"{'method':<{w}}  {'AUROC':>6}  {'AP':>6}  {'FPR95':>6}  {'fit s':>8}  {'score s':>8}"
    ]
    lines.append("-" * len(lines[0]))
    for r in results:
        if r.error:
            lines.append(f"{r.method:<{w}}  {r.error}")
        else:
            lines.append(
                f"{r.method:<{w}}  {r.auroc:6.3f}  {r.ap:6.3f}  {r.fpr95:6.3f}  "
                f"{r.fit_s:8.2f}  {r.score_s:8.3f}"
            )
    return "\n".join(lines)


def _plot_roc(
    results: Sequence[MethodResult], data: CompareData, path: str
) -> str | None:
    """Write ROC curves to ``path``; return an error message instead of raising."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed; no plot written (pip install matplotlib)."
    from sklearn.metrics import roc_curve

    fig, ax = plt.subplots(figsize=(5, 5))
    for r in results:
        if r.anomaly_scores is None:
            continue
        fpr, tpr, _ = roc_curve(data.y_test, r.anomaly_scores)
        ax.plot(fpr, tpr, label=f"{r.method} (AUROC {r.auroc:.3f})")
    ax.plot([0, 1], [0, 1], ls=":", c="grey", lw=1)
    ax.set_xlabel("false-positive rate (inliers flagged)")
    ax.set_ylabel("true-positive rate (outliers flagged)")
    ax.set_title(f"ROC, {data.name}", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=120)
    except OSError as exc:
        return f"could not write {path}: {exc}"
    finally:
        plt.close(fig)
    return None


def _write_results(results: Sequence[MethodResult], data: CompareData, path: str) -> None:
    import json

    rows = [
        {
            "dataset": data.name,
            "method": r.method,
            "auroc": r.auroc,
            "ap": r.ap,
            "fpr95": r.fpr95,
            "fit_s": r.fit_s,
            "score_s": r.score_s,
            "error": r.error,
            **r.extra,
        }
        for r in results
    ]
    if path.lower().endswith(".csv"):
        keys = list(dict.fromkeys(k for row in rows for k in row))
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)
    else:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump({"protocol": data.protocol, "results": rows}, fh, indent=2)


# --------------------------------------------------------------------------- CLI


def build_parser(prog: str = "skhyper-compare") -> argparse.ArgumentParser:
    """The argument parser of ``python -m skhyper compare`` / ``skhyper-compare``."""
    p = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Compare CompVAEDetector, VMFDetector, SparKerDetector (reference mode) "
            "and IsolationForest on one data set: outlier AUROC, AP, FPR at 95% TPR, "
            "fit and score seconds."
        ),
    )
    p.add_argument(
        "--dataset",
        default="digits",
        help="'digits' (default), 'breast_cancer', or a path to .npz (X, y) / .csv",
    )
    p.add_argument("--label-column", default=None, help="CSV label column (name or index)")
    p.add_argument("--normal-class", type=int, default=0, help="digits: the normal digit")
    p.add_argument(
        "--anomaly-ratio",
        type=float,
        default=0.5,
        help="built-in data: test anomalies per test normal (default 0.5)",
    )
    p.add_argument(
        "--methods",
        default=",".join(DEFAULT_METHODS),
        help=f"comma-separated, from {','.join(ALL_METHODS)} (default: %(default)s)",
    )
    p.add_argument("--epochs", type=int, default=None, help="CompVAE / vMF epochs")
    p.add_argument(
        "--n-permutations", type=int, default=None, help="SparKer permutations"
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny settings for a smoke test (3 epochs, 10 permutations, "
        "at most 300 test rows)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-test", type=int, default=10_000)
    p.add_argument("--plot", default=None, help="write ROC curves to this PNG")
    p.add_argument("--output", default=None, help="write results to .json or .csv")
    p.add_argument("-v", "--verbose", type=int, default=0, help="detectors' verbosity")
    return p


def main(argv: Sequence[str] | None = None, prog: str = "skhyper-compare") -> int:
    """Entry point of ``skhyper-compare`` and ``python -m skhyper compare``.

    Returns the exit status: 0 when every method ran, 1 when one or more failed
    (they are listed in the table), 2 for bad arguments or data.
    """
    args = build_parser(prog).parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in ALL_METHODS]
    if bad or not methods:
        print(f"error: unknown method(s) {bad}; choose from {','.join(ALL_METHODS)}",
              file=sys.stderr)
        return 2
    epochs, n_perm, max_test = args.epochs, args.n_permutations, args.max_test
    if args.quick:
        epochs = 3 if epochs is None else epochs
        n_perm = 10 if n_perm is None else n_perm
        max_test = min(max_test, 300)
    try:
        data = load_compare_data(
            args.dataset,
            label_column=args.label_column,
            normal_class=args.normal_class,
            anomaly_ratio=args.anomaly_ratio,
            seed=args.seed,
            max_test=max_test,
        )
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.quick and len(data.X_test) > max_test:
        rng = np.random.default_rng(args.seed)
        keep = np.sort(rng.choice(len(data.X_test), max_test, replace=False))
        data.X_test, data.y_test = data.X_test[keep], data.y_test[keep]
    print(f"data: {data.protocol}")
    print(
        f"      {data.X_train.shape[0]} train x {data.X_train.shape[1]} features, "
        f"{data.X_test.shape[0]} test ({int(data.y_test.sum())} anomalies)"
    )
    settings = []
    if args.quick:
        settings.append("--quick (tiny settings: numbers are a smoke test)")
    settings.append(f"epochs={epochs if epochs is not None else 'default'}")
    settings.append(
        f"SparKer n_permutations={n_perm if n_perm is not None else 'default'}"
    )
    print("settings: " + ", ".join(settings) + f", seed={args.seed}")
    sys.stdout.flush()
    results = run_compare(
        data,
        methods,
        epochs=epochs,
        n_permutations=n_perm,
        seed=args.seed,
        verbose=args.verbose,
    )
    print()
    print(format_table(results))
    for r in results:
        if "pvalue" in r.extra:
            stat = r.extra.get("test_statistic", float("nan"))
            print(
                f"\nSparKer two-sample test, test set vs training set: "
                f"t = {stat:.3g}, p = {r.extra['pvalue']:.3g}"
            )
    print(
        "\nAUROC / AP: outlier class positive, higher is better; FPR95: fraction of "
        "inliers flagged when 95% of outliers are, lower is better."
    )
    if args.plot:
        msg = _plot_roc(results, data, args.plot)
        print(msg if msg else f"ROC plot written to {args.plot}")
    if args.output:
        _write_results(results, data, args.output)
        print(f"results written to {args.output}")
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
