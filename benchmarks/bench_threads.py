"""A CompVAE fit and score on a machine busy with another job (doc/benchmarks.md, "threads").

Each condition runs in a fresh process: a default ``CompVAEDetector`` fitted
on 20,000 x 20 rows and scoring them, timed (1) alone, with torch's default
threads; (2) while a competing process keeps every core busy with its own
multi-threaded torch work, with the default threads; (3) the same competitor,
the fit and scoring run inside ``threadpoolctl.threadpool_limits(1)``, the
documented way to limit skhyper's threads (torch follows OpenMP's limit, and
skhyper caps it at the CPU quota).

    python benchmarks/bench_threads.py

Writes benchmarks/results/threads[_<tag>].{csv,md}: one run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import _common as C

WORK = r"""
import json, sys, time
import numpy as np
from threadpoolctl import threadpool_limits
from skhyper import CompVAEDetector

n_rows, limit = int(sys.argv[1]), sys.argv[2]
rng = np.random.default_rng(0)
X = rng.normal(size=(n_rows, 20))
limits = threadpool_limits(limits=int(limit)) if limit != "none" else None
t0 = time.perf_counter()
det = CompVAEDetector(random_state=0).fit(X)
det.score_samples(X)
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds}))
"""

# another job's torch work on every core until killed
COMPETITOR = r"""
import torch
a = torch.randn(600, 600)
while True:
    a = torch.tanh(a @ a.T / 600.0)
"""


def run(n_rows: int, limit: str, competing: bool) -> float:
    rival = None
    if competing:
        rival = subprocess.Popen([sys.executable, "-c", COMPETITOR])
        time.sleep(3.0)  # let it start its threads
    try:
        return C.run_child(WORK, n_rows, limit)["seconds"]
    finally:
        if rival is not None:
            rival.kill()
            rival.wait()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=20_000)
    p.add_argument("--tag", default="")
    args = p.parse_args()
    rows = []
    for label, limit, competing in [
        ("alone, default threads", "none", False),
        ("busy machine, default threads", "none", True),
        ("busy machine, threadpool_limits(1)", "1", True),
    ]:
        seconds = run(args.rows, limit, competing)
        rows.append({"condition": label, "rows": args.rows, "fit_score_seconds": round(seconds, 1)})
        print(rows[-1], flush=True)
    alone = rows[0]["fit_score_seconds"]
    for r in rows:
        r["vs_alone"] = round(r["fit_score_seconds"] / alone, 2)
    header = ["condition", "rows", "fit_score_seconds", "vs_alone"]
    lines = [
        "## Threads: a CompVAE fit and score beside a competing job",
        "",
        f"A default CompVAEDetector fitted on {args.rows:,} x 20 rows and scoring them, in a "
        "fresh process per condition; the competitor is another process running torch "
        f"matrix products on all {os.cpu_count()} cores with torch's default threads.  ",
        C.environment_line() + "  ",
        "",
        *C.markdown_table(header, rows),
    ]
    C.write_outputs("threads", args.tag, rows, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
