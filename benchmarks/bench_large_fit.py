"""A default CompVAEDetector fitted and scored on many rows (doc/benchmarks.md, "large fit").

For each size, a fresh child process draws ``n_rows`` x 20 rows (a mixture of
five Gaussians, float64), fits ``CompVAEDetector(random_state=0)`` with its
defaults on them and scores them all, and reports the fit's and the scoring's
wall-clock seconds, the process's peak resident memory (``ru_maxrss``, the
input included) and the latent-bank backend the fit chose. IsolationForest
is timed on the same rows in the same child for scale.

    python benchmarks/bench_large_fit.py                        # 200,000 and 1,000,000 rows
    python benchmarks/bench_large_fit.py --rows 200000          # one size

Writes benchmarks/results/large_fit[_<tag>].{csv,md}: one run.
"""

from __future__ import annotations

import argparse
import sys

import _common as C

N_FEATURES = 20

CHILD = r"""
import json, resource, sys, time
import numpy as np
from sklearn.ensemble import IsolationForest
from skhyper import CompVAEDetector

n_rows, n_features = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
centres = rng.normal(scale=4.0, size=(5, n_features))
X = centres[rng.integers(5, size=n_rows)] + rng.normal(size=(n_rows, n_features))
t0 = time.perf_counter()
det = CompVAEDetector(random_state=0).fit(X)
fit_s = time.perf_counter() - t0
t0 = time.perf_counter()
scores = det.score_samples(X)
score_s = time.perf_counter() - t0
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t0 = time.perf_counter()
iforest = IsolationForest(random_state=0).fit(X)
iforest.score_samples(X)
iforest_s = time.perf_counter() - t0
print(json.dumps({"fit_s": fit_s, "score_s": score_s, "peak_mb": peak_mb,
                  "iforest_s": iforest_s, "backend": det._banks[0].backend,
                  "epochs": det.n_epochs_, "finite": bool(np.isfinite(scores).all())}))
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", default="200000,1000000", help="comma-separated sizes")
    p.add_argument("--tag", default="")
    args = p.parse_args()
    rows = []
    for n in [int(v) for v in args.rows.split(",")]:
        res = C.run_child(CHILD, n, N_FEATURES)
        row = {
            "rows": n,
            "features": N_FEATURES,
            "backend": res["backend"],
            "epochs": res["epochs"],
            "fit_seconds": round(res["fit_s"], 1),
            "score_seconds": round(res["score_s"], 1),
            "peak_rss_mb": round(res["peak_mb"]),
            "iforest_fit_score_seconds": round(res["iforest_s"], 1),
            "finite": res["finite"],
        }
        rows.append(row)
        print(row, flush=True)
    header = list(rows[0])
    lines = [
        "## Large fit: a default CompVAEDetector on many rows",
        "",
        f"Rows: a mixture of five Gaussians in {N_FEATURES} dimensions, float64. A fresh process "
        "per size fits `CompVAEDetector(random_state=0)` and scores every training row; "
        "peak RSS includes the input. IsolationForest (defaults) fitted and scored on the "
        "same rows in the same process.  ",
        C.environment_line() + "  ",
        "",
        *C.markdown_table(header, rows),
    ]
    C.write_outputs("large_fit", args.tag, rows, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
