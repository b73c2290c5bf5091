"""kNN backends of the latent bank at 200k and 1M rows: skhyper's exact search
(torch), faiss's flat index (exact) and IVF index, and pynndescent.

Per bank size and backend, in a fresh process each: index build seconds,
query seconds for --n-queries new rows, recall@k of the neighbours against
the exact ones, and the peak memory the build and query added to the process
(``ru_maxrss`` after, less before; the bank and queries are allocated before).
pynndescent's numba compilation is paid on a small bank before the baseline.
Data: Gaussian, dimension --dim (CompVAE's latent_dim default 16), k = 3
(``n_neighbors``' default; the bank is asked for k + 1, as scoring does).
Threads: what the process is given (OMP_NUM_THREADS / torch's count), printed.

    nice -n 19 python benchmarks/bench_faiss_backends.py
    python benchmarks/bench_faiss_backends.py --sizes 20000 --n-queries 1000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import _common as C

CHILD = r"""
import json, resource, sys, time
import numpy as np, torch
sys.path.insert(0, sys.argv[1])
from skhyper._vae.neighbors import ExactKNN, FaissKNN, NNDescentKNN

backend, n, dim, n_queries, k, truth_path = sys.argv[2], *map(int, sys.argv[3:7]), sys.argv[7]
rng = np.random.default_rng(0)
bank = rng.normal(size=(n, dim)).astype(np.float32)
queries = rng.normal(size=(n_queries, dim)).astype(np.float32)
bank_t, queries_t = torch.from_numpy(bank), torch.from_numpy(queries)
if backend == "pynndescent":  # numba compilation, outside the timing and the baseline
    NNDescentKNN(bank[:20000], k + 1, 0).kneighbors(queries[:10], k + 1)

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # MiB on Linux

base = peak()
t0, c0 = time.perf_counter(), time.process_time()
if backend == "exact":
    index = ExactKNN(bank_t)
elif backend in ("faiss", "faiss-ivf"):
    index = FaissKNN(bank_t, backend == "faiss-ivf", 0)
else:
    index = NNDescentKNN(bank, k + 1, 0)
build, build_cpu = time.perf_counter() - t0, time.process_time() - c0
t0, c0 = time.perf_counter(), time.process_time()
if backend == "exact":
    idx = index.kneighbors(queries_t, k + 1)[1].numpy()
elif backend in ("faiss", "faiss-ivf"):
    idx = index.kneighbors(queries_t, k + 1)[1]
else:
    idx = index.kneighbors(queries, k + 1)[1]
query, query_cpu = time.perf_counter() - t0, time.process_time() - c0
memory = peak() - base
if backend == "faiss":
    np.save(truth_path, idx)
truth = np.load(truth_path)
recall = float(np.mean([len(set(a) & set(b)) / (k + 1) for a, b in zip(idx, truth)]))
print(json.dumps({"build_s": build, "query_s": query, "build_cpu_s": build_cpu,
                  "query_cpu_s": query_cpu, "recall": recall, "memory_mib": memory,
                  "threads": torch.get_num_threads()}))
"""


def main() -> int:
    p = argparse.ArgumentParser(description="faiss vs exact vs pynndescent at large banks")
    p.add_argument("--sizes", default="200000,1000000")
    p.add_argument("--backends", default="faiss,faiss-ivf,exact,pynndescent",
                   help="faiss first: its (exact) neighbours are the others' reference")
    p.add_argument("--dim", type=int, default=16)
    p.add_argument("--n-queries", type=int, default=10_000)
    p.add_argument("--k", type=int, default=3)
    p.add_argument("--tag", default="")
    p.add_argument("--checkpoint", default="",
                   help="a JSON-lines file of finished cells: read at start (those cells are "
                        "not run again), appended to")
    p.add_argument("--skip", default="",
                   help="cells not run, listed as such: SIZE:BACKEND,... "
                        "(e.g. 1000000:pynndescent)")
    args = p.parse_args()
    backends = args.backends.split(",")
    skip = {(int(c.split(":")[0]), c.split(":")[1]) for c in args.skip.split(",") if c}
    header = [
        f"latent-bank kNN backends: dim {args.dim}, {args.n_queries} new query rows, "
        f"k + 1 = {args.k + 1} neighbours, Gaussian data; one fresh process per cell",
        C.environment_line(),
    ]
    print("\n".join(header), flush=True)
    done = {}
    if args.checkpoint and os.path.exists(args.checkpoint):
        with open(args.checkpoint, encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                done[(row["bank_size"], row["backend"])] = row
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            truth = os.path.join(tmp, f"truth_{n}.npy")
            for backend in backends:
                # the reference neighbours come from a faiss cell of this run
                if (n, backend) in done and backend != "faiss":
                    rows.append(done[(n, backend)])
                    continue
                if (n, backend) in skip:
                    nan = float("nan")
                    rows.append({"bank_size": n, "backend": backend, "build_s": nan,
                                 "query_s": nan, "build_cpu_s": nan, "query_cpu_s": nan,
                                 "recall": nan, "memory_mib": nan, "threads": "not run"})
                    continue
                r = C.run_child(CHILD, C.REPO, backend, n, args.dim, args.n_queries, args.k, truth)
                row = {"bank_size": n, "backend": backend, **r}
                rows.append(row)
                print(json.dumps(row), flush=True)
                if args.checkpoint and (n, backend) not in done:
                    with open(args.checkpoint, "a", encoding="utf-8") as fh:
                        fh.write(json.dumps(row) + "\n")
    md = ["## Latent-bank kNN backends at large banks", ""] + [f"{h}  " for h in header]
    md += ["", "Recall@(k+1) against faiss's flat index, whose neighbours are the exact ones "
           "(the exact backend's recall says so).", ""]
    md += ["Seconds are wall-clock; CPU seconds beside them (the machine is shared: a cell "
           "whose wall time exceeds its CPU time by far waited for a core).", ""]
    md += ["| bank size | backend | build s | build CPU s | query s | query CPU s | recall | "
           "peak memory added MiB | threads |", "|---|---|---|---|---|---|---|---|---|"]
    md += [f"| {r['bank_size']} | {r['backend']} | {C._f(r['build_s'], 2)} | "
           f"{C._f(r['build_cpu_s'], 2)} | {C._f(r['query_s'], 2)} | {C._f(r['query_cpu_s'], 2)} | "
           f"{C._f(r['recall'], 4)} | {C._f(r['memory_mib'], 0)} | {r['threads']} |" for r in rows]
    C.write_outputs("faiss_backends", args.tag, rows, "\n".join(md) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
