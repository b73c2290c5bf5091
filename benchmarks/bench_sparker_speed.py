"""Wall time of one calibrated SparKer test at the size in the spec.

N_D = 10,000, N_R = 50,000, d = 8, 100 permutations, default parameters.
Run alone on a quiet machine: ``python benchmarks/bench_sparker_speed.py``.
"""

import time

import numpy as np

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


if __name__ == "__main__":
    main()
