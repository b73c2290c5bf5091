"""
A novel class in a VAE's latent space
=====================================

A reference of handwritten digits holds nine classes; a new sample holds the
same nine and a few images of the tenth, which the reference never showed.
Is the new sample different, and where?

:class:`~skhyper.LatentEncoder` makes a :class:`~skhyper.CompVAEDetector`'s
latent space a transformer step, so a :class:`~skhyper.SparKerDetector` can
test the two samples there with
:func:`~skhyper.sparker.make_reference_pipeline`. The encoder is fitted on
images of the nine known classes that are in neither sample and then frozen
(``sklearn.frozen.FrozenEstimator``): it treats the data and the reference
alike, so the permutation p-value keeps its meaning.
"""

# %%
# Three disjoint sets of known digits, and the novel class
# --------------------------------------------------------
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.frozen import FrozenEstimator

from skhyper import CompVAEDetector, LatentEncoder, SparKerDetector
from skhyper.plotting import plot_kernels
from skhyper.sparker import make_reference_pipeline

NOVEL = 0
digits = load_digits()
X_all, y_all = digits.data / 16.0, digits.target
rng = np.random.default_rng(0)
known = rng.permutation(np.flatnonzero(y_all != NOVEL))
novel = rng.permutation(np.flatnonzero(y_all == NOVEL))
X_train = X_all[known[:600]]  # fits the encoder only
X_ref = X_all[known[600:1200]]
X = np.vstack([X_all[known[1200:1500]], X_all[novel[:30]]])
is_novel = np.r_[np.zeros(300, bool), np.ones(30, bool)]
print(f"reference {X_ref.shape}, data {X.shape} with {is_novel.sum()} images of a {NOVEL}")

# %%
# The encoder, fitted on the known classes and frozen
# ---------------------------------------------------
encoder = LatentEncoder(CompVAEDetector(random_state=0)).fit(X_train)
pipe = make_reference_pipeline(
    FrozenEstimator(encoder), SparKerDetector(n_permutations=49, random_state=0)
)
pipe.fit(X, X_ref=X_ref)
sparker = pipe[-1]
print(f"p-value {sparker.pvalue_:.3f}, width {sparker.width_:.2f}")
print("amplitudes", np.round(sparker.amplitudes_, 2))

# %%
# Which kernel holds the novel class
# ----------------------------------
# Each kernel's term over the rows of the data, in the latent space: the
# positive kernel with the largest excess of the data over the reference is
# where the new sample departs from it.
Z, Z_ref = encoder.transform(X), encoder.transform(X_ref)
terms, terms_ref = sparker.kernel_terms(Z), sparker.kernel_terms(Z_ref)
excess = terms.sum(0) - len(Z) / len(Z_ref) * terms_ref.sum(0)
top = int(np.argmax(np.where(sparker.amplitudes_ > 0, excess, -np.inf)))
share = terms[is_novel, top].sum() / terms[:, top].sum()
print(f"kernel {top}: {share:.0%} of its weight over the data is on the novel images")

# %%
# The kernels over the latent rows
# --------------------------------
# :func:`~skhyper.plotting.plot_kernels` draws the fitted kernels over the
# data's latent rows (projected on their first two principal axes); the novel
# images are marked on top. Below, the data images the top kernel weighs
# most: the class the reference never held.
ax = plot_kernels(sparker, Z)
# the same projection as plot_kernels: the principal axes of the scaled rows
scaled = sparker.transform_.transform(Z)
mean = scaled.mean(axis=0)
axes_2d = np.linalg.svd(scaled - mean, full_matrices=False)[2][:2].T
P = (scaled[is_novel] - mean) @ axes_2d
ax.scatter(*P.T, s=14, marker="x", c="tab:green", label=f"novel class ({NOVEL})")
ax.legend(loc="lower right")

order = np.argsort(terms[:, top])[::-1][:12]
fig, axes = plt.subplots(2, 6, figsize=(7.2, 2.8), constrained_layout=True)
for a, i in zip(axes.ravel(), order):
    a.imshow(X[i].reshape(8, 8), cmap="gray_r")
    a.set_title("novel" if is_novel[i] else "known", fontsize=8)
    a.set_axis_off()
fig.suptitle(f"the 12 data images kernel {top} weighs most")
plt.show()

# %%
# One draw is one draw: how often such a test rejects, in pixels and in the
# latent space, over many draws and every Fashion-MNIST class, is in the
# open-world novelty table of the benchmarks (``benchmarks/bench_novelty.py``).
