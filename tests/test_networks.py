"""The VAE's networks: sampling, the deterministic reconstruction and the
conv nets (skhyper._vae.networks)."""

import numpy as np
import torch
from sklearn.datasets import load_digits

from skhyper import CompVAEDetector

from conftest import SMALL, blobs


def test_training_forward_pass_samples_the_latent(fitted):
    det, X = fitted
    model = det.model_
    x = torch.from_numpy(det.transform_.transform(X[:20]))
    gen = torch.Generator().manual_seed(0)
    mu, sigma = model.encode(x)
    a, b = model(x, gen)[2], model(x, gen)[2]
    assert not torch.equal(a, b)  # sampling noise enters the forward pass
    # and it is sigma-sized noise around the projected mean
    z = model.sample(mu, sigma, gen)
    proj = np.sqrt(model.latent_dim) * mu / torch.linalg.vector_norm(mu, dim=1, keepdim=True)
    assert 0 < float((z - proj).abs().max()) < 10 * float(sigma.max())
    # the deterministic reconstruction decodes the mean's point on the sphere
    torch.testing.assert_close(model.decode_mean(mu), model.decoder(proj))


def test_gaussian_vae_keeps_its_sample_off_the_sphere():
    det = CompVAEDetector(**{**SMALL, "compression": "gaussian"}).fit(blobs())
    assert not det.model_.spherical and "kl" in det.history_
    assert set(det.history_["beta"]) == {1.0}
    mu = torch.ones(3, 4) * torch.tensor([[0.1], [1.0], [3.0]])
    z = det.model_.sample(mu, torch.full_like(mu, 1e-9), torch.Generator().manual_seed(0))
    torch.testing.assert_close(z, mu)  # a spherical VAE would give radius 2 for all three


# -- image mode ------------------------------------------------------------------------------


def test_conv_image_mode_is_rowwise_in_eval_mode():
    X, y = load_digits(return_X_y=True)
    X = X[:200] / 16.0
    det = CompVAEDetector(
        image_shape=(1, 8, 8), conv_channels=(16, 32, 64), latent_dim=8, epochs=2, batch_size=64,
        random_state=0,
    )
    det.fit(X)
    assert det.model_.decoder.sigmoid  # data in [0, 1]
    assert not det.model_.training
    full = det.score_samples(X[:50])
    # float32 conv inference runs every chunk at one size: a row's score does
    # not depend on the rows scored with it, to the bit
    np.testing.assert_array_equal(det.score_samples(X[10:20]), full[10:20])
    np.testing.assert_array_equal(det.score_samples(X[7:8]), full[7:8])
    n_params = sum(p.numel() for p in det.model_.parameters())
    assert 50_000 < n_params < 1_000_000
