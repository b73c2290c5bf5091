"""
Where SparKer's kernels sit
===========================

:class:`~skhyper.SparKerDetector` fits a few Gaussian kernels with signed
amplitudes so that their sum ``f(x)`` approximates the log density ratio
between a data sample ``X`` and a nominal reference ``X_ref``. Kernels with
a positive amplitude mark places where the data are denser than the
reference predicts; ``score_samples`` is ``-f(x)``, so rows there score low.

The reference here is a standard Gaussian in two dimensions; the data are
drawn from the same Gaussian, except for 4% of rows planted in a small bump.
"""

# %%
# A reference and a data sample with a planted bump
# -------------------------------------------------
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Ellipse

from skhyper import SparKerDetector

rng = np.random.default_rng(0)
bump_center = np.array([1.5, -1.0])
X_ref = rng.normal(size=(4000, 2))
X = np.vstack(
    [
        rng.normal(size=(960, 2)),
        rng.normal(bump_center, 0.15, size=(40, 2)),
    ]
)
is_bump = np.r_[np.zeros(960, bool), np.ones(40, bool)]

det = SparKerDetector(n_permutations=19, random_state=0).fit(X, X_ref=X_ref)
print(f"t = {det.test_statistic_:.1f}, p-value = {det.pvalue_:.3f}")
print(f"held widths {det.widths_}, kernels fitted at width {det.width_:.3f}")
print("amplitudes", np.round(det.amplitudes_, 2))

# %%
# Kernel widths in data units
# ---------------------------
# ``centers_`` are in the units of ``X``, but ``width_`` is in the space the
# kernels were fitted in: with ``preprocessing="standard"`` and permutation
# calibration, every feature is standardised with the mean and standard
# deviation of the pooled sample ``X`` and ``X_ref``. One kernel width is
# therefore ``width_ * std`` of the pooled sample along each feature, and a
# kernel's one-width contour is an ellipse with those half-axes.
pooled_std = np.vstack([X, X_ref]).std(axis=0)
half_axes = det.width_ * pooled_std
print("one kernel width in data units:", np.round(half_axes, 3))

# %%
# The kernels over the data, and the learned log ratio
# ----------------------------------------------------
# Left: the data rows, the planted bump, and every kernel centre, coloured
# by the sign of its amplitude (marker size grows with ``|amplitude|``), with
# its one-width ellipse. Right: ``f(x) = -score_samples(x)`` over a grid; the
# dashed line is the ``contamination="auto"`` threshold ``f = log 2``, where
# the fitted data density is twice the reference density.
fig, (ax0, ax1) = plt.subplots(
    1, 2, figsize=(12, 5.4), constrained_layout=True
)
ax0.scatter(*X[~is_bump].T, s=4, c="0.7", label="data rows")
ax0.scatter(
    *X[is_bump].T, s=8, c="tab:green", zorder=4, label="planted bump rows"
)
colours = np.where(det.amplitudes_ > 0, "tab:red", "tab:blue")
sizes = 15 + 25 * np.abs(det.amplitudes_)
for centre, colour in zip(det.centers_, colours):
    ax0.add_patch(
        Ellipse(
            centre,
            2 * half_axes[0],
            2 * half_axes[1],
            fill=False,
            ec=colour,
            lw=1.2,
        )
    )
ax0.scatter(
    *det.centers_.T, s=sizes, c=colours, edgecolors="k", alpha=0.8, zorder=3
)
ax0.scatter([], [], c="tab:red", edgecolors="k", label="kernel, amplitude > 0")
ax0.scatter(
    [], [], c="tab:blue", edgecolors="k", label="kernel, amplitude < 0"
)
ax0.set_aspect("equal")
ax0.set_xlim(-4, 4)
ax0.set_ylim(-4, 4)
ax0.legend(loc="upper left", fontsize=8)
ax0.set_title(
    f"data and kernels: t = {det.test_statistic_:.0f}, "
    f"p-value {det.pvalue_:.2f}\n"
    f"(the smallest p-value {det.n_permutations} toys can give is "
    f"{1 / (1 + det.n_permutations):.2f})",
    fontsize=10,
)

grid = np.linspace(-4, 4, 161)
gx, gy = np.meshgrid(grid, grid)
f = -det.score_samples(np.c_[gx.ravel(), gy.ravel()]).reshape(gx.shape)
lim = np.abs(f).max()
mesh = ax1.pcolormesh(
    gx, gy, f, cmap="RdBu_r", vmin=-lim, vmax=lim, shading="auto"
)
ax1.contour(
    gx, gy, f, levels=[np.log(2)], colors="k", linestyles="--", linewidths=1
)
ax1.scatter(*det.centers_.T, s=sizes, c=colours, edgecolors="k")
ax1.plot(*bump_center, "+", c="tab:green", ms=14, mew=2, label="bump centre")
ax1.set_aspect("equal")
ax1.set_xlim(-4, 4)
ax1.set_ylim(-4, 4)
ax1.legend(loc="upper left", fontsize=8)
ax1.set_title("learned log ratio f(x) = -score_samples(x)")
fig.colorbar(mesh, ax=ax1, label="f(x)")
plt.show()

# %%
# Rows flagged by ``predict`` are those where ``f`` exceeds ``log 2``:
flagged = det.predict(X) == -1
print(
    f"flagged {flagged.sum()} data rows; {flagged[is_bump].sum()} of the "
    f"{is_bump.sum()} bump rows, {flagged[~is_bump].sum()} of the others"
)
