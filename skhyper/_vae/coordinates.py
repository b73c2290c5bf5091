"""Hyperspherical coordinates of latent vectors.

For ``v`` in R^n the radius is ``r = ||v||`` and, for i = 1..n-1,

    cos(phi_i) = v_i / sqrt(sum_{j >= i} v_j^2 + eps).

Training uses only the radius and these cosines (no ``arccos``). The suffix
sums come from one reversed cumulative sum, O(n) per row. ``to_angles`` and
``from_angles`` give the exact transform and its inverse (for tests and
plots); the last angle is taken with ``atan2`` so that the sign of ``v_n`` is
kept and the round trip is exact.
"""

from __future__ import annotations

import math

import torch

EPS = 1e-3


def _suffix_sq_sums(v: torch.Tensor) -> torch.Tensor:
    """``out[..., i] = sum_{j >= i} v[..., j]**2`` via a reversed cumsum."""
    return torch.cumsum((v * v).flip(-1), dim=-1).flip(-1)


def to_hyperspherical(
    v: torch.Tensor, eps: float = EPS
) -> tuple[torch.Tensor, torch.Tensor]:
    """Radius and angle cosines of ``v``.

    Parameters
    ----------
    v : Tensor of shape (..., n), n >= 2
    eps : float, default=1e-3
        Stabiliser in the denominator (0 gives the exact cosines).

    Returns
    -------
    r : Tensor of shape (...,)
    cos : Tensor of shape (..., n - 1), values in [-1, 1]
    """
    if v.shape[-1] < 2:
        raise ValueError("hyperspherical coordinates need at least 2 dimensions")
    suffix = _suffix_sq_sums(v)
    r = torch.sqrt(suffix[..., 0])
    denom = torch.sqrt(suffix[..., :-1] + eps)
    cos = v[..., :-1] / denom
    if eps == 0:
        # 0/0 where the tail is exactly zero: the angle is undefined, take 1
        cos = torch.where(suffix[..., :-1] > 0, cos, torch.ones_like(cos))
    return r, cos.clamp(-1.0, 1.0)


def to_angles(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact radius and angles: phi_1..phi_{n-2} in [0, pi], phi_{n-1} in (-pi, pi]."""
    if v.shape[-1] < 2:
        raise ValueError("hyperspherical coordinates need at least 2 dimensions")
    suffix = _suffix_sq_sums(v)
    r = torch.sqrt(suffix[..., 0])
    tail = torch.sqrt(suffix[..., 1:-1])
    phi_head = torch.atan2(tail, v[..., :-2])
    phi_last = torch.atan2(v[..., -1], v[..., -2])
    return r, torch.cat([phi_head, phi_last.unsqueeze(-1)], dim=-1)


def from_angles(r: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`to_angles`.

    ``v_1 = r cos(phi_1)``, ``v_i = r prod_{j<i} sin(phi_j) cos(phi_i)``,
    ``v_n = r prod_j sin(phi_j)``.
    """
    sin = torch.sin(phi)
    ones = torch.ones_like(phi[..., :1])
    sin_prod = torch.cumprod(torch.cat([ones, sin], dim=-1), dim=-1)
    cos_ext = torch.cat([torch.cos(phi), ones], dim=-1)
    return r.unsqueeze(-1) * sin_prod * cos_ext


def isotropic_cos_std(n: int, device: torch.device | None = None) -> torch.Tensor:
    """Std of cos(phi_i) under N(0, I_n): 1 / sqrt(n - i + 1), i = 1..n-1."""
    i = torch.arange(1, n, dtype=torch.float32, device=device)
    return 1.0 / torch.sqrt(n - i + 1.0)


def isotropic_radius(n: int) -> float:
    """Approximate E||v|| under N(0, I_n): sqrt(n - 1/2)."""
    return math.sqrt(n - 0.5)
