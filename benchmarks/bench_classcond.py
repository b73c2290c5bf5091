"""Class-conditional out-of-distribution protocol (results in doc/benchmarks.md).

In-distribution: all 60,000 Fashion-MNIST training images with their 10 labels
(labels reach only the class-conditional VAEs). Test: the 10,000 Fashion-MNIST
test images (in-distribution) and the 10,000 MNIST test images (out of
distribution, the positives). Pixels in [0, 1].

    python benchmarks/bench_classcond.py                 # MLP VAEs on flat rows
    python benchmarks/bench_classcond.py --net conv      # conv VAEs
"""

from __future__ import annotations

import argparse
import sys
import time

import _common as C
import numpy as np

from skhyper import CompVAEDetector, VMFDetector
from skhyper.evaluation import KNNMean
from skhyper.metrics import fpr_at_95_tpr, outlier_average_precision, outlier_roc_auc

LATENT = 128  # ten classes 10 axes apart need latent_dim > 90


def load_mnist_test(data_dir: str | None) -> np.ndarray:
    ptr, = C.require(data_dir, ["images/mnist/t10k-images-idx3-ubyte.gz"])
    return C._idx(ptr, 16).reshape(-1, 784).astype(np.float64) / 255.0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=C.default_data_dir())
    p.add_argument("--net", choices=("mlp", "conv"), default="mlp")
    p.add_argument("--seed", type=int, default=C.SEED)
    p.add_argument("--tag", default="")
    args = p.parse_args()
    Xtr, ytr, Xin, _ = C.load_fmnist(args.data_dir)
    Xout = load_mnist_test(args.data_dir)
    Xte = np.r_[Xin, Xout]
    yte = np.r_[np.zeros(len(Xin), int), np.ones(len(Xout), int)]
    vae_kw = {"latent_dim": LATENT, "random_state": args.seed}
    if args.net == "conv":
        vae_kw["image_shape"] = (1, 28, 28)
    methods = {
        "compvae_cc": ("CompVAE, class-conditional",
                       CompVAEDetector(class_conditional=True, **vae_kw)),
        "vmf_cc": ("VMFDetector, class-conditional",
                   VMFDetector(class_conditional=True, **vae_kw)),
        "compvae": ("CompVAE, labels unused", CompVAEDetector(**vae_kw)),
        "iforest": ("IsolationForest (pixels)", None),
        "knn": ("kNN (k=5, pixels)", KNNMean(5)),
    }
    header = [
        "protocol: class-conditional OOD — in: Fashion-MNIST (train 60,000 labelled, "
        "test 10,000); out: MNIST test 10,000; pixels in [0, 1]",
        "skhyper VAEs: "
        + ("conv, image_shape=(1, 28, 28)" if args.net == "conv" else "MLP on flat rows")
        + f", latent_dim={LATENT}, random_state={args.seed}, other parameters default; "
        "each CompVAE row also scored with anomaly_score='knn' (same fit)",
        C.environment_line(),
    ]
    print("\n".join(header), flush=True)
    rows = []
    t_all = time.perf_counter()
    for key, (label, est) in methods.items():
        if key == "iforest":
            from sklearn.ensemble import IsolationForest

            est = IsolationForest(random_state=args.seed)
        t0 = time.perf_counter()
        if key.endswith("_cc"):
            est.fit(Xtr, ytr)
        else:
            est.fit(Xtr)
        fit_s = time.perf_counter() - t0
        variants = [(key, label, None)]
        if isinstance(est, CompVAEDetector):
            variants.append((key + "_knn", label + ", kNN score", "knn"))
        for vkey, vlabel, score in variants:
            t1 = time.perf_counter()
            if score is None:
                s = np.asarray(est.score_samples(Xte), dtype=np.float64)
            else:
                s = est.score_variants(Xte, (score,))[score]
            score_s = time.perf_counter() - t1
            row = {
                "dataset": "fmnist-vs-mnist", "method": vkey, "label": vlabel,
                "auroc": outlier_roc_auc(yte, s), "ap": outlier_average_precision(yte, s),
                "fpr95": fpr_at_95_tpr(yte, s), "fit_s": fit_s, "score_s": score_s,
                "n_train": len(Xtr), "n_test": len(Xte), "n_anomalies": int(yte.sum()),
                "d": Xtr.shape[1], "error": "",
            }
            rows.append(row)
            print(f"{vlabel:<45} AUROC {row['auroc']:.3f}  FPR95 {row['fpr95']:.3f}  "
                  f"fit {fit_s:7.1f} s  score {score_s:6.1f} s", flush=True)
    header.append(f"wall time of the run: {time.perf_counter() - t_all:.0f} s")
    md = ["## classcond", ""] + [f"{h}  " for h in header] + [""]
    md += ["| method | AUROC | AP | FPR95 | fit s | score s |", "|---|---|---|---|---|---|"]
    md += [f"| {r['label']} | {r['auroc']:.3f} | {r['ap']:.3f} | {r['fpr95']:.3f} | "
           f"{r['fit_s']:.1f} | {r['score_s']:.1f} |" for r in rows]
    text = "\n".join(md) + "\n"
    print("\n" + text)
    tag = args.tag or ("conv" if args.net == "conv" else "")
    C.write_outputs("classcond", tag, rows, text, {"header": header})
    return 0


if __name__ == "__main__":
    sys.exit(main())
