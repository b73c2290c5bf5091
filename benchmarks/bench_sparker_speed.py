"""Wall time of one calibrated SparKer test at the target size of doc/benchmarks.md.

N_D = 10,000, d = 8, 100 permutations, default parameters, at N_R = 50,000
(the target size) and N_R = 200,000 (the size of the Falkon-NPLM timing).
Run alone on a quiet machine: ``python benchmarks/bench_sparker_speed.py``.
Writes benchmarks/results/sparker_speed.{csv,md}.
"""

import argparse
import time

import _common as C
import numpy as np

from skhyper.stats import sparker_test

TARGET_SECONDS = 20.0  # at N_R = 50,000, on 2 CPU cores
N_PERMUTATIONS = 100


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
    return {"n_data": n_data, "n_reference": n_reference, "d": d,
            "n_permutations": N_PERMUTATIONS, "seconds": seconds,
            # the observed fit and every toy train the same number of steps
            "seconds_per_fit": seconds / (N_PERMUTATIONS + 1),
            "statistic": res.statistic, "pvalue": res.pvalue}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-reference", default="50000,200000",
                   help="comma-separated reference sizes")
    args = p.parse_args()
    rows = [one_test(int(n)) for n in args.n_reference.split(",")]
    env = C.environment()
    lines = [
        "## SparKer speed",
        "",
        "One calibrated test with default parameters: N_D = 10,000 (300 rows in a bump), "
        f"d = 8, {N_PERMUTATIONS} permutations (the observed fit, then batches of 25 toys, "
        "n_jobs=1), float32 training.  ",
        "environment: " + ", ".join(f"{k} {v}" for k, v in env.items()) + "  ",
        "",
        "| N_R | seconds | seconds per fit (101 fits) | target | t | p |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        target = (f"< {TARGET_SECONDS:g} on 2 CPU cores" if r["n_reference"] == 50_000
                  else "none (the Falkon-NPLM anchor: about 2 s per toy on two GPUs)")
        lines.append(f"| {r['n_reference']:,} | {r['seconds']:.1f} | "
                     f"{r['seconds_per_fit']:.2f} | {target} | {r['statistic']:.1f} | "
                     f"{r['pvalue']:.4f} |")
    C.write_outputs("sparker_speed", "", rows, "\n".join(lines + [""]))


if __name__ == "__main__":
    main()
