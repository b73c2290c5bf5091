"""Scale-out on dask: SparKer's null toys and blockwise scoring on a LocalCluster.

Measured here, with worker processes of one thread each (one core each):

- SparKer toys per second with 1 and 2 workers: the 4 batches of 25 toys of a
  test at N_D = 5,000, N_R = 20,000, d = 8, K = 100, submitted to the workers;
  then the whole test under ``joblib.parallel_config(backend="dask")``, whose
  p-value must equal that of ``n_jobs=1``.
- Blockwise scoring of 10,000,000 rows (d = 8, chunks of 500,000 rows) with
  the fitted SparKerDetector through ``skhyper.dask.score_blocks``, reduced on
  the workers (minimum score and outlier count); each worker's peak resident
  memory is read after the run.

From the two measurements the script writes a *model* of N workers, not a
measurement: T(N) = s + b * ceil(B / N), with s the part that does not spread
(b per batch from the 1-worker run, s from the 2-worker run) and B the
number of batches (toys / 25, or chunks). Its assumptions are printed with it.

    python benchmarks/bench_dask.py
    python benchmarks/bench_dask.py --rows 1000000 --quick
"""

from __future__ import annotations

import argparse
import math
import resource
import time

import _common as C
import numpy as np

ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def _cluster(n_workers: int):
    import torch
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                           env=ONE_THREAD, dashboard_address=":0")
    client = Client(cluster)
    # a worker may have imported torch before env applied: set its threads directly
    client.run(torch.set_num_threads, 1)
    return cluster, client


def toys(n_workers: int, data, reference, n_perm: int) -> dict:
    """The toys' batches on n workers: submitted straight to the cluster (so one
    worker really runs them), and through SparKerDetector(n_jobs=-1) under
    joblib's dask backend, which must give the same p-value."""
    import joblib
    import torch

    from skhyper import SparKerDetector
    from skhyper._sparker.options import SparKerOptions, validate_samples
    from skhyper._sparker.twosample import TOY_BATCH, _toy_batch, prepare_test

    # the problem run_sparker ships to the workers, prepared by its own first step
    samples = validate_samples(data, reference)
    setup = prepare_test(
        samples.rows, samples.weights, samples.reference,
        SparKerOptions(n_permutations=n_perm), torch.device("cpu"),
        np.random.SeedSequence(0),
    )
    problem, seeds = setup.problem, setup.toy_seeds
    batches = [seeds[i: i + TOY_BATCH] for i in range(0, n_perm, TOY_BATCH)]
    cluster, client = _cluster(n_workers)
    with cluster, client:
        client.run(lambda: __import__("skhyper"))  # import cost off the clock
        shared = client.scatter(problem, broadcast=True)
        t0 = time.perf_counter()
        client.gather(client.map(_toy_batch, [shared] * len(batches),
                                 ["permutation"] * len(batches), batches, pure=False))
        toy_s = time.perf_counter() - t0
        with joblib.parallel_config(backend="dask"):
            det = SparKerDetector(n_permutations=n_perm, n_jobs=-1, random_state=0).fit(
                data, X_ref=reference)
    local = SparKerDetector(n_permutations=n_perm, n_jobs=1, random_state=0).fit(
        data, X_ref=reference)
    assert det.pvalue_ == local.pvalue_
    return {"workers": n_workers, "toys": n_perm, "batches": len(batches),
            "toy_s": toy_s, "toys_per_s": n_perm / toy_s, "pvalue": det.pvalue_}


def scoring(n_workers: int, det, n_rows: int, chunk: int) -> dict:
    import dask
    import dask.array as da

    from skhyper.dask import score_blocks

    cluster, client = _cluster(n_workers)
    with cluster, client:
        client.run(lambda: __import__("skhyper"))
        before = client.run(_rss_mb)
        X = da.random.RandomState(0).normal(size=(n_rows, 8), chunks=(chunk, 8))
        scores = score_blocks(det, X)
        t0 = time.perf_counter()
        low, n_out = dask.compute(scores.min(), (scores < det.offset_).sum())
        seconds = time.perf_counter() - t0
        peak = client.run(_peak_rss_mb)
    return {"workers": n_workers, "rows": n_rows, "chunk_rows": chunk,
            "chunks": math.ceil(n_rows / chunk), "seconds": seconds,
            "rows_per_s": n_rows / seconds,
            "chunk_mb": chunk * 8 * 8 / 2**20,
            "worker_rss_before_mb": max(before.values()),
            "worker_peak_rss_mb": max(peak.values()),
            "min_score": float(low), "flagged": int(n_out)}


def model(s: float, per_batch: float, batches: int, n: int) -> float:
    return s + per_batch * math.ceil(batches / n)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=10_000_000, help="rows scored blockwise")
    p.add_argument("--chunk", type=int, default=500_000, help="rows per chunk")
    p.add_argument("--n-permutations", type=int, default=100)
    p.add_argument("--quick", action="store_true", help="small sizes (tag 'quick')")
    p.add_argument("--tag", default="")
    args = p.parse_args()
    n_d, n_r = (1000, 4000) if args.quick else (5000, 20_000)
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(n_r, 8))
    data = rng.normal(size=(n_d, 8))
    data[: n_d // 30] = 1.5 + 0.1 * rng.normal(size=(n_d // 30, 8))

    toy_rows = [toys(n, data, reference, args.n_permutations) for n in (1, 2)]
    for r in toy_rows:
        print(f"toys, {r['workers']} worker(s): {r['toy_s']:.1f} s for {r['toys']} toys "
              f"({r['toys_per_s']:.2f} toys/s), p = {r['pvalue']:.4f}", flush=True)
    from skhyper import SparKerDetector

    det = SparKerDetector(n_permutations=0, random_state=0).fit(data, X_ref=reference)
    score_rows = [scoring(n, det, args.rows, args.chunk) for n in (1, 2)]
    for r in score_rows:
        print(f"scoring, {r['workers']} worker(s): {r['rows']:,} rows in {r['seconds']:.1f} s "
              f"({r['rows_per_s']:,.0f} rows/s); worker peak RSS {r['worker_peak_rss_mb']:.0f} MB "
              f"(before {r['worker_rss_before_mb']:.0f} MB, chunk {r['chunk_mb']:.0f} MB)",
              flush=True)

    # the model: b from one worker (T1 / B), s from two (T2 - b ceil(B / 2)),
    # floored at 0 when two workers beat the model
    def fit(t1: float, t2: float, batches: int) -> tuple[float, float]:
        b = t1 / batches
        return max(t2 - b * math.ceil(batches / 2), 0.0), b

    s_toy, b_toy = fit(toy_rows[0]["toy_s"], toy_rows[1]["toy_s"], toy_rows[0]["batches"])
    s_sc, b_sc = fit(score_rows[0]["seconds"], score_rows[1]["seconds"], score_rows[0]["chunks"])
    workers = [1, 2, 4, 8, 16, 64]
    env = C.environment()
    rows = [{"kind": "toys", **r} for r in toy_rows] + [{"kind": "scoring", **r}
                                                        for r in score_rows]
    lines = [
        "## Scale-out on dask",
        "",
        "Measured on a `LocalCluster` of worker processes with one thread each (one core "
        f"each), on this {env['cpus']}-core machine. Toys: one calibrated SparKer test, "
        f"N_D = {n_d:,}, N_R = {n_r:,}, d = 8, {args.n_permutations} toys in batches of 25, "
        "the batches submitted to the workers (the pooled sample scattered to each once); "
        "the same test under `joblib.parallel_config(backend=\"dask\")` gave the p-value of "
        "`n_jobs=1` (checked in the run). Scoring: `skhyper.dask.score_blocks` of a "
        f"fitted SparKerDetector over {args.rows:,} rows, d = 8, chunks of "
        f"{args.chunk:,} rows, reduced on the workers.  ",
        "environment: " + ", ".join(f"{k} {v}" for k, v in env.items()) + "  ",
        "",
        "| measured | workers | seconds | rate | p / worker peak memory |",
        "|---|---|---|---|---|",
    ]
    for r in toy_rows:
        lines.append(f"| {r['toys']} toys ({r['batches']} batches) | {r['workers']} | "
                     f"{r['toy_s']:.1f} | {r['toys_per_s']:.2f} toys/s | p = {r['pvalue']:.4f} |")
    for r in score_rows:
        lines.append(f"| {r['rows']:,} rows ({r['chunks']} chunks of {r['chunk_mb']:.0f} MB) | "
                     f"{r['workers']} | {r['seconds']:.1f} | {r['rows_per_s']:,.0f} rows/s | "
                     f"{r['worker_peak_rss_mb']:.0f} MB peak RSS (idle worker "
                     f"{r['worker_rss_before_mb']:.0f} MB) |")
    lines += [
        "",
        "**Model of N workers (an extrapolation, not a measurement).** "
        "T(N) = s + b · ceil(B / N), fitted to the two runs above: B batches of work "
        f"(toys: K / 25; scoring: chunks), b seconds per batch on one worker (toys: "
        f"{b_toy:.2f} s, scoring: {b_sc:.2f} s), s seconds that do not spread "
        f"(toys: {s_toy:.2f} s, scoring: {s_sc:.2f} s: scheduling, shipping the problem "
        "and the estimator). Assumes one core per worker, each batch as fast as here, "
        "a network that ships the pooled sample (N_R x d floats) to each worker once, "
        "and a scheduler that keeps up; it ignores stragglers and memory limits. "
        "The observed fit is not in it: it runs in the client.",
        "",
        "| workers | 100 toys (s) | 1,000 toys (s) | 10,000 toys (s) | "
        f"{args.rows:,} rows (s) | 1,000,000,000 rows (s) |",
        "|---|---|---|---|---|---|",
    ]
    chunks_big = math.ceil(1_000_000_000 / args.chunk)
    for n in workers:
        lines.append(
            f"| {n} | {model(s_toy, b_toy, 4, n):.1f} | {model(s_toy, b_toy, 40, n):.1f} | "
            f"{model(s_toy, b_toy, 400, n):.0f} | "
            f"{model(s_sc, b_sc, score_rows[0]['chunks'], n):.1f} | "
            f"{model(s_sc, b_sc, chunks_big, n):.0f} |")
    lines += [
        "",
        "To run the same code on a real cluster, connect a client to its scheduler, "
        "`Client(\"tcp://scheduler-address:8786\")`, before the `parallel_config` block or "
        "`score_blocks(...).compute()`; nothing else changes.",
        "",
    ]
    md = "\n".join(lines)
    print("\n" + md)
    C.write_outputs("dask_scale", args.tag or ("quick" if args.quick else ""), rows, md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
