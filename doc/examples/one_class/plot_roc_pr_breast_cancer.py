"""
ROC and precision-recall curves next to IsolationForest
========================================================

A one-class split of scikit-learn's breast cancer data: benign tumours are
normal, malignant ones are the anomalies. Every detector is fitted on the
same benign training rows and scored on the same test rows, and the curves
take the **outlier** class as positive with ``-score_samples`` as the score
(``score_samples`` is higher for more normal rows).

:class:`~skhyper.SparKerDetector` asks a different question (is the test
sample distributed like a reference?), so it runs in its reference mode: it
is fitted on the test rows with the training rows as ``X_ref`` and then
scores the test rows.
"""

# %%
# A one-class split
# -----------------
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import IsolationForest
from sklearn.metrics import PrecisionRecallDisplay, RocCurveDisplay
from sklearn.neighbors import LocalOutlierFactor
from sklearn.preprocessing import StandardScaler

from skhyper import CompVAEDetector, SparKerDetector, VMFDetector
from skhyper.metrics import (
    fpr_at_95_tpr,
    outlier_average_precision,
    outlier_roc_auc,
)

X, y = load_breast_cancer(return_X_y=True)  # y: 0 = malignant, 1 = benign
rng = np.random.default_rng(0)
benign = rng.permutation(X[y == 1])
malignant = X[y == 0]
n_train = int(0.7 * len(benign))
X_train, X_normal_test = benign[:n_train], benign[n_train:]
X_anomalies = malignant[
    rng.choice(len(malignant), len(X_normal_test) // 2, replace=False)
]
X_test = np.vstack([X_normal_test, X_anomalies])
y_test = np.r_[
    np.zeros(len(X_normal_test)), np.ones(len(X_anomalies))
]  # 1 = outlier

scaler = StandardScaler().fit(X_train)
X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
print(
    f"train {len(X_train)} benign; test {len(X_normal_test)} benign + "
    f"{len(X_anomalies)} malignant, {X.shape[1]} features"
)

# %%
# Fit and score
# -------------
# ``epochs=100`` and ``batch_size=64`` set the VAEs' schedule here; the
# default ``epochs="auto"`` trains about 250 optimiser steps, whatever the
# number of training rows.
one_class = {
    "CompVAE": CompVAEDetector(epochs=100, batch_size=64, random_state=0),
    "vMF": VMFDetector(epochs=100, batch_size=64, random_state=0),
    "IsolationForest": IsolationForest(random_state=0),
    "LOF": LocalOutlierFactor(novelty=True),
}
anomaly_scores = {}
for name, det in one_class.items():
    det.fit(X_train)
    anomaly_scores[name] = -det.score_samples(X_test)

sparker = SparKerDetector(n_permutations=19, random_state=0)
sparker.fit(X_test, X_ref=X_train)
anomaly_scores["SparKer (ref. mode)"] = -sparker.score_samples(X_test)
print(
    f"SparKer two-sample p-value of the test set against the training set: "
    f"{sparker.pvalue_:.3f}"
)

print(f"{'method':22s} AUROC    AP  FPR95")
for name, s in anomaly_scores.items():
    print(
        f"{name:22s} {outlier_roc_auc(y_test, s, higher_is_normal=False):.3f} "
        f"{outlier_average_precision(y_test, s, higher_is_normal=False):.3f} "
        f"{fpr_at_95_tpr(y_test, s, higher_is_normal=False):.3f}"
    )

# %%
# The curves
# ----------
# ``pos_label=1`` makes the outlier class positive. The ROC's false-positive
# axis is logarithmic, which spreads out the low false-alarm region where a
# detector is used in practice.
fig, (ax_roc, ax_pr) = plt.subplots(
    1, 2, figsize=(12, 5.2), constrained_layout=True
)
# one colour and one line style per method: curves that coincide stay
# visible under each other
line_styles = ["-", "--", "-.", ":", (0, (5, 1, 1, 1, 1, 1))]
for i, (name, s) in enumerate(anomaly_scores.items()):
    last = i == len(anomaly_scores) - 1
    roc = RocCurveDisplay.from_predictions(
        y_test, s, pos_label=1, name=name, ax=ax_roc
    )
    pr = PrecisionRecallDisplay.from_predictions(
        y_test, s, pos_label=1, name=name, ax=ax_pr, plot_chance_level=last
    )
    for line in (roc.line_, pr.line_):
        line.set_color(f"C{i}")
        line.set_linestyle(line_styles[i % len(line_styles)])
        line.set_linewidth(1.6)
fpr_grid = np.logspace(np.log10(0.5 / len(X_normal_test)), 0, 100)
ax_roc.plot(fpr_grid, fpr_grid, "k--", lw=1, label="chance level")
ax_roc.set_xscale("log")
ax_roc.set_xlim(fpr_grid[0], 1.0)
for ax in (ax_roc, ax_pr):
    ax.set_aspect("auto")
ax_roc.set_title("ROC, outliers positive")
ax_roc.legend(loc="lower right", fontsize=8)
ax_pr.set_title("precision-recall, outliers positive")
ax_pr.legend(loc="lower left", fontsize=8)
plt.show()
