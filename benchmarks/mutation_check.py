"""Mutation check, on demand: do the tests notice when a line of the method breaks?

Each mutation below names a file of the package, an exact piece of its text,
a replacement (a one-line change: a flipped comparison, a dropped term, a
changed constant), what the change breaks, and the test files meant to
notice. The script copies the working tree (without ``.git`` and caches)
into a temporary folder once; for each mutation it writes the mutated file
there, runs the given tests in the copy with ``pytest -x -q`` on one thread
under a time limit, and puts the file back. A mutant is *killed* when the
tests fail (or run past the time limit), *survived* when they pass, and *not
applicable* when its original text is not found exactly once (the code moved
on: update the entry). The repository itself is never written to.

Before the mutants, the test files are run once on the unmutated copy; when
one of them fails or runs past the time limit there, the script stops at
once with exit status 2, naming the file and the mutants it would leave
unmeasured, and prints no kill rate. A kill rate is printed only when every
selected mutant ran; a mutant not run (its text not found) is listed as not
counted and the exit status is 1, as it is when a mutant survives.

    python benchmarks/mutation_check.py                  # every mutant
    python benchmarks/mutation_check.py --list           # the mutants, not run
    python benchmarks/mutation_check.py --only ramp-no-plus-one --only kl-gain-doubled
    python benchmarks/mutation_check.py --timeout 300 --skip-baseline

A full run takes about 15 minutes on 2 cores (the table names each mutant's
first failing test).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# what the copy leaves out: history, caches, build outputs, generated results
IGNORED = (
    ".git",
    "__pycache__",
    ".pytest_cache",
    ".hypothesis",
    ".ruff_cache",
    "*.egg-info",
    "build",
    "dist",
    "_build",
    "results",
)


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str  # relative to the repository root
    original: str  # exact text, found exactly once in the file
    replacement: str
    description: str
    tests: tuple[str, ...]


VAE = "skhyper/_vae"
SPK = "skhyper/_sparker"
# what pins the estimator and the shared base
COMPVAE_TESTS = ("tests/test_compvae.py", "tests/test_base.py")

MUTATIONS: tuple[Mutation, ...] = (
    # -- threads ---------------------------------------------------------------------
    Mutation(
        "threads-small-work-ignored",
        "skhyper/_utils/runtime.py",
        "if limit <= 1 or work < SMALL_WORK:",
        "if limit <= 1:",
        "small scoring calls take every free CPU",
        ("tests/test_threads.py",),
    ),
    Mutation(
        "threads-busy-cpus-ignored",
        "skhyper/_utils/runtime.py",
        "return max(1, min(limit, allowed_cpus() - busy_cpus()))",
        "return max(1, min(limit, allowed_cpus()))",
        "a call beside a busy process still takes every allowed CPU",
        ("tests/test_threads.py",),
    ),
    Mutation(
        "threads-conv-training-threaded",
        "skhyper/compvae.py",
        "single=image_shape is not None",
        "single=False",
        "the conv net trains on the chosen threads (fits change with the count)",
        ("tests/test_threads.py",),
    ),
    Mutation(
        "threads-own-threads-counted-busy",
        "skhyper/_utils/runtime.py",
        "counts.append(max(0, total - _own_running()))",
        "counts.append(max(0, total - 1))",
        "this process's own running threads are taken for other processes",
        ("tests/test_threads.py",),
    ),
    # -- the mutations of the issue ------------------------------------------------
    Mutation(
        "split-trains-on-validation",
        "skhyper/compvae.py",
        "return np.sort(perm[n_val:]), np.sort(perm[:n_val])",
        "return np.sort(perm), np.sort(perm[:n_val])",
        "early stopping trains on its own validation rows",
        COMPVAE_TESTS,
    ),
    Mutation(
        "iqr-fallback-zero",
        "skhyper/compvae.py",
        "return float(med), float(q3 - q1) if q3 > q1 else 1.0",
        "return float(med), float(q3 - q1) if q3 > q1 else 0.0",
        "a part with zero IQR divides by 0 (NaN offset on duplicated rows)",
        COMPVAE_TESTS,
    ),
    Mutation(
        "kl-gain-doubled",
        f"{VAE}/training.py",
        "return kl_target * reconstruction / max(reg, 1e-12)",
        "return 2.0 * kl_target * reconstruction / max(reg, 1e-12)",
        "the calibrated regulariser weight is twice kl_target's",
        ("tests/test_training.py",),
    ),
    Mutation(
        "ramp-no-plus-one",
        f"{VAE}/training.py",
        "ramp, tail = math.sqrt(epoch) + 1.0, W_TAIL_START",
        "ramp, tail = math.sqrt(epoch), W_TAIL_START",
        "the first phase ramps as sqrt(epoch), not sqrt(epoch) + 1",
        ("tests/test_training.py",),
    ),
    Mutation(
        "early-stop-strict",
        f"{VAE}/training.py",
        "stop = stale >= n_iter_no_change",
        "stop = stale > n_iter_no_change",
        "early stopping waits one check more than n_iter_no_change",
        ("tests/test_training.py",),
    ),
    Mutation(
        "sigma-radius-doubled",
        f"{VAE}/losses.py",
        "SIGMA_RADIUS_FRACTION = 0.001",
        "SIGMA_RADIUS_FRACTION = 0.002",
        "sigma's radius target is doubled",
        ("tests/test_losses.py",),
    ),
    Mutation(
        "last-angle-mean-kept",
        f"{VAE}/losses.py",
        "w[0, -1] = 0.0  # the mean part skips mu's last angle",
        "pass  # mutant: the mean part weighs mu's last angle",
        "the mean part no longer skips mu's last angle",
        ("tests/test_losses.py",),
    ),
    Mutation(
        "biased-batch-variance",
        f"{VAE}/losses.py",
        "var = s.var(dim=0, unbiased=True)",
        "var = s.var(dim=0, unbiased=False)",
        "batch statistics use the biased variance",
        ("tests/test_losses.py",),
    ),
    Mutation(
        "negative-zero-key",
        f"{VAE}/neighbors.py",
        "X64 = np.ascontiguousarray(X, dtype=np.float64) + 0.0  # -0.0 -> 0.0",
        "X64 = np.ascontiguousarray(X, dtype=np.float64)",
        "a training row holding -0.0 is not recognised with 0.0",
        ("tests/test_neighbors.py",),
    ),
    Mutation(
        "robust-scale-times",
        "skhyper/_utils/preprocessing.py",
        "iqr = (q75 - q25) / 1.3489795",
        "iqr = (q75 - q25) * 1.3489795",
        "the robust scale multiplies the IQR by 1.349 instead of dividing",
        ("tests/test_preprocessing.py",),
    ),
    Mutation(
        "excess-unclamped",
        f"{SPK}/kernels.py",
        "excess = (net[:, neighbours] * k).sum(-1).clamp_min(0.0)  # (T, C)",
        "excess = (net[:, neighbours] * k).sum(-1)  # (T, C)",
        "deficits seed kernels (excess not clamped at 0)",
        ("tests/test_sparker.py",),
    ),
    Mutation(
        "centre-lr-undamped",
        f"{SPK}/twosample.py",
        "center_lr=opts.learning_rate * min(1.0, math.sqrt(8.0 / Z.shape[1])),",
        "center_lr=opts.learning_rate,",
        "the centres' rate is not damped above 8 dimensions",
        ("tests/test_sparker.py",),
    ),
    Mutation(
        "row-pvalue-left",
        "skhyper/sparker.py",
        'level = np.searchsorted(self.null_excess_levels_, excess, side="right") - 1',
        'level = np.searchsorted(self.null_excess_levels_, excess, side="left") - 1',
        "an excess on a grid level is counted at the level below",
        ("tests/test_sparker_pinning.py",),
    ),
    Mutation(
        "width-scale-mean",
        f"{SPK}/twosample.py",
        "med = float(torch.pdist(Z[idx].double()).median()) if k > 1 else 0.0",
        "med = float(torch.pdist(Z[idx].double()).mean()) if k > 1 else 0.0",
        "the width scale is the mean pairwise distance, not the median",
        ("tests/test_sparker.py", "tests/test_sparker_pinning.py"),
    ),
    Mutation(
        "threshold-inclusive",
        "skhyper/_utils/base.py",
        "is_inlier[decision < 0] = -1",
        "is_inlier[decision <= 0] = -1",
        "a row exactly at the threshold is an outlier",
        COMPVAE_TESTS,
    ),
    # -- more of the CompVAE engine ---------------------------------------------------
    Mutation(
        "ramp-dropped-from-loss",
        f"{VAE}/training.py",
        'loss = rec + beta * ramp * reg["total"]',
        'loss = rec + beta * reg["total"]',
        "the schedule's ramp never reaches the loss",
        ("tests/test_training.py",),
    ),
    Mutation(
        "calibrated-after-second-epoch",
        f"{VAE}/training.py",
        "if epoch == 0 and calibrated:",
        "if epoch == 1 and calibrated:",
        "beta is calibrated on the second epoch, the first keeps the first batch's",
        ("tests/test_training.py",),
    ),
    Mutation(
        "tol-ignored",
        f"{VAE}/training.py",
        "if val < best * (1.0 - tol):",
        "if val < best:",
        "any fall of the held-out loss counts as an improvement",
        ("tests/test_training.py",),
    ),
    Mutation(
        "tail-weight-flat",
        f"{VAE}/training.py",
        "W_TAIL_START, W_TAIL_END = 1.0, 10.0",
        "W_TAIL_START, W_TAIL_END = 1.0, 1.0",
        "the tail angles' pull never rises in the second phase",
        ("tests/test_training.py", "tests/test_losses.py"),
    ),
    Mutation(
        "first-weight-late-strict",
        f"{VAE}/training.py",
        "first = W_FIRST_LATE if epoch >= late else W_FIRST",
        "first = W_FIRST_LATE if epoch > late else W_FIRST",
        "the first angle's late weight starts one epoch late",
        ("tests/test_training.py",),
    ),
    Mutation(
        "angular-centre-alpha",
        f"{VAE}/losses.py",
        "ALPHA = 0.05",
        "ALPHA = 0.5",
        "the angular mean terms weigh ten times more",
        ("tests/test_losses.py",),
    ),
    Mutation(
        "angle-gains-over-i",
        f"{VAE}/losses.py",
        "return 50.0 * math.sqrt(n) / torch.sqrt(i)",
        "return 50.0 * math.sqrt(n) / i",
        "angle gains fall as 1/i instead of 1/sqrt(i)",
        ("tests/test_losses.py",),
    ),
    Mutation(
        "sigma-spread-target",
        f"{VAE}/losses.py",
        "SIGMA_RADIUS_STD = math.sqrt(0.5)",
        "SIGMA_RADIUS_STD = math.sqrt(2.0)",
        "sigma's radius spread target is doubled",
        ("tests/test_losses.py",),
    ),
    Mutation(
        "reconstruction-mean-over-features",
        f"{VAE}/losses.py",
        "return ((x_hat - x) ** 2).flatten(1).sum(dim=1)",
        "return ((x_hat - x) ** 2).flatten(1).mean(dim=1)",
        "the reconstruction error averages over features instead of summing",
        ("tests/test_losses.py", "tests/test_training.py", "tests/test_compvae.py"),
    ),
    Mutation(
        "cosine-std-target",
        f"{VAE}/coordinates.py",
        "return 1.0 / torch.sqrt(n - i + 1.0)",
        "return 1.0 / torch.sqrt(n - i + 2.0)",
        "the isotropic std of the cosines is off by one dimension",
        ("tests/test_coordinates.py",),
    ),
    Mutation(
        "isotropic-radius",
        f"{VAE}/coordinates.py",
        "return math.sqrt(n - 0.5)",
        "return math.sqrt(n)",
        "the expected radius is sqrt(n) instead of sqrt(n - 1/2)",
        ("tests/test_coordinates.py",),
    ),
    Mutation(
        "cosine-denominator-shifted",
        f"{VAE}/coordinates.py",
        "denom = torch.sqrt(suffix[..., :-1] + eps)",
        "denom = torch.sqrt(suffix[..., 1:] + eps)",
        "each cosine is taken over the tail after its own coordinate",
        ("tests/test_coordinates.py",),
    ),
    Mutation(
        "knn-drops-nearest",
        f"{VAE}/neighbors.py",
        "drop = np.where(is_own.any(axis=1), is_own.argmax(axis=1), k)",
        "drop = np.where(is_own.any(axis=1), is_own.argmax(axis=1), 0)",
        "a new row's nearest neighbour is dropped instead of the (k+1)-th",
        ("tests/test_neighbors.py",),
    ),
    Mutation(
        "auto-backend-boundary",
        f"{VAE}/neighbors.py",
        'return "exact" if n_bank <= AUTO_EXACT_MAX_BANK else "pynndescent"',
        'return "exact" if n_bank < AUTO_EXACT_MAX_BANK else "pynndescent"',
        "a bank of exactly 100,000 rows goes to the approximate search",
        ("tests/test_neighbors.py",),
    ),
    Mutation(
        "combined-parts-subtracted",
        "skhyper/compvae.py",
        "return (knn - k_loc) / k_scale + (rec - r_loc) / r_scale",
        "return (knn - k_loc) / k_scale - (rec - r_loc) / r_scale",
        "the combined score subtracts the reconstruction part",
        ("tests/test_compvae.py",),
    ),
    Mutation(
        "tukey-fence-3",
        "skhyper/compvae.py",
        "return -(q3 + 1.5 * (q3 - q1))",
        "return -(q3 + 3.0 * (q3 - q1))",
        "contamination='auto' uses the far fence (3 IQR)",
        ("tests/test_compvae.py",),
    ),
    Mutation(
        "one-validation-row",
        "skhyper/compvae.py",
        "if not self.early_stopping or n_val < 2 or n_samples - n_val < 2:",
        "if not self.early_stopping or n_val < 1 or n_samples - n_val < 2:",
        "early stopping runs on a single held-out row",
        COMPVAE_TESTS,
    ),
    # -- more of SparKer -----------------------------------------------------------
    Mutation(
        "positive-amplitudes-ignored",
        f"{SPK}/kernels.py",
        "model.amplitudes.clamp_(0.0 if positive else -clip, clip)",
        "model.amplitudes.clamp_(-clip, clip)",
        "positive_amplitudes=True still allows negative amplitudes",
        ("tests/test_sparker.py", "tests/test_sparker_api.py"),
    ),
    Mutation(
        "reference-not-scaled",
        f"{SPK}/kernels.py",
        "return w_data.T.contiguous(), (w_ref * ratio).T.contiguous()",
        "return w_data.T.contiguous(), w_ref.T.contiguous()",
        "the reference term is not scaled by N_D / N_R",
        ("tests/test_sparker.py",),
    ),
    Mutation(
        "last-iterate-not-evaluated",
        f"{SPK}/kernels.py",
        "    keep_best(n_scales - 1, loss)\n    return KernelFit",
        "    return KernelFit",
        "the final update is never a candidate for the best fit",
        ("tests/test_sparker.py", "tests/test_sparker_pinning.py"),
    ),
    Mutation(
        "widths-narrow-first",
        f"{SPK}/kernels.py",
        "ends = np.unique(ends)[::-1]",
        "ends = np.unique(ends)",
        "held widths run narrow to broad",
        ("tests/test_sparker.py",),
    ),
    Mutation(
        "rank-excludes-itself",
        f"{SPK}/twosample.py",
        'out[s] = (n - np.searchsorted(np.sort(row), row, side="left")) / n',
        'out[s] = (n - np.searchsorted(np.sort(row), row, side="right")) / n',
        "a fit's rank p-value leaves out the fit itself (and its ties)",
        ("tests/test_sparker.py",),
    ),
    Mutation(
        "min-p-ties-excluded",
        f"{SPK}/twosample.py",
        "as_extreme = (min_p < min_p[0]) | ((min_p == min_p[0]) & (max_z >= max_z[0]))",
        "as_extreme = (min_p < min_p[0]) | ((min_p == min_p[0]) & (max_z > max_z[0]))",
        "the min-p p-value no longer counts the observed fit",
        ("tests/test_sparker.py",),
    ),
    Mutation(
        "reference-ratio-1",
        f"{SPK}/twosample.py",
        "REFERENCE_MIN_RATIO = 5",
        "REFERENCE_MIN_RATIO = 1",
        "calibration='reference' accepts a reference as small as the data",
        ("tests/test_sparker.py", "tests/test_sparker_api.py"),
    ),
    Mutation(
        "row-pvalue-no-plus-one",
        "skhyper/sparker.py",
        "return (1.0 + counts) / (1.0 + total)",
        "return counts / total",
        "row p-values drop the +1 of a permutation p-value",
        ("tests/test_sparker_pinning.py",),
    ),
    Mutation(
        "auto-offset-log3",
        "skhyper/sparker.py",
        "return -math.log(2.0)",
        "return -math.log(3.0)",
        "contamination='auto' flags 3x over-densities, not 2x",
        ("tests/test_sparker.py",),
    ),
    Mutation(
        "adam-no-second-correction",
        f"{SPK}/kernels.py",
        "denom = (v.sqrt() / correction2).add_(self.eps)",
        "denom = v.sqrt().add_(self.eps)",
        "the fit's Adam drops the bias correction of its second moment",
        ("tests/test_sparker.py",),
    ),
    Mutation(
        "toy-batches-fixed",
        f"{SPK}/twosample.py",
        "max(TOY_BATCH, BATCH_TRIPLES // triples)",
        "TOY_BATCH",
        "a small test's toys are split into batches of 25 again",
        ("tests/test_sparker.py",),
    ),
    Mutation(
        "units-iqr-only",
        "skhyper/sparker.py",
        "ratio = np.where(comparable, np.minimum(iqr_ratio, std_ratio), 1.0)",
        "ratio = np.where(comparable, iqr_ratio, 1.0)",
        "the units check trusts a mostly-constant feature's IQR alone",
        ("tests/test_sparker_api.py",),
    ),
    # -- CompVAE's levers ---------------------------------------------------------------
    Mutation(
        "noise-never-added",
        f"{VAE}/training.py",
        "x_in = xb + input_noise * noise",
        "x_in = xb",
        "input_noise corrupts nothing: no denoising objective",
        ("tests/test_training.py",),
    ),
    Mutation(
        "noise-in-the-target",
        f"{VAE}/training.py",
        "rec = reconstruction_error(x_hat, xb)",
        "rec = reconstruction_error(x_hat, x_in)",
        "the network reconstructs the corrupted row, not the clean one",
        ("tests/test_training.py",),
    ),
    Mutation(
        "ensemble-first-member-only",
        "skhyper/compvae.py",
        "return np.mean(standardised, axis=0)",
        "return standardised[0]",
        "an ensemble scores with its first member alone",
        ("tests/test_compvae.py",),
    ),
    Mutation(
        "ensemble-shared-seeds",
        "skhyper/compvae.py",
        "tuple(spawn_seeds(context.seeds, 3)) for _ in range",
        "(init_seed, sample_seed, batch_seed) for _ in range",
        "every ensemble member trains from the same seeds (identical members)",
        ("tests/test_compvae.py",),
    ),
    Mutation(
        "image-shape-ignored",
        f"{VAE}/networks.py",
        "    if image_shape is None:",
        "    if True:",
        "image_shape no longer selects the conv net",
        ("tests/test_compvae.py",),
    ),
    # -- shared utilities -----------------------------------------------------------
    Mutation(
        "offset-ignores-weights",
        "skhyper/_utils/base.py",
        "self.training_scores_, 100.0 * contamination, self._training_weights",
        "self.training_scores_, 100.0 * contamination, None",
        "a float contamination ignores sample_weight",
        (*COMPVAE_TESTS, "tests/test_sparker_api.py"),
    ),
    Mutation(
        "threshold-keeps-contamination",
        "skhyper/_utils/base.py",
        "        self.contamination = contamination\n        try:",
        "        try:",
        "set_threshold leaves the contamination parameter behind",
        ("tests/test_thresholds.py",),
    ),
    Mutation(
        "threshold-offset-ignored",
        "skhyper/_utils/base.py",
        "            self.offset_ = float(offset)\n",
        "",
        "set_threshold(offset=...) does not move offset_",
        ("tests/test_thresholds.py",),
    ),
    Mutation(
        "probability-counts-ties",
        "skhyper/_utils/base.py",
        'np.searchsorted(train[order], scores, side="right")',
        'np.searchsorted(train[order], scores, side="left")',
        "a row's tie with its own training score counts as a row above it",
        ("tests/test_thresholds.py",),
    ),
    Mutation(
        "probability-over-n",
        "skhyper/_utils/base.py",
        "return above[pos] / (w.sum() + 1.0)",
        "return above[pos] / w.sum()",
        "the outlier probability divides by n, not n + 1",
        ("tests/test_thresholds.py",),
    ),
    # -- explanations -----------------------------------------------------------------
    Mutation(
        "contributions-rec-equal-split",
        "skhyper/compvae.py",
        "part[sl] += (error * error).double().cpu().numpy()",
        "part[sl] += (error * error).mean(1, keepdim=True).expand_as(error).double().cpu().numpy()",
        "the reconstruction error is split equally over the features",
        ("tests/test_explain.py",),
    ),
    Mutation(
        "contributions-knn-unscaled",
        "skhyper/compvae.py",
        'part += knn / scales["knn"][1] if name == "combined" else knn',
        "part += knn",
        "the combined score's kNN part is not divided by its IQR",
        ("tests/test_explain.py",),
    ),
    Mutation(
        "contributions-members-unscaled",
        "skhyper/compvae.py",
        "total += part if len(self.models_) == 1 else part / member[name][1]",
        "total += part",
        "an ensemble's members are averaged without their standardisation",
        ("tests/test_explain.py",),
    ),
    Mutation(
        "gradients-without-delta",
        "skhyper/_utils/attribution.py",
        "terms.append(grad.detach().double() * delta.double())",
        "terms.append(grad.detach().double())",
        "integrated gradients drop the (x - baseline) factor",
        ("tests/test_explain.py",),
    ),
    Mutation(
        "gradients-never-refined",
        "skhyper/_utils/attribution.py",
        "missed = (change - terms.sum(dim=1)).abs() > tol[row - first] * h",
        "missed = torch.zeros_like(change, dtype=torch.bool)",
        "the path integral is never refined where the gradient jumps",
        ("tests/test_explain.py",),
    ),
    # -- export -----------------------------------------------------------------------
    Mutation(
        "onnx-k-plus-one",
        "skhyper/export.py",
        'g.op2("TopK", d2, g.const([k], np.int64)',
        'g.op2("TopK", d2, g.const([k + 1], np.int64)',
        "the exported kNN score averages k + 1 neighbours",
        ("tests/test_export.py",),
    ),
    Mutation(
        "onnx-rec-unstandardised",
        "skhyper/export.py",
        '        _standardise(g, rec, *scales["reconstruction"]),',
        "        rec,",
        "the exported combined score adds the raw reconstruction error",
        ("tests/test_export.py",),
    ),
    Mutation(
        "onnx-kernel-width",
        "skhyper/export.py",
        "g.const(2.0 * width * width, np.float64)",
        "g.const(width * width, np.float64)",
        "the exported SparKer kernels are sqrt(2) too narrow",
        ("tests/test_export.py",),
    ),
    # -- persistence ------------------------------------------------------------------
    Mutation(
        "state-not-plain",
        "skhyper/_utils/base.py",
        "state = to_plain(super().__getstate__())",
        "state = super().__getstate__()",
        "pickles and skops files hold torch objects again",
        ("tests/test_persistence.py",),
    ),
    Mutation(
        "no-device-fallback-warning",
        "skhyper/_utils/base.py",
        "if target.type != device.type:",
        "if False:",
        "a GPU model loads on the CPU silently",
        ("tests/test_persistence.py",),
    ),
    Mutation(
        "load-allows-pickle",
        "skhyper/persistence.py",
        "    if dtype.kind not in _PLAIN_KINDS or dtype.itemsize == 0:",
        "    if dtype.itemsize == 0:",
        "load accepts an object array a state declares (and reads pointers from the file)",
        ("tests/test_persistence.py",),
    ),
    Mutation(
        "load-any-class",
        "skhyper/persistence.py",
        "cls = _CLASSES.get(name) if isinstance(name, str) else None",
        "cls = _CLASSES.get(name, CompVAEDetector)",
        "load builds a detector whatever class the file names",
        ("tests/test_persistence.py",),
    ),
    Mutation(
        "load-any-format",
        "skhyper/persistence.py",
        "    if version not in _READABLE_FORMATS:",
        "    if False:",
        "load reads a file of another format version",
        ("tests/test_persistence.py",),
    ),
    Mutation(
        "load-no-format-5",
        "skhyper/persistence.py",
        "_READABLE_FORMATS = (5, FORMAT_VERSION)",
        "_READABLE_FORMATS = (FORMAT_VERSION,)",
        "files of the previous format (untyped array references) no longer load",
        ("tests/test_persistence.py",),
    ),
    Mutation(
        "load-datetime-arrays",
        "skhyper/persistence.py",
        '_PLAIN_KINDS = "biufcSU"',
        '_PLAIN_KINDS = "biufcSUMmV"',
        "load accepts datetime and structured arrays, which no state holds",
        ("tests/test_persistence.py",),
    ),
    Mutation(
        "load-declared-size-unchecked",
        "skhyper/persistence.py",
        "        if not 0 < extra <= _MAX_NPY_HEADER:",
        "        if False:",
        "a member's declared size is not checked against the state's shape before reading",
        ("tests/test_persistence.py",),
    ),
    Mutation(
        "load-no-byte-limit",
        "skhyper/persistence.py",
        "        if self.max_bytes is not None and self.total > self.max_bytes:",
        "        if False:",
        "max_bytes bounds nothing: a valid 128 MiB zero bomb is read",
        ("tests/test_persistence.py",),
    ),
    Mutation(
        "load-limit-inclusive",
        "skhyper/persistence.py",
        "self.total > self.max_bytes:",
        "self.total >= self.max_bytes:",
        "arrays of exactly max_bytes are refused",
        ("tests/test_persistence.py",),
    ),
    Mutation(
        "load-header-unchecked",
        "skhyper/persistence.py",
        "            if (found_dtype, found_shape, fortran) != (dtype, shape, False):",
        "            if False:",
        "an npy header of another dtype or shape than the state's is read as the state's",
        ("tests/test_persistence.py",),
    ),
    Mutation(
        "load-fortran-order",
        "skhyper/persistence.py",
        "!= (dtype, shape, False):",
        "!= (dtype, shape, fortran):",
        "a Fortran-order member is read as C order (transposed values)",
        ("tests/test_persistence.py",),
    ),
    Mutation(
        "load-exact-size-unchecked",
        "skhyper/persistence.py",
        "            if left != nbytes:",
        "            if False:",
        "bytes after an array (never CRC-checked) or a cut array pass",
        ("tests/test_persistence.py",),
    ),
    Mutation(
        "load-long-npy-header",
        "skhyper/persistence.py",
        "        if length > _MAX_NPY_HEADER:",
        "        if False:",
        "a format-5 member's npy header of any length is read into memory",
        ("tests/test_persistence.py",),
    ),
    Mutation(
        "load-bad-crc-escapes",
        "skhyper/persistence.py",
        "    zipfile.BadZipFile,\n    zlib.error,",
        "    zlib.error,",
        "a bad CRC or broken zip raises a bare BadZipFile",
        ("tests/test_persistence.py",),
    ),
    Mutation(
        "load-state-errors-escape",
        "skhyper/persistence.py",
        "    except Exception as exc:",
        "    except ZeroDivisionError as exc:",
        "a state the detector cannot be built from raises its own error type",
        ("tests/test_persistence.py",),
    ),
    Mutation(
        "classes-empty-outside-class-mode",
        "skhyper/compvae.py",
        "        if labels is not None:\n            self.classes_ = classes",
        "        if True:\n            self.classes_ = classes",
        "classes_ is () outside class-conditional mode",
        ("tests/test_persistence.py",),
    ),
    Mutation(
        "classes-kept-after-refit",
        "skhyper/compvae.py",
        '            vars(self).pop("classes_", None)',
        "            pass",
        "a refit outside class-conditional mode keeps the classes_ of the fit before",
        ("tests/test_persistence.py",),
    ),
    Mutation(
        "classes-empty-kept-on-load",
        "skhyper/compvae.py",
        'if isinstance(classes, tuple) and not classes and not state.get("class_conditional"):',
        "if False:",
        "an older file or pickle loads with classes_ = ()",
        ("tests/test_persistence.py",),
    ),
    Mutation(
        "winsor-fraction",
        "skhyper/_utils/preprocessing.py",
        "WINSOR_FRACTION = 0.001",
        "WINSOR_FRACTION = 0.01",
        "winsorizing clips 1% of rows, not 0.1%",
        ("tests/test_preprocessing.py",),
    ),
    Mutation(
        "standard-sample-std",
        "skhyper/_utils/preprocessing.py",
        "std = X.std(axis=0, dtype=np.float64)",
        "std = X.std(axis=0, dtype=np.float64, ddof=1)",
        "the unweighted std is the sample (ddof=1) std",
        ("tests/test_preprocessing.py",),
    ),
    Mutation(
        "refpipe-reference-to-any-step",
        "skhyper/sparker.py",
        "if X_ref is None or not self._final_takes_reference():",
        "if X_ref is None:",
        "ReferencePipeline gives X_ref to a last step whose fit has none (IsolationForest)",
        ("tests/test_one_search.py",),
    ),
    Mutation(
        "refpipe-no-self-request",
        "skhyper/sparker.py",
        "return super().get_metadata_routing().add_self_request(self)",
        "return super().get_metadata_routing()",
        "with routing on, ReferencePipeline leaves X_ref to its last step's request",
        ("tests/test_one_search.py",),
    ),
    Mutation(
        "refpipe-x-ref-unrequested",
        "skhyper/sparker.py",
        '__metadata_request__fit = {"X_ref": True}',
        '__metadata_request__fit = {"X_ref": None}',
        "with routing on, ReferencePipeline does not request X_ref by default",
        ("tests/test_one_search.py",),
    ),
    Mutation(
        "plot-test-centres-unscaled",
        "skhyper/plotting.py",
        "kernels.transform.transform(np.asarray(kernels.centers, dtype=np.float64)),",
        "np.asarray(kernels.centers, dtype=np.float64),",
        "plot_kernels draws a test's centres in data units over scaled rows",
        ("tests/test_plotting.py",),
    ),
    Mutation(
        "test-result-without-transform",
        "skhyper/stats.py",
        "res.width, res.transform)",
        "res.width)",
        "sparker_test's kernels lose the scaling plot_kernels needs",
        ("tests/test_plotting.py",),
    ),
    # -- conformal p-values, BH, split calibration ---------------------------------------
    Mutation(
        "pvalue-over-n",
        "skhyper/_utils/conformal.py",
        "return (total - above) / total",
        "return (total - above) / (total - 1.0)",
        "conformal p-values divide by n instead of n + 1",
        ("tests/test_conformal.py",),
    ),
    Mutation(
        "rank-ties-below",
        "skhyper/_utils/conformal.py",
        'pos = np.searchsorted(calibration[order], np.asarray(scores, np.float64), side="right")',
        'pos = np.searchsorted(calibration[order], np.asarray(scores, np.float64), side="left")',
        "a calibration score equal to a row's counts as above it",
        ("tests/test_conformal.py", "tests/test_thresholds.py"),
    ),
    Mutation(
        "bh-first-passing",
        "skhyper/_utils/conformal.py",
        "return p <= ordered[passing[-1]]",
        "return p <= ordered[passing[0]]",
        "Benjamini-Hochberg stops at the first p-value under its bound (not step-up)",
        ("tests/test_conformal.py",),
    ),
    Mutation(
        "bh-strict-bound",
        "skhyper/_utils/conformal.py",
        "passing = np.nonzero(ordered <= fdr * np.arange(1, m + 1) / m)[0]",
        "passing = np.nonzero(ordered < fdr * np.arange(1, m + 1) / m)[0]",
        "a p-value exactly at its Benjamini-Hochberg bound is not selected",
        ("tests/test_conformal.py",),
    ),
    Mutation(
        "split-fits-on-all-rows",
        "skhyper/conformal.py",
        "cal, train = np.sort(order[:n_cal]), np.sort(order[n_cal:])",
        "cal, train = np.sort(order[:n_cal]), np.sort(order)",
        "split conformal fits the detector on its calibration rows too",
        ("tests/test_conformal.py",),
    ),
    Mutation(
        "split-unweighted-calibration",
        "skhyper/conformal.py",
        "self._calibration_weights = None if weights is None else weights[cal]",
        "self._calibration_weights = None",
        "split conformal drops the calibration rows' sample weights",
        ("tests/test_conformal.py",),
    ),
    Mutation(
        "select-outliers-unchecked-fdr",
        "skhyper/_utils/base.py",
        'check_fdr(fdr, "select_outliers")\n'
        "        return benjamini_hochberg(self.conformal_pvalues(X), fdr)",
        "return benjamini_hochberg(self.conformal_pvalues(X), fdr)",
        "a detector's select_outliers takes any fdr",
        ("tests/test_conformal.py",),
    ),
    Mutation(
        "split-sparse-any-format",
        "skhyper/conformal.py",
        "            X = X.tocsr()  # a format whose rows can be indexed",
        "            pass",
        "split conformal indexes sparse rows in formats that have no row indexing",
        ("tests/test_conformal.py",),
    ),
    # -- the exported decision and row independence ------------------------------------
    Mutation(
        "onnx-ndtri-nan-index",
        "skhyper/export.py",
        'cell = g.op("Where", g.op("IsNaN", cell), g.const(0.0, np.float64), cell)',
        'cell = g.op("Identity", cell)',
        "a NaN row indexes the normal-quantile table (the batch fails)",
        ("tests/test_export.py",),
    ),
    Mutation(
        "onnx-label-no-tie-band",
        "skhyper/export.py",
        'below = g.op("Less", decision, g.const(-tol, np.float64))',
        'below = g.op("Less", decision, g.const(0.0, np.float64))',
        "the graph's label flips rows at the threshold by round-off",
        ("tests/test_export.py",),
    ),
    Mutation(
        "onnx-label-tolerance-doubled",
        "skhyper/export.py",
        "LABEL_TOLERANCE = 1e-5",
        "LABEL_TOLERANCE = 2e-5",
        "the labels' tie band twice as wide",
        ("tests/test_export.py",),
    ),
    Mutation(
        "onnx-nan-label-kept",
        "skhyper/export.py",
        'g.op("Where", has_nan, g.const(0, np.int64), label, name="label")',
        'g.op("Identity", label, name="label")',
        "a NaN row gets a +1 label instead of 0",
        ("tests/test_export.py",),
    ),
    Mutation(
        "onnx-approximate-bank-exported",
        "skhyper/export.py",
        '_EXACT_BACKENDS = ("exact", "faiss")',
        '_EXACT_BACKENDS = ("exact", "faiss", "pynndescent", "faiss-ivf")',
        "banks searched approximately are exported as exact searches",
        ("tests/test_export.py",),
    ),
    # -- the faiss backend ------------------------------------------------------------------
    Mutation(
        "faiss-auto-swapped",
        "skhyper/_vae/neighbors.py",
        'return "faiss" if n_bank <= AUTO_FAISS_FLAT_MAX_BANK else "faiss-ivf"',
        'return "faiss-ivf" if n_bank <= AUTO_FAISS_FLAT_MAX_BANK else "faiss"',
        "auto takes the IVF index for mid-sized banks and the flat one for the largest",
        ("tests/test_faiss_backend.py",),
    ),
    Mutation(
        "faiss-threads-not-restored",
        "skhyper/_vae/neighbors.py",
        "            faiss.omp_set_num_threads(previous)",
        "            pass",
        "faiss's OpenMP thread count is left changed after a call",
        ("tests/test_faiss_backend.py",),
    ),
    Mutation(
        "faiss-distances-from-index",
        "skhyper/_vae/neighbors.py",
        'dist = torch.cdist(q[:, None, :], picked, compute_mode="donot_use_mm_for_euclid_dist")',
        'dist = torch.cdist(q[:, None, :], picked, compute_mode="use_mm_for_euclid_dist")',
        "faiss candidates measured by the matrix-product expansion (not exact search's values)",
        ("tests/test_faiss_backend.py",),
    ),
    Mutation(
        "faiss-ivf-few-probes",
        "skhyper/_vae/neighbors.py",
        "_IVF_PROBES = 64",
        "_IVF_PROBES = 32",
        "the IVF index visits half as many lists",
        ("tests/test_faiss_backend.py",),
    ),
    Mutation(
        "compare-note-always-small",
        "skhyper/compare.py",
        "    if small == len(ps):",
        "    if small >= 0:",
        "the CLI calls every SparKer p-value small (p = 0.307 was 'a small p')",
        ("tests/test_first_contact.py",),
    ),
    Mutation(
        "csv-error-unnamed-column",
        "skhyper/datasets.py",
        "feature column {header[j]!r} (index {j})",
        "feature column {header[k]!r} (index {k})",
        "a CSV's non-numeric column is named by its place among the features",
        ("tests/test_first_contact.py",),
    ),
    Mutation(
        "compare-bump-best-is-worst",
        "skhyper/compare.py",
        "best = max(means, key=lambda m: means[m])",
        "best = min(means, key=lambda m: means[m])",
        "the main job's reading names the worst method as the best",
        ("tests/test_first_contact.py",),
    ),
    Mutation(
        "planted-bump-far-out",
        "skhyper/datasets.py",
        "bump = rng.normal([1.5, 1.5, 0.0, 0.0], 0.1, size=(n_bump, 4))",
        "bump = rng.normal([3.0, 3.0, 0.0, 0.0], 0.1, size=(n_bump, 4))",
        "the planted bump sits in the tail, where one-class detectors find it too",
        ("tests/test_first_contact.py",),
    ),
    Mutation(
        "compvae-min-rows-two",
        "skhyper/compvae.py",
        "        return self.n_neighbors + 1",
        "        return 2",
        "CompVAE accepts fewer rows than n_neighbors + 1 (its error says a minimum of 2)",
        ("tests/test_first_contact.py",),
    ),
    Mutation(
        "base-min-rows-fixed",
        "skhyper/_utils/base.py",
        "ensure_min_samples=self._min_fit_samples(),",
        "ensure_min_samples=2,",
        "fit's minimum of rows ignores the detector's own",
        ("tests/test_first_contact.py",),
    ),
    # -- extreme values: tiny units, bools, far rows, rows that set the scale ----------
    Mutation(
        "tiny-units-not-rescaled",
        "skhyper/_utils/preprocessing.py",
        "far = np.isfinite(top) & ((top > _SQUARE_SAFE) | ((top > 0) & (top < 1.0 / "
        "_SQUARE_SAFE)))",
        "far = np.isfinite(top) & (top > _SQUARE_SAFE)",
        "moments of a feature in units of 1e-200 underflow: every row scales to about 0",
        ("tests/test_extreme_values.py",),
    ),
    Mutation(
        "quantile-tiny-units-not-rescaled",
        "skhyper/_utils/preprocessing.py",
        "q, x = self.quantiles[:, j] / unit[j], X[:, j] / unit[j]",
        "q, x = self.quantiles[:, j], X[:, j]",
        "the quantile scaling of subnormal values divides by subnormal gaps (infinite slopes)",
        ("tests/test_extreme_values.py",),
    ),
    Mutation(
        "synthetic-reference-moments-underflow",
        "skhyper/_sparker/twosample.py",
        "mean, std, _ = moments(X, w)",
        "mean, std = np.average(X, axis=0, weights=w), X.std(axis=0)",
        "the synthetic reference of data in tiny units is drawn with zero spread",
        ("tests/test_extreme_values.py",),
    ),
    Mutation(
        "units-check-std-underflows",
        "skhyper/sparker.py",
        "_, std, _ = moments(A, w)  # exact in tiny units too",
        "std = A.std(axis=0)",
        "the units check compares zero spreads in tiny units and passes anything",
        ("tests/test_extreme_values.py",),
    ),
    Mutation(
        "interval-takes-bools",
        "skhyper/_utils/compat.py",
        "return not isinstance(val, (bool, np.bool_)) and super().is_satisfied_by(val)",
        "return super().is_satisfied_by(val)",
        "True is taken for 1 wherever a number is meant",
        ("tests/test_extreme_values.py",),
    ),
    Mutation(
        "offset-takes-bools",
        "skhyper/_utils/base.py",
        "if isinstance(offset, (bool, np.bool_)) or not (",
        "if False or not (",
        "set_threshold(offset=True) sets the threshold at 1",
        ("tests/test_extreme_values.py",),
    ),
    Mutation(
        "layer-sizes-take-bools",
        "skhyper/compvae.py",
        "return isinstance(value, Integral) and not isinstance(value, (bool, np.bool_)) "
        "and value >= 1",
        "return isinstance(value, Integral) and value >= 1",
        "hidden_layer_sizes=(True, 8) builds a layer of width 1",
        ("tests/test_extreme_values.py",),
    ),
    Mutation(
        "held-widths-take-bools",
        "skhyper/_sparker/kernels.py",
        "ends = np.empty(0) if is_bool else values.astype(np.float64)",
        "ends = values.astype(np.float64)",
        "width_end=(True, 0.1) holds a width of 1",
        ("tests/test_extreme_values.py",),
    ),
    Mutation(
        "far-row-scores-as-kernels",
        "skhyper/sparker.py",
        "return np.where(far, self._far_excess(), terms.sum(axis=1))",
        "return terms.sum(axis=1)",
        "a 1e300 row scores 0 and ranks among ordinary rows",
        ("tests/test_extreme_values.py",),
    ),
    Mutation(
        "far-row-only-when-far-on-every-feature",
        "skhyper/sparker.py",
        "far[sl] = np.any(np.abs(Z) >= clip, axis=1)",
        "far[sl] = np.all(np.abs(Z) >= clip, axis=1)",
        "a row far out on one feature only ranks among ordinary rows",
        ("tests/test_extreme_values.py",),
    ),
    Mutation(
        "export-far-row-scores-as-kernels",
        "skhyper/export.py",
        "f = g.op(\"Where\", far, g.const(detector._far_excess(), np.float64), f)",
        "f = g.op(\"Where\", far, f, f)",
        "the ONNX graph scores a row beyond the clip 0, the detector -max|a_k|",
        ("tests/test_export.py",),
    ),
    Mutation(
        "scale-dominance-never-seen",
        "skhyper/_sparker/options.py",
        "for j in np.flatnonzero((iqr > 0) & (iqr < _BULK_IQR_MIN))",
        "for j in np.flatnonzero((iqr > 0) & (iqr < _BULK_IQR_MIN / 1000))",
        "a row of 1e6 that squeezes the others together under mean/std scaling goes unnamed",
        ("tests/test_extreme_values.py",),
    ),
)


def _ignore(directory: str, names: list[str]) -> set[str]:
    import fnmatch

    return {n for n in names if any(fnmatch.fnmatch(n, pattern) for pattern in IGNORED)}


def copy_repository(target: Path) -> Path:
    """The working tree (tracked or not, without history and caches) under ``target``."""
    repo = target / "repo"
    shutil.copytree(ROOT, repo, ignore=_ignore, symlinks=True)
    return repo


def environment(repo: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(repo),
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        # no bytecode: a mutant and the original can share a size and an mtime
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def check_imported_from(repo: Path) -> None:
    """Refuse to run when ``import skhyper`` in the copy does not load the copy."""
    out = subprocess.run(
        [sys.executable, "-c", "import skhyper; print(skhyper.__file__)"],
        cwd=repo,
        env=environment(repo),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not Path(out).resolve().is_relative_to(repo.resolve()):
        raise SystemExit(f"skhyper is imported from {out}, not from the copy {repo}")


def run_tests(repo: Path, tests: tuple[str, ...], timeout: float) -> tuple[str, float, str]:
    """``("passed" | "failed" | "timeout", seconds, last lines of output)``."""
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        cwd=repo,
        env=environment(repo),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, ended as one on a timeout
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        return "timeout", time.monotonic() - start, output[-2000:]
    except BaseException:  # e.g. Ctrl-C: the tests' process group must not outlive us
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    seconds = time.monotonic() - start
    return ("passed" if proc.returncode == 0 else "failed"), seconds, output[-2000:]


def last_line(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    return lines[-1][:100] if lines else ""


def first_failure(output: str) -> str:
    """The test that failed first (from pytest's short summary), else the last line."""
    for line in output.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            return line.split(" - ")[0].split(" ", 1)[1].removeprefix("tests/")
    return last_line(output)


def print_list(mutations: tuple[Mutation, ...]) -> None:
    for m in mutations:
        print(f"{m.name:34s} {m.path}")
        print(f"{'':34s} {m.description}")
        print(f"{'':34s} tests: {', '.join(m.tests)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="run only this mutant (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds per mutant's test run (default 300); past it, killed")
    parser.add_argument("--skip-baseline", action="store_true",
                        help="do not run the test files on the unmutated copy first")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="print the output tail of each surviving or failing run")
    args = parser.parse_args(argv)

    mutations = MUTATIONS
    names = [m.name for m in MUTATIONS]
    if len(set(names)) != len(names):
        raise SystemExit("two mutants share a name")
    if args.only:
        unknown = sorted(set(args.only) - set(names))
        if unknown:
            raise SystemExit(f"unknown mutant(s) {unknown}; see --list")
        mutations = tuple(m for m in MUTATIONS if m.name in args.only)
    if args.list:
        print_list(mutations)
        return 0

    with tempfile.TemporaryDirectory(prefix="skhyper-mutants-") as tmp:
        repo = copy_repository(Path(tmp))
        check_imported_from(repo)
        print(f"copy of {ROOT} in {repo}", flush=True)

        broken: set[str] = set()
        if not args.skip_baseline:
            files = sorted({t for m in mutations for t in m.tests})
            for test_file in files:
                status, seconds, output = run_tests(repo, (test_file,), args.timeout)
                print(f"baseline {test_file}: {status} in {seconds:.0f} s", flush=True)
                if status != "passed":
                    broken.add(test_file)
                    print("  " + last_line(output), flush=True)
        if broken:
            # a mutant is only measured against tests that pass without it
            print(f"\nBASELINE FAILED: {', '.join(sorted(broken))} (failed or timed out on "
                  "the unmutated copy); no mutant run, no kill rate", file=sys.stderr)
            for m in mutations:
                if broken & set(m.tests):
                    print(f"not counted: {m.name} (baseline fails)", file=sys.stderr)
            return 2

        rows = []
        for i, m in enumerate(mutations, 1):
            target = repo / m.path
            source = target.read_text()
            count = source.count(m.original)
            if count != 1:
                status, seconds, note = "not applicable", 0.0, f"text found {count} times"
            else:
                target.write_text(source.replace(m.original, m.replacement))
                try:
                    result, seconds, output = run_tests(repo, m.tests, args.timeout)
                finally:
                    target.write_text(source)
                status = {"failed": "killed", "timeout": "killed (timeout)"}.get(result, "survived")
                note = first_failure(output) if result == "failed" else last_line(output)
                if args.verbose and result == "passed":
                    print(output, flush=True)
            rows.append((m, status, seconds, note))
            print(f"[{i}/{len(mutations)}] {m.name}: {status} ({seconds:.0f} s) {note}", flush=True)

    print()
    print(f"| {'mutant':34s} | {'file':24s} | {'result':16s} | {'s':>4s} | what it breaks "
          "| first failing test |")
    print(f"|{'-' * 36}|{'-' * 26}|{'-' * 18}|{'-' * 6}|---|---|")
    for m, status, seconds, note in rows:
        short = m.path.removeprefix("skhyper/")
        failing = note if status == "killed" else ""
        print(f"| {m.name:34s} | {short:24s} | {status:16s} | {seconds:4.0f} | {m.description} "
              f"| {failing} |")
    ran = [(m, status) for m, status, _, _ in rows if status in ("killed", "killed (timeout)",
                                                                   "survived")]
    killed = sum(status.startswith("killed") for _, status in ran)
    not_counted = [(m, status, note) for m, status, _, note in rows
                   if status not in ("killed", "killed (timeout)", "survived")]
    print()
    if not_counted:
        # a rate over the mutants that ran would hide the ones that did not
        print(f"no kill rate: {len(not_counted)} of {len(rows)} mutants not counted "
              f"({killed} killed, {len(ran) - killed} survived of {len(ran)} run)")
        for m, status, note in not_counted:
            print(f"not counted: {m.name} ({status}: {note})")
    elif ran:
        print(f"kill rate: {killed}/{len(ran)} = {killed / len(ran):.0%}")
    else:
        print("no kill rate: no mutant selected")
    survivors = [m.name for m, status in ran if status == "survived"]
    if survivors:
        print("survivors: " + ", ".join(survivors))
    return 1 if not_counted or survivors else 0


if __name__ == "__main__":
    sys.exit(main())
