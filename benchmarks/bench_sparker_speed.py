"""Wall time of one calibrated SparKer test at the size in the spec.

N_D = 10,000, N_R = 50,000, d = 8, 100 permutations, default parameters.
Run alone on a quiet machine: ``python benchmarks/bench_sparker_speed.py``.
Writes benchmarks/results/sparker_speed.{csv,md}.
"""

import time

import numpy as np

import _common as C
from skhyper.stats import sparker_test


def main() -> None:
    rng = np.random.default_rng(0)
    d = 8
    reference = rng.normal(size=(50_000, d))
    data = rng.normal(size=(10_000, d))
    data[:300] = 1.5 + 0.1 * rng.normal(size=(300, d))
    start = time.perf_counter()
    res = sparker_test(data, reference, n_permutations=100, random_state=0)
    seconds = time.perf_counter() - start
    print(f"t = {res.statistic:.1f}, p = {res.pvalue:.4f}, Z = {res.zscore:.2f}")
    print(f"seconds: {seconds:.1f}")
    env = C.environment()
    row = {"n_data": len(data), "n_reference": len(reference), "d": d,
           "n_permutations": 100, "seconds": seconds, "statistic": res.statistic,
           "pvalue": res.pvalue}
    md = "\n".join([
        "## SparKer speed",
        "",
        "One calibrated test with default parameters: N_D = 10,000 (300 rows in a bump), "
        "N_R = 50,000, d = 8, 100 permutations (the observed fit, then 4 batches of 25 toys, n_jobs=1).  ",
        "environment: " + ", ".join(f"{k} {v}" for k, v in env.items()) + "  ",
        "",
        "| seconds | target | t | p |",
        "|---|---|---|---|",
        f"| {seconds:.1f} | < 60 on 2 CPU cores | {res.statistic:.1f} | {res.pvalue:.4f} |",
        "",
    ])
    C.write_outputs("sparker_speed", "", [row], md)


if __name__ == "__main__":
    main()
