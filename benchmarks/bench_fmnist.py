"""Fashion-MNIST one-class protocol (results in doc/benchmarks.md).

For each class c: train on all 6,000 training images of c, test on the full
10,000-image test set with label != c as anomaly; pixels scaled to [0, 1].
``--quick`` subsamples (2,000 train / 3,000 test rows, seed 0) and says so.

    python benchmarks/bench_fmnist.py                    # full protocol, 10 classes
    python benchmarks/bench_fmnist.py --net conv --methods compvae,vmf,vae --seeds 0,1,2
    python benchmarks/bench_fmnist.py --quick --classes 0,1
"""

from __future__ import annotations

import argparse
import sys
import time

import _common as C
import numpy as np

DEFAULT_METHODS = ("compvae", "vmf", "vae", "iforest", "lof", "knn", "knn3", "pyod_vae", "pyod_ae")
# the paper's comparison: each VAE with the latent kNN score
ORDERING = ("compvae_knn", "vmf_knn", "vae_knn")
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
           "Sneaker", "Bag", "Ankle boot"]


def ordering_markdown(rows: list[dict]) -> str:
    """The paper's ordering Comp.VAE > vMF > VAE (kNN score): per seed, the mean
    AUROC of each and the classes on which the ordering holds."""
    have = {r["method"] for r in rows}
    if not set(ORDERING) <= have:
        return ""
    by = {(r["dataset"], r["method"]): r["auroc"] for r in rows if not r.get("error")}
    out = ["", "### Comp.VAE > vMF > VAE (each with the latent kNN score)", "",
           "| seed | CompVAE | vMF | VAE (Gaussian) | ordering holds on mean | "
           "classes with Comp > vMF | classes with vMF > VAE | classes with both |",
           "|---|---|---|---|---|---|---|---|"]
    for seed in sorted({int(r.get("seed", C.SEED)) for r in rows}):
        sets = sorted({r["dataset"] for r in rows if int(r.get("seed", C.SEED)) == seed})
        sets = [d for d in sets if all((d, m) in by for m in ORDERING)]
        a = np.array([[by[(d, m)] for m in ORDERING] for d in sets])
        mean = a.mean(axis=0)
        out.append(
            f"| {seed} | {mean[0]:.3f} | {mean[1]:.3f} | {mean[2]:.3f} | "
            f"{'yes' if mean[0] > mean[1] > mean[2] else 'no'} | "
            f"{int((a[:, 0] > a[:, 1]).sum())}/{len(sets)} | "
            f"{int((a[:, 1] > a[:, 2]).sum())}/{len(sets)} | "
            f"{int(((a[:, 0] > a[:, 1]) & (a[:, 1] > a[:, 2])).sum())}/{len(sets)} |"
        )
    return "\n".join(out) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    C.add_common_args(p, DEFAULT_METHODS)
    p.add_argument("--classes", default="0,1,2,3,4,5,6,7,8,9",
                   help="comma-separated normal classes (default all ten)")
    p.add_argument("--quick", action="store_true",
                   help="subsample: 2,000 train / 3,000 test rows per class (seed 0)")
    p.add_argument("--n-train", type=int, default=2000, help="--quick training rows")
    p.add_argument("--n-test", type=int, default=3000, help="--quick test rows")
    p.add_argument("--net", choices=("auto", "conv", "mlp"), default="auto",
                   help="skhyper VAEs: conv (image_shape=(1, 28, 28)), mlp (flat rows), or "
                   "auto: conv on a CUDA device, mlp on the CPU (default)")
    p.add_argument("--seeds", default=str(C.SEED),
                   help="comma-separated seeds of the methods (the split has none); with "
                   "several, each class appears once per seed")
    args = p.parse_args()
    methods, notes = C.parse_methods(args.methods)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    Xtr_all, ytr_all, Xte_all, yte_all = C.load_fmnist(args.data_dir)
    classes = [int(c) for c in args.classes.split(",") if c.strip()]
    if args.datasets or args.limit:
        names = C.select([f"class{c}" for c in classes], args.datasets, args.limit)
        classes = [int(n[5:]) for n in names]
    net = args.net
    if net == "auto":
        import torch

        net = "conv" if torch.cuda.is_available() else "mlp"
    image_shape = (1, 28, 28) if net == "conv" else None
    mode = (f"QUICK (subsampled: {args.n_train} train / {args.n_test} test rows per "
            "class, seed 0; not the full protocol)" if args.quick else
            "full protocol (6,000 train images of the class; 10,000 test images)")
    header = [
        f"protocol: fmnist one-class, {mode}; pixels in [0, 1]; "
        f"skhyper VAEs {'conv, image_shape=(1, 28, 28)' if net == 'conv' else 'MLP on flat rows'}"
        + (" (chosen by --net auto: no CUDA device)" if args.net == "auto" and net == "mlp"
           else ""),
        f"methods: {', '.join(C.LABELS[m] for m in methods)}; epochs: "
        f"{args.epochs if args.epochs else 'default'}; seeds: {', '.join(map(str, seeds))}",
        C.environment_line(),
    ] + notes
    print("\n".join(header), flush=True)
    rows, rocs = [], {}
    t0 = time.perf_counter()
    for i, c in enumerate(classes, 1):
        Xtr = Xtr_all[ytr_all == c]
        Xte, yte = Xte_all, (yte_all != c).astype(int)
        if args.quick:
            rng = np.random.default_rng(C.SEED)
            Xtr = Xtr[np.sort(rng.choice(len(Xtr), min(args.n_train, len(Xtr)), replace=False))]
            keep = np.sort(rng.choice(len(Xte), min(args.n_test, len(Xte)), replace=False))
            Xte, yte = Xte[keep], yte[keep]
        for seed in seeds:
            name = f"class{c} {CLASSES[c]}" + (f" seed{seed}" if len(seeds) > 1 else "")
            print(f"[{i}/{len(classes)}] {name}: train {Xtr.shape}, test {len(Xte)} "
                  f"({int(yte.sum())} anomalies)", flush=True)
            part = C.run_one_class(name, methods, Xtr, Xte, yte, epochs=args.epochs,
                                   image_shape=image_shape, rocs=rocs, seed=seed)
            for r in part:
                r["seed"] = seed
            rows += part
    header.append(f"wall time of the run: {time.perf_counter() - t0:.0f} s")
    title = "fmnist (QUICK subsample)" if args.quick else "fmnist"
    md = C.one_class_markdown(rows, title, header) + ordering_markdown(rows)
    print("\n" + md)
    tag = args.tag or ("quick" if args.quick else "")
    C.write_outputs("fmnist", tag, rows, md, {"roc": rocs, "header": header})
    return 0


if __name__ == "__main__":
    sys.exit(main())
