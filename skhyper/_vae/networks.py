"""Encoder/decoder networks and the VAE that ties them together.

The VAE reparameterises in Cartesian coordinates and renormalises the sample
onto the sphere of radius sqrt(n): ``u = mu + sigma * eps``,
``z = sqrt(n) u / ||u||`` (a plain Gaussian VAE keeps ``z = u``). Scores use
the deterministic ``mu`` and its reconstruction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .._utils.serialization import plain_module

_SLOPE = 0.2
_MIN_SIGMA = 1e-4


class MLPEncoder(nn.Module):
    """Rows -> (mu, sigma) through LeakyReLU hidden layers."""

    def __init__(self, n_features: int, hidden: Sequence[int], latent_dim: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = n_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.LeakyReLU(_SLOPE)]
            width = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, 2 * latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, s = self.head(self.body(x)).chunk(2, dim=1)
        return mu, F.softplus(s) + _MIN_SIGMA


class MLPDecoder(nn.Module):
    """Latent -> rows (linear output)."""

    def __init__(self, latent_dim: int, hidden: Sequence[int], n_features: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = latent_dim
        for h in reversed(tuple(hidden)):
            layers += [nn.Linear(width, h), nn.LeakyReLU(_SLOPE)]
            width = h
        layers.append(nn.Linear(width, n_features))
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z)


class ResidualBlock(nn.Module):
    """conv-BN-LeakyReLU-conv-BN plus identity, then LeakyReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.bn1(self.conv1(x)), _SLOPE)
        return F.leaky_relu(x + self.bn2(self.conv2(h)), _SLOPE)


CHANNELS = (16, 32, 64)  # the authors' widths


def _pyramid(height: int, width: int, stages: int) -> list[tuple[int, int]]:
    """Spatial sizes after each 2x average pooling."""
    sizes = [(height, width)]
    for _ in range(stages):
        h, w = sizes[-1]
        sizes.append((max(h // 2, 1), max(w // 2, 1)))
    return sizes


class ConvEncoder(nn.Module):
    """Images (C, H, W) -> (mu, sigma): residual stages (16/32/64 by default),
    average pooling."""

    def __init__(
        self, image_shape: Sequence[int], latent_dim: int, channels: Sequence[int] = CHANNELS
    ) -> None:
        super().__init__()
        c, h, w = image_shape
        self.image_shape = (c, h, w)
        self.sizes = _pyramid(h, w, len(channels))
        stages: list[nn.Module] = []
        in_ch = c
        for out_ch, size in zip(channels, self.sizes[1:]):
            stages += [
                nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
                nn.BatchNorm2d(out_ch),
                nn.LeakyReLU(_SLOPE),
                ResidualBlock(out_ch),
                nn.AdaptiveAvgPool2d(size),
            ]
            in_ch = out_ch
        self.body = nn.Sequential(*stages)
        fh, fw = self.sizes[-1]
        self.head = nn.Linear(channels[-1] * fh * fw, 2 * latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x.reshape(-1, *self.image_shape))
        mu, s = self.head(h.flatten(1)).chunk(2, dim=1)
        return mu, F.softplus(s) + _MIN_SIGMA


class ConvDecoder(nn.Module):
    """Latent -> images, nearest upsampling; sigmoid output for data in [0, 1]."""

    def __init__(
        self,
        latent_dim: int,
        image_shape: Sequence[int],
        sigmoid: bool,
        channels: Sequence[int] = CHANNELS,
    ) -> None:
        super().__init__()
        c, h, w = image_shape
        self.sizes = _pyramid(h, w, len(channels))
        self.top = channels[-1]
        fh, fw = self.sizes[-1]
        self.head = nn.Linear(latent_dim, channels[-1] * fh * fw)
        chans = list(reversed(tuple(channels)))
        self.blocks = nn.ModuleList(ResidualBlock(ch) for ch in chans)
        outs = chans[1:] + [chans[-1]]
        self.convs = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(ci, co, 3, padding=1, bias=False),
                nn.BatchNorm2d(co),
                nn.LeakyReLU(_SLOPE),
            )
            for ci, co in zip(chans, outs)
        )
        self.out = nn.Conv2d(outs[-1], c, 3, padding=1)
        self.sigmoid = sigmoid

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        fh, fw = self.sizes[-1]
        h = self.head(z).reshape(-1, self.top, fh, fw)
        targets = list(reversed(self.sizes[:-1]))
        for block, conv, size in zip(self.blocks, self.convs, targets):
            h = F.interpolate(block(h), size=size, mode="nearest")
            h = conv(h)
        out = self.out(h)
        if self.sigmoid:
            out = torch.sigmoid(out)
        return out.flatten(1)


@plain_module(lambda config: build_vae(**config))
class SphericalVAE(nn.Module):
    """Encoder + decoder with the sample renormalised onto the sqrt(n) sphere
    (``spherical=False``: a plain Gaussian VAE, the sample is used as drawn).

    ``config`` holds the :func:`build_vae` arguments it was built with (saved
    models are rebuilt from it).
    """

    config: dict

    def __init__(
        self, encoder: nn.Module, decoder: nn.Module, latent_dim: int, spherical: bool = True
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.latent_dim = latent_dim
        self.spherical = spherical

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(x)

    def _project(self, u: torch.Tensor) -> torch.Tensor:
        if not self.spherical:
            return u
        return math.sqrt(self.latent_dim) * u / torch.linalg.vector_norm(
            u, dim=1, keepdim=True
        ).clamp_min(1e-12)

    def sample(
        self, mu: torch.Tensor, sigma: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return self._project(mu + sigma * eps)

    def decode_mean(self, mu: torch.Tensor) -> torch.Tensor:
        """The deterministic reconstruction: the decoder at the (projected) mean."""
        return self.decoder(self._project(mu))

    def forward(
        self, x: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, sigma = self.encoder(x)
        x_hat = self.decoder(self.sample(mu, sigma, generator))
        return mu, sigma, x_hat


def build_vae(
    n_features: int,
    latent_dim: int,
    hidden: Sequence[int],
    image_shape: Sequence[int] | None,
    sigmoid_output: bool,
    *,
    channels: Sequence[int] = CHANNELS,
    spherical: bool = True,
) -> SphericalVAE:
    """An MLP VAE for rows, or a residual conv VAE (stage widths ``channels``)
    when ``image_shape`` is given."""
    if image_shape is None:
        enc: nn.Module = MLPEncoder(n_features, hidden, latent_dim)
        dec: nn.Module = MLPDecoder(latent_dim, hidden, n_features)
    else:
        enc = ConvEncoder(image_shape, latent_dim, channels)
        dec = ConvDecoder(latent_dim, image_shape, sigmoid_output, channels)
    vae = SphericalVAE(enc, dec, latent_dim, spherical)
    vae.config = {
        "n_features": int(n_features),
        "latent_dim": int(latent_dim),
        "hidden": tuple(int(h) for h in hidden),
        "image_shape": None if image_shape is None else tuple(int(s) for s in image_shape),
        "sigmoid_output": bool(sigmoid_output),
        "channels": tuple(int(c) for c in channels),
        "spherical": bool(spherical),
    }
    return vae
