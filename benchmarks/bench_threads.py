"""Threads alone and beside a busy process (doc/benchmarks.md, "threads").

Each workload runs in a fresh process, timed under four conditions: alone or
beside one competing process that keeps one core busy (a Python loop, as a
browser, a build or a second notebook would), and with skhyper's default
threads or with ``torch.set_num_threads(1)`` set by the user. Workloads:

- ``compvae_small``: a default CompVAEDetector fitted on 250 digits, scoring all 1,797;
- ``compvae_conv``: the same with the conv net (``image_shape=(1, 8, 8)``);
- ``sparker_small``: the README's ``sparker_test`` (1,000 data rows, 4,000 reference, d 4);
- ``sparker_50k``: the 100-permutation test at N_D 10,000, N_R 50,000, d 8;
- ``main_job``: ``python -m skhyper compare`` (the digits table and the bump section).

    python benchmarks/bench_threads.py
    python benchmarks/bench_threads.py --workloads compvae_small,sparker_small --code-dir ../old

``--code-dir`` times another checkout's package (e.g. the code before a
change) with the same workloads. Writes benchmarks/results/threads[_<tag>].{csv,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import _common as C

WORK = r"""
import json, sys, time
code_dir, workload, mode = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, code_dir)
import numpy as np
import torch
if mode == "one":
    torch.set_num_threads(1)
import skhyper
assert skhyper.__file__.startswith(code_dir), skhyper.__file__
from sklearn.datasets import load_digits

t0 = time.perf_counter()
if workload in ("compvae_small", "compvae_conv"):
    from skhyper import CompVAEDetector
    X = load_digits().data
    shape = (1, 8, 8) if workload == "compvae_conv" else None
    CompVAEDetector(random_state=0, image_shape=shape).fit(X[:250]).score_samples(X)
elif workload == "sparker_small":
    from skhyper.stats import sparker_test
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(4000, 4))
    data = np.r_[rng.normal(size=(970, 4)), rng.normal([1.5, 1.5, 0, 0], 0.1, size=(30, 4))]
    sparker_test(data, reference, random_state=0)
elif workload == "sparker_50k":
    from skhyper.stats import sparker_test
    rng = np.random.default_rng(0)
    sparker_test(rng.normal(size=(10_000, 8)), rng.normal(size=(50_000, 8)),
                 n_permutations=100, random_state=0)
else:
    raise SystemExit(f"unknown workload {workload}")
print(json.dumps({"seconds": time.perf_counter() - t0}))
"""

WORKLOADS = ("compvae_small", "compvae_conv", "sparker_small", "sparker_50k", "main_job")


def run(code_dir: str, workload: str, mode: str, busy: bool, timeout: float) -> float | None:
    """Seconds of one run, or None past ``timeout``."""
    rival = None
    if busy:
        rival = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(1.0)
    env = dict(os.environ, PYTHONPATH=code_dir)
    if workload == "main_job":
        cmd = [sys.executable, "-c",
               "import sys, torch\n"
               "if sys.argv[1] == 'one': torch.set_num_threads(1)\n"
               "from skhyper.compare import main\nmain([])", mode]
    else:
        cmd = [sys.executable, "-c", WORK, code_dir, workload, mode]
    try:
        t0 = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                             cwd=code_dir, check=True)
        seconds = time.perf_counter() - t0
        if workload != "main_job":
            seconds = json.loads(out.stdout.strip().splitlines()[-1])["seconds"]
        return seconds
    except subprocess.TimeoutExpired:
        return None
    finally:
        if rival is not None:
            rival.kill()
            rival.wait()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workloads", default=",".join(WORKLOADS))
    p.add_argument("--code-dir", default=C.REPO,
                   help="checkout whose skhyper is timed (default: this one)")
    p.add_argument("--timeout", type=float, default=120.0,
                   help="seconds per run; a slower run is reported as '> timeout'")
    p.add_argument("--tag", default="")
    args = p.parse_args()
    code_dir = os.path.abspath(args.code_dir)
    rows = []
    for workload in args.workloads.split(","):
        row: dict = {"workload": workload}
        for busy in (False, True):
            for mode in ("default", "one"):
                seconds = run(code_dir, workload, mode, busy, args.timeout)
                key = f"{'busy' if busy else 'alone'}_{mode}"
                row[key] = f"> {args.timeout:.0f}" if seconds is None else round(seconds, 2)
                print(workload, key, row[key], flush=True)
        rows.append(row)
    header = ["workload", "alone_default", "alone_one", "busy_default", "busy_one"]
    lines = [
        "## Threads: alone and beside a busy process",
        "",
        "Seconds per run, each in a fresh process: alone or beside one process spinning on "
        "one core, with skhyper's default threads or `torch.set_num_threads(1)`. "
        f"Code timed: `{os.path.basename(code_dir)}`.  ",
        C.environment_line() + "  ",
        "",
        *C.markdown_table(header, rows),
    ]
    C.write_outputs("threads", args.tag, rows, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
