"""Open-world novelty: a class never seen in the reference appears in the data.

Fashion-MNIST, one class c held out as the novel class. Each draw (seed s)
takes, from the test set, R = 4,000 images of the nine other classes and
D = 1,000 images: ``1,000 - n_inj`` more of the nine and ``n_inj = round(eps
* 1,000)`` of class c (``eps = 0``: the null, D and R from one distribution).

- ``pixels:<c>``: the draws as 784 pixels in [0, 1].
- ``latent:<c>``: the same draws (same seeds, same images) in the latent
  space of a ``CompVAEDetector`` with its defaults, fitted on 12,000 training
  images of the nine known classes: rows outside both samples, so the encoder
  treats D and R alike and the test stays calibrated. The encoder is the
  public step ``skhyper.LatentEncoder``; every method runs on the encoded
  rows, which for SparKer is what
  ``make_reference_pipeline(FrozenEstimator(encoder), SparKerDetector())``
  computes (``tests/test_latent.py`` checks the two agree).
- the cases of ``bench_highdim.py`` (``sub512``, ``emb:<set>``), for the same
  methods in the same run.

Methods and columns are those of ``bench_highdim.py``: power at alpha = 0.05,
median Z, row AUROC of each method's score inside D, and SparKer's top
kernel's row AUROC on the injected rows.

    python benchmarks/bench_novelty.py                       # report: classes 3..9, seeds 0..9
    python benchmarks/bench_novelty.py --classes 0,1,2 --seed-offset 100 --tag tuning
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import _common as C
import _twosample as T
import bench_highdim as H
import numpy as np
from _twosample import ALPHA, Draw

N_R, N_D = 4000, 1000
N_TRAIN = 12_000  # training images of the known classes for each class's encoder
# classes 0, 1 and 2 (seeds 100..) are the tuning classes; the report runs the others
TUNING_CLASSES = [0, 1, 2]
REPORT_CLASSES = list(range(3, 10))


def fmnist_draw(X: np.ndarray, y: np.ndarray, novel: int, eps: float, seed: int) -> Draw:
    rng = np.random.default_rng(seed)
    n_inj = round(eps * N_D)
    nominal = np.flatnonzero(y != novel)
    perm = rng.permutation(nominal)
    R = X[perm[:N_R]]
    D_nom = X[perm[N_R:N_R + N_D - n_inj]]
    inj = X[rng.choice(np.flatnonzero(y == novel), n_inj, replace=False)]
    injected = np.r_[np.zeros(len(D_nom), bool), np.ones(n_inj, bool)]
    return Draw(np.r_[D_nom, inj], R, injected)


class Encoders:
    """One LatentEncoder per novel class, fitted once on the nine known classes."""

    def __init__(self, X_train: np.ndarray, y_train: np.ndarray) -> None:
        self.X, self.y = X_train, y_train
        self.fitted: dict[int, Any] = {}
        self.seconds: dict[int, float] = {}

    def __call__(self, novel: int) -> Any:
        if novel not in self.fitted:
            from skhyper import CompVAEDetector, LatentEncoder

            rng = np.random.default_rng(novel)
            rows = rng.choice(np.flatnonzero(self.y != novel), N_TRAIN, replace=False)
            t0 = time.perf_counter()
            enc = LatentEncoder(CompVAEDetector(random_state=novel)).fit(self.X[rows])
            self.seconds[novel] = time.perf_counter() - t0
            print(f"  encoder without class {novel}: fitted in {self.seconds[novel]:.0f} s",
                  flush=True)
            self.fitted[novel] = enc
        return self.fitted[novel]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=C.default_data_dir())
    p.add_argument("--classes", default=",".join(str(c) for c in REPORT_CLASSES))
    p.add_argument("--spaces", default="pixels,latent",
                   help="pixels and/or latent, each run for every class")
    p.add_argument("--extra-cases", default="",
                   help="bench_highdim cases to add, e.g. sub512,emb:CIFAR10_4")
    p.add_argument("--eps", default="0,0.03")
    p.add_argument("--methods", default="sparker,knn,c2st,mmd")
    p.add_argument("--draws", type=int, default=10)
    p.add_argument("--seed-offset", type=int, default=0)
    H.add_sparker_args(p)
    p.add_argument("--tag", default="")
    args = p.parse_args()
    classes = [int(c) for c in args.classes.split(",") if c.strip()]
    spaces = [s.strip() for s in args.spaces.split(",") if s.strip()]
    extra = [c.strip() for c in args.extra_cases.split(",") if c.strip()]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    eps_list = [float(e) for e in args.eps.split(",")]
    params = json.loads(args.sparker_params)
    Xtr, ytr, Xte, yte = C.load_fmnist(args.data_dir)
    encoders = Encoders(Xtr, ytr)
    src = H.load_sources(extra, args.data_dir)
    n_perm, offset = args.n_permutations, args.seed_offset

    def make_draw(case: str, eps: float, seed: int) -> Draw:
        space, _, cls = case.partition(":")
        if space not in ("pixels", "latent"):
            return H.make_draw(case, eps, seed, src)
        draw = fmnist_draw(Xte, yte, int(cls), eps, seed)
        if space == "latent":
            enc = encoders(int(cls))
            draw = Draw(enc.transform(draw.D), enc.transform(draw.R), draw.injected)
        return draw

    header = [
        (f"protocol: open-world novelty on Fashion-MNIST (test set), N_D = {N_D}, N_R = {N_R}, "
         f"{args.draws} draws per (case, eps) with seeds {offset}..{offset + args.draws - 1}, "
         f"{n_perm} permutations, alpha = {ALPHA}; latent: CompVAEDetector() defaults fitted "
         f"on {N_TRAIN:,} training images of the nine known classes, frozen"),
        H.sparker_line(params, args.pca),
        C.environment_line(),
    ]
    print("\n".join(header), flush=True)
    t_start = time.perf_counter()
    cases = [f"{s}:{c}" for c in classes for s in spaces] + extra
    rows = T.run_grid(
        [(case, eps) for case in cases for eps in eps_list],
        range(offset, offset + args.draws), make_draw,
        H.runners(methods, n_perm, params, args.pca),
        lambda case, eps, m, rs: H.summarise(case, eps, m, rs, offset, n_perm, params),
        H.line,
    )
    header.append(f"wall time of the run: {time.perf_counter() - t_start:.0f} s"
                  + "".join(f"; encoder {c}: {s:.0f} s" for c, s in encoders.seconds.items()))
    md = H.highdim_markdown(rows, header, title="open-world novelty")
    print("\n" + md)
    C.write_outputs("novelty", args.tag, rows, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
