"""The training loop of the hyperspherical VAE and its schedule (doc/compvae.md).

Torch only: the estimator hands in tensors, a seeded generator for the
latent samples and a numpy generator for the batch order.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .losses import HypersphericalRegulariser, MeanWeights, reconstruction_error
from .networks import SphericalVAE

# Weights of mu's angular mean terms over training: the first angle's weight
# is raised late in training, the tail angles' ramp up in the second phase.
W_FIRST, W_FIRST_LATE = 100.0, 150.0
W_TAIL_START, W_TAIL_END = 1.0, 10.0

# epochs="auto": about this many gradient steps, within these epoch bounds
AUTO_STEPS = 250
AUTO_EPOCHS_MIN, AUTO_EPOCHS_MAX = 4, 400

# early stopping checks the held-out loss at most once per this many steps
VALIDATION_STEPS = 10

SCHEDULES = ("auto", "paper")

# The authors' schedule, as fractions of their 300 epochs: the ramp phase ends
# at epoch 100; Adam's rate halves at epoch 280 (their second milestone, 450,
# is past the end).
PAPER_EPOCHS = 300
PAPER_PHASE_END = 100
PAPER_LR_MILESTONES = (280, 450)
PAPER_LR_GAMMA = 0.5


def auto_epochs(n_batches: int) -> int:
    """Epochs giving about ``AUTO_STEPS`` optimiser steps at ``n_batches`` per epoch."""
    return int(np.clip(math.ceil(AUTO_STEPS / n_batches), AUTO_EPOCHS_MIN, AUTO_EPOCHS_MAX))


def n_batches(n: int, batch_size: int, labels: np.ndarray | None) -> int:
    """Minibatches per epoch; with labels each batch needs >= 2 rows of every class."""
    count = max(1, int(round(n / batch_size)))
    if labels is not None:
        count = max(1, min(count, int(np.bincount(labels).min()) // 2))
    return count


def epoch_batches(
    n: int, count: int, labels: np.ndarray | None, rng: np.random.Generator
) -> list[np.ndarray]:
    """Index arrays of one epoch; stratified so each batch holds every class."""
    if labels is None:
        return np.array_split(rng.permutation(n), count)
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    chunks = [np.array_split(p, count) for p in per_class]
    return [np.concatenate([c[b] for c in chunks]) for b in range(count)]


@dataclass(frozen=True)
class Schedule:
    """Weights at one epoch: the regulariser ramp and the mean-term weights."""

    ramp: float
    weights: MeanWeights
    second_phase: bool = False


def schedule(epoch: int, epochs: int, kind: str = "auto") -> Schedule:
    """The weights at ``epoch`` of ``epochs``.

    ``"auto"``: first half, ramp ``sqrt(epoch) + 1``; second half, the tail
    angles' pull rises linearly to ``W_TAIL_END``; the last quarter raises the
    first angle's weight. ``"paper"``: the authors' schedule, its epochs
    scaled by ``epochs / 300``: ramp over the first third, then the tail
    weight ``sqrt(epoch - 101) + 1`` and the first angle's weight 150.
    """
    if kind == "paper":
        scale = epochs / PAPER_EPOCHS
        e = epoch / scale  # the authors' epoch
        if e < PAPER_PHASE_END:
            return Schedule(math.sqrt(e) + 1.0, MeanWeights(first=W_FIRST, tail=W_TAIL_START))
        tail = math.sqrt(max(e - PAPER_PHASE_END - 1, 0.0)) + 1.0
        return Schedule(1.0, MeanWeights(first=W_FIRST_LATE, tail=tail), True)
    ramp_end = max(1, epochs // 2)
    late = max(ramp_end, (3 * epochs) // 4)
    if epoch < ramp_end:
        ramp, tail = math.sqrt(epoch) + 1.0, W_TAIL_START
    else:
        frac = (epoch - ramp_end + 1) / max(1, epochs - ramp_end)
        ramp, tail = 1.0, W_TAIL_START + frac * (W_TAIL_END - W_TAIL_START)
    first = W_FIRST_LATE if epoch >= late else W_FIRST
    return Schedule(ramp, MeanWeights(first=first, tail=tail), epoch >= ramp_end)


def train_vae(
    model: SphericalVAE,
    regulariser: HypersphericalRegulariser,
    X: torch.Tensor,
    labels: np.ndarray | None,
    n_classes: int,
    *,
    epochs: int,
    batches_per_epoch: int,
    learning_rate: float,
    kl_target: float,
    generator: torch.Generator,
    rng: np.random.Generator,
    schedule_kind: str = "auto",
    validation: Callable[[], float] | None = None,
    n_iter_no_change: int = 10,
    tol: float = 1e-3,
    input_noise: float = 0.0,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> dict[str, list[float]]:
    """Train ``model`` in place; return the per-epoch means of the loss parts.

    The regulariser's weight ``beta`` is calibrated to ``kl_target *
    reconstruction / regulariser``: provisionally on the first batch, then on
    the first epoch's means (a regulariser with ``calibrated = False``, the
    plain VAE's KL, keeps weight 1 and no ramp).

    With ``validation`` (a callable returning a held-out loss, called in eval
    mode after each epoch of the second phase, or every few epochs so that at
    least ``VALIDATION_STEPS`` steps separate two calls), training stops once
    that loss has not fallen by a relative ``tol`` for ``n_iter_no_change``
    calls; the first phase (the regulariser's ramp) always runs in full.

    With ``input_noise > 0`` the model sees each training batch with
    Gaussian noise of that standard deviation added, and is scored on
    reconstructing the clean batch (a denoising objective); the noise is
    drawn from ``generator`` and only here, never at inference.
    """
    device = X.device
    opt = torch.optim.Adam(model.parameters(), lr=learning_rate, fused=True)
    lr_decay = None
    if schedule_kind == "paper":
        milestones = [round(m * epochs / PAPER_EPOCHS) for m in PAPER_LR_MILESTONES]
        lr_decay = torch.optim.lr_scheduler.MultiStepLR(opt, milestones, PAPER_LR_GAMMA)
    labels_t = None if labels is None else torch.as_tensor(labels, device=device)
    calibrated = getattr(regulariser, "calibrated", True)

    def calibrate(reconstruction: float, reg: float) -> float:
        return kl_target * reconstruction / max(reg, 1e-12)

    beta = None if calibrated else 1.0
    best, stale = math.inf, 0
    check_every = max(1, math.ceil(VALIDATION_STEPS / batches_per_epoch))
    history: dict[str, list[float]] = {}
    model.train()
    for epoch in range(epochs):
        sched = schedule(epoch, epochs, schedule_kind)
        ramp = sched.ramp if calibrated else 1.0
        sums: dict[str, torch.Tensor] = {}
        batches = epoch_batches(X.shape[0], batches_per_epoch, labels, rng)
        for idx in batches:
            idx_t = torch.as_tensor(idx, device=device)
            xb = X[idx_t]
            lb = None if labels_t is None else labels_t[idx_t]
            x_in = xb
            if input_noise > 0:
                noise = torch.randn(xb.shape, generator=generator, device=device, dtype=xb.dtype)
                x_in = xb + input_noise * noise
            mu, sigma, x_hat = model(x_in, generator)
            rec = reconstruction_error(x_hat, xb)
            reg = regulariser(mu, sigma, sched.weights, lb, n_classes)
            if beta is None:
                beta = calibrate(rec.item(), reg["total"].item())
            loss = rec + beta * ramp * reg["total"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            parts = {"loss": loss, "reconstruction": rec, "regulariser": reg["total"]}
            parts.update({k: v for k, v in reg.items() if k != "total"})
            for key, value in parts.items():
                sums[key] = sums.get(key, 0.0) + value.detach()
        means = {k: float(v) / len(batches) for k, v in sums.items()}
        if not all(math.isfinite(v) for v in means.values()):
            raise FloatingPointError(
                f"CompVAE training diverged at epoch {epoch} (non-finite loss); "
                "try a smaller learning_rate or standardised inputs."
            )
        if epoch == 0 and calibrated:
            beta = calibrate(means["reconstruction"], means["regulariser"])
        if lr_decay is not None:
            lr_decay.step()
        stop = False
        if validation is not None:
            means["validation"] = math.nan  # checked in the second phase only
        if validation is not None and sched.second_phase and epoch % check_every == 0:
            model.eval()
            with torch.no_grad():
                val = validation()
            model.train()
            means["validation"] = val
            if val < best * (1.0 - tol):
                best, stale = val, 0
            else:
                stale += 1
                stop = stale >= n_iter_no_change
        means["beta"] = beta
        for key, value in means.items():
            history.setdefault(key, []).append(value)
        if on_epoch is not None:
            on_epoch(means)
        if stop:
            break
    return history
