"""The tuning runs behind SparKer's defaults (doc/sparker.md, "How the defaults
were chosen").

Defaults are chosen here and reported elsewhere: these runs use draws and
data sets the reports do not (high dimension: seeds 100..103 and the sets
CIFAR10_0 and SVHN_0, where the report uses seeds 0..9 and other sets;
low dimension: draws 0..13, and 0..9 for NSL-KDD, where the fresh report uses
1000..1019). SparKer only, 50 permutations, through the same draws and
shared loop as bench_highdim.py and bench_twosample.py. Studies:

- ``seeding``: how the kernels are seeded, ``init="k-means++"`` (the previous
  default) against ``"excess"`` (the current one). High dimension: the cases
  bump100, bump1000, sub512, emb:CIFAR10_0 and emb:SVHN_0 at eps = 0.03, 4
  draws, "excess" also with two other width schedules. Low dimension: bump and
  cms at eps = 0.005 and 0.01, satellite at 0.01 and 0.03, 14 draws, "excess"
  also with ``preprocessing="robust"``.
- ``projection``: SparKer on the pooled sample's top 16 or 64 principal
  components, high-dimension cases bump1000, sub512, emb:CIFAR10_0 and
  emb:SVHN_0 at eps = 0.03, 4 draws.
- ``transform``: the input transform (standard, robust, quantile) on the
  nslkdd case at eps = 0.01, 10 draws.

Writes ``results/sparker_tuning[_<tag>].{csv,md}``: one run, the studies it ran.

    python benchmarks/tune_sparker.py                    # every study
    python benchmarks/tune_sparker.py --study transform
    python benchmarks/tune_sparker.py --quick            # 1 draw, 5 permutations (tag quick)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from typing import Any

import _common as C
import _twosample as T
import bench_highdim as H
import bench_twosample as TS
import numpy as np

N_PERMUTATIONS = 50
HIGHDIM_CASES = ["bump100", "bump1000", "sub512", "emb:CIFAR10_0", "emb:SVHN_0"]


@dataclass(frozen=True)
class Study:
    """One table: SparKer with each setting on the same cells and draws."""

    name: str
    title: str
    bench: str  # "highdim" or "twosample": whose draws
    cells: tuple[tuple[str, float], ...]
    draws: range
    settings: tuple[tuple[dict[str, Any], int], ...]  # (SparKer parameters, PCA components)


STUDIES = (
    Study(
        "seeding", "High dimension: seeding and width schedule", "highdim",
        tuple((c, 0.03) for c in HIGHDIM_CASES), range(100, 104),
        (({"init": "k-means++"}, 0), ({"init": "excess"}, 0),
         ({"init": "excess", "width_end": [0.6, 0.3]}, 0),
         ({"init": "excess", "width_end": [0.6, 0.3, 0.1]}, 0)),
    ),
    Study(
        "seeding", "Low dimension: seeding and input transform", "twosample",
        (("bump", 0.005), ("bump", 0.01), ("cms", 0.005), ("cms", 0.01),
         ("satellite", 0.01), ("satellite", 0.03)), range(0, 14),
        (({"init": "k-means++"}, 0), ({"init": "excess"}, 0),
         ({"init": "excess", "preprocessing": "robust"}, 0)),
    ),
    Study(
        "projection", "High dimension: a projection stage (pooled PCA)", "highdim",
        tuple((c, 0.03) for c in HIGHDIM_CASES[1:]), range(100, 104),
        (({}, 16), ({}, 64)),
    ),
    Study(
        "transform", "NSL-KDD: the input transform", "twosample",
        (("nslkdd", 0.01),), range(0, 10),
        (({"preprocessing": "standard"}, 0), ({"preprocessing": "robust"}, 0),
         ({"preprocessing": "quantile"}, 0)),
    ),
)


def setting_name(params: dict[str, Any], pca: int) -> str:
    return (json.dumps(params) if params else "defaults") + (f"; top {pca} PCs" if pca else "")


def run_study(study: Study, data_dir: str | None, draws: range, n_perm: int
              ) -> list[dict[str, Any]]:
    cases = list(dict.fromkeys(c for c, _ in study.cells))
    if study.bench == "highdim":
        src = H.load_sources(cases, data_dir)

        def make_draw(case: str, eps: float, seed: int) -> T.Draw:
            return H.make_draw(case, eps, seed, src)
    else:
        src = TS.load_sources(cases, data_dir)

        def make_draw(case: str, eps: float, seed: int) -> T.Draw:
            return TS.make_draw(case, eps, seed, src, 1.0)

    rows = []
    for params, pca in study.settings:
        name = setting_name(params, pca)
        print(f"=== {study.title}: {name}", flush=True)
        if study.bench == "highdim":
            def run(draw: T.Draw, seed: int, params=params, pca=pca) -> dict[str, Any]:
                return H.run_sparker(draw.D, draw.R, n_perm, seed, params, pca)
        else:
            def run(draw: T.Draw, seed: int, params=params) -> dict[str, Any]:
                return TS.run_sparker(draw, n_perm, seed, params)

        def summarise(case, eps, m, rs, name=name):
            pv = T.pvalues(rs)
            return {
                "study": study.name, "bench": study.bench, "setting": name,
                "case": case, "eps": eps, "draws": len(rs), "seed_offset": draws.start,
                "n_permutations": n_perm, "power": T.power(pv),
                "median_z": T.z_metrics(pv)[0],
                "row_auroc": T.finite_mean(rs, "row_auroc"),
                "top_kernel_auroc": T.finite_mean(rs, "top_kernel_auroc"),
                "seconds_per_draw": float(np.mean([r["seconds"] for r in rs])),
                "errors": T.errors(rs),
            }

        def line(row: dict[str, Any]) -> str:
            return (f"  {row['case']:<16} eps={row['eps']:<6} power {row['power']:.2f}  "
                    f"median Z {row['median_z']:.2f}  row AUROC {row['row_auroc']:.3f}  "
                    f"top kernel {row['top_kernel_auroc']:.3f}  "
                    f"{row['seconds_per_draw']:.1f} s/draw"
                    + (f"  ERR {row['errors']}" if row["errors"] else ""))

        rows += T.run_grid(study.cells, draws, make_draw, {"sparker": run}, summarise, line)
    return rows


def tuning_markdown(rows: list[dict[str, Any]], header: list[str]) -> str:
    out = ["## SparKer tuning runs", ""] + [f"{h}  " for h in header] + [""]
    for study in STUDIES:
        part = [r for r in rows if r["study"] == study.name and r["bench"] == study.bench]
        if not part:
            continue
        first, n = int(part[0]["seed_offset"]), int(part[0]["draws"])
        seeds = f"seeds {first}..{first + n - 1}"
        out += [f"### {study.title} ({seeds}, {part[0]['n_permutations']:.0f} permutations)", "",
                "| setting | case | eps | power (p < 0.05) | median Z | row AUROC in D | "
                "top kernel's AUROC | s / draw |", "|---|---|---|---|---|---|---|---|"]
        out += [f"| {r['setting']} | {r['case']} | {r['eps']:g} | {C._f(r['power'], 2)} | "
                f"{C._f(r['median_z'], 2)} | {C._f(r['row_auroc'])} | "
                f"{C._f(r['top_kernel_auroc'])} | {r['seconds_per_draw']:.1f} |" for r in part]
        out.append("")
    errs = [r for r in rows if r["errors"]]
    if errs:
        out += ["Errors:", ""] + [f"- {r['setting']} / {r['case']} {r['eps']:g}: {r['errors']}"
                                  for r in errs] + [""]
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=C.default_data_dir())
    p.add_argument("--study", choices=("all", "seeding", "projection", "transform"),
                   default="all")
    p.add_argument("--quick", action="store_true",
                   help="a smoke test: 1 draw, 5 permutations (tag quick)")
    p.add_argument("--tag", default="")
    args = p.parse_args()
    n_perm = 5 if args.quick else N_PERMUTATIONS
    studies = [s for s in STUDIES if args.study in ("all", s.name)]
    header = [
        "protocol: SparKer tuning runs (tune_sparker.py), SparKerDetector("
        f"calibration='permutation'), {n_perm} permutations; draws and sets the reported "
        "runs do not use" + ("; QUICK: one draw per cell, a smoke test" if args.quick else ""),
        f"studies: {', '.join(dict.fromkeys(s.name for s in studies))}",
        C.environment_line(),
    ]
    print("\n".join(header), flush=True)
    t0 = time.perf_counter()
    rows = []
    for study in studies:
        draws = range(study.draws.start, study.draws.start + 1) if args.quick else study.draws
        rows += run_study(study, args.data_dir, draws, n_perm)
    header.append(f"wall time of the run: {time.perf_counter() - t0:.0f} s")
    md = tuning_markdown(rows, header)
    print("\n" + md)
    C.write_outputs("sparker_tuning", args.tag or ("quick" if args.quick else ""), rows, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
