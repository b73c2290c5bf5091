"""The VAE's losses: the hyperspherical regulariser, its angle gains and
targets, and the Gaussian KL (skhyper._vae.losses)."""

import numpy as np
import pytest
import torch

from skhyper import CompVAEDetector
from skhyper._vae.coordinates import isotropic_cos_std, isotropic_radius, to_hyperspherical
from skhyper._vae.losses import (
    RADIAL_TERM_GAIN,
    REFERENCE_DIM,
    STD_EPS,
    GaussianKL,
    HypersphericalRegulariser,
    MeanWeights,
    angle_gains,
    batch_stats,
)

from conftest import blobs


def mean_cosines(det, X):
    _, cos = to_hyperspherical(torch.from_numpy(det.transform_latent(X)))
    return cos.mean(dim=0).numpy()


# -- compression does what it claims (issue 2, item 3) ---------------------------------


def test_full_compression_pulls_first_angle_to_pole(compression_fits):
    X, fits = compression_fits
    cos = {name: mean_cosines(det, X) for name, det in fits.items()}
    assert cos["full"][0] > 0.85
    assert cos["first"][0] > 0.85
    assert abs(cos["none"][0]) < 0.3
    assert cos["full"][0] - cos["none"][0] > 0.5


def test_full_pulls_tail_angles_first_leaves_them_isotropic(compression_fits):
    X, fits = compression_fits
    tail_full = mean_cosines(fits["full"], X)[1:-1]
    tail_first = mean_cosines(fits["first"], X)[1:-1]
    assert tail_full.mean() > 0.3
    # isotropic value of a cosine's mean is 0
    assert np.abs(tail_first).mean() < 0.15
    assert tail_full.mean() - tail_first.mean() > 0.25


@pytest.mark.parametrize("latent_dim", [3, 32])
def test_default_gains_compress_at_other_latent_sizes(latent_dim):
    X = blobs(n=400, d=8, seed=2)
    det = CompVAEDetector(latent_dim=latent_dim, random_state=0).fit(X)
    assert mean_cosines(det, X)[0] > 0.8


def test_angular_gains_are_normalised_to_reference_dim():
    ref = HypersphericalRegulariser(REFERENCE_DIM, "full", 5e5)
    np.testing.assert_allclose(ref.beta.numpy(), angle_gains(REFERENCE_DIM).numpy(), rtol=1e-6)
    assert ref.radial_scale == pytest.approx(1.0)
    for n in (4, 16, 300):
        reg = HypersphericalRegulariser(n, "full", 5e5)
        assert float(reg.beta.sum()) == pytest.approx(float(ref.beta.sum()), rel=1e-5)
        # the shape over angles is the authors' beta_i ∝ 1/sqrt(i)
        np.testing.assert_allclose(
            (reg.beta / reg.beta[0]).numpy(), (1 / np.sqrt(np.arange(1, n))), rtol=1e-5
        )


# -- the method, pinned: each fails when its line of the model is broken ------------------


def cos_spread(det, X):
    _, cos = to_hyperspherical(torch.from_numpy(det.transform_latent(X)))
    return cos.std(dim=0).numpy()


def test_isotropic_targets_give_isotropic_cosine_spread(compression_fits):
    X, fits = compression_fits
    target = isotropic_cos_std(8).numpy()
    # "none": every angle spreads as under N(0, I); "first": the tail angles do
    ratio_none = cos_spread(fits["none"], X) / target
    ratio_first = cos_spread(fits["first"], X)[1:] / target[1:]
    assert np.all((ratio_none > 0.6) & (ratio_none < 1.4)), ratio_none
    assert np.all((ratio_first > 0.6) & (ratio_first < 1.4)), ratio_first


def test_latent_radius_and_scale(compression_fits):
    X, fits = compression_fits
    for det in fits.values():
        mu, sigma = det.model_.encode(torch.from_numpy(det.transform_.transform(X)))
        r_mu = torch.linalg.vector_norm(mu, dim=1)
        assert float(r_mu.mean()) == pytest.approx(isotropic_radius(8), rel=0.1)
        assert float(r_mu.std()) < 0.2 * float(r_mu.mean())
        # sigma is small next to the radius of mu (about 0.7 per axis at initialisation)
        assert float(torch.linalg.vector_norm(sigma, dim=1).mean()) < 0.25 * float(r_mu.mean())


def test_gaussian_kl_is_the_closed_form():
    rng = np.random.RandomState(0)
    mu, sigma = torch.tensor(rng.normal(size=(7, 5))), torch.tensor(rng.uniform(0.1, 2, (7, 5)))
    expected = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu, sigma), torch.distributions.Normal(0.0, 1.0)
    ).sum(1).mean()
    got = GaussianKL()(mu, sigma, None)["total"]
    assert float(got) == pytest.approx(float(expected), rel=1e-12)


def test_batch_stats_are_the_mean_and_the_unbiased_std():
    """Batch std = sqrt(unbiased variance + 1e-4), the variance with ddof=1."""
    s = np.random.default_rng(0).normal(size=(3, 4))
    mean, std = batch_stats(torch.from_numpy(s))
    np.testing.assert_allclose(mean.numpy(), s.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(std.numpy(), np.sqrt(s.var(axis=0, ddof=1) + STD_EPS), rtol=1e-12)
    # one row has no spread: the std is sqrt(1e-4)
    np.testing.assert_allclose(batch_stats(torch.from_numpy(s[:1]))[1].numpy(), 0.01, rtol=1e-12)


def _sigma_radial_term(n, radius, rows=16):
    """The sigma radial term for a batch of sigmas all of norm ``radius``."""
    reg = HypersphericalRegulariser(n, "full", 5e5).double()
    rng = np.random.default_rng(1)
    directions = rng.normal(size=(rows, n))
    sigma = radius * directions / np.linalg.norm(directions, axis=1, keepdims=True)
    mu = rng.normal(size=(rows, n))
    out = reg(torch.from_numpy(mu), torch.from_numpy(sigma), MeanWeights())
    return float(out["radial_sigma"])


@pytest.mark.parametrize("n", [4, 16, REFERENCE_DIM])
def test_sigma_radius_target_is_a_thousandth_of_the_expected_radius(n):
    """sigma's radii are pulled to 0.001 * sqrt(n - 1/2): there the mean part of
    the radial term vanishes, leaving only its spread part (batch std
    sqrt(1e-4) for equal radii, against the target sqrt(1/2)). Twice as far,
    the mean part is 50 * (0.001 * sqrt(128 - 1/2))**2 (radii measured in
    units of the n = 128 radius)."""
    x = 1e-4 / 0.5
    spread_only = RADIAL_TERM_GAIN * (x - np.log(x) - 1.0)
    target = 0.001 * isotropic_radius(n)
    assert _sigma_radial_term(n, target) == pytest.approx(spread_only, rel=1e-9)
    mean_part = RADIAL_TERM_GAIN * (0.001 * isotropic_radius(REFERENCE_DIM)) ** 2
    assert _sigma_radial_term(n, 2 * target) - spread_only == pytest.approx(mean_part, rel=1e-6)


def test_mu_last_angle_enters_through_its_spread_only():
    """The mean part of mu's angular term skips mu's last angle: negating the
    second-to-last coordinate of every mu flips the last cosine (and its batch
    mean) and changes no other radius or cosine, so it leaves the regulariser
    as it is, though the pole (cosine 1) is the last angle's target too."""
    n = 6
    reg = HypersphericalRegulariser(n, "full", 5e5).double()
    rng = np.random.default_rng(0)
    mu = torch.from_numpy(rng.normal(size=(32, n)) + np.r_[np.zeros(n - 2), 2.0, 0.0])
    sigma = torch.from_numpy(rng.uniform(0.05, 0.2, size=(32, n)))
    flipped = mu.clone()
    flipped[:, -2] *= -1
    cos, cos_flipped = to_hyperspherical(mu)[1], to_hyperspherical(flipped)[1]
    torch.testing.assert_close(cos_flipped[:, :-1], cos[:, :-1], rtol=0, atol=0)
    assert float(cos[:, -1].mean()) > 0.5  # the flip moves the last mean far
    weights = MeanWeights(first=100.0, tail=5.0)
    a, b = reg(mu, sigma, weights), reg(flipped, sigma, weights)
    for key in a:
        assert float(b[key]) == pytest.approx(float(a[key]), rel=1e-12), key
