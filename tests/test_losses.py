"""The VAE's losses: the hyperspherical regulariser, its angle gains and
targets, and the Gaussian KL (skhyper._vae.losses)."""

import numpy as np
import pytest
import torch

from skhyper import CompVAEDetector
from skhyper._vae.coordinates import isotropic_cos_std, isotropic_radius, to_hyperspherical
from skhyper._vae.losses import REFERENCE_DIM, GaussianKL, HypersphericalRegulariser, angle_gains

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
