"""The hyperspherical regulariser of the compressed VAE (doc/compvae.md).

Every term acts on minibatch statistics (mean and std over the batch) of the
radius and angle cosines of the encoder's mean ``mu`` and scale ``sigma``.

Normalisation across latent sizes (ours): the angular sums are divided by
``sum_i beta_i`` and multiplied by the same sum at the authors' n = 128, and
the radial terms are measured in units of the expected radius
``sqrt(n - 1/2)`` times the authors' radius. At n = 128 the terms are exactly
the authors'; at other n the balance between angular and radial terms, and
between mu and sigma, stays as it is at n = 128, so the gains need no
retuning when ``latent_dim`` changes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .coordinates import isotropic_cos_std, isotropic_radius, to_hyperspherical

ALPHA = 0.05
STD_EPS = 1e-4
ROLL_STEP = 10  # class c is gathered around Cartesian axis c * ROLL_STEP
REFERENCE_DIM = 128  # the latent size the authors' gains were tuned at

GAIN_PHI_MU = 1000.0
GAIN_R_MU = 300.0
GAIN_R_SIGMA = 500.0
SIGMA_RADIUS_FRACTION = 0.001
SIGMA_RADIUS_STD = math.sqrt(0.5)
RADIAL_TERM_GAIN = 50.0

COMPRESSIONS = ("full", "first", "none", "gaussian")
# compressions regularised in hyperspherical coordinates (the others: Gaussian KL)
SPHERICAL = ("full", "first", "none")


def batch_stats(s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and ``sqrt(unbiased var + 1e-4)`` over the batch (dim 0)."""
    mean = s.mean(dim=0)
    if s.shape[0] > 1:
        var = s.var(dim=0, unbiased=True)
    else:
        var = torch.zeros_like(mean)
    return mean, torch.sqrt(var + STD_EPS)


def d_var(std: torch.Tensor, target: torch.Tensor | float) -> torch.Tensor:
    """``(s + 1 - b)^2 - log (s + 1 - b)^2 - 1``; allows a target of 0."""
    x = (std + 1.0 - target) ** 2
    return x - torch.log(x) - 1.0


def d_ratio(std: torch.Tensor, target: float) -> torch.Tensor:
    """``(s / b)^2 - log (s / b)^2 - 1`` for a target ``b > 0``."""
    x = (std / target) ** 2
    return x - torch.log(x) - 1.0


def angle_gains(n: int, device: torch.device | None = None) -> torch.Tensor:
    """``beta_i = 50 sqrt(n) / sqrt(i)``, i = 1..n-1."""
    i = torch.arange(1, n, dtype=torch.float32, device=device)
    return 50.0 * math.sqrt(n) / torch.sqrt(i)


def _angle_gain_sum(n: int) -> float:
    return float(sum(50.0 * math.sqrt(n) / math.sqrt(i) for i in range(1, n)))


@dataclass
class MeanWeights:
    """Weights of the angular mean terms of ``mu`` at one point of training."""

    first: float = 100.0
    tail: float = 1.0


class HypersphericalRegulariser(torch.nn.Module):
    """The hyperspherical regulariser of doc/compvae.md for an ``n``-dimensional latent.

    Its weight is calibrated after the first epoch (``calibrated = True``).

    Parameters
    ----------
    n : int
        Latent dimension (>= 2).
    compression : {"full", "first", "none"}
        Mean targets of mu's angle cosines: all 1 (north pole), first only,
        or none (isotropic: all 0).
    sigma_angle_gain : float
        Gain of the angular term of sigma (the authors' CIFAR value is 5e5).
    """

    def __init__(self, n: int, compression: str, sigma_angle_gain: float) -> None:
        super().__init__()
        self.calibrated = True
        if n < 2:
            raise ValueError("the latent needs at least 2 dimensions")
        if compression not in SPHERICAL:
            raise ValueError(f"compression must be one of {SPHERICAL}")
        self.n = n
        self.compression = compression
        self.sigma_angle_gain = float(sigma_angle_gain)
        beta = angle_gains(n)
        # normalised so that the angular sums weigh as at n = REFERENCE_DIM
        beta = beta * (_angle_gain_sum(REFERENCE_DIM) / float(beta.sum()))
        self.register_buffer("beta", beta)
        iso_std = isotropic_cos_std(n)
        self.register_buffer("mu_std_target", iso_std)
        mean_target = torch.zeros(n - 1)
        if compression == "full":
            mean_target[:] = 1.0
        elif compression == "first":
            mean_target[0] = 1.0
        self.register_buffer("mu_mean_target", mean_target)
        # mu's targets (row 0) and sigma's (row 1): spread 0, mean the isotropic std
        self.register_buffer("std_target_both", torch.stack([iso_std, torch.zeros_like(iso_std)]))
        self.register_buffer("mean_target_both", torch.stack([mean_target, iso_std]))
        self.radius = isotropic_radius(n)
        # radial quantities are compared in units of the n = 128 radius
        self.radial_scale = isotropic_radius(REFERENCE_DIM) / self.radius

    def _mean_weights(self, weights: MeanWeights) -> torch.Tensor:
        """Weights of the angular mean terms: mu's (row 0), sigma's (row 1, all 1)."""
        w = torch.ones(2, self.n - 1, device=self.beta.device, dtype=self.beta.dtype)
        w[0] = weights.tail
        w[0, 0] = weights.first
        w[0, -1] = 0.0  # the mean part skips mu's last angle
        return w

    def _angular(
        self,
        mean: torch.Tensor,
        std: torch.Tensor,
        std_target: torch.Tensor,
        mean_target: torch.Tensor,
        mean_weights: torch.Tensor,
    ) -> torch.Tensor:
        """``L_phi`` from the batch mean and std of angle cosines (last dim: angles)."""
        spread = (self.beta * d_var(std, std_target)).sum(dim=-1)
        centre = (self.beta * mean_weights * (mean - mean_target) ** 2).sum(dim=-1)
        return spread + ALPHA * centre

    def forward(
        self,
        mu: torch.Tensor,
        sigma: torch.Tensor,
        weights: MeanWeights,
        labels: torch.Tensor | None = None,
        n_classes: int = 1,
    ) -> dict[str, torch.Tensor]:
        """The four terms and their weighted total.

        With ``labels`` (class-conditional mode) each class c's ``mu`` is
        rolled by ``-c * ROLL_STEP`` before its own angular statistics; the
        radial and sigma terms use the whole batch.
        """
        w = self._mean_weights(weights)
        # mu and sigma go through the coordinates and batch statistics together:
        # half the kernel launches, which dominate at these sizes
        r, cos = to_hyperspherical(torch.stack([mu, sigma]))
        mean_c, std_c = batch_stats(cos.transpose(0, 1))  # over the batch: (2, n - 1)
        phi = self._angular(mean_c, std_c, self.std_target_both, self.mean_target_both, w)
        phi_mu, phi_sigma = phi[0], phi[1]
        if labels is not None:
            phi_mu = mu.new_zeros(())
            for c in range(n_classes):
                rows = mu[labels == c]
                if rows.shape[0] == 0:
                    continue
                _, cos_c = to_hyperspherical(torch.roll(rows, shifts=-c * ROLL_STEP, dims=1))
                phi_mu = phi_mu + self._angular(
                    *batch_stats(cos_c), self.mu_std_target, self.mu_mean_target, w[0]
                )

        mean_r, std_r = batch_stats(r.transpose(0, 1) * self.radial_scale)  # (2,)
        target_r = self.radius * self.radial_scale
        rad_mu = RADIAL_TERM_GAIN * d_var(std_r[0], 0.0) + RADIAL_TERM_GAIN * (
            mean_r[0] - target_r
        ) ** 2
        rad_sigma = RADIAL_TERM_GAIN * d_ratio(std_r[1], SIGMA_RADIUS_STD) + RADIAL_TERM_GAIN * (
            mean_r[1] - SIGMA_RADIUS_FRACTION * target_r
        ) ** 2

        total = (
            GAIN_PHI_MU * phi_mu
            + GAIN_R_MU * rad_mu
            + self.sigma_angle_gain * phi_sigma
            + GAIN_R_SIGMA * rad_sigma
        )
        return {
            "total": total,
            "angular_mu": phi_mu,
            "radial_mu": rad_mu,
            "angular_sigma": phi_sigma,
            "radial_sigma": rad_sigma,
        }


class GaussianKL(torch.nn.Module):
    """The plain VAE's regulariser: per-sample ``KL(N(mu, sigma^2) || N(0, I))``,
    summed over the latent and averaged over the batch.

    Its weight is fixed at 1 (the evidence lower bound with a squared-error
    likelihood), not calibrated like ``KLD_HS``; the schedule's weights do
    not apply. Returns the same dict as :class:`HypersphericalRegulariser`.
    """

    calibrated = False

    def forward(
        self,
        mu: torch.Tensor,
        sigma: torch.Tensor,
        weights: MeanWeights,
        labels: torch.Tensor | None = None,
        n_classes: int = 1,
    ) -> dict[str, torch.Tensor]:
        kl = 0.5 * (mu**2 + sigma**2 - 1.0 - 2.0 * torch.log(sigma)).sum(dim=1).mean()
        return {"total": kl, "kl": kl}


def reconstruction_error(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Squared error summed over features, mean over the batch."""
    return row_reconstruction_error(x_hat, x).mean()


def row_reconstruction_error(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Squared error summed over the features of each row."""
    return ((x_hat - x) ** 2).flatten(1).sum(dim=1)
