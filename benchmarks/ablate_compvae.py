"""CompVAE's levers, one at a time and combined, on the tuning splits (doc/compvae.md).

Each configuration is CompVAE's defaults with one lever changed (or the
combination named last), fitted once per split and scored three ways
(``anomaly_score`` knn / reconstruction / combined, same model). The splits are
the tuning ones of ``tune_compvae.py`` and never the reported ones: seeds 1
and 2 of every third ADBench Classical set, seed 1 of every third ResNet18
embedding set, and three Fashion-MNIST classes (0, 2, 8) subsampled with seed 1,
as MLP on flat pixels and as the conv net (``image_shape=(1, 28, 28)``), and
seeds 1 and 2 of the main job's digits splits (it reports seed 0), MLP and
conv (``image_shape=(1, 8, 8)``). Costs
are fit + score seconds over a suite divided by IsolationForest's on the same
splits in the same run; kNN (k=5) on the same splits is the bar.

    python benchmarks/ablate_compvae.py                    # every suite and lever
    python benchmarks/ablate_compvae.py --suites tabular --configs default,"noise 0.3"
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import _common as C
import numpy as np
from tune_compvae import tuning_sets

from skhyper import CompVAEDetector
from skhyper._vae import training as T
from skhyper.datasets import load_splits
from skhyper.evaluation import KNNMean
from skhyper.metrics import outlier_roc_auc

SCORES = ("knn", "reconstruction", "combined")
Split = tuple[str, np.ndarray, np.ndarray, np.ndarray]


def scaled_sizes(n_rows: int, n_features: int) -> dict[str, Any]:
    """Latent size and widths grown with the input width, capped for few rows."""
    latent = int(np.clip(round(2 * math.sqrt(n_features)), 4, 64))
    width = int(np.clip(2 ** round(math.log2(4 * n_features)), 64, 512))
    if n_rows < 2000:
        width = min(width, 128)
    return {"latent_dim": latent, "hidden_layer_sizes": (width, width // 2)}


def steps_by_size(n_rows: int) -> int:
    """More optimiser steps for more rows: 250 at 2,000 rows, as sqrt(n)."""
    return int(np.clip(round(250 * math.sqrt(n_rows / 2000)), 100, 1000))


@dataclass(frozen=True)
class Config:
    """One row of the ablation: CompVAE's defaults with these changes."""

    params: dict[str, Any] = field(default_factory=dict)
    steps: Callable[[int], int] | None = None  # optimiser steps from the row count
    sizes: bool = False  # scaled_sizes (latent only for the conv net)


CONFIGS: dict[str, Config] = {
    "default": Config(),
    "noise 0.1": Config({"input_noise": 0.1}),
    "noise 0.3": Config({"input_noise": 0.3}),
    "noise 0.6": Config({"input_noise": 0.6}),
    "ensemble 3": Config({"n_estimators": 3}),
    "ensemble 3 at 1/3 steps": Config({"n_estimators": 3}, steps=lambda n: 84),
    "100 steps": Config(steps=lambda n: 100),
    "steps by size": Config(steps=steps_by_size),
    "scaled sizes": Config(sizes=True),
}


def run_config(config: Config, split: Split, image_shape: tuple | None, seed: int) -> dict:
    """AUROC of each score of one fit, and its fit + score seconds."""
    _, Xtr, Xte, yte = split
    params = dict(config.params)
    if config.sizes:
        sizes = scaled_sizes(*Xtr.shape)
        params["latent_dim"] = sizes["latent_dim"]
        if image_shape is None:
            params["hidden_layer_sizes"] = sizes["hidden_layer_sizes"]
    if image_shape is not None:
        params["image_shape"] = image_shape
    old = T.AUTO_STEPS
    T.AUTO_STEPS = config.steps(len(Xtr)) if config.steps else old
    try:
        t0 = time.perf_counter()
        det = CompVAEDetector(random_state=seed, **params).fit(Xtr)
        variants = det.score_variants(Xte, SCORES)
        seconds = time.perf_counter() - t0
    finally:
        T.AUTO_STEPS = old
    return {"auroc": {s: outlier_roc_auc(yte, variants[s]) for s in SCORES},
            "seconds": seconds}


def fmnist_splits(data_dir: str, n_train: int, n_test: int) -> Iterator[Split]:
    Xtr_all, ytr_all, Xte_all, yte_all = C.load_fmnist(data_dir)
    rng = np.random.default_rng(1)
    for c in (0, 2, 8):
        Xtr = Xtr_all[ytr_all == c]
        Xtr = Xtr[rng.choice(len(Xtr), n_train, replace=False)]
        keep = rng.choice(len(Xte_all), n_test, replace=False)
        yield f"class {c}", Xtr, Xte_all[keep], (yte_all[keep] != c).astype(int)


def suites(data_dir: str, wanted: list[str]) -> Iterator[tuple[str, list[tuple[int, Split]], Any]]:
    """(suite, [(seed, split)], image_shape) for each wanted suite."""
    if "tabular" in wanted:
        splits = [(seed, (name, *split)) for seed in (1, 2)
                  for name, split in tuning_sets(data_dir, "adbench/classical", seed)]
        yield "tabular", splits, None
    if "embeddings" in wanted:
        yield "embeddings", [(1, (name, *split)) for name, split in
                             tuning_sets(data_dir, "adbench/cv_resnet18", 1)], None
    if "fmnist_mlp" in wanted:
        yield "fmnist_mlp", [(1, s) for s in fmnist_splits(data_dir, 2000, 3000)], None
    if "fmnist_conv" in wanted:
        yield "fmnist_conv", [(1, s) for s in fmnist_splits(data_dir, 1000, 2000)], (1, 28, 28)
    # the main job's data (every digit; it reports seed 0): MLP on rows, then the conv net
    for suite, shape in (("digits_mlp", None), ("digits_conv", (1, 8, 8))):
        if suite in wanted:
            splits = [(seed, (s.name, s.X_train, s.X_test, s.y_test)) for seed in (1, 2)
                      for s in load_splits("digits", seed=seed)]
            yield suite, splits, shape


def peers(split: Split, seed: int) -> tuple[float, float]:
    """kNN (k=5) AUROC and IsolationForest's fit + score seconds on one split."""
    from sklearn.ensemble import IsolationForest

    _, Xtr, Xte, yte = split
    t0 = time.perf_counter()
    IsolationForest(random_state=seed).fit(Xtr).score_samples(Xte)
    seconds = time.perf_counter() - t0
    return outlier_roc_auc(yte, KNNMean(5).fit(Xtr).score_samples(Xte)), seconds


def suite_table(suite: str, n_splits: int, results: dict[str, list[dict]], knn: float,
                if_seconds: float) -> list[str]:
    base = {s: np.mean([r["auroc"][s] for r in results["default"]]) for s in SCORES} \
        if "default" in results else None
    lines = [f"### {suite} ({n_splits} splits; kNN (k=5) {knn:.3f})", "",
             "| configuration | " + " | ".join(SCORES) + " | combined − default | "
             "time / IsolationForest |", "|---|" + "---|" * (len(SCORES) + 2)]
    for name, rows in results.items():
        mean = {s: np.mean([r["auroc"][s] for r in rows]) for s in SCORES}
        gain = f"{mean['combined'] - base['combined']:+.3f}" if base else "–"
        ratio = sum(r["seconds"] for r in rows) / if_seconds
        lines.append(f"| {name} | " + " | ".join(f"{mean[s]:.3f}" for s in SCORES)
                     + f" | {gain} | {ratio:.1f}× |")
    return lines + [""]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=C.default_data_dir())
    p.add_argument("--suites", default="tabular,embeddings,fmnist_mlp,fmnist_conv")
    p.add_argument("--configs", default=",".join(CONFIGS))
    p.add_argument("--tag", default="")
    args = p.parse_args()
    configs = [c.strip() for c in args.configs.split(",")]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        sys.exit(f"error: unknown configurations {unknown}; choose from {list(CONFIGS)}")
    out = ["## CompVAE ablation (tuning splits)", "",
           "Tuning splits only (seeds 1 and 2 of every third tabular set, seed 1 of every "
           "third ResNet18 set, Fashion-MNIST classes 0, 2, 8 subsampled with seed 1: "
           "2,000 / 3,000 rows for the MLP, 1,000 / 2,000 for the conv net; seeds 1 and 2 "
           "of the main job's digits splits, every digit). Mean AUROC "
           "of each score of the same fit; time is fit + score over the suite against "
           "IsolationForest's on the same splits in this run.  ", C.environment_line(), ""]
    print("\n".join(out), flush=True)
    t_run = time.perf_counter()
    rows = []
    for suite, splits, image_shape in suites(args.data_dir, args.suites.split(",")):
        results: dict[str, list[dict]] = {c: [] for c in configs}
        knn, if_seconds = [], 0.0
        for seed, split in splits:
            auc, seconds = peers(split, seed)
            knn.append(auc)
            if_seconds += seconds
            for name in configs:
                r = run_config(CONFIGS[name], split, image_shape, seed)
                results[name].append(r)
                rows.append({"suite": suite, "split": split[0], "seed": seed,
                             "configuration": name, "seconds": round(r["seconds"], 3),
                             **{f"auroc_{s}": round(r["auroc"][s], 4) for s in SCORES}})
            print(f"{suite} {split[0]} (seed {seed}) done", flush=True)
        out += suite_table(suite, len(splits), results, float(np.mean(knn)), if_seconds)
        print("\n".join(out[-len(configs) - 5:]), flush=True)
    out.append(f"wall time of the run: {time.perf_counter() - t_run:.0f} s")
    text = "\n".join(out) + "\n"
    with open(C.results_path("ablation_compvae", args.tag, ".md"), "w", encoding="utf-8") as fh:
        fh.write(text)
    C.write_csv(rows, C.results_path("ablation_compvae", args.tag, ".csv"))
    print("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
