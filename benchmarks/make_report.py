"""Assemble doc/benchmarks.md and doc/img/*.png from benchmarks/results/.

Every number in the report is read from a results file written by a benchmark
run; nothing is typed by hand (the notes on the committed runs come from
benchmarks/NOTES.md). Missing results files are listed as not run.

    python benchmarks/make_report.py            # untagged (full) results
    python benchmarks/make_report.py --tag quick
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import _common as C
import numpy as np
from scipy.stats import binom

from skhyper.plotting import plot_roc

DOC = os.path.join(C.REPO, "doc")
IMG = os.path.join(DOC, "img")
PROTOCOLS = ["tabular", "embeddings", "fmnist", "fmnist_conv", "classcond", "embeddings_paper",
             "fmnist_paper", "tune_compvae", "ablation_compvae", "ablation_compvae_conv",
             "ablation_compvae_digits", "tabular_recheck", "conv_scoring", "sparker_tuning",
             "step_cost", "twosample", "twosample_fresh", "twosample_fresh_robust", "highdim",
             "novelty", "sparker_speed",
             "knn_backends", "memory", "large_fit", "threads", "dask_scale"]
# two-sample results files: the draws SparKer's defaults were chosen on, and a run
# on fresh draws (bench_twosample.py --seed-offset 1000 --tag fresh)
TWOSAMPLE = ("twosample", "twosample_fresh")
ONE_CLASS = ("tabular", "embeddings", "fmnist", "fmnist_conv")


def _plt():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plots written")
        return None
    return plt


# A distinct colour per method of a figure: black for IsolationForest (the
# scatter plots' x-axis), tab10's colours for the others in the order of
# skhyper.evaluation.METHODS, then the same colours again with other line
# styles and markers. Styles are assigned over all the methods of a results
# file, so a method looks the same in its scatter plot and its ROC figure.
LINE_STYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D")
# the two-sample methods of bench_twosample.py
TWOSAMPLE_LABELS = {"sparker": "SparKer", "c2st": "C2ST", "mmd": "MMD", "knn": "kNN"}


def method_styles(methods) -> dict[str, tuple[str, str, str]]:
    """(colour, line style, marker) of each method key, in the canonical order."""
    known = list(C.LABELS)
    ordered = sorted(
        dict.fromkeys(methods), key=lambda m: known.index(m) if m in known else len(known)
    )
    styles = {}
    for i, m in enumerate(m for m in ordered if m != "iforest"):
        styles[m] = f"C{i % 10}", LINE_STYLES[(i // 10) % 4], MARKERS[(i // 10) % 4]
    if "iforest" in ordered:
        styles["iforest"] = "k", "-", "o"
    return {m: styles[m] for m in ordered}


def scatter_vs_iforest(rows, protocol, tag, plt) -> str | None:
    by = {(r["dataset"], r["method"]): r["auroc"] for r in rows if not r.get("error")}
    styles = method_styles(r["method"] for r in rows)
    methods = [m for m in styles if m != "iforest"]
    ds = [d for d in dict.fromkeys(r["dataset"] for r in rows) if (d, "iforest") in by]
    if not ds or not methods:
        return None
    # the legend goes beside the axes, where it hides no point
    fig, ax = plt.subplots(figsize=(7.8, 4.8), constrained_layout=True)
    lowest = 1.0
    for m in methods:
        pts = [(by[(d, "iforest")], by[(d, m)]) for d in ds if (d, m) in by]
        if pts:
            x, y = zip(*pts)
            lowest = min(lowest, *x, *y)
            colour, _, marker = styles[m]
            ax.scatter(
                x, y, s=16, label=C.LABELS.get(m, m), alpha=0.8, color=colour, marker=marker,
                linewidths=0,
            )
    # both axes over the range of the AUROCs, so the points spread out
    low = max(0.0, np.floor((lowest - 0.02) * 20) / 20)
    ax.plot([low, 1], [low, 1], c="grey", ls=":", lw=1)
    ax.set_xlim(low, 1.01)
    ax.set_ylim(low, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("IsolationForest AUROC")
    ax.set_ylabel("method AUROC")
    ax.set_title(f"{protocol}: AUROC per data set vs IsolationForest", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    name = f"{protocol}{'_' + tag if tag else ''}_auroc_vs_iforest.png"
    fig.savefig(os.path.join(IMG, name), dpi=110)
    plt.close(fig)
    return name


def roc_plot(roc, protocol, tag, plt, all_methods=()) -> str | None:
    """Mean ROC curve per method; ``all_methods`` (those of the results file)
    fix the methods' styles, as in the scatter plot."""
    if not roc:
        return None
    ds = list(roc)
    curves = []
    styles = method_styles([*all_methods, *(m for d in ds for m in roc[d])])
    methods = [m for m in styles if any(m in roc[d] for d in ds)]
    for m in methods:
        tprs = [np.array(roc[d][m]["tpr"]) for d in ds if m in roc[d]]
        fpr = np.array(next(roc[d][m]["fpr"] for d in ds if m in roc[d]))
        curves.append((f"{C.LABELS.get(m, m)} ({len(tprs)} sets)", fpr, np.mean(tprs, axis=0)))
    fig, ax = plt.subplots(figsize=(5.5, 5))
    # the stored curves are sampled every 0.01 in FPR: a linear axis suits them
    plot_roc(curves, ax=ax, log_fpr=False, title=f"{protocol}: mean ROC curve over data sets")
    # the methods' own colours and line styles (plot_roc draws the curves first,
    # then the chance diagonal), and the legend again to show them
    for line, m in zip(ax.lines, methods):
        line.set_color(styles[m][0])
        line.set_linestyle(styles[m][1])
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    name = f"{protocol}{'_' + tag if tag else ''}_roc.png"
    fig.savefig(os.path.join(IMG, name), dpi=110)
    plt.close(fig)
    return name


def power_plot(rows, protocol, tag, plt) -> str | None:
    cases = list(dict.fromkeys(r["case"] for r in rows))
    if not cases:
        return None
    fig, axes = plt.subplots(1, len(cases), figsize=(4 * len(cases), 3.6), squeeze=False)
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for ax, case in zip(axes[0], cases):
        # a method keeps its colour in every panel, whichever methods a case ran
        for i, m in enumerate(methods):
            rr = sorted((r for r in rows if r["case"] == case and r["method"] == m),
                        key=lambda r: r["eps"])
            if not rr:
                continue
            ax.plot([r["eps"] for r in rr], [r["power"] for r in rr], marker="o",
                    color=f"C{i % 10}", ls=("-", "--")[(i // 10) % 2],
                    label=TWOSAMPLE_LABELS.get(m, m))
        ax.axhline(0.05, c="grey", ls=":", lw=1)
        ax.set_title(case, fontsize=9)
        ax.set_xlabel("eps (injected fraction of D)")
        ax.set_ylabel("power at alpha = 0.05")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=7)
    fig.tight_layout()
    name = f"{protocol}{'_' + tag if tag else ''}_power.png"
    fig.savefig(os.path.join(IMG, name), dpi=110)
    plt.close(fig)
    return name


def target_row(name: str, measured: str, ok: bool) -> str:
    """One row of the targets table."""
    return f"| {name} | {measured} | {'yes' if ok else 'no'} |"


def twosample_targets(rows, proto: str) -> list[str]:
    """Target lines of one two-sample results file; those of a file other than
    ``twosample`` (the fresh draws) name its seeds."""
    out: list[str] = []

    def line(name, measured, ok):
        out.append(target_row(name, measured, ok))

    label = "two-sample"
    if proto != "twosample":
        offs = sorted({int(r["seed_offset"]) for r in rows
                       if np.isfinite(C._value(r, "seed_offset"))})
        draws = max(int(r["draws"]) for r in rows)
        seeds = ", ".join(f"{o}..{o + draws - 1}" for o in offs) or "?"
        label = f"two-sample, seeds {seeds},"
    by = {(r["case"], r["eps"], r["method"]): r for r in rows}
    for case in dict.fromkeys(r["case"] for r in rows):
        eps = sorted({r["eps"] for r in rows if r["case"] == case and r["eps"] > 0})
        wins = [by[(case, e, "sparker")]["power"] >
                max(by[(case, e, m)]["power"] for m in ("c2st", "mmd")) for e in eps]
        line(f"{label} {case}: SparKer power above C2ST and MMD at every eps > 0",
             ", ".join(f"{e:g}: {by[(case, e, 'sparker')]['power']:.2f} vs "
                       f"{by[(case, e, 'c2st')]['power']:.2f} / "
                       f"{by[(case, e, 'mmd')]['power']:.2f}" for e in eps),
             all(wins))
        null = by.get((case, 0.0, "sparker"))
        if null is not None:
            # 95% upper binomial bound of the rejection count for a valid test
            draws = int(null["draws"])
            bound = int(binom.ppf(0.975, draws, 0.05)) / draws
            line(f"{label} {case}: SparKer rejection rate at eps = 0 within "
                 "binomial noise of 0.05",
                 f"{null['power']:.2f} (bound {bound:.2f} at {draws} draws)",
                 null["power"] <= bound)
    for case in dict.fromkeys(r["case"] for r in rows):
        e = max(r["eps"] for r in rows if r["case"] == case)
        r = by.get((case, e, "sparker"))
        k = r.get("kernel_on_injected", float("nan")) if r else float("nan")
        if k == k:
            line(f"{label} {case} at eps = {e:g}: SparKer's top positive kernel on the "
                 "injected population in most draws", f"{k:.2f} of draws", k > 0.5)
    for case, e in (("bump", 0.02), ("cms", 0.01)):
        r = by.get((case, e, "sparker"))
        if r is not None:
            line(f"{label} {case} at eps = {e:g}: SparKer power at least 0.8",
                 f"{r['power']:.2f}", r["power"] >= 0.8)
    return out


def highdim_targets(rows) -> list[str]:
    """SparKer against the best peer at d >= 512 on each case with injected rows:
    power, and localisation (its top kernel's row AUROC against the peers' row
    AUROC)."""
    out: list[str] = []
    peers = ("knn", "c2st", "mmd")
    by = {(r["case"], r["eps"], r["method"]): r for r in rows}
    for (case, eps, m), r in by.items():
        if m != "sparker" or eps <= 0 or int(r["d"]) < 512:
            continue
        others = [by[(case, eps, p)] for p in peers if (case, eps, p) in by]
        if not others:
            continue
        best_p = max(o["power"] for o in others)
        best_a = max(o["row_auroc"] for o in others)
        out.append(target_row(
            f"high dimension {case} (d = {int(r['d'])}, eps = {eps:g}): SparKer power and "
            "localisation level with the best peer",
            f"power {r['power']:.2f} vs {best_p:.2f}; top kernel's row AUROC "
            f"{r['top_kernel_auroc']:.3f} vs {best_a:.3f}",
            r["power"] >= best_p and r["top_kernel_auroc"] >= best_a))
    return out


def novelty_targets(rows) -> list[str]:
    """Open-world novelty, per space (pixels, latent) at eps = 0.03: SparKer's power
    at least the best peer's and its top kernel's row AUROC >= 0.9 on most
    classes; and its null rejection rate within binomial noise of 0.05."""
    out: list[str] = []
    peers = ("knn", "c2st", "mmd")
    by = {(r["case"], r["eps"], r["method"]): r for r in rows}
    for space in ("pixels", "latent"):
        cases = [c for c in dict.fromkeys(r["case"] for r in rows) if c.startswith(space + ":")]
        cells = [(c, by[(c, 0.03, "sparker")]) for c in cases if (c, 0.03, "sparker") in by]
        if not cells:
            continue
        wins = []
        for c, r in cells:
            best = max(by[(c, 0.03, p)]["power"] for p in peers if (c, 0.03, p) in by)
            wins.append(r["power"] >= best and r["top_kernel_auroc"] >= 0.9)
        met = ", ".join(c.split(":")[1] for (c, _), w in zip(cells, wins) if w) or "none"
        out.append(target_row(
            f"novelty, {space}, eps = 0.03: SparKer power >= the best peer's and top kernel's "
            "row AUROC >= 0.9 on most classes",
            f"{sum(wins)} of {len(wins)} classes ({met})", 2 * sum(wins) > len(wins)))
        nulls = [by[(c, 0.0, "sparker")] for c in cases if (c, 0.0, "sparker") in by]
        if nulls:
            draws = sum(int(r["draws"]) for r in nulls)
            rejected = sum(r["power"] * r["draws"] for r in nulls)
            bound = int(binom.ppf(0.975, draws, 0.05)) / draws
            out.append(target_row(
                f"novelty, {space}: SparKer rejection rate at eps = 0 within binomial noise "
                "of 0.05", f"{rejected / draws:.3f} over {draws} draws (bound {bound:.3f})",
                rejected / draws <= bound))
    return out


def speed_targets(rows) -> list[str]:
    """SparKer's speed goals (bench_sparker_speed.py)."""
    out: list[str] = []

    def line(name, measured, ok):
        out.append(target_row(name, measured, ok))

    part = {}
    for r in rows:
        part.setdefault(r.get("part", "at scale"), []).append(r)
    for r in part.get("at scale", []):
        n_r = int(r["n_reference"])
        goal = {50_000: 5.0, 200_000: 15.0}.get(n_r)
        if goal is not None:
            line(f"SparKer 100-permutation test, N_D 10k, N_R {n_r // 1000}k, d 8, 2 CPU cores: "
                 f"at most {goal:g} s", f"{r['seconds']:.1f} s", r["seconds"] <= goal)
    for r in part.get("small data", []):
        if r["what"] != "SparKer fit(X, X_ref=R)":
            continue
        if int(r["n"]) == 30:
            line("SparKer default fit + score at 30 x 3: under 0.5 s",
                 f"{r['seconds']:.2f} s (first call of a process {r['first_call_seconds']:.2f} s)",
                 r["seconds"] < 0.5)
        else:
            line(f"SparKer default fit + score at {int(r['n'])} x {int(r['d'])}: within 20x "
                 "IsolationForest's", f"{r['ratio_to_iforest']:.1f}x",
                 r["ratio_to_iforest"] <= 20)
    for r in part.get("null rejection", []):
        draws = int(r["draws"])
        bound = int(binom.ppf(0.975, draws, 0.05)) / draws
        line(f"SparKer default fit(X, X_ref=R) at {int(r['n'])} x {int(r['d'])}: null rejection "
             "within binomial noise of 0.05", f"{r['rate']:.3f} over {draws} draws",
             r["rate"] <= bound)
    return out


def tuning_names(names: list[str]) -> set[str]:
    """The sets the CompVAE tuning runs used: every third file of each folder, in
    sorted file order (``tune_compvae.tuning_sets``); names are ``[folder/]set``."""
    folders: dict[str, list[str]] = {}
    for n in names:
        folders.setdefault(n.rpartition("/")[0], []).append(n)
    tuned = set()
    for folder, members in folders.items():
        if folder in ("", "cv_resnet18"):  # the tuned folders (tabular, ResNet18)
            tuned |= set(sorted(members, key=lambda n: n.rpartition("/")[2] + ".npz")[::3])
    return tuned


def held_out_row(proto: str, rows) -> str:
    """CompVAE against kNN on the sets no tuning run touched (seed 0 splits)."""
    names = list(dict.fromkeys(r["dataset"] for r in rows))
    fresh = [n for n in names if n not in tuning_names(names)]
    summary, n_sets = C.one_class_summary([r for r in rows if r["dataset"] in fresh])
    cv, knn = summary["compvae"]["auroc"], summary["knn"]["auroc"]
    return target_row(f"{proto}, the {n_sets} sets no tuning run used: CompVAE mean AUROC "
                      "at least level with kNN (k=5)", f"{cv:.3f} vs {knn:.3f} "
                      f"({cv - knn:+.3f})", cv >= knn - 5e-4)


def targets(tag: str) -> list[str]:
    """The project's benchmark targets, each marked from the results files."""
    out = ["## Targets", "",
           "The project's benchmark targets; each line is computed from the results "
           "files below by `make_report.py`.", "",
           "| target | measured | met |", "|---|---|---|"]

    def load(proto):
        path = C.results_path(proto, tag, ".csv")
        return C.read_csv(path) if os.path.exists(path) else None

    def line(name, measured, ok):
        out.append(target_row(name, measured, ok))

    peers = ("iforest", "lof", "knn", "knn3", "pyod_vae", "pyod_ae")
    for proto in ("tabular", "embeddings", "fmnist"):
        rows = load(proto)
        if rows is None:
            out.append(f"| {proto} | not run | – |")
            continue
        summary, _ = C.one_class_summary(rows)
        have = list(summary)
        cv = summary["compvae"]["auroc"]
        others = {m: summary[m]["auroc"] for m in have if m in peers}
        best = max(others, key=others.get)
        if proto == "tabular":
            knn = others.get("knn", float("nan"))
            line("tabular: CompVAE mean AUROC at least level with kNN (k=5)",
                 f"{cv:.3f} vs {knn:.3f} ({cv - knn:+.3f})", cv >= knn - 5e-4)
            ratio = summary["compvae"]["ratio"]
            line("tabular: CompVAE fit + score within 10x IsolationForest (CPU)",
                 f"{ratio:.1f}x", ratio <= 10)
        else:
            line(f"{proto}: CompVAE ahead of every peer on mean AUROC",
                 f"{cv:.3f} vs best peer {C.LABELS[best]} {others[best]:.3f} "
                 f"({cv - others[best]:+.3f})", cv > others[best])
        if proto == "fmnist" and {"vmf_knn", "vae_knn"} <= set(have):
            cm, vm, va = (summary[m]["auroc"] for m in ("compvae_knn", "vmf_knn", "vae_knn"))
            line("fmnist (MLP, seed 0): Comp.VAE > vMF > plain VAE (each + kNN)",
                 f"{cm:.3f} > {vm:.3f} > {va:.3f}", cm > vm > va)
    rows = load("tabular_recheck")
    if rows is not None:
        ratio = C.one_class_summary(rows)[0]["compvae"]["ratio"]
        line("tabular (recheck of this checkout's defaults): CompVAE fit + score within 10x "
             "IsolationForest (CPU)", f"{ratio:.1f}x", ratio <= 10)
    for proto in ("tabular", "embeddings"):
        rows = load(proto)
        if rows is not None:
            out.append(held_out_row(proto, rows))
    rows = load("fmnist_conv")
    mlp = load("fmnist")
    if rows is not None:
        summary, _ = C.one_class_summary(rows)
        seeds = sorted({int(r["seed"]) for r in rows})
        per_seed = {}
        for seed in seeds:
            sm, _ = C.one_class_summary([r for r in rows if int(r["seed"]) == seed])
            per_seed[seed] = [sm[m]["auroc"] for m in ("compvae_knn", "vmf_knn", "vae_knn")]
        line(f"fmnist (conv, seeds {', '.join(map(str, seeds))}): Comp.VAE > vMF > plain VAE "
             "(each + kNN) on every seed's mean",
             "; ".join(f"seed {s}: {a:.3f} > {b:.3f} > {c:.3f}"
                       for s, (a, b, c) in per_seed.items()),
             all(a > b > c for a, b, c in per_seed.values()))
        if mlp is not None:
            msum, _ = C.one_class_summary(mlp)
            others = {m: msum[m]["auroc"] for m in msum if m in peers}
            best = max(others, key=others.get)
            cv = summary["compvae"]["auroc"]
            line("fmnist (conv, mean over seeds): CompVAE ahead of every peer "
                 "(peers from the MLP run, same splits)",
                 f"{cv:.3f} vs best peer {C.LABELS[best]} {others[best]:.3f} "
                 f"({cv - others[best]:+.3f})", cv > others[best])
    rows = load("classcond")
    if rows is not None:
        by = {r["method"]: r["auroc"] for r in rows}
        best = max(("iforest", "knn"), key=lambda m: by.get(m, -1))
        line("class-conditional Fashion-MNIST vs MNIST: CompVAE (class-conditional) ahead "
             "of the pixel peers", f"{by['compvae_cc']:.3f} vs {C.LABELS[best]} "
             f"{by[best]:.3f} ({by['compvae_cc'] - by[best]:+.3f})",
             by["compvae_cc"] > by[best])
        if "compvae_cc_knn" in by:
            line("class-conditional, the paper's kNN score: CompVAE (class-conditional) ahead "
                 "of pixel kNN", f"{by['compvae_cc_knn']:.3f} vs {by['knn']:.3f} "
                 f"({by['compvae_cc_knn'] - by['knn']:+.3f}; vMF "
                 f"{by.get('vmf_cc_knn', float('nan')):.3f})",
                 by["compvae_cc_knn"] > by["knn"])
    for proto in TWOSAMPLE:
        rows = load(proto)
        if rows is None:
            if proto == "twosample":
                out.append("| twosample | not run | – |")
            continue
        out += twosample_targets(rows, proto)
    rows = load("highdim")
    if rows:
        out += highdim_targets(rows)
    rows = load("novelty")
    if rows:
        out += novelty_targets(rows)
    rows = load("sparker_speed")
    if rows:
        out += speed_targets(rows)
    rows = load("memory")
    if rows:
        worst = max(r["peak_growth_mb"] for r in rows)
        copy = 2 * rows[0]["input_mb"]  # what one float64 copy of the input adds
        line("scoring 1,000,000 rows: peak memory growth bounded by the batch, not the rows",
             f"largest growth {worst:.0f} MB for {int(rows[0]['rows']):,} rows "
             f"(one float64 copy of the input: {copy:.0f} MB)", worst < copy)
    return out + [""]


def paper_vs_defaults(tag: str) -> list[str]:
    """CompVAE with the authors' setting next to the defaults, on the same splits."""
    out = ["## The authors' setting vs the defaults", "",
           "`CompVAEDetector(**PAPER_PARAMS)` (latent 128, KL target 2500, 300 epochs with "
           "their schedule and learning-rate decay, kNN score) against the defaults, "
           "from the `<protocol>_paper` and `<protocol>` runs (same splits, seed 0).", "",
           "| protocol | sets | defaults (combined) | defaults, kNN score | authors' setting "
           "| time, authors' / defaults |", "|---|---|---|---|---|---|"]
    found = False
    for proto in ("embeddings", "fmnist"):
        base_p, paper_p = C.results_path(proto, tag, ".csv"), C.results_path(
            f"{proto}_paper", tag, ".csv")
        if not (os.path.exists(base_p) and os.path.exists(paper_p)):
            continue
        rows = [r for r in C.read_csv(base_p) if r["method"] in ("compvae", "compvae_knn")]
        rows += C.read_csv(paper_p)
        summary, n = C.one_class_summary(rows)
        if not {"compvae", "compvae_knn", "compvae_paper"} <= set(summary):
            continue
        found = True
        t = summary["compvae_paper"]["seconds"] / summary["compvae"]["seconds"]
        out.append(f"| {proto} | {n} | {summary['compvae']['auroc']:.3f} | "
                   f"{summary['compvae_knn']['auroc']:.3f} | "
                   f"{summary['compvae_paper']['auroc']:.3f} | {t:.1f}× |")
    return out + [""] if found else []


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tag", default="", help="read <protocol>_<tag>.* results")
    p.add_argument("--out", default=os.path.join(DOC, "benchmarks.md"))
    args = p.parse_args()
    os.makedirs(IMG, exist_ok=True)
    plt = _plt()
    parts = ["# Benchmarks", "",
             "Generated by `python benchmarks/make_report.py` from the files in "
             "`benchmarks/results/`; protocols in `benchmarks/README.md`. Times are "
             "comparable only within one run; ratios are to IsolationForest in the same run.",
             ""]
    parts += targets(args.tag)
    parts += paper_vs_defaults(args.tag)
    notes = os.path.join(C.REPO, "benchmarks", "NOTES.md")
    if not args.tag and os.path.exists(notes):
        with open(notes, encoding="utf-8") as fh:
            parts += [fh.read(), ""]
    for proto in PROTOCOLS:
        csv_path = C.results_path(proto, args.tag, ".csv")
        md_path = C.results_path(proto, args.tag, ".md")
        if not os.path.exists(md_path):
            rel = os.path.relpath(md_path, C.REPO)
            parts += [f"## {proto}", "", f"Not run yet (no `{rel}`).", ""]
            continue
        with open(md_path, encoding="utf-8") as fh:
            text = fh.read()
        # each section is titled by its results file, so tagged runs of one
        # protocol (fmnist, fmnist_conv, fmnist_paper) stay apart
        if text.startswith("## "):
            text = f"## {proto}" + text[text.index("\n"):]
        parts.append(text)
        if plt is None or not os.path.exists(csv_path):
            continue
        rows = C.read_csv(csv_path)
        imgs = []
        if proto in ONE_CLASS:
            imgs.append(scatter_vs_iforest(rows, proto, args.tag, plt))
            js = C.results_path(proto, args.tag, ".json")
            if os.path.exists(js):
                with open(js, encoding="utf-8") as fh:
                    imgs.append(roc_plot(json.load(fh).get("roc"), proto, args.tag, plt,
                                         [r["method"] for r in rows]))
        elif proto in TWOSAMPLE:
            imgs.append(power_plot(rows, proto, args.tag, plt))
        parts += [f"![{i}](img/{i})" for i in imgs if i] + [""]
    with open(args.out, "w", encoding="utf-8") as fh:
        fh.write("\n".join(parts))
    print(f"wrote {os.path.relpath(args.out, C.REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
