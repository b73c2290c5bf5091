"""Two-sample protocol (spec/benchmarks.md): SparKer against a classifier
two-sample test (C2ST) and a Gaussian-kernel MMD test.

Cases (R = reference, D = data; a fraction eps of D's N_D rows is injected):

- ``bump``: R ~ N(0, I_4), N_R = 10,000; D ~ (1 - eps) N(0, I_4) + eps N(mu*, 0.1^2 I),
  mu* = (1.5, 1.5, 0, 0), N_D = 2,000.
- ``cms``: CMS dimuon events of the phi window (peakdata4) as R (4,000 rows) and
  the nominal part of D (the other rows, N_D up to 3,900), omega-window events
  (peakdata5) injected; features pt, eta, phi of both muons and the pair mass M.
- ``satellite``: ADBench satellite normal rows split in half between R and D,
  satellite anomalies injected.
- ``nslkdd``: NSL-KDD ``KDDTest+`` network connections. Features: the 38 numeric
  ones (the categorical ``protocol_type``, ``service`` and ``flag`` are dropped, as
  are ``attack`` and ``level``), less the 5 that are constant over the normal rows
  (``land``, ``urgent``, ``num_shells``, ``num_outbound_cmds``, ``is_host_login``):
  33 features, as given (SparKer standardises them itself). Nominal = the 9,711
  ``normal`` rows: R = 4,000 of them, D = 4,000 rows (the next normal rows, then
  the injected ones). Injected = rows of one attack type, ``mscan`` (996 rows),
  chosen by a rule fixed without looking at any method's result: the most frequent
  probe (scan) attack type in KDDTest+ (probe types: ipsweep, mscan, nmap,
  portsweep, saint, satan).

Each draw reshuffles everything (which rows go to R and D, which anomalies are
injected) with seed = seed offset + draw index, the same seed the methods get;
``--seed-offset`` defaults to 0, so the committed results stay reproducible;
SparKer's defaults were chosen on seeds 0..19, so an offset of 1000 gives fresh
draws.

Per method: power at alpha = 0.05 (fraction of draws with p < 0.05; at eps = 0
this is the rejection rate under the null), mean p, NPLM's summaries of the
draws' Z = Phi^-1(1 - p) (median Z and P(Z > 2); with K permutations Z is at
most Phi^-1(1 - 1/(K + 1)), 2.33 at K = 100), and the per-row AUROC of its score
inside D (injected rows = positive). SparKer: SparKerDetector(calibration=
"permutation") fitted on D with X_ref = R (what ``skhyper.stats.sparker_test``
runs), p = pvalue_, score = -score_samples(D); also whether its largest positive kernel sits on the
injected population (nearest D row to that centre is injected). C2ST:
HistGradientBoostingClassifier trained on a stratified half of D u R, one-sided
Mann-Whitney p of its scores of D vs R rows on the other half. MMD: Gaussian
kernel, median-heuristic width, biased MMD^2, permutation p with the same
number of permutations; D and R each subsampled to at most --mmd-max-rows.

    python benchmarks/bench_twosample.py
    python benchmarks/bench_twosample.py --seed-offset 1000 --tag fresh
    python benchmarks/bench_twosample.py --quick --cases bump
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from typing import Any

import numpy as np
from scipy.special import ndtri

import _common as C
from skhyper.metrics import outlier_roc_auc

CASES = {
    "bump": [0.0, 0.005, 0.01, 0.02],
    "cms": [0.0, 0.005, 0.01],
    "satellite": [0.0, 0.01, 0.03],
    "nslkdd": [0.0, 0.005, 0.01],
}
ALPHA = 0.05
Z_STAR = 2.0  # NPLM's threshold on Z = Phi^-1(1 - p)
TUNING_SEEDS = (0, 19)  # the draws SparKer's defaults were chosen on
NSLKDD_ATTACK = "mscan"  # the most frequent probe attack type in KDDTest+ (996 rows)
NSLKDD_CATEGORICAL = ("protocol_type", "service", "flag")
# nominal R rows and D rows (in total) of the real cases before --quick's scale;
# D is cut to the nominal rows left after R when there are fewer
SIZES = {"cms": (4_000, 3_900), "nslkdd": (4_000, 4_000)}


def _cms(data_dir: str | None) -> tuple[np.ndarray, np.ndarray]:
    paths = C.require(data_dir, ["physics/cms_opendata/peakdata4.csv",
                                 "physics/cms_opendata/peakdata5.csv"])
    cols = ["pt1", "eta1", "phi1", "pt2", "eta2", "phi2", "M"]
    out = []
    for p in paths:
        a = np.genfromtxt(p, delimiter=",", names=True, dtype=None, encoding="utf-8")
        out.append(np.column_stack([a[c].astype(np.float64) for c in cols]))
    return out[0], out[1]


def _nslkdd(data_dir: str | None) -> tuple[np.ndarray, np.ndarray]:
    """(normal rows, NSLKDD_ATTACK rows) of KDDTest+, numeric features that vary
    over the normal rows."""
    (path,) = C.require(data_dir, ["intrusion/nsl-kdd/KDDTest+.txt"])
    a = np.genfromtxt(path, delimiter=",", names=True, dtype=None, encoding="utf-8")
    cols = [c for c in a.dtype.names
            if c not in (*NSLKDD_CATEGORICAL, "attack", "level")]
    X = np.column_stack([a[c].astype(np.float64) for c in cols])
    normal = a["attack"] == "normal"
    keep = np.ptp(X[normal], axis=0) > 0
    return X[normal][:, keep], X[a["attack"] == NSLKDD_ATTACK][:, keep]


def make_draw(case: str, eps: float, seed: int, src: dict[str, Any], scale: float
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """(D, R, injected mask of D, planted centre or None) for the draw with this seed."""
    rng = np.random.default_rng(seed)
    if case == "bump":
        n_r, n_d = int(10_000 * scale), int(2_000 * scale)
        mu = np.array([1.5, 1.5, 0.0, 0.0])
        n_inj = int(round(eps * n_d))
        R = rng.normal(size=(n_r, 4))
        D = np.r_[rng.normal(size=(n_d - n_inj, 4)), mu + 0.1 * rng.normal(size=(n_inj, 4))]
        inj = np.r_[np.zeros(n_d - n_inj, bool), np.ones(n_inj, bool)]
        return D, R, inj, mu
    nominal, anomalies = src[case]
    perm = rng.permutation(len(nominal))
    if case in SIZES:
        n_r = int(SIZES[case][0] * scale)
        n_d = min(len(nominal) - n_r, int(SIZES[case][1] * scale))
    else:
        n_r = int(len(nominal) // 2 * scale)
        n_d = min(len(nominal) - n_r, n_r)
    n_inj = int(round(eps * n_d))
    R = nominal[perm[:n_r]]
    D_nom = nominal[perm[n_r:n_r + n_d - n_inj]]
    D = np.r_[D_nom, anomalies[rng.choice(len(anomalies), n_inj, replace=False)]]
    inj = np.r_[np.zeros(len(D_nom), bool), np.ones(n_inj, bool)]
    return D, R, inj, None


def top_positive_kernel(est, D, R) -> tuple[int, np.ndarray] | None:
    """The fitted detector's top positive kernel and its term over the rows of D.

    The top one explains the most excess of D over R,
    ``sum_D t_k - (N_D / N_R) sum_R t_k`` with ``t = kernel_terms`` (amplitudes
    often tie at the clip, so the largest amplitude does not single one out).
    None when no amplitude is positive.
    """
    amp = np.asarray(est.amplitudes_)
    if not (amp > 0).any():
        return None
    t_d, t_r = est.kernel_terms(D), est.kernel_terms(R)
    excess = t_d.sum(0) - len(D) / len(R) * t_r.sum(0)
    top = int(np.argmax(np.where(amp > 0, excess, -np.inf)))
    return top, t_d[:, top]


def run_sparker(D, R, inj, mu, n_perm, seed, params=None) -> dict[str, Any]:
    from skhyper.sparker import SparKerDetector

    with warnings.catch_warnings():
        # equal N_D and N_R (satellite) is by design here, not a CV slicing accident
        warnings.filterwarnings("ignore", message="X_ref has exactly as many rows")
        est = SparKerDetector(calibration="permutation", n_permutations=n_perm,
                              random_state=seed, **(params or {})).fit(D, X_ref=R)
    out: dict[str, Any] = {"pvalue": float(est.pvalue_), "score": -est.score_samples(D)}
    top = top_positive_kernel(est, D, R) if inj.any() else None
    if top is not None:
        # "on the injected population" when the top kernel's term ranks the
        # injected rows of D above the others with AUROC >= 0.9
        on = outlier_roc_auc(inj.astype(int), top[1], higher_is_normal=False)
        out["kernel_on_injected"] = float(on >= 0.9)
        if mu is not None:
            amp, centers = np.asarray(est.amplitudes_), np.asarray(est.centers_)
            out["kernel_dist_to_bump"] = float(
                np.min(np.linalg.norm(centers[amp > 0] - mu, axis=1)))
    return out


def run_c2st(D, R, inj, mu, n_perm, seed) -> dict[str, Any]:
    from scipy.stats import mannwhitneyu
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import train_test_split

    X = np.r_[D, R]
    lab = np.r_[np.ones(len(D), int), np.zeros(len(R), int)]
    idx = np.arange(len(X))
    a, b = train_test_split(idx, test_size=0.5, stratify=lab, random_state=seed)
    clf = HistGradientBoostingClassifier(random_state=seed).fit(X[a], lab[a])
    s = clf.predict_proba(X[b])[:, 1]
    p = mannwhitneyu(s[lab[b] == 1], s[lab[b] == 0], alternative="greater").pvalue
    b_d = b[lab[b] == 1]  # rows of D in the evaluation half
    score = np.full(len(D), np.nan)
    score[b_d] = s[lab[b] == 1]
    return {"pvalue": float(p), "score": score}


def run_mmd(D, R, inj, mu, n_perm, seed, max_rows=2000) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    d_idx = rng.choice(len(D), min(len(D), max_rows), replace=False)
    Ds = D[d_idx]
    Rs = R[rng.choice(len(R), min(len(R), max_rows), replace=False)]
    Z = np.r_[Ds, Rs]
    Z = (Z - Z.mean(0)) / np.where(Z.std(0) > 0, Z.std(0), 1.0)
    sq = (Z * Z).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * Z @ Z.T, 0)
    med = np.median(d2[np.triu_indices(len(Z), 1)])
    K = np.exp(-d2 / max(med, 1e-12)).astype(np.float32)
    n_d, n = len(Ds), len(Z)
    base = np.r_[np.full(n_d, 1.0 / n_d), np.full(n - n_d, -1.0 / (n - n_d))]
    A = np.empty((n, n_perm + 1), np.float32)
    A[:, 0] = base
    for j in range(1, n_perm + 1):
        A[:, j] = base[rng.permutation(n)]
    stats = np.einsum("ij,ij->j", A, K @ A)
    p = (1 + np.sum(stats[1:] >= stats[0])) / (1 + n_perm)
    witness = K[:, :n_d].mean(1) - K[:, n_d:].mean(1)  # high where D is over-dense
    score = np.full(len(D), np.nan)
    score[d_idx] = witness[:n_d]
    return {"pvalue": float(p), "score": score}


def z_metrics(pvalues: np.ndarray) -> tuple[float, float]:
    """Median Z and P(Z > Z_STAR) over the draws with a p-value, Z = Phi^-1(1 - p).

    Not ``skhyper.stats.power_metrics``: that one ranks observed statistics
    against one shared null sample, while each draw here has its own test (its
    own R, D and permutations; C2ST's p is a Mann-Whitney p, with no null
    statistics at all), so the draws' own p-values are summarised directly. Its
    power is also ``Z >= Phi^-1(1 - alpha)``, not ``Z > 2``."""
    pv = pvalues[np.isfinite(pvalues)]
    if not pv.size:
        return np.nan, np.nan
    z = ndtri(1.0 - pv)
    return float(np.median(z)), float(np.mean(z > Z_STAR))


def seeds_note(offset: int, draws: int) -> str:
    """Whether the seeds offset..offset + draws - 1 are fresh for SparKer's defaults."""
    lo, hi = TUNING_SEEDS
    if offset > hi or offset + draws - 1 < lo:
        return f"fresh: none among the seeds {lo}..{hi} SparKer's defaults were chosen on"
    return f"not fresh: they overlap the seeds {lo}..{hi} SparKer's defaults were chosen on"


def z_cap(n_perm: int) -> float:
    """The largest Z a permutation p-value with n_perm permutations can give."""
    return float(ndtri(1.0 - 1.0 / (n_perm + 1)))


RUNNERS = {"sparker": run_sparker, "c2st": run_c2st, "mmd": run_mmd}
NAMES = {"sparker": "SparKer", "c2st": "C2ST (HGB)", "mmd": "MMD (Gauss)"}


def main() -> int:
    p = argparse.ArgumentParser(description="two-sample benchmark")
    p.add_argument("--data-dir", default=C.default_data_dir())
    p.add_argument("--cases", default=",".join(CASES), help=",".join(CASES))
    p.add_argument("--eps", default=None, help="override the eps list, e.g. 0,0.02")
    p.add_argument("--methods", default="sparker,c2st,mmd")
    p.add_argument("--draws", type=int, default=20)
    p.add_argument("--seed-offset", type=int, default=0,
                   help="draw i uses seed OFFSET + i for the data and the methods "
                        "(default 0: the draws the defaults were chosen on)")
    p.add_argument("--n-permutations", type=int, default=100)
    p.add_argument("--mmd-max-rows", type=int, default=2000)
    p.add_argument("--quick", action="store_true",
                   help="3 draws, 20 permutations, samples a quarter of the size")
    p.add_argument("--sparker-params", default="{}",
                   help="JSON of extra SparKerDetector parameters, e.g. "
                        "'{\"preprocessing\": \"robust\"}' (say so with --tag)")
    p.add_argument("--tag", default="")
    args = p.parse_args()
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if any(c not in CASES for c in cases) or any(m not in RUNNERS for m in methods):
        sys.exit(f"error: cases from {list(CASES)}, methods from {list(RUNNERS)}")
    draws, n_perm, scale = args.draws, args.n_permutations, 1.0
    if args.quick:
        draws, n_perm, scale = min(draws, 3), min(n_perm, 20), 0.25
    src: dict[str, Any] = {}
    if "cms" in cases:
        src["cms"] = _cms(args.data_dir)
    if "satellite" in cases:
        (path,) = C.require(args.data_dir, ["adbench/classical/30_satellite.npz"])
        X, y = C.load_npz(path)
        src["satellite"] = (X[y == 0], X[y == 1])
    if "nslkdd" in cases:
        src["nslkdd"] = _nslkdd(args.data_dir)
    offset = args.seed_offset
    header = [
        f"protocol: two-sample, {draws} draws per (case, eps), {n_perm} permutations, "
        f"alpha = {ALPHA}" + ("; QUICK: a quarter of the sample sizes, not the "
                              "full protocol" if args.quick else ""),
        f"seeds: seed offset {offset}, draw i uses seed {offset} + i "
        f"({offset}..{offset + draws - 1}) for the data and the methods; "
        + seeds_note(offset, draws),
        "SparKer parameters: " + (args.sparker_params if json.loads(args.sparker_params)
                                  else "defaults"),
        "environment: " + ", ".join(f"{k} {v}" for k, v in C.environment().items()),
    ]
    print("\n".join(header), flush=True)
    rows = []
    t_start = time.perf_counter()
    for case in cases:
        eps_list = ([float(e) for e in args.eps.split(",")] if args.eps else CASES[case])
        for eps in eps_list:
            acc: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
            for draw in range(draws):
                seed = offset + draw
                D, R, inj, mu = make_draw(case, eps, seed, src, scale)
                for m in methods:
                    t0 = time.perf_counter()
                    try:
                        kw = ({"max_rows": args.mmd_max_rows} if m == "mmd" else
                              {"params": json.loads(args.sparker_params)} if m == "sparker"
                              else {})
                        r = RUNNERS[m](D, R, inj, mu, n_perm, seed, **kw)
                        r["error"] = ""
                    except Exception as exc:
                        r = {"pvalue": np.nan, "score": None,
                             "error": f"{type(exc).__name__}: {exc}"[:300]}
                    r["seconds"] = time.perf_counter() - t0
                    sc = r.pop("score")
                    if sc is not None and inj.any():
                        ok = np.isfinite(sc)
                        if inj[ok].any() and (~inj[ok]).any():
                            r["row_auroc"] = outlier_roc_auc(inj[ok].astype(int), sc[ok],
                                                             higher_is_normal=False)
                    acc[m].append(r)
            for m in methods:
                rs = acc[m]
                pv = np.array([r["pvalue"] for r in rs], float)
                median_z, p_z = z_metrics(pv)
                row = {
                    "case": case, "eps": eps, "method": m, "draws": len(rs),
                    "seed_offset": offset,
                    "n_D": len(D), "n_R": len(R), "n_permutations": n_perm,
                    "power": float(np.mean(pv[np.isfinite(pv)] < ALPHA)) if np.isfinite(pv).any() else np.nan,
                    "mean_pvalue": float(np.nanmean(pv)) if np.isfinite(pv).any() else np.nan,
                    "median_z": median_z,
                    "p_z_gt_2": p_z,
                    "row_auroc": float(np.mean([r["row_auroc"] for r in rs if "row_auroc" in r]))
                    if any("row_auroc" in r for r in rs) else np.nan,
                    "seconds_per_draw": float(np.mean([r["seconds"] for r in rs])),
                    "errors": "; ".join(sorted({r["error"] for r in rs if r["error"]})),
                }
                if m == "sparker":
                    for k in ("kernel_on_injected", "kernel_dist_to_bump"):
                        v = [r[k] for r in rs if k in r]
                        row[k] = float(np.mean(v)) if v else np.nan
                rows.append(row)
                print(f"  {case:<10} eps={eps:<6} {NAMES[m]:<12} power {row['power']:.2f}  "
                      f"mean p {row['mean_pvalue']:.3f}  median Z {row['median_z']:.2f}  "
                      f"P(Z>2) {row['p_z_gt_2']:.2f}  row AUROC {row['row_auroc']:.3f}  "
                      f"{row['seconds_per_draw']:.1f} s/draw"
                      + (f"  ERR {row['errors']}" if row["errors"] else ""), flush=True)
    header.append(f"wall time of the run: {time.perf_counter() - t_start:.0f} s")
    md = twosample_markdown(rows, header)
    print("\n" + md)
    C.write_outputs("twosample", args.tag or ("quick" if args.quick else ""), rows, md)
    return 0


def twosample_markdown(rows, header) -> str:
    out = ["## two-sample", ""] + [f"{h}  " for h in header] + [""]
    out.append("| case | eps | method | N_D / N_R | power (p < 0.05) | mean p | median Z | "
               "P(Z > 2) | row AUROC in D | s / draw | SparKer top kernel on injected |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        k = r.get("kernel_on_injected", np.nan)
        out.append(
            f"| {r['case']} | {r['eps']:g} | {NAMES.get(r['method'], r['method'])} | "
            f"{int(r['n_D'])} / {int(r['n_R'])} | {C._f(r['power'], 2)} | "
            f"{C._f(r['mean_pvalue'])} | {C._f(r['median_z'], 2)} | "
            f"{C._f(r['p_z_gt_2'], 2)} | {C._f(r['row_auroc'])} | "
            f"{r['seconds_per_draw']:.1f} | {C._f(k, 2) if r['method'] == 'sparker' else ''} |")
    offsets = sorted({int(r["seed_offset"]) for r in rows})
    draws = max((int(r["draws"]) for r in rows), default=0)
    perms = sorted({int(r["n_permutations"]) for r in rows})
    caps = ", ".join(f"{z_cap(k):.2f} at K = {k}" for k in perms)
    if 100 not in perms:
        caps += f"; {z_cap(100):.2f} at K = 100"
    out += ["",
            "Seeds: " + "; ".join(f"seeds {o}..{o + draws - 1} (seed offset {o} + draw "
                                  f"index, for the data and the methods), "
                                  + seeds_note(o, draws) for o in offsets) + ".",
            "",
            ("At eps = 0 the power column is the rejection rate under the null "
             "(should be near 0.05)."),
            "",
            (f"Median Z and P(Z > {Z_STAR:g}) summarise the draws' Z = Phi^-1(1 - p) as "
             "NPLM does, from each draw's own p (every draw is its own test, so not "
             "`skhyper.stats.power_metrics`, which ranks statistics against one shared "
             "null sample). SparKer's and MMD's p-values are permutation p-values with "
             "K permutations, so their Z cannot exceed Phi^-1(1 - 1/(K + 1)) "
             f"({caps}): their median Z saturates there once most draws reject, and a "
             "p of 1 (every permutation at least the observed statistic) gives "
             "Z = -inf. C2ST's Mann-Whitney p is asymptotic and has no such cap.")]
    for k in perms:
        # quick runs with few permutations: say which columns are 0 by construction
        why = []
        if 1.0 / (k + 1) >= ALPHA:
            why.append(f"no permutation p is below {ALPHA:g} (power)")
        if z_cap(k) <= Z_STAR:
            why.append(f"no Z exceeds {Z_STAR:g} (P(Z > {Z_STAR:g}))")
        if why:
            out += ["", f"With K = {k}, " + " and ".join(why)
                    + ": for SparKer and MMD those columns are 0 by construction."]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
