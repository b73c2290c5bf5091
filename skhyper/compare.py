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
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.preprocessing import StandardScaler

from .evaluation import (
    METHODS,
    MethodResult,
    builtin_split,
    evaluate,
    one_class_split,
    parse_methods,
    roc_figure,
    write_results_csv,
)
from .metrics import as_outlier_labels

__all__ = ["CompareData", "load_compare_data", "run_compare", "format_table", "main"]

DEFAULT_METHODS = ("compvae", "vmf", "sparker", "iforest")
ALL_METHODS = tuple(METHODS)
_LABEL_CANDIDATES = ("label", "y", "target", "outlier", "anomaly", "class")


@dataclass
class CompareData:
    """A one-class split: training rows (normal only) and labelled test rows."""

    name: str
    protocol: str
    X_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray  # 1 = anomaly


# --------------------------------------------------------------------------- data


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
        Xtr, Xte, yte = builtin_split(X / 16.0, t == int(normal_class), anomaly_ratio, seed)
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
        Xtr, Xte, yte = builtin_split(X, t == 1, anomaly_ratio, seed)
        scaler = StandardScaler().fit(Xtr)
        Xtr, Xte = scaler.transform(Xtr), scaler.transform(Xte)
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
    if int((y01 == 0).sum()) < 8:
        raise ValueError(f"{dataset}: only {int((y01 == 0).sum())} normal rows.")
    Xtr, Xte, yte = one_class_split(X, y01, seed, max_train=max_train, max_test=max_test)
    protocol = (
        f"{os.path.basename(dataset)}: normal rows shuffled (seed {seed}), 70% train "
        f"({len(Xtr)}); test = other normals + anomalies ({len(Xte)} rows, "
        f"{int(yte.sum())} anomalies); standardised on train"
    )
    return CompareData(os.path.basename(dataset), protocol, Xtr, Xte, yte)


# ------------------------------------------------------------------------ methods


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
        Keys of :data:`skhyper.evaluation.METHODS`.
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
    methods, _ = parse_methods(methods)
    if isinstance(progress, str) and progress == "stderr":
        progress = sys.stderr
    return evaluate(
        data.name,
        methods,
        data.X_train,
        data.X_test,
        data.y_test,
        seed=seed,
        epochs=epochs,
        n_permutations=n_permutations,
        verbose=verbose,
        progress=progress,
        traceback_on_error=bool(os.environ.get("SKHYPER_COMPARE_TRACEBACK")),
    )


def format_table(results: Sequence[MethodResult]) -> str:
    """The comparison as a fixed-width text table."""
    w = max([len("method")] + [len(r.label) for r in results])
    lines = [
        f"{'method':<{w}}  {'AUROC':>6}  {'AP':>6}  {'FPR95':>6}  {'fit s':>8}  {'score s':>8}"
    ]
    lines.append("-" * len(lines[0]))
    for r in results:
        if r.error:
            lines.append(f"{r.label:<{w}}  {r.error}")
        else:
            lines.append(
                f"{r.label:<{w}}  {r.auroc:6.3f}  {r.ap:6.3f}  {r.fpr95:6.3f}  "
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

    curves = []
    for r in results:
        if r.anomaly_scores is not None:
            fpr, tpr, _ = roc_curve(data.y_test, r.anomaly_scores)
            curves.append((f"{r.label} (AUROC {r.auroc:.3f})", fpr, tpr))
    fig = roc_figure(curves, f"ROC, {data.name}")
    try:
        fig.savefig(path, dpi=120)
    except (OSError, ValueError) as exc:
        return f"could not write {path}: {exc}"
    finally:
        plt.close(fig)
    return None


def _write_results(results: Sequence[MethodResult], data: CompareData, path: str) -> None:
    rows = [r.as_row() for r in results]
    if path.lower().endswith(".csv"):
        write_results_csv(rows, path)
    else:
        rows = [{**row, "label": label} for row, label in zip(rows, [r.label for r in results])]
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
    try:
        methods, notes = parse_methods(args.methods)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
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
    settings = list(notes)
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
