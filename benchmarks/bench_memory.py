"""Peak memory growth while scoring many rows (doc/benchmarks.md, "memory").

Fits each detector on a small sample, then, in a fresh child process per
(detector, n_rows, batch_size), loads ``n_rows`` float32 rows and reports the
growth of the process's peak resident memory (``ru_maxrss``) during one
``score_samples`` call. Bounded memory means the growth tracks the batch size
and the 8-byte-per-row output, not the input size (a float64 copy of the
input alone would add twice the input's size).

    python benchmarks/bench_memory.py                   # 1,000,000 rows
    python benchmarks/bench_memory.py --rows 200000     # quicker

Writes benchmarks/results/memory.{csv,md}.
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import tempfile

import _common as C
import numpy as np

N_FEATURES = 20

CHILD = r"""
import json, pickle, resource, sys, time
import numpy as np
det = pickle.load(open(sys.argv[1], "rb"))
n_rows, batch = int(sys.argv[3]), int(sys.argv[4])
# loaded before measuring, so the input itself is not counted as growth
X = np.array(np.memmap(sys.argv[2], dtype=np.float32, mode="r", shape=(n_rows, N_FEATURES)))
det.score_samples(X[:1000])  # warm up torch's allocator and kernels
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
s = det.score_samples(X)
seconds = time.perf_counter() - t0
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"growth_mb": (after - before) / 1024, "seconds": seconds,
                  "finite": bool(np.isfinite(s).all())}))
""".replace("N_FEATURES", str(N_FEATURES))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--batch-sizes", default="256,4096")
    p.add_argument("--methods", default="compvae,sparker")
    p.add_argument("--tag", default="")
    args = p.parse_args()
    rng = np.random.default_rng(0)
    X_fit = rng.normal(size=(2000, N_FEATURES))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "X.f32")
        mm = np.memmap(data, dtype=np.float32, mode="w+", shape=(args.rows, N_FEATURES))
        for start in range(0, args.rows, 100_000):
            stop = min(start + 100_000, args.rows)
            mm[start:stop] = rng.normal(size=(stop - start, N_FEATURES))
        mm.flush()
        del mm
        input_mb = args.rows * N_FEATURES * 4 / 2**20
        for method in args.methods.split(","):
            for batch in [int(b) for b in args.batch_sizes.split(",")]:
                # scoring chunks by the batch size fitted with
                if method == "sparker":
                    det = C.make_method("sparker", n_permutations=0).set_params(batch_size=batch)
                    det.fit(X_fit[:1000], X_ref=X_fit[1000:] + 0.01)
                else:
                    det = C.make_method(method, epochs=5).set_params(batch_size=batch).fit(X_fit)
                path = os.path.join(tmp, f"{method}_{batch}.pkl")
                with open(path, "wb") as fh:
                    pickle.dump(det, fh)
                res = C.run_child(CHILD, path, data, args.rows, batch)
                row = {"method": C.LABELS[method], "rows": args.rows, "batch_size": batch,
                       "input_mb": round(input_mb, 1), "peak_growth_mb": round(res["growth_mb"], 1),
                       "output_mb": round(args.rows * 8 / 2**20, 1),
                       "score_seconds": round(res["seconds"], 1), "finite": res["finite"]}
                rows.append(row)
                print(row, flush=True)
    header = ["method", "rows", "batch_size", "input_mb", "output_mb", "peak_growth_mb",
              "score_seconds"]
    lines = [
        "## Memory: peak RSS growth while scoring",
        "",
        f"Input: {args.rows:,} rows x {N_FEATURES} float32 features, loaded before measuring; "
        "growth of ru_maxrss during one score_samples call in a fresh process.  ",
        C.environment_line() + "  ",
        "",
        *C.markdown_table(header, rows),
    ]
    md = "\n".join(lines) + "\n"
    print("\n" + md)
    C.write_csv(rows, C.results_path("memory", args.tag, ".csv"))
    with open(C.results_path("memory", args.tag, ".md"), "w") as fh:
        fh.write(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
