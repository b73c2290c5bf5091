"""
Which features make a row anomalous?
====================================

:meth:`~skhyper.CompVAEDetector.feature_contributions` splits each row's
anomaly score (``-score_samples``) over the features: a positive
contribution pushes the row toward outlier, a negative one toward normal.
The reconstruction part of the score is split exactly (each feature's own
squared error); the latent kNN part by integrated gradients from the centre
of the detector's scaling. A row's contributions add up to its anomaly score
less one constant, the same for every row.

Here benign tumours of scikit-learn's breast cancer data are normal and
malignant ones are the anomalies. The rows stay a pandas DataFrame, so the
contributions come back as one, with the feature names as columns.
"""

# %%
# A one-class split
# -----------------
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer

from skhyper import CompVAEDetector
from skhyper.metrics import outlier_roc_auc

data = load_breast_cancer(as_frame=True)
X, y = data.data, data.target  # y: 0 = malignant, 1 = benign
rng = np.random.default_rng(0)
benign = X[y == 1].iloc[rng.permutation(int((y == 1).sum()))]
malignant = X[y == 0]
n_train = int(0.7 * len(benign))
X_train, X_benign_test = benign.iloc[:n_train], benign.iloc[n_train:]
X_malignant_test = malignant.iloc[rng.choice(len(malignant), 60, replace=False)]
X_test = pd.concat([X_benign_test, X_malignant_test])
is_malignant = X_test.index.isin(X_malignant_test.index)

detector = CompVAEDetector(random_state=0).fit(X_train)
auroc = outlier_roc_auc(is_malignant, detector.score_samples(X_test))
print(
    f"train {len(X_train)} benign rows; test {len(X_benign_test)} benign + "
    f"{len(X_malignant_test)} malignant; test AUROC {auroc:.3f}"
)

# %%
# Contributions, and what they add up to
# --------------------------------------
# One row of contributions per test row, indexed like ``X_test``. Their sum
# plus ``score_samples`` is one constant for every row, up to the error of
# the path integral (its tolerance is ``rtol``).
contributions = detector.feature_contributions(X_test)
anomaly_score = pd.Series(-detector.score_samples(X_test), index=X_test.index)
constant = anomaly_score - contributions.sum(axis=1)
q1, q3 = np.percentile(-detector.score_samples(X_train), [25, 75])
print(f"contributions: {contributions.shape[0]} rows x {contributions.shape[1]} features")
print(
    f"score - sum of contributions: {constant.mean():.4f}, spread over the rows "
    f"{np.ptp(constant):.1e} (the training scores' IQR is {q3 - q1:.2f})"
)

# %%
# The features behind the malignant rows
# --------------------------------------
# The mean contribution of each feature over the malignant test rows, next to
# that over the benign test rows, for the ten features with the largest mean
# over the malignant rows.
mean_malignant = contributions[is_malignant].mean()
mean_benign = contributions[~is_malignant].mean()
top = mean_malignant.sort_values(ascending=False).index[:10]
print("largest mean contributions over the malignant rows:")
print(mean_malignant[top].round(2).to_string())

# the row the detector finds most anomalous, and its eight largest contributions
worst = anomaly_score.idxmax()
row = contributions.loc[worst]
largest = row.abs().sort_values(ascending=False).index[:8][::-1]
print(
    f"most anomalous test row: {worst} "
    f"({'malignant' if worst in X_malignant_test.index else 'benign'}), "
    f"anomaly score {anomaly_score[worst]:.1f}, largest contribution {row.idxmax()!r}"
)

fig, (left, right) = plt.subplots(
    1, 2, figsize=(12, 5.5), constrained_layout=True, width_ratios=(1.1, 1)
)
positions = np.arange(len(top))[::-1]
left.barh(positions + 0.2, mean_malignant[top], height=0.4, color="tab:red", label="malignant")
left.barh(positions - 0.2, mean_benign[top], height=0.4, color="tab:blue", label="benign")
left.set_yticks(positions, top)
left.axvline(0.0, color="0.3", lw=0.8)
left.set_xlabel("mean contribution to the anomaly score")
left.set_title("Mean over the test rows\n(the ten features largest for malignant rows)")
left.legend(loc="lower right", title="test rows")

colours = np.where(row[largest] > 0, "tab:red", "tab:blue")
right.barh(np.arange(len(largest)), row[largest], color=colours)
right.set_yticks(np.arange(len(largest)), largest)
right.axvline(0.0, color="0.3", lw=0.8)
right.set_xlabel("contribution (red: toward outlier, blue: toward normal)")
right.set_title(
    f"Test row {worst}, the most anomalous (score {anomaly_score[worst]:.1f}):\n"
    "its eight largest contributions"
)
fig.suptitle("CompVAEDetector.feature_contributions on the breast cancer data")
plt.show()

# %%
# The malignant rows owe their scores mostly to the size features (area,
# perimeter and radius: their worst values, means and standard errors), then
# to shape features (concave points, compactness); on average the benign test
# rows get small contributions everywhere. Contributions are
# measured from the centre of the scaling, in scaled units: a feature far
# from its training mean can contribute even when it is normal given the
# other features, and a feature can contribute negatively where moving it
# from the centre brings the row closer to the training rows.
