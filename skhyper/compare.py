"""``python -m skhyper compare``: skhyper's detectors side by side with IsolationForest.

Every method is fitted on the same training rows and scored on the same test
rows of several one-class splits, and the table reports the mean and standard
deviation over the splits of outlier AUROC, outlier average precision, FPR at
95% TPR, and fit / score wall-clock seconds.

Data (``--dataset``; the splits are made by :func:`skhyper.datasets.load_splits`):

- ``digits`` (default; ships with scikit-learn, no download): one-class digits,
  **every digit in turn** (or only ``--normal-class``). The rows of the normal
  digit are shuffled (``--seed``) and 70% form the training set. The test set
  is the other 30% plus anomalies drawn at random from the other nine digits,
  as many as ``--anomaly-ratio`` (default 0.5) times the test normals. Pixels
  are scaled to [0, 1] (divided by 16).
- ``breast_cancer`` (ships with scikit-learn): benign = normal, malignant =
  anomaly, the same split rule, ``--n-splits`` shuffles (default 5, seeds
  ``seed, seed + 1, ...``); features standardised on the training set.
- a path to an ``.npz`` file (keys ``X`` and ``y``) or a ``.csv`` file with a
  header and a label column (``--label-column``, default the first of
  ``label``, ``y``, ``target``, ``outlier``, ``anomaly``, ``class``). Labels:
  ``{0, 1}`` with 1 = anomaly or ``{-1, +1}`` with -1 = anomaly. Protocol: the
  normal rows are shuffled, 70% (at most 10,000) are the training set; the test
  set is the other 30% plus every anomaly (at most ``--max-test`` rows in all,
  drawn at random); features standardised on the training set;
  ``--n-splits`` shuffles (default 1).

SparKerDetector runs in its reference mode: fitted on the test set with the
training set as ``X_ref``, then scoring the test set (it sees the test rows,
so its row is transductive, unlike the others); its two-sample p-value says
whether the test set differs from the training set at all.

After the digits table (not with ``--quick`` or ``--no-bump``) a short
section runs SparKer, IsolationForest and kNN on a generated collective
anomaly (:func:`skhyper.datasets.planted_bump_split`: a tight bump of rows
inside the bulk of a 4-D normal), where the one-class peers, fitted on the
reference, hardly rank the bump's rows and SparKer finds them; it names the
best method on the bump and on the digits from the numbers it prints. It is
printed only (not written by ``--output`` or ``--plot``).

Bad arguments and unreadable files end the command with exit status 2 and a
one-line message, before any model is fitted; results are written before the
plot, so a plotting error loses nothing.

This module is the command line only (arguments, output, files); the data
and splits are in :mod:`skhyper.datasets`, the methods and the runner in
:mod:`skhyper.evaluation`, the ROC figure in :mod:`skhyper.plotting`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import numpy as np

from .datasets import (  # noqa: F401 (_read_csv, _read_npz kept importable)
    LABEL_CANDIDATES,
    OneClassSplit,
    _read_csv,
    _read_npz,
    planted_bump_split,
)
from .datasets import load_split as load_compare_data
from .datasets import load_splits as load_compare_splits
from .evaluation import METHODS, MethodResult, evaluate, label, parse_methods, write_results_csv

__all__ = [
    "CompareData",
    "load_compare_data",
    "load_compare_splits",
    "run_compare",
    "format_table",
    "main",
]

DEFAULT_METHODS = ("compvae", "vmf", "sparker", "iforest", "lof", "knn")
ALL_METHODS = tuple(METHODS)
_RESULT_TYPES = (".csv", ".json")

# how the VAEs run here: the network and scores chosen for the digits
# (doc/compvae.md, "The main job's digits")
VAE_SETTING = (
    "VAEs: MLP on the flat rows (on the digits the conv net ranked lower), "
    "anomaly_score='combined' (the default); their kNN- and reconstruction-score "
    "rows rescore the same fit"
)

# the split type's name here before it moved to skhyper.datasets
CompareData = OneClassSplit

# the section after the digits table: a case where SparKer is the tool
BUMP_METHODS = ("sparker", "iforest", "knn")
# the smallest p-value 39 permutations can give is 1/40 = 0.025
BUMP_PERMUTATIONS = 39


# ------------------------------------------------------------------------ methods


def run_compare(
    data: OneClassSplit,
    methods: Sequence[str] = DEFAULT_METHODS,
    *,
    epochs: int | None = None,
    n_permutations: int | None = None,
    seed: int = 0,
    verbose: int = 0,
    progress: Any = "stderr",
) -> list[MethodResult]:
    """Fit and score each method on one split; return one result per method.

    Parameters
    ----------
    data : OneClassSplit
        One split from :func:`load_compare_splits`.
    methods : sequence of str, default=DEFAULT_METHODS
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


# ------------------------------------------------------------------------- output


def _mean_sd(values: Sequence[float], nd: int = 3) -> str:
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 1:
        return f"{v[0]:.{nd}f}"
    return f"{v.mean():.{nd}f} ± {v.std(ddof=1):.{nd}f}"


def format_table(results: Sequence[MethodResult]) -> str:
    """Mean ± standard deviation over splits per method, as a fixed-width text table.

    Seconds are means per split. A method that failed on some split shows the
    first error.
    """
    methods = list(dict.fromkeys(r.method for r in results))
    n_splits = len({r.dataset for r in results})
    spread = n_splits > 1
    cw = 13 if spread else 6
    w = max([len("method")] + [len(label(m)) for m in methods])
    title = (
        f"{'method':<{w}}  {'AUROC':>{cw}}  {'AP':>{cw}}  {'FPR95':>{cw}}"
        f"  {'fit s':>7}  {'score s':>7}"
    )
    lines = [title, "-" * len(title)]
    for m in methods:
        rows = [r for r in results if r.method == m]
        failed = [r for r in rows if r.error]
        if failed:
            lines.append(f"{label(m):<{w}}  {failed[0].error}")
            continue
        cells = [_mean_sd([getattr(r, k) for r in rows]) for k in ("auroc", "ap", "fpr95")]
        fit = np.mean([r.fit_s for r in rows])
        score = np.mean([r.score_s for r in rows])
        lines.append(
            f"{label(m):<{w}}  "
            + "  ".join(f"{c:>{cw}}" for c in cells)
            + f"  {fit:7.2f}  {score:7.3f}"
        )
    if spread:
        lines.append(f"(mean ± standard deviation over {n_splits} splits; seconds per split)")
    return "\n".join(lines)


# the level below which the note calls a two-sample p-value small
ALPHA = 0.05


def _sparker_note(results: Sequence[MethodResult]) -> str | None:
    ps = [r.extra["pvalue"] for r in results if "pvalue" in r.extra]
    if not ps:
        return None
    small = sum(p < ALPHA for p in ps)
    if len(ps) == 1:
        where = f"p = {ps[0]:.3g}"
    else:
        where = f"median p = {np.median(ps):.3g}, p < {ALPHA:g} on {small} of {len(ps)} splits"
    if small == len(ps):
        reading = "a small p: the test set is not distributed like the training set"
    elif small == 0:
        reading = (
            f"p >= {ALPHA:g}: no evidence at that level that the test set is distributed "
            "otherwise than the training set"
        )
    else:
        reading = (
            f"on the splits with p < {ALPHA:g} the test set is not distributed like the "
            "training set; on the others there is no such evidence"
        )
    return (
        "SparKerDetector (reference mode) is fitted on the test rows against the training "
        f"rows, so it sees the test set; its two-sample test of test vs training rows gives "
        f"{where} ({reading})."
    )


def _best(results: Sequence[MethodResult]) -> tuple[str, float]:
    """The method with the highest mean AUROC, and that mean."""
    means = {
        m: float(np.mean([r.auroc for r in results if r.method == m]))
        for m in dict.fromkeys(r.method for r in results if not r.error)
    }
    best = max(means, key=lambda m: means[m])
    return best, means[best]


def bump_section(
    split: OneClassSplit, bump: Sequence[MethodResult], main: Sequence[MethodResult]
) -> str:
    """The section after the main table: SparKer and its one-class peers on
    ``split`` (:func:`skhyper.datasets.planted_bump_split`), read beside the
    main table's best method.

    Parameters
    ----------
    split : OneClassSplit
        The planted bump.
    bump : sequence of MethodResult
        The methods' results on ``split``.
    main : sequence of MethodResult
        The main table's results (none: no comparison line).

    Returns
    -------
    text : str
        The section's lines.
    """
    auroc = {r.method: r.auroc for r in bump if not r.error}
    best, top = _best(bump)
    others = "; ".join(f"{label(m)} {a:.3f}" for m, a in auroc.items() if m != best)
    lines = [
        "When to pick skhyper: a collective anomaly. SparKer (reference mode) is fitted on "
        "the data against the reference; IsolationForest and kNN on the reference rows.",
        f"data: {split.protocol}",
        format_table(bump),
        f"On the bump, {label(best)} ranks the anomalies highest (AUROC {top:.3f}; {others}): "
        "each bump row is ordinary alone; only their density departs from the reference.",
    ]
    ps = [r.extra["pvalue"] for r in bump if "pvalue" in r.extra]
    if ps:
        lines.append(
            f"SparKer's two-sample test of the data against the reference gives p = {ps[0]:.3g} "
            f"(with {BUMP_PERMUTATIONS} permutations p >= {1 / (1 + BUMP_PERMUTATIONS):.3g})."
        )
    if main:
        main_best, main_top = _best(main)
        lines.append(
            f"On the main table's data, {label(main_best)} ranks best (mean AUROC "
            f"{main_top:.3f}): there each anomaly is a row unlike the training rows."
        )
    return "\n".join(lines)


def _plot_roc(
    results: Sequence[MethodResult], splits: Sequence[OneClassSplit], path: str
) -> str | None:
    """Write ROC curves (log false-positive axis) to ``path``: one axes with a
    curve per method for one split, else one axes per method with a curve per
    split. Return an error message instead of raising."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed; no plot written (pip install matplotlib)."
    from sklearn.metrics import roc_curve

    from .plotting import plot_roc

    y_of = {d.name: d.y_test for d in splits}
    methods = [
        m
        for m in dict.fromkeys(r.method for r in results)
        if any(r.method == m and r.anomaly_scores is not None for r in results)
    ]
    if not methods:
        return "no method produced scores; no plot written."

    def curve(r: MethodResult, name: str | None) -> tuple[str | None, np.ndarray, np.ndarray]:
        fpr, tpr, _ = roc_curve(y_of[r.dataset], r.anomaly_scores)
        return name, fpr, tpr

    # below one false positive in the largest test set the log axis shows nothing
    low = min(1e-2, 0.5 / max(int((d.y_test == 0).sum()) for d in splits))
    scored = [r for r in results if r.anomaly_scores is not None]
    if len(splits) == 1:
        fig, ax = plt.subplots(figsize=(5.5, 5))
        curves = [
            curve(r, f"{label(r.method)} (AUROC {r.auroc:.3f})")
            for m in methods
            for r in scored
            if r.method == m
        ]
        plot_roc(curves, ax=ax, min_fpr=low)
    else:
        ncols = min(3, len(methods))
        nrows = -(-len(methods) // ncols)
        fig, axes = plt.subplots(
            nrows, ncols, figsize=(4 * ncols, 3.6 * nrows), squeeze=False
        )
        for ax, m in zip(axes.flat, methods):
            rows = [r for r in scored if r.method == m]
            plot_roc(
                [curve(r, None) for r in rows],
                ax=ax,
                min_fpr=low,
                linewidth=0.8,
                title=f"{label(m)}\nAUROC {_mean_sd([r.auroc for r in rows])}",
            )
        for ax in axes.flat[len(methods) :]:
            ax.set_visible(False)
    fig.suptitle(
        f"ROC, {splits[0].name if len(splits) == 1 else f'{len(splits)} splits, one curve each'}",
        fontsize=10,
    )
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=110)
    except (OSError, ValueError) as exc:
        return f"could not write {path}: {exc}"
    finally:
        plt.close(fig)
    return None


def _write_results(
    results: Sequence[MethodResult], splits: Sequence[OneClassSplit], path: str
) -> None:
    rows = [{**r.as_row(), "label": r.label} for r in results]
    if path.lower().endswith(".csv"):
        write_results_csv(rows, path)
    else:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump({"protocol": [d.protocol for d in splits], "results": rows}, fh, indent=2)


# --------------------------------------------------------------------------- CLI


class _Parser(argparse.ArgumentParser):
    """Bad arguments: one line on stderr and exit status 2 (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _int_at_least(low: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (value > 0 and np.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def build_parser(prog: str = "skhyper-compare") -> argparse.ArgumentParser:
    """The argument parser of ``python -m skhyper compare`` / ``skhyper-compare``."""
    p = _Parser(
        prog=prog,
        description=(
            "Compare CompVAEDetector, VMFDetector, SparKerDetector (reference mode) "
            "with IsolationForest, LOF and kNN over several one-class splits: mean ± "
            "spread of outlier AUROC, AP, FPR at 95% TPR, fit and score seconds."
        ),
    )
    p.add_argument(
        "--dataset",
        default="digits",
        help="'digits' (default: every digit in turn), 'breast_cancer', or a path "
        "to .npz (keys X, y) / .csv (a header row, numeric columns); labels 0/1 "
        "with 1 = anomaly, or -1/+1 with -1 = anomaly",
    )
    p.add_argument(
        "--label-column",
        default=None,
        help="CSV label column, by name or 0-based index (default: the first column "
        f"named one of {', '.join(LABEL_CANDIDATES)}, any case); every other column "
        "is a feature",
    )
    p.add_argument(
        "--normal-class",
        type=int,
        default=None,
        help="digits: run only this normal digit (default: all ten)",
    )
    p.add_argument(
        "--n-splits",
        type=_int_at_least(1),
        default=None,
        help="shuffles of breast_cancer (default 5) or a file (default 1)",
    )
    p.add_argument(
        "--anomaly-ratio",
        type=_positive_float,
        default=0.5,
        help="built-in data: test anomalies per test normal (default 0.5)",
    )
    p.add_argument(
        "--methods",
        default=",".join(DEFAULT_METHODS),
        help=f"comma-separated, from {','.join(ALL_METHODS)} (default: %(default)s)",
    )
    p.add_argument("--epochs", type=_int_at_least(1), default=None, help="CompVAE / vMF epochs")
    p.add_argument(
        "--n-permutations", type=_int_at_least(0), default=None, help="SparKer permutations"
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="a smoke test: 2 splits, 3 epochs, 10 permutations, at most 300 test rows",
    )
    p.add_argument(
        "--no-bump",
        action="store_true",
        help="digits: skip the section after the table (SparKer, IsolationForest and kNN "
        "on a generated collective anomaly, a few seconds; also skipped with --quick)",
    )
    p.add_argument("--seed", type=_int_at_least(0), default=0)
    p.add_argument("--max-test", type=_int_at_least(10), default=10_000)
    p.add_argument(
        "--plot", default=None, help="write ROC curves to this image (.png, .pdf, .svg, ...)"
    )
    p.add_argument("--output", default=None, help="write results to .json or .csv")
    p.add_argument(
        "-v",
        "--verbose",
        type=_int_at_least(0),
        default=0,
        help="1: skhyper's detectors draw progress bars on stderr (default 0: silent fits)",
    )
    return p


def _check_writable(path: str, option: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise ValueError(f"{option} {path!r} is a folder, not a file.")
    if not os.path.isdir(folder):
        raise ValueError(f"{option} {path!r}: the folder {folder!r} does not exist.")
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise ValueError(f"{option} {path!r} is not writable.")


def _check_outputs(args: argparse.Namespace) -> None:
    if args.output is not None:
        _check_writable(args.output, "--output")
        if os.path.splitext(args.output)[1].lower() not in _RESULT_TYPES:
            raise ValueError(f"--output {args.output!r}: use a .csv or .json file name.")
    if args.plot is not None:
        _check_writable(args.plot, "--plot")
        ext = os.path.splitext(args.plot)[1].lower().lstrip(".")
        try:
            from matplotlib.backend_bases import FigureCanvasBase
        except ImportError:
            return  # said after the run: the table matters more than the plot
        types = FigureCanvasBase.get_supported_filetypes()
        if ext not in types:
            raise ValueError(
                f"--plot {args.plot!r}: unsupported image type {ext!r}; use one of "
                f"{', '.join(sorted(types))}."
            )


def main(argv: Sequence[str] | None = None, prog: str = "skhyper-compare") -> int:
    """Entry point of ``skhyper-compare`` and ``python -m skhyper compare``.

    Returns the exit status: 0 when every method ran, 1 when one or more failed
    (they are listed in the table), 2 for bad arguments or data.
    """
    args = build_parser(prog).parse_args(argv)
    epochs, n_perm, max_test = args.epochs, args.n_permutations, args.max_test
    if args.quick:
        epochs = 3 if epochs is None else epochs
        n_perm = 10 if n_perm is None else n_perm
        max_test = min(max_test, 300)
    try:
        methods, notes = parse_methods(args.methods)
        _check_outputs(args)
        splits = load_compare_splits(
            args.dataset,
            label_column=args.label_column,
            normal_class=args.normal_class,
            anomaly_ratio=args.anomaly_ratio,
            seed=args.seed,
            n_splits=args.n_splits,
            max_test=max_test,
        )
    except (ValueError, OSError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    if args.quick:
        splits = splits[:2]
        rng = np.random.default_rng(args.seed)
        for d in splits:
            if len(d.X_test) > max_test:
                keep = np.sort(rng.choice(len(d.X_test), max_test, replace=False))
                d.X_test, d.y_test = d.X_test[keep], d.y_test[keep]
    for d in splits[:1] + (["..."] if len(splits) > 2 else []) + splits[1:][-1:]:
        print("data: ..." if d == "..." else f"data: {d.protocol}")
    d = splits[0]
    print(
        f"      {len(splits)} split(s); first: {d.X_train.shape[0]} train x "
        f"{d.X_train.shape[1]} features, {d.X_test.shape[0]} test ({int(d.y_test.sum())} anomalies)"
    )
    settings = list(notes)
    if args.quick:
        settings.append("--quick (tiny settings: numbers are a smoke test)")
    if any(m in methods for m in ("compvae", "vmf", "vae", "compvae_paper")):
        settings.append(VAE_SETTING)
    settings.append(f"epochs={epochs if epochs is not None else 'default'}")
    settings.append(f"SparKer n_permutations={n_perm if n_perm is not None else 'default'}")
    print("settings: " + ", ".join(settings) + f", seed={args.seed}")
    sys.stdout.flush()
    results: list[MethodResult] = []
    for i, data in enumerate(splits, 1):
        print(f"split {i}/{len(splits)}: {data.name}", file=sys.stderr, flush=True)
        results += run_compare(
            data,
            methods,
            epochs=epochs,
            n_permutations=n_perm,
            seed=args.seed,
            verbose=args.verbose,
        )
    print()
    print(format_table(results))
    note = _sparker_note(results)
    if note:
        print("\n" + note)
    print(
        "\nAUROC / AP: outlier class positive, higher is better; FPR95: fraction of "
        "inliers flagged when 95% of outliers are, lower is better."
    )
    if args.dataset == "digits" and not args.quick and not args.no_bump:
        split = planted_bump_split(args.seed)
        print(f"split: {split.name}", file=sys.stderr, flush=True)
        bump = run_compare(split, BUMP_METHODS, n_permutations=BUMP_PERMUTATIONS, seed=args.seed)
        print("\n" + bump_section(split, bump, results))
    if args.output:
        try:
            _write_results(results, splits, args.output)
            print(f"results written to {args.output}")
        except OSError as exc:
            print(f"{prog}: error: could not write {args.output}: {exc}", file=sys.stderr)
            return 2
    if args.plot:
        msg = _plot_roc(results, splits, args.plot)
        print(msg if msg else f"ROC plot written to {args.plot}")
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
