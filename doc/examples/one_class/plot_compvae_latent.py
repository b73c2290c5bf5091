"""
The latent sphere of CompVAE, vMF and a plain VAE
=================================================

:class:`~skhyper.CompVAEDetector` regularises the latent means of its VAE
through their hyperspherical coordinates: a radius ``r = ||mu||`` and the
angle cosines ``cos(phi_i) = mu_i / ||mu_{i:}||``. With
``compression="full"`` every angle's mean is pulled toward the north pole,
so the normal rows gather in one small cap of the sphere;
:class:`~skhyper.VMFDetector` compresses only the first angle, and
``compression="none"`` keeps the latent isotropic (a plain VAE). All three
score a row by its mean distance to the 3 nearest training latent means.

Here one digit of scikit-learn's digits data is normal and the other nine are
anomalies. Each detector is trained on normal rows only, and
:meth:`~skhyper.CompVAEDetector.transform_latent` gives the latent means of
held-out normal rows and of anomalies.
"""

# %%
# Data: one digit is normal
# -------------------------
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA

from skhyper import CompVAEDetector, VMFDetector
from skhyper.metrics import outlier_roc_auc

X, y = load_digits(return_X_y=True)
X = X / 16.0  # pixels in [0, 1]
rng = np.random.default_rng(0)
normal_digit = 8
normal = rng.permutation(X[y == normal_digit])
others = X[y != normal_digit]
X_train, X_normal_test = normal[:120], normal[120:]
X_anomalies = others[rng.choice(len(others), size=120, replace=False)]
X_test = np.vstack([X_normal_test, X_anomalies])
y_test = np.r_[
    np.zeros(len(X_normal_test)), np.ones(len(X_anomalies))
]  # 1 = outlier
print(
    f"train: {len(X_train)} normal rows; test: {len(X_normal_test)} normal, "
    f"{len(X_anomalies)} anomalies"
)

# %%
# Three detectors, one network
# ----------------------------
# A small latent (``latent_dim=4``) and a short schedule keep this fast; the
# defaults (``latent_dim=16``, ``epochs="auto"``) train longer.
settings = dict(latent_dim=4, epochs=60, batch_size=32, random_state=0)
detectors = {
    "Comp.VAE (compression='full')": CompVAEDetector(**settings),
    "vMF (VMFDetector)": VMFDetector(**settings),
    "plain VAE (compression='none')": CompVAEDetector(
        compression="none", **settings
    ),
}
latents = {}
for name, det in detectors.items():
    det.fit(X_train)
    auroc = outlier_roc_auc(y_test, det.score_samples(X_test))
    latents[name] = (
        det.transform_latent(X_train),
        det.transform_latent(X_test),
        auroc,
    )
    print(f"{name:32s} test AUROC {auroc:.3f}")

# %%
# Radius and first angle
# ----------------------
# The top row places each latent mean by its radius and the cosine of its
# first angle (1 at the north pole). The bottom row projects the latent means
# onto the first two principal axes of the training means.
fig, axes = plt.subplots(2, 3, figsize=(12, 7.5), constrained_layout=True)
for col, (name, (mu_train, mu_test, auroc)) in enumerate(latents.items()):
    is_out = y_test == 1
    r_train, r_test = (
        np.linalg.norm(mu_train, axis=1),
        np.linalg.norm(mu_test, axis=1),
    )
    ax = axes[0, col]
    ax.scatter(
        r_train,
        mu_train[:, 0] / r_train,
        s=10,
        c="0.75",
        label="training (normal)",
    )
    ax.scatter(
        r_test[~is_out],
        mu_test[~is_out, 0] / r_test[~is_out],
        s=14,
        c="tab:blue",
        label="test normal",
    )
    ax.scatter(
        r_test[is_out],
        mu_test[is_out, 0] / r_test[is_out],
        s=14,
        c="tab:red",
        marker="x",
        label="test anomaly",
    )
    ax.set_title(f"{name}\nAUROC {auroc:.3f}", fontsize=10)
    ax.set_xlabel("radius ||mu||")
    ax.set_ylim(-1.05, 1.05)
    ax.set_ylabel("cos(phi_1) = mu_1 / ||mu||")

    pca = PCA(n_components=2).fit(mu_train)
    p_train, p_test = pca.transform(mu_train), pca.transform(mu_test)
    ax = axes[1, col]
    ax.scatter(p_train[:, 0], p_train[:, 1], s=10, c="0.75")
    ax.scatter(p_test[~is_out, 0], p_test[~is_out, 1], s=14, c="tab:blue")
    ax.scatter(
        p_test[is_out, 0], p_test[is_out, 1], s=14, c="tab:red", marker="x"
    )
    ax.set_xlabel("PC 1 of the training means")
    ax.set_ylabel("PC 2")
axes[0, 0].legend(loc="lower left", fontsize=8)
fig.suptitle(
    f"Latent means; normal digit {normal_digit}, anomalies: the other digits"
)
plt.show()

# %%
# With compression the training means (grey) gather near
# ``cos(phi_1) = 1``, in one cap of the sphere. An anomaly is caught when the
# encoder maps it away from the training means, to another angle or another
# radius; one mapped among them is missed. Without compression the training
# means spread over a wide range of angles, and anomalies fall among them
# more easily. The kNN score measures distances between latent means; the
# bottom row shows them in the plane of the training means' two main axes.
