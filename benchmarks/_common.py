"""Shared pieces of the benchmark scripts: data, protocol splits, methods, results.

Every script runs its methods side by side in one process on the same splits,
with fixed seeds, and writes raw results under ``benchmarks/results/``, one
run per file, the run's environment in its header: ``<protocol>[_<tag>].csv``
(one row per data set and method), ``.md`` (a Markdown section) and, for the
one-class protocols, ``.json`` (the header and ROC curve points for the
plots). ``benchmarks/make_report.py`` assembles ``doc/benchmarks.md`` from
those files. The splits and methods are those of :mod:`skhyper.datasets` and
:mod:`skhyper.evaluation`; the two-sample loop is in ``_twosample.py``.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS_DIR = os.path.join(REPO, "benchmarks", "results")
sys.path.insert(0, REPO)  # run from a checkout without installing

from skhyper import datasets  # noqa: E402
from skhyper import evaluation as E  # noqa: E402

SEED = datasets.SEED
LABELS = {key: method.label for key, method in E.METHODS.items()}


# ----------------------------------------------------------------------- data dir


def default_data_dir() -> str | None:
    """``../shared/data`` relative to the repository root, when it exists."""
    for cand in (
        os.path.join(REPO, "..", "shared", "data"),
        os.path.join(REPO, "shared", "data"),
    ):
        if os.path.isdir(cand):
            return os.path.normpath(cand)
    return None


def add_common_args(p: argparse.ArgumentParser, methods: Sequence[str]) -> None:
    """``--data-dir``, ``--datasets``, ``--limit``, ``--methods``, ``--epochs``, ``--tag``."""
    p.add_argument(
        "--data-dir",
        default=default_data_dir(),
        help="the shared data folder (default: ../shared/data from the repo root)",
    )
    p.add_argument(
        "--datasets",
        default=None,
        help="comma-separated names or substrings of the data sets to run",
    )
    p.add_argument("--limit", type=int, default=None, help="run only the first N sets")
    p.add_argument(
        "--methods",
        default=",".join(methods),
        help="comma-separated methods (default: %(default)s)",
    )
    p.add_argument(
        "--epochs", type=int, default=None, help="epochs of the skhyper VAEs (default theirs)"
    )
    p.add_argument(
        "--tag",
        default="",
        help="suffix of the results files (e.g. 'smoke' writes <protocol>_smoke.csv)",
    )


def require(data_dir: str | None, relpaths: Sequence[str]) -> list[str]:
    """Absolute paths of ``relpaths`` under ``data_dir``; exit 2 naming any missing."""
    if data_dir is None:
        sys.exit(
            "error: no data folder: pass --data-dir pointing at shared/data "
            f"(needs: {', '.join(relpaths[:5])}{' ...' if len(relpaths) > 5 else ''})"
        )
    paths = [os.path.join(data_dir, r) for r in relpaths]
    missing = [r for r, p in zip(relpaths, paths) if not os.path.exists(p)]
    if missing:
        sys.exit(
            f"error: missing data file(s) under {data_dir}: {', '.join(missing)}\n"
            "see shared/data/README.md for where they come from"
        )
    return paths


def select(names: Sequence[str], spec: str | None, limit: int | None) -> list[str]:
    """Names matching any comma-separated item of ``spec`` (exact or substring)."""
    out = list(names)
    if spec:
        items = [s.strip() for s in spec.split(",") if s.strip()]
        out = [n for n in out if any(i == n or i.lower() in n.lower() for i in items)]
        if not out:
            sys.exit(f"error: no data set matches --datasets {spec!r}; have {list(names)}")
    if limit is not None:
        out = out[:limit]
    return out


def load_npz(path: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return np.asarray(z["X"], dtype=np.float64), np.asarray(z["y"]).astype(int).ravel()


def _idx(path: str, offset: int) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        return np.frombuffer(fh.read(), np.uint8, offset=offset)


def load_fmnist(data_dir: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fashion-MNIST as float64 in [0, 1]: X_train (60000, 784), y_train, X_test, y_test."""
    names = [
        "images/fashion-mnist/train-images-idx3-ubyte.gz",
        "images/fashion-mnist/train-labels-idx1-ubyte.gz",
        "images/fashion-mnist/t10k-images-idx3-ubyte.gz",
        "images/fashion-mnist/t10k-labels-idx1-ubyte.gz",
    ]
    ptr, ltr, pte, lte = require(data_dir, names)
    Xtr = _idx(ptr, 16).reshape(-1, 784).astype(np.float64) / 255.0
    Xte = _idx(pte, 16).reshape(-1, 784).astype(np.float64) / 255.0
    return Xtr, _idx(ltr, 8).astype(int), Xte, _idx(lte, 8).astype(int)


# ------------------------------------------------------------------ the protocol

one_class_split = datasets.one_class_split


def parse_methods(spec: str) -> tuple[list[str], list[str]]:
    """Methods to run and notes on those skipped; exit 2 on an unknown name."""
    try:
        return E.parse_methods(spec)
    except ValueError as exc:
        sys.exit(f"error: {exc}")


def run_one_class(
    dataset: str,
    methods: Sequence[str],
    X_train: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    *,
    rocs: dict[str, Any] | None = None,
    **options: Any,
) -> list[dict[str, Any]]:
    """:func:`skhyper.evaluation.evaluate` (``options`` are its keywords) on one
    split, as results-file rows; ROC points of each method that ran go into ``rocs``."""
    results = E.evaluate(dataset, methods, X_train, X_test, y_test, progress=sys.stdout,
                         **options)
    if rocs is not None:
        for r in results:
            if r.anomaly_scores is not None:
                rocs.setdefault(dataset, {})[r.method] = E.roc_points(y_test, r.anomaly_scores)
    return [r.as_row() for r in results]


# ----------------------------------------------------------------------- results


def environment_line() -> str:
    """The ``environment: ...`` line of a results file's header."""
    return "environment: " + ", ".join(f"{k} {v}" for k, v in environment().items())


def environment() -> dict[str, str]:
    import sklearn
    import torch

    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": str(os.cpu_count()),
        "torch_threads": str(torch.get_num_threads()),
        "sklearn": sklearn.__version__,
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def run_child(code: str, *args: Any) -> dict[str, Any]:
    """Run ``code`` in a fresh Python process with ``args``; its last stdout line, as JSON."""
    out = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def markdown_table(header: Sequence[str], rows: Sequence[dict[str, Any]]) -> list[str]:
    """The lines of a Markdown table of ``rows``, one column per ``header`` key."""
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(str(r[h]) for h in header) + " |" for r in rows),
    ]


def results_path(protocol: str, tag: str, ext: str) -> str:
    os.makedirs(RESULTS_DIR, exist_ok=True)
    suffix = f"_{tag}" if tag else ""
    return os.path.join(RESULTS_DIR, f"{protocol}{suffix}{ext}")


write_csv = E.write_results_csv
make_method = E.make_method


def read_csv(path: str) -> list[dict[str, Any]]:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        for k, v in r.items():
            if k in ("dataset", "method", "case", "error", "errors"):
                continue
            try:
                r[k] = float(v) if v not in ("", None) else np.nan
            except ValueError:
                pass
    return rows


def _value(r: dict[str, Any] | None, k: str) -> float:
    v = r.get(k) if r else np.nan
    return float(v) if isinstance(v, (int, float)) and v == v else np.nan


def one_class_summary(rows: Sequence[dict[str, Any]]) -> tuple[dict[str, dict], int]:
    """Per method: mean AUROC / AP / FPR95, summed fit + score seconds and their
    ratio to IsolationForest's, over the data sets on which every method ran;
    plus how many sets it ran on. Returns ``(summary, number of complete sets)``."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    by = {(r["dataset"], r["method"]): r for r in rows}

    def val(ds: str, m: str, k: str) -> float:
        return _value(by.get((ds, m)), k)

    ok_all = [ds for ds in datasets if all(val(ds, m, "auroc") == val(ds, m, "auroc")
                                           for m in methods)]
    if_time = sum(val(ds, "iforest", "fit_s") + val(ds, "iforest", "score_s")
                  for ds in ok_all) if "iforest" in methods else np.nan
    summary = {}
    for m in methods:
        au = [val(ds, m, "auroc") for ds in ok_all]
        ap = [val(ds, m, "ap") for ds in ok_all]
        fp = [val(ds, m, "fpr95") for ds in ok_all]
        t = sum(val(ds, m, "fit_s") + val(ds, m, "score_s") for ds in ok_all)
        summary[m] = {
            "auroc": np.mean(au) if au else np.nan,
            "ap": np.mean(ap) if ap else np.nan,
            "fpr95": np.mean(fp) if fp else np.nan,
            "seconds": t,
            "ratio": t / if_time if if_time and if_time == if_time else np.nan,
            "n_run": sum(val(ds, m, "auroc") == val(ds, m, "auroc") for ds in datasets),
        }
    return summary, len(ok_all)


def one_class_markdown(
    rows: Sequence[dict[str, Any]], title: str, header_lines: Sequence[str]
) -> str:
    """Per-data-set AUROC table plus a summary (means, time ratios to IsolationForest)."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    by = {(r["dataset"], r["method"]): r for r in rows}
    summary, n_complete = one_class_summary(rows)

    out = [f"## {title}", ""] + [f"{h}  " for h in header_lines] + [""]
    out.append("| method | mean AUROC | mean AP | mean FPR95 | sets run | "
               "fit+score s (sum) | time / IsolationForest |")
    out.append("|---|---|---|---|---|---|---|")
    for m in methods:
        sm = summary[m]
        out.append(
            f"| {LABELS.get(m, m)} | {_f(sm['auroc'])} | {_f(sm['ap'])} | {_f(sm['fpr95'])} | "
            f"{sm['n_run']}/{len(datasets)} | {sm['seconds']:.1f} | {_f(sm['ratio'], 2)}× |"
        )
    out += ["", f"Means over the {n_complete} data sets on which every method ran.", ""]
    out.append("| data set | " + " | ".join(LABELS.get(m, m) for m in methods) + " |")
    out.append("|---|" + "---|" * len(methods))
    for ds in datasets:
        cells = []
        for m in methods:
            r = by.get((ds, m))
            if r is None:
                cells.append("–")
            elif r.get("error"):
                cells.append("error")
            else:
                cells.append(_f(_value(r, "auroc")))
        out.append(f"| {ds} | " + " | ".join(cells) + " |")
    errs = [r for r in rows if r.get("error")]
    if errs:
        out += ["", "Errors:", ""] + [
            f"- {r['dataset']} / {LABELS.get(r['method'], r['method'])}: {r['error']}"
            for r in errs
        ]
    return "\n".join(out) + "\n"


def _f(v: float, nd: int = 3) -> str:
    return "–" if v != v else f"{v:.{nd}f}"


def write_outputs(
    protocol: str,
    tag: str,
    rows: Sequence[dict[str, Any]],
    markdown: str,
    extra_json: dict[str, Any] | None = None,
) -> None:
    """Write one run: ``<protocol>[_tag].csv``, ``.md`` and, when given, ``.json``.

    Each file holds this run only (files of an earlier run are replaced)."""
    csv_path = results_path(protocol, tag, ".csv")
    write_csv(rows, csv_path)
    md_path = results_path(protocol, tag, ".md")
    with open(md_path, "w", encoding="utf-8") as fh:
        fh.write(markdown)
    written = [csv_path, md_path]
    if extra_json is not None:
        js = results_path(protocol, tag, ".json")
        with open(js, "w", encoding="utf-8") as fh:
            json.dump(extra_json, fh)
        written.append(js)
    print("\nwrote " + ", ".join(os.path.relpath(p, REPO) for p in written))
