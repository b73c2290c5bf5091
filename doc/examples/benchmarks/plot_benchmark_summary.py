"""
Benchmark summary: mean AUROC per method
========================================

The one-class benchmark protocols in ``benchmarks/`` write one row per data
set and method to ``benchmarks/results/<protocol>.csv`` (columns
``dataset``, ``method``, ``auroc``, ``ap``, ``fpr95``, fit and score
seconds). This example reads the committed files and draws each method's
mean outlier AUROC per protocol: the ADBench tabular sets, the ADBench
embedding sets (ResNet18 image and BERT / RoBERTa text embeddings) and the
Fashion-MNIST one-class tasks. The protocols and the full tables are on
the :doc:`benchmarks page </benchmarks>`.
"""

# %%
# Find and read the results files
# -------------------------------
# Sphinx-Gallery runs an example with its own folder as the working
# directory; the results folder is found by walking up from this file (or
# from the working directory when ``__file__`` is not defined).
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def find_results(start):
    for folder in [start, *start.parents]:
        candidate = folder / "benchmarks" / "results"
        if (candidate / "tabular.csv").is_file():
            return candidate
    raise FileNotFoundError(f"no benchmarks/results/ above {start}")


try:
    here = Path(__file__).resolve().parent
except NameError:
    here = Path.cwd().resolve()
results_dir = find_results(here)

protocols = {
    "tabular": "ADBench tabular",
    "embeddings": "ADBench embeddings",
    "fmnist": "Fashion-MNIST one-class",
}
# short names of the method keys of skhyper.evaluation.METHODS
labels = {
    "compvae": "CompVAE (combined score)",
    "vmf": "vMF (combined score)",
    "vae": "Gaussian VAE (combined score)",
    "sparker": "SparKer (ref. mode)",
    "iforest": "IsolationForest",
    "lof": "LOF",
    "knn": "kNN (k=5)",
    "knn3": "kNN (k=3)",
}
frames = []
for protocol in protocols:
    df = pd.read_csv(results_dir / f"{protocol}.csv")
    df = df[df["auroc"].notna()]
    # keep the data sets on which every method of the protocol ran
    n_methods = df["method"].nunique()
    complete = (
        df.groupby("dataset")["method"].transform("nunique") == n_methods
    )
    frames.append(df[complete].assign(protocol=protocol))
results = pd.concat(frames, ignore_index=True)

summary = results.pivot_table(
    index="method", columns="protocol", values="auroc", aggfunc="mean"
)
n_sets = results.groupby("protocol")["dataset"].nunique()
order = [m for m in labels if m in summary.index]
summary = summary.loc[order, list(protocols)]
print(summary.rename(index=labels).round(3).to_string())

# %%
# Mean AUROC per method and protocol
# ----------------------------------
# Means over the data sets on which every method of the protocol ran; a
# method absent from a protocol's run has no bar there.
fig, ax = plt.subplots(figsize=(11, 5), constrained_layout=True)
colours = {m: plt.get_cmap("tab10")(i) for i, m in enumerate(order)}
width = 0.11
x = np.arange(len(protocols))
for j, protocol in enumerate(protocols):
    present = [m for m in order if np.isfinite(summary.loc[m, protocol])]
    for i, method in enumerate(present):
        h = summary.loc[method, protocol]
        bar = ax.bar(
            j + (i - (len(present) - 1) / 2) * width,
            h,
            width,
            color=colours[method],
            label=labels[method],
        )
        ax.bar_label(
            bar, labels=[f"{h:.3f}"], fontsize=7, rotation=90, padding=2
        )
handles, names = ax.get_legend_handles_labels()
by_name = dict(zip(names, handles))
unique = {labels[m]: by_name[labels[m]] for m in order if labels[m] in by_name}
ax.set_xticks(
    x, [f"{protocols[p]}\n({n_sets[p]} data sets)" for p in protocols]
)
ax.set_ylabel("mean outlier AUROC")
low = np.nanmin(summary.to_numpy())
ax.set_ylim(max(0.0, np.floor(low * 10) / 10 - 0.1), 1.02)
ax.legend(
    unique.values(), unique.keys(), loc="upper left", fontsize=8, ncols=4
)
ax.set_title("Committed benchmark results (benchmarks/results/*.csv)")
plt.show()

# %%
# The means hide a wide spread between data sets. Per data set, the
# difference to IsolationForest's AUROC on the same split:
fig, ax = plt.subplots(figsize=(11, 4.5), constrained_layout=True)
positions, ticks = [], []
pos = 0
for protocol in protocols:
    table = results[results["protocol"] == protocol].pivot_table(
        index="dataset", columns="method", values="auroc"
    )
    methods = [m for m in order if m in table.columns and m != "iforest"]
    first = pos
    for method in methods:
        diff = (table[method] - table["iforest"]).to_numpy()
        ax.boxplot(
            diff,
            positions=[pos],
            widths=0.6,
            showfliers=True,
            patch_artist=True,
            boxprops=dict(facecolor=colours[method]),
            medianprops=dict(color="k"),
        )
        positions.append(pos)
        ticks.append(labels[method])
        pos += 1
    ax.text(
        (first + pos - 1) / 2,
        1.02,
        protocols[protocol],
        transform=ax.get_xaxis_transform(),
        ha="center",
        fontsize=9,
    )
    if protocol != list(protocols)[-1]:
        ax.axvline(pos, color="0.8", lw=0.8)
        pos += 1
ax.axhline(0, color="k", lw=0.8)
ax.set_xticks(positions, ticks, rotation=30, ha="right", fontsize=8)
ax.set_ylabel("AUROC minus IsolationForest's")
plt.show()
