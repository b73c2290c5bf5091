"""The latent k-NN search: exact search, chunking, the approximate backend
and leaving training rows out of their own neighbours (skhyper._vae.neighbors)."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone

from skhyper import CompVAEDetector
from skhyper._vae.neighbors import ExactKNN

from conftest import SMALL, blobs

# -- leave-one-out on training rows ----------------------------------------------------


def test_training_rows_are_scored_without_themselves(fitted):
    _, X = fitted
    det = CompVAEDetector(**{**SMALL, "anomaly_score": "knn"}).fit(X)
    mu = det.transform_latent(X)
    d = np.linalg.norm(mu[:, None, :] - mu[None, :, :], axis=2)
    np.fill_diagonal(d, np.inf)
    expected = -np.sort(d, axis=1)[:, : det.n_neighbors].mean(axis=1)
    # the search runs in float32
    np.testing.assert_allclose(det.score_samples(X), expected, rtol=1e-5)
    # a new row is scored against all bank entries
    new = X[:3] + 1e-3
    mu_new = det.transform_latent(new)
    d_new = np.linalg.norm(mu_new[:, None, :] - mu[None, :, :], axis=2)
    np.testing.assert_allclose(
        det.score_samples(new), -np.sort(d_new, axis=1)[:, :3].mean(axis=1), rtol=1e-5
    )


def test_duplicated_training_row_keeps_its_twin():
    X = blobs(n=100)
    X[1] = X[0]
    det = CompVAEDetector(**{**SMALL, "n_neighbors": 1, "anomaly_score": "knn"}).fit(X)
    np.testing.assert_allclose(det.score_samples(X[:2]), 0.0, atol=1e-12)
    assert det.score_samples(X[2:3])[0] < -1e-6


# -- kNN backends ------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(
    n_bank=st.integers(1, 70),
    n_query=st.integers(1, 30),
    k=st.integers(1, 5),
    seed=st.integers(0, 1000),
)
def test_exact_knn_matches_brute_force(n_bank, n_query, k, seed):
    k = min(k, n_bank)
    rng = np.random.RandomState(seed)
    bank, q = rng.normal(size=(n_bank, 3)), rng.normal(size=(n_query, 3))
    d, i = ExactKNN(torch.from_numpy(bank)).kneighbors(torch.from_numpy(q), k)
    full = np.linalg.norm(q[:, None] - bank[None], axis=2)
    np.testing.assert_allclose(d.numpy(), np.sort(full, axis=1)[:, :k], rtol=1e-12)
    np.testing.assert_allclose(np.take_along_axis(full, i.numpy(), 1), d.numpy(), rtol=1e-12)


def test_exact_knn_chunking_does_not_change_results(monkeypatch):
    rng = np.random.RandomState(0)
    bank = torch.from_numpy(rng.normal(size=(500, 4)))
    q = torch.from_numpy(rng.normal(size=(40, 4)))
    d_ref, i_ref = ExactKNN(bank).kneighbors(q, 4)
    monkeypatch.setattr("skhyper._vae.neighbors._PAIRS_PER_CHUNK", 97)
    d, i = ExactKNN(bank).kneighbors(q, 4)
    assert torch.equal(d, d_ref) and torch.equal(i, i_ref)


@pytest.mark.slow  # numba compiles pynndescent in a fresh process: minutes on 2 cores
def test_pynndescent_backend_agrees_with_exact(fitted):
    pytest.importorskip("pynndescent")
    det, X = fitted
    approx = clone(det).set_params(knn_backend="pynndescent").fit(X)
    Q = X[:50] + 0.3
    agree = np.isclose(approx.score_samples(Q), det.score_samples(Q), rtol=1e-9)
    assert agree.mean() > 0.9
    np.testing.assert_allclose(approx.score_samples(X[:20]), det.score_samples(X[:20]), rtol=0.05)
