"""SparKer's speed: default fits on small data, and one calibrated test at scale.

Three parts, each printed and written to benchmarks/results/sparker_speed.{csv,md}:

- **small data**: a default ``SparKerDetector(random_state=0)`` fitted with
  ``fit(X, X_ref=R)`` and ``fit(X)`` (no reference) and scoring X, beside
  ``IsolationForest(random_state=0)``'s fit + score, at 30 x 3 and 1,000 x 8
  (R: five times the rows of X, same distribution). Median of 5 runs in this
  process after one warm-up fit, and the first fit + score of a fresh process
  (imports excluded, everything else included);
- **null rejection**: the rate at which the default ``fit(X, X_ref=R)``
  rejects at alpha = 0.05 (``pvalue_ < 0.05``) when X and R share one
  distribution, over ``--null-draws`` draws at each small size, with its
  binomial 95% interval;
- **at scale**: one calibrated test with default parameters, N_D = 10,000 (300
  rows in a bump), d = 8, 100 permutations, at N_R = 50,000 and 200,000, and
  one training step of a batch of toys split into arithmetic and overhead.

Run alone on a quiet machine: ``python benchmarks/bench_sparker_speed.py``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import _common as C
import numpy as np
import torch
from scipy.stats import binomtest
from sklearn.ensemble import IsolationForest

from skhyper import SparKerDetector
from skhyper._sparker import kernels
from skhyper.stats import sparker_test

TARGET_SECONDS = 5.0  # the 100-permutation test at N_R = 50,000, on 2 CPU cores
N_PERMUTATIONS = 100
SMALL_SIZES = [(30, 3), (1000, 8)]
REPEATS = 5

COLD = r"""
import json, sys, time, warnings
import numpy as np
from skhyper import SparKerDetector
n, d = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
X, R = rng.normal(size=(n, d)), rng.normal(size=(5 * n, d))
t0 = time.perf_counter()
SparKerDetector(random_state=0).fit(X, X_ref=R).score_samples(X)
print(json.dumps({"seconds": time.perf_counter() - t0}))
"""


def small_sample(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.normal(size=(5 * n, d))


def timed(fit_score) -> float:
    t0 = time.perf_counter()
    fit_score()
    return time.perf_counter() - t0


def fit_and_score(X: np.ndarray, R: np.ndarray) -> dict:
    """The timed calls on one small sample, by name."""
    return {
        "IsolationForest": lambda: IsolationForest(random_state=0).fit(X).score_samples(X),
        "SparKer fit(X, X_ref=R)": lambda: SparKerDetector(random_state=0)
        .fit(X, X_ref=R).score_samples(X),
        "SparKer fit(X)": lambda: SparKerDetector(random_state=0).fit(X).score_samples(X),
    }


def small_data() -> list[dict]:
    import warnings

    from skhyper.sparker import NoReferenceWarning

    warnings.simplefilter("ignore", NoReferenceWarning)
    rows = []
    for n, d in SMALL_SIZES:
        calls = fit_and_score(*small_sample(n, d, 0))
        for fn in calls.values():
            fn()  # warm-up
        med = {k: statistics.median(timed(fn) for _ in range(REPEATS)) for k, fn in calls.items()}
        cold = C.run_child(COLD, n, d)["seconds"]
        for k, s in med.items():
            rows.append({"part": "small data", "n": n, "d": d, "what": k, "seconds": s,
                         "ratio_to_iforest": s / med["IsolationForest"],
                         "first_call_seconds": cold if k == "SparKer fit(X, X_ref=R)" else ""})
            print(f"{n} x {d}: {k}: {s:.3f} s ({s / med['IsolationForest']:.1f}x IForest)",
                  flush=True)
        print(f"{n} x {d}: first fit + score in a fresh process: {cold:.2f} s", flush=True)
    return rows


def null_rejection(n_draws: int) -> list[dict]:
    rows = []
    for n, d in SMALL_SIZES:
        rejected = 0
        for seed in range(n_draws):
            X, R = small_sample(n, d, 1000 + seed)
            rejected += SparKerDetector(random_state=seed).fit(X, X_ref=R).pvalue_ < 0.05
        ci = binomtest(int(rejected), n_draws).proportion_ci(0.95)
        rows.append({"part": "null rejection", "n": n, "d": d, "draws": n_draws,
                     "rate": rejected / n_draws, "ci_low": ci.low, "ci_high": ci.high})
        print(f"{n} x {d}: null rejection {rejected}/{n_draws} "
              f"(95% interval {ci.low:.3f}..{ci.high:.3f})", flush=True)
    return rows


def one_test(n_reference: int, d: int = 8, n_data: int = 10_000) -> dict:
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(n_reference, d))
    data = rng.normal(size=(n_data, d))
    data[:300] = 1.5 + 0.1 * rng.normal(size=(300, d))
    start = time.perf_counter()
    res = sparker_test(data, reference, n_permutations=N_PERMUTATIONS, random_state=0)
    seconds = time.perf_counter() - start
    print(f"N_R = {n_reference}: t = {res.statistic:.1f}, p = {res.pvalue:.4f}, "
          f"{seconds:.1f} s", flush=True)
    return {"part": "at scale", "n_data": n_data, "n_reference": n_reference, "d": d,
            "n_permutations": N_PERMUTATIONS, "seconds": seconds,
            "statistic": res.statistic, "pvalue": res.pvalue}


def step_split(n_rows: int = 60_000, d: int = 8, n_toys: int = 25, n_kernels: int = 8,
               chunk: int = 4096, width: float = 0.4) -> dict:
    """One loss-and-gradient pass of a batch of toys at the test's size, and the
    same number of chunks over 64-row chunks: the second is the dispatch
    overhead (the same operations on almost no numbers), the rest arithmetic."""
    gen = torch.Generator().manual_seed(0)

    def per_call(rows: int, chunk_rows: int) -> float:
        X = torch.randn(rows, d, generator=gen)
        is_data = torch.rand(n_toys, rows, generator=gen) < 1 / 6
        model = kernels.KernelEnsemble(torch.randn(n_toys, n_kernels, d, generator=gen),
                                       0.1 * torch.randn(n_toys, n_kernels, generator=gen))
        args = (kernels._augment(X), *kernels.row_weights(is_data.float(), (~is_data).float()),
                width, chunk_rows)
        model.loss_and_grad(*args)
        return statistics.median(timed(lambda: model.loss_and_grad(*args)) for _ in range(10))

    n_chunks = -(-n_rows // chunk)
    total = per_call(n_rows, chunk)
    overhead = per_call(64 * n_chunks, 64)
    print(f"one step of {n_toys} toys x {n_rows:,} rows: {total * 1e3:.1f} ms, of which "
          f"{overhead * 1e3:.1f} ms dispatch overhead ({n_chunks} chunks)", flush=True)
    return {"part": "step", "n_rows": n_rows, "toys": n_toys, "chunks": n_chunks,
            "step_ms": total * 1e3, "overhead_ms": overhead * 1e3,
            "arithmetic_ms": (total - overhead) * 1e3}


def markdown(small, null, scale, step, env_line: str) -> str:
    out = ["## SparKer speed", "", env_line + "  ", "",
           "### Small data: default fit + score_samples", "",
           f"Median of {REPEATS} runs after a warm-up; the first call is a fresh process's first "
           "fit + score (imports excluded). R has five times the rows of X.", "",
           "| rows x features | what | seconds | × IsolationForest | first call (s) |",
           "|---|---|---|---|---|"]
    for r in small:
        first = f"{r['first_call_seconds']:.2f}" if r["first_call_seconds"] != "" else ""
        out.append(f"| {r['n']} x {r['d']} | {r['what']} | {r['seconds']:.3f} | "
                   f"{r['ratio_to_iforest']:.1f} | {first} |")
    if null:
        out += ["", "### Null rejection of the default fit(X, X_ref=R) at alpha = 0.05", "",
                "| rows x features | draws | rejection rate | binomial 95% interval |",
                "|---|---|---|---|"]
        out += [f"| {r['n']} x {r['d']} | {r['draws']} | {r['rate']:.3f} | "
                f"{r['ci_low']:.3f}..{r['ci_high']:.3f} |" for r in null]
    out += ["", "### One calibrated test at scale", "",
            f"Default parameters: N_D = 10,000 (300 rows in a bump), d = 8, {N_PERMUTATIONS} "
            "permutations (the observed fit, then batches of 25 toys, n_jobs=1), float32 "
            f"training. Goal at N_R = 50,000: ≤ {TARGET_SECONDS:g} s on 2 CPU cores.", "",
            "| N_R | seconds | seconds per fit (101 fits) | t | p |", "|---|---|---|---|---|"]
    out += [f"| {r['n_reference']:,} | {r['seconds']:.1f} | "
            f"{r['seconds'] / (N_PERMUTATIONS + 1):.3f} | {r['statistic']:.1f} | "
            f"{r['pvalue']:.4f} |" for r in scale]
    if step:
        out += ["", f"One loss-and-gradient step of a batch of {step['toys']} toys over "
                f"{step['n_rows']:,} rows ({step['chunks']} chunks): {step['step_ms']:.1f} ms, "
                f"of which {step['overhead_ms']:.1f} ms is dispatch overhead (the same calls on "
                f"64-row chunks) and {step['arithmetic_ms']:.1f} ms arithmetic."]
    return "\n".join(out) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-reference", default="50000,200000",
                   help="comma-separated reference sizes of the test at scale ('' skips it)")
    p.add_argument("--null-draws", type=int, default=100)
    p.add_argument("--tag", default="")
    args = p.parse_args()
    env_line = C.environment_line()
    small = small_data()
    null = null_rejection(args.null_draws) if args.null_draws else []
    scale = [one_test(int(n)) for n in args.n_reference.split(",") if n.strip()]
    step = step_split() if scale else None
    C.write_outputs("sparker_speed", args.tag, small + null + scale + ([step] if step else []),
                    markdown(small, null, scale, step, env_line))


if __name__ == "__main__":
    main()
