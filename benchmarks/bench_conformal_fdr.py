"""Realised false discovery rate of the conformal Benjamini–Hochberg selection
over many random splits of real data sets.

Per data set and split: the normal rows are shuffled, 60% train the detector
and the other 40% join the anomalies (up to a tenth of the test rows) as the
test rows. Two calibrations of the conformal p-values are run on the same
split: ``training`` (the detector fitted on every training row, its
``conformal_pvalues``, ranked against ``training_scores_``) and ``split``
(:class:`skhyper.conformal.SplitConformalDetector`, fitted on half the
training rows and calibrated on the other half). The test rows' p-values go
through Benjamini–Hochberg at each nominal level; the false discovery
proportion (normal rows among the selected, 0 when none is selected) is
averaged over the splits: the realised FDR, with its standard error. The
selection holds its level "within noise" when ``FDR <= nominal + 2 SE``.
The p-values of five test normal rows per split are pooled for a KS test of
uniformity (rows of one split share a calibration: a mild dependence).

    nice -n 19 python benchmarks/bench_conformal_fdr.py
    python benchmarks/bench_conformal_fdr.py --splits 5 --datasets 6_cardio --tag smoke
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

import _common as C
import numpy as np
from scipy import stats

from skhyper import CompVAEDetector
from skhyper.conformal import SplitConformalDetector, select_outliers

# a small CompVAE trained briefly (10 epochs: 40 steps on cardio, 160 on pendigits):
# 800 fits on a shared 2-core machine; the FDR's validity, not the power, is measured
DETECTOR = dict(hidden_layer_sizes=(32, 16), latent_dim=8, epochs=10)


def load(data_dir: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    return C.load_npz(os.path.join(data_dir, "adbench", "classical", f"{name}.npz"))


def one_split(X: np.ndarray, y: np.ndarray, seed: int, levels: list[float]) -> list[dict]:
    rng = np.random.default_rng(seed)
    normal, anomalies = rng.permutation(np.flatnonzero(y == 0)), np.flatnonzero(y == 1)
    n_train = int(0.6 * len(normal))
    train, test_normal = normal[:n_train], normal[n_train:]
    n_anom = min(len(anomalies), max(1, len(test_normal) // 9))
    test = np.concatenate([test_normal, rng.choice(anomalies, n_anom, replace=False)])
    is_anomaly = np.r_[np.zeros(len(test_normal), bool), np.ones(n_anom, bool)]
    # scaled on the training rows, as a user would
    mu, sd = X[train].mean(axis=0), X[train].std(axis=0) + 1e-12
    Z_train, Z_test = (X[train] - mu) / sd, (X[test] - mu) / sd
    detector = CompVAEDetector(random_state=seed, **DETECTOR)
    pvalues = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pvalues["training"] = detector.fit(Z_train).conformal_pvalues(Z_test)
        split = SplitConformalDetector(detector, calibration_size=0.5, random_state=seed)
        pvalues["split"] = split.fit(Z_train).conformal_pvalues(Z_test)
    out = []
    for calibration, p in pvalues.items():
        for fdr in levels:
            selected = select_outliers(p, fdr=fdr)
            false = int((selected & ~is_anomaly).sum())
            out.append({
                "calibration": calibration, "fdr": fdr, "seed": seed,
                "selected": int(selected.sum()), "false": false,
                "fdp": false / max(int(selected.sum()), 1),
                "power": float((selected & is_anomaly).sum() / n_anom),
                "null_p": p[:5].tolist(),
            })
    return out


def main() -> int:
    p = argparse.ArgumentParser(description="conformal BH: realised FDR over random splits")
    p.add_argument("--data-dir", default=C.default_data_dir())
    p.add_argument("--datasets", default="6_cardio,4_breastw")
    p.add_argument("--splits", type=int, default=200)
    p.add_argument("--levels", default="0.05,0.1,0.2")
    p.add_argument("--tag", default="")
    p.add_argument("--checkpoint", default="",
                   help="a JSON-lines file of finished splits: read at start, appended to")
    args = p.parse_args()
    levels = [float(v) for v in args.levels.split(",")]
    names = args.datasets.split(",")
    C.require(args.data_dir, [os.path.join("adbench", "classical", f"{n}.npz") for n in names])
    header = [
        f"conformal Benjamini-Hochberg, CompVAEDetector({DETECTOR}, random_state = split), "
        f"{args.splits} random splits per data set: 60% of the normal rows train, the rest "
        "and anomalies (up to a tenth of the test rows) test; split calibration on half "
        "the training rows",
        C.environment_line(),
    ]
    print("\n".join(header), flush=True)
    done: dict[tuple[str, int], list[dict]] = {}
    if args.checkpoint and os.path.exists(args.checkpoint):
        with open(args.checkpoint, encoding="utf-8") as fh:
            for line in fh:
                entry = json.loads(line)
                done[(entry["dataset"], entry["seed"])] = entry["results"]
    rows, details = [], []
    for name in names:
        X, y = load(args.data_dir, name)
        X = X.astype(np.float64)
        t0 = time.perf_counter()
        results = []
        for seed in range(args.splits):
            if (name, seed) not in done:
                done[(name, seed)] = one_split(X, y, seed, levels)
                if args.checkpoint:
                    with open(args.checkpoint, "a", encoding="utf-8") as fh:
                        entry = {"dataset": name, "seed": seed, "results": done[(name, seed)]}
                        fh.write(json.dumps(entry) + "\n")
            results += done[(name, seed)]
            if (seed + 1) % 10 == 0:
                print(f"  {name}: {seed + 1} splits, {time.perf_counter() - t0:.0f} s", flush=True)
        for calibration in ("training", "split"):
            nulls = np.concatenate([
                r["null_p"] for r in results
                if r["calibration"] == calibration and r["fdr"] == levels[0]
            ])
            ks = stats.kstest(nulls, "uniform").pvalue
            for fdr in levels:
                sel = [r for r in results if r["calibration"] == calibration and r["fdr"] == fdr]
                fdp = np.array([r["fdp"] for r in sel])
                se = fdp.std(ddof=1) / np.sqrt(len(fdp))
                row = {
                    "dataset": name, "calibration": calibration, "nominal_fdr": fdr,
                    "splits": len(fdp), "realised_fdr": fdp.mean(), "se": se,
                    "holds": bool(fdp.mean() <= fdr + 2 * se),
                    "power": float(np.mean([r["power"] for r in sel])),
                    "mean_selected": float(np.mean([r["selected"] for r in sel])),
                    "null_rows": len(nulls), "null_ks_p": ks,
                }
                rows.append(row)
                print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()},
                      flush=True)
        details.append((name, X.shape, int((y == 1).sum())))
    md = ["## Conformal false-discovery control", ""] + [f"{h}  " for h in header]
    md += [f"data: {n} ({s[0]} rows, {s[1]} features, {a} anomalies)  " for n, s, a in details]
    md += ["", "| data set | calibration | nominal FDR | splits | realised FDR | SE | "
           "<= nominal + 2 SE | power | mean selected | null p KS p (rows) |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    md += [f"| {r['dataset']} | {r['calibration']} | {r['nominal_fdr']} | {r['splits']} | "
           f"{r['realised_fdr']:.4f} | {r['se']:.4f} | {'yes' if r['holds'] else 'no'} | "
           f"{r['power']:.3f} | {r['mean_selected']:.1f} | {r['null_ks_p']:.3f} "
           f"({r['null_rows']}) |" for r in rows]
    C.write_outputs("conformal_fdr", args.tag, rows, "\n".join(md) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
