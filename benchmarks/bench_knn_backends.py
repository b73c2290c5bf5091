"""Exact (skhyper._vae.neighbors.ExactKNN) vs approximate (pynndescent) kNN search:
build + query seconds over bank sizes, recall of the approximate neighbours,
and the crossover bank size above which pynndescent is faster.

pynndescent's numba compilation is paid once on a small warm-up bank before
timing, and reported separately. Queries: as many rows as the bank by default
(what ``fit`` does when it scores its own training rows, the case
``knn_backend="auto"`` decides at fit time), or --n-queries rows; k = 3,
latent-like Gaussian data of dimension --dim (CompVAE's latent_dim default 16).

    python benchmarks/bench_knn_backends.py
    python benchmarks/bench_knn_backends.py --sizes 1000,5000 --n-queries 500
"""

from __future__ import annotations

import argparse
import sys
import time

import _common as C
import numpy as np


def exact_search(bank: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k nearest bank rows, via skhyper._vae.neighbors.ExactKNN."""
    import torch

    from skhyper._vae.neighbors import ExactKNN

    _, idx = ExactKNN(torch.from_numpy(bank)).kneighbors(torch.from_numpy(queries), k)
    return idx.numpy()


def approx_search(bank: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Indices from skhyper._vae.neighbors.NNDescentKNN (pynndescent), index built here."""
    from skhyper._vae.neighbors import NNDescentKNN

    return NNDescentKNN(bank, n_neighbors=k, random_state=0).kneighbors(queries, k)[1]


def main() -> int:
    p = argparse.ArgumentParser(description="kNN backend crossover")
    p.add_argument("--sizes", default="1000,3000,10000,30000,100000")
    p.add_argument("--dim", type=int, default=16)
    p.add_argument("--n-queries", type=int, default=0,
                   help="query rows (default 0: as many as the bank)")
    p.add_argument("--k", type=int, default=3)
    p.add_argument("--tag", default="")
    args = p.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rng = np.random.default_rng(C.SEED)
    header = [
        f"kNN backends: dim {args.dim}, "
        f"{args.n_queries or 'as many as the bank'} queries, k = {args.k}, "
        "Gaussian data; time = index build + query",
        C.environment_line(),
    ]
    print("\n".join(header), flush=True)
    try:
        t0 = time.perf_counter()
        approx_search(rng.normal(size=(500, args.dim)).astype(np.float32),
                      rng.normal(size=(10, args.dim)).astype(np.float32), args.k)
        warm = time.perf_counter() - t0
        have_ann = True
    except ImportError as exc:
        print(f"pynndescent not available ({exc}); timing exact search only")
        warm, have_ann = float("nan"), False
    header.append(f"pynndescent first-call (numba compile) warm-up: {warm:.1f} s")
    print(header[-1], flush=True)
    rows = []
    for n in sizes:
        bank = rng.normal(size=(n, args.dim)).astype(np.float32)
        q = rng.normal(size=(args.n_queries or n, args.dim)).astype(np.float32)
        t0 = time.perf_counter()
        ex = exact_search(bank, q, args.k)
        t_ex = time.perf_counter() - t0
        row = {"bank_size": n, "exact_s": t_ex, "pynndescent_s": np.nan, "recall": np.nan}
        if have_ann:
            t0 = time.perf_counter()
            ap = approx_search(bank, q, args.k)
            row["pynndescent_s"] = time.perf_counter() - t0
            row["recall"] = float(np.mean([len(set(a) & set(e)) / args.k
                                           for a, e in zip(ap, ex)]))
        rows.append(row)
        print(f"  bank {n:>8}: exact {t_ex:8.3f} s   pynndescent "
              f"{row['pynndescent_s']:8.3f} s   recall {row['recall']:.3f}", flush=True)
    faster = [r["bank_size"] for r in rows if r["pynndescent_s"] < r["exact_s"]]
    cross = (f"pynndescent first faster at bank size {faster[0]}" if faster else
             "no crossover in the measured range: exact search was faster at every size")
    print(cross)
    md = ["## kNN backends", ""] + [f"{h}  " for h in header] + [
        "", "| bank size | exact s | pynndescent s | recall@k |", "|---|---|---|---|"]
    md += [f"| {r['bank_size']} | {r['exact_s']:.3f} | {C._f(r['pynndescent_s'])} | "
           f"{C._f(r['recall'])} |" for r in rows]
    md += ["", f"Crossover: {cross}."]
    C.write_outputs("knn_backends", args.tag, rows, "\n".join(md) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
