"""Driver shared by bench_tabular.py and bench_embeddings.py (same protocol).

One run writes ``results/<protocol>[_<tag>].*`` with its own rows only: a run
of some methods or data sets replaces the file, so run those with ``--tag``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time

import _common as C

DEFAULT_METHODS = ("compvae", "vmf", "vae", "sparker", "iforest", "lof", "knn", "pyod_vae",
                   "pyod_ae")


def _key(name: str) -> tuple:
    m = re.match(r"(\d+)_", name)
    return (int(m.group(1)) if m else 10**6, name)


def main(protocol: str, folders: list[str], description: str) -> int:
    p = argparse.ArgumentParser(description=description)
    C.add_common_args(p, DEFAULT_METHODS)
    p.add_argument("--n-permutations", type=int, default=None,
                   help="SparKer permutations (default its own)")
    args = p.parse_args()
    methods, notes = C.parse_methods(args.methods)
    if args.data_dir is None:
        sys.exit(f"error: no data folder; pass --data-dir (needs {', '.join(folders)})")
    files: dict[str, str] = {}
    for folder in folders:
        path = os.path.join(args.data_dir, folder)
        if not os.path.isdir(path):
            sys.exit(f"error: missing data folder {path} (see shared/data/README.md)")
        for f in sorted(os.listdir(path), key=_key):
            if f.endswith(".npz"):
                name = f[:-4] if len(folders) == 1 else f"{os.path.basename(folder)}/{f[:-4]}"
                files[name] = os.path.join(path, f)
    names = C.select(list(files), args.datasets, args.limit)
    header = [
        f"protocol: {protocol} — normal rows shuffled (seed {C.SEED}), 70% (at most "
        "10,000) train; test = other normals + every anomaly (at most 10,000, seed 0); "
        "StandardScaler fitted on train",
        f"methods: {', '.join(C.LABELS[m] for m in methods)}; epochs: "
        f"{args.epochs if args.epochs else 'default'}",
        C.environment_line(),
    ] + notes
    print("\n".join(header), flush=True)
    rows, rocs = [], {}
    t0 = time.perf_counter()
    for i, name in enumerate(names, 1):
        X, y = C.load_npz(files[name])
        Xtr, Xte, yte = C.one_class_split(X, y)
        print(f"[{i}/{len(names)}] {name}: train {Xtr.shape}, test {Xte.shape[0]} "
              f"({int(yte.sum())} anomalies)", flush=True)
        rows += C.run_one_class(name, methods, Xtr, Xte, yte, epochs=args.epochs,
                                n_permutations=args.n_permutations, rocs=rocs)
    header.append(f"wall time of the run: {time.perf_counter() - t0:.0f} s")
    md = C.one_class_markdown(rows, f"{protocol}", header)
    print("\n" + md)
    C.write_outputs(protocol, args.tag, rows, md, {"roc": rocs, "header": header})
    return 0
