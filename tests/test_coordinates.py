"""The hyperspherical coordinate transform."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from skhyper._vae.coordinates import (
    from_angles,
    isotropic_cos_std,
    isotropic_radius,
    to_angles,
    to_hyperspherical,
)

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=64)


@st.composite
def vectors(draw):
    n = draw(st.integers(2, 40))
    rows = draw(st.integers(1, 5))
    return draw(arrays(np.float64, (rows, n), elements=finite))


@settings(max_examples=150, deadline=None)
@given(vectors())
def test_round_trip_is_exact(v):
    t = torch.from_numpy(v)
    r, phi = to_angles(t)
    back = from_angles(r, phi).numpy()
    scale = max(1.0, float(np.abs(v).max()))
    np.testing.assert_allclose(back, v, rtol=0, atol=1e-9 * scale)


@settings(max_examples=150, deadline=None)
@given(vectors(), st.sampled_from([0.0, 1e-3, 1.0]))
def test_cosines_are_in_unit_interval(v, eps):
    r, cos = to_hyperspherical(torch.from_numpy(v), eps=eps)
    assert cos.shape == (v.shape[0], v.shape[1] - 1)
    assert torch.all(cos.abs() <= 1.0)
    np.testing.assert_allclose(r.numpy(), np.linalg.norm(v, axis=1), rtol=1e-12, atol=1e-12)


@settings(max_examples=100, deadline=None)
@given(vectors())
def test_cosines_match_exact_angles(v):
    assume_nonzero = np.abs(v[:, -2:]).sum(axis=1) > 1e-6
    v = v[assume_nonzero]
    if len(v) == 0:
        return
    t = torch.from_numpy(v)
    _, cos = to_hyperspherical(t, eps=0.0)
    _, phi = to_angles(t)
    np.testing.assert_allclose(cos.numpy(), torch.cos(phi).numpy(), atol=1e-9)


@pytest.mark.parametrize("n", [4, 16, 64])
def test_isotropic_statistics(n):
    gen = torch.Generator().manual_seed(0)
    v = torch.randn(200_000, n, generator=gen, dtype=torch.float64)
    r, cos = to_hyperspherical(v, eps=0.0)
    std = cos.std(dim=0)
    expected = isotropic_cos_std(n).double()
    i = torch.arange(1, n, dtype=torch.float64)
    np.testing.assert_allclose(expected.numpy(), 1 / np.sqrt(n - i.numpy() + 1))
    np.testing.assert_allclose(std.numpy(), expected.numpy(), rtol=0.02)
    np.testing.assert_allclose(cos.mean(dim=0).numpy(), 0.0, atol=0.01)
    assert r.mean().item() == pytest.approx(isotropic_radius(n), rel=0.01)
    assert isotropic_radius(n) == math.sqrt(n - 0.5)


def test_needs_two_dimensions():
    with pytest.raises(ValueError, match="at least 2"):
        to_hyperspherical(torch.zeros(3, 1))
    with pytest.raises(ValueError, match="at least 2"):
        to_angles(torch.zeros(3, 1))


def test_gradients_are_finite_at_axis_points():
    # a vector on an axis has zero tail sums: eps keeps the cosines differentiable
    v = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 2.0]], requires_grad=True)
    _, cos = to_hyperspherical(v)
    cos.sum().backward()
    assert torch.isfinite(v.grad).all()
