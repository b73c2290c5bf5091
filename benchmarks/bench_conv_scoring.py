"""Where the conv net's scoring time goes: 10,000 Fashion-MNIST test images.

Fits the default CompVAE with ``image_shape=(1, 28, 28)`` on the 6,000
training images of one class, then times ``score_samples`` on the 10,000 test
images and its three parts on the same batches: the encoder, the
reconstruction pass (decoder and squared error) and the latent bank's kNN
search. IsolationForest's fit + score on the same rows is the yardstick.

    python benchmarks/bench_conv_scoring.py --normal-class 0
"""

from __future__ import annotations

import argparse
import sys
import time

import _common as C
import numpy as np
import torch
from sklearn.ensemble import IsolationForest
from sklearn.utils import gen_batches

from skhyper import CompVAEDetector
from skhyper._utils.runtime import cpu_threads
from skhyper._vae.losses import row_reconstruction_error


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=C.default_data_dir())
    p.add_argument("--normal-class", type=int, default=0)
    p.add_argument("--tag", default="")
    args = p.parse_args()
    Xtr_all, ytr_all, Xte, _ = C.load_fmnist(args.data_dir)
    Xtr = Xtr_all[ytr_all == args.normal_class]

    t0 = time.perf_counter()
    IsolationForest(random_state=0).fit(Xtr).score_samples(Xte)
    if_seconds = time.perf_counter() - t0

    t0 = time.perf_counter()
    det = CompVAEDetector(image_shape=(1, 28, 28), random_state=0).fit(Xtr)
    fit_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    det.score_samples(Xte)
    score_seconds = time.perf_counter() - t0

    parts = {"encoder": 0.0, "reconstruction pass": 0.0, "latent kNN": 0.0}
    model, bank = det.model_, det._banks[0]
    batch = det._batch_size
    with cpu_threads(), torch.no_grad():
        for sl in gen_batches(len(Xte), batch):
            zb = torch.as_tensor(Xte[sl], dtype=torch.float32)
            t = time.perf_counter()
            mu = model.encode(zb)[0]
            parts["encoder"] += time.perf_counter() - t
            t = time.perf_counter()
            row_reconstruction_error(model.decode_mean(mu), zb)
            parts["reconstruction pass"] += time.perf_counter() - t
            t = time.perf_counter()
            own = np.full(len(mu), -1)
            bank.mean_distance(mu, det.n_neighbors_, own, det._max_pairs(len(bank), len(mu)))
            parts["latent kNN"] += time.perf_counter() - t
    rows = [
        {"phase": "fit (6,000 images)", "seconds": f"{fit_seconds:.1f}"},
        {"phase": "score_samples (10,000 images)", "seconds": f"{score_seconds:.2f}"},
        *({"phase": f"  {k}", "seconds": f"{v:.2f}"} for k, v in parts.items()),
        {"phase": "IsolationForest fit + score", "seconds": f"{if_seconds:.2f}"},
    ]
    lines = [
        "## conv_scoring", "",
        f"CompVAE conv net (image_shape=(1, 28, 28), defaults; epochs run: {det.n_epochs_}), "
        f"Fashion-MNIST class {args.normal_class}: fit on its 6,000 training images, score "
        "the 10,000 test images; the parts are timed on the same batches.  ",
        C.environment_line(), "",
        *C.markdown_table(["phase", "seconds"], rows), "",
        f"fit + score / IsolationForest: {(fit_seconds + score_seconds) / if_seconds:.1f}×", "",
    ]
    text = "\n".join(lines)
    print(text)
    with open(C.results_path("conv_scoring", args.tag, ".md"), "w", encoding="utf-8") as fh:
        fh.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
