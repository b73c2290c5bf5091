"""Fixtures and fast parameters shared by the test modules.

Test modules import the constants and helpers below with
``from conftest import ...`` (pytest puts this folder on ``sys.path``); the
fixtures need no import. The fixtures import skhyper when first used, after
``SCIPY_ARRAY_API`` is set.
"""

import os

import numpy as np
import pytest

# lets scikit-learn's estimator checks run their array-API input check
os.environ.setdefault("SCIPY_ARRAY_API", "1")

# the VAEs' estimator checks (fast, as scikit-learn's own INIT_PARAMS)
CHECKS_VAE = dict(latent_dim=4, hidden_layer_sizes=(16,), epochs=3, batch_size=64, random_state=0)

# a small VAE and a small SparKer fit, for the shared-base tests
FAST_VAE = dict(latent_dim=4, hidden_layer_sizes=(16,), epochs=8, batch_size=32)
FAST_SPARKER = dict(n_kernels=4, n_steps=30, n_permutations=5)

# SparKer with enough steps and toys to find a planted bump
SPARKER = dict(n_kernels=4, n_steps=40, n_permutations=9, random_state=0)


def bump_sample(seed, n_data=500, n_ref=2000, d=4, eps=0.03, spread=0.1):
    """A standard-normal reference and data with a small planted Gaussian bump.

    Returns ``(data, reference, labels, bump_centre)``; ``labels`` is 1 on the
    bump's rows (the last ones of ``data``).
    """
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=(n_ref, d))
    n_bump = int(round(eps * n_data))
    mu = np.zeros(d)
    mu[:2] = [1.5, 1.0]
    data = np.vstack(
        [rng.normal(size=(n_data - n_bump, d)), mu + spread * rng.normal(size=(n_bump, d))]
    )
    labels = np.r_[np.zeros(n_data - n_bump), np.ones(n_bump)]
    return data, ref, labels, mu


# -- the CompVAE engine -----------------------------------------------------------------

# a small VAE that fits in a fraction of a second
SMALL = dict(latent_dim=4, hidden_layer_sizes=(32,), epochs=15, batch_size=64, random_state=0)


def blobs(n=300, d=6, seed=0):
    rng = np.random.RandomState(seed)
    centres = rng.normal(scale=3, size=(3, d))
    return centres[rng.randint(3, size=n)] + rng.normal(size=(n, d))


@pytest.fixture(scope="module")
def fitted():
    """A small VAE fitted on ``blobs()``, and those rows."""
    from skhyper import CompVAEDetector

    X = blobs()
    return CompVAEDetector(**SMALL).fit(X), X


@pytest.fixture(scope="module")
def compression_fits():
    """Default-size VAEs under full, first-angle and no compression, on the same rows."""
    from skhyper import CompVAEDetector, VMFDetector

    X = blobs(n=600, d=8, seed=1)
    params = dict(latent_dim=8, random_state=0)
    return X, {
        "full": CompVAEDetector(compression="full", **params).fit(X),
        "first": VMFDetector(**params).fit(X),
        "none": CompVAEDetector(compression="none", **params).fit(X),
    }
