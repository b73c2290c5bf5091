"""The latent k-NN search: exact search, chunking, the approximate backend
and leaving training rows out of their own neighbours (skhyper._vae.neighbors)."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone

from skhyper import CompVAEDetector
from skhyper._vae.neighbors import AUTO_EXACT_MAX_BANK, ExactKNN, TrainingRows, resolve_backend

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


def test_negative_zero_is_the_training_row_with_zero():
    """-0.0 == 0.0: a row differing from a training row only in the sign of a
    zero is that training row, whichever of the two was trained on."""
    X = np.random.default_rng(0).normal(size=(20, 3))
    X[5, 1] = 0.0
    Q = X[[5, 6]].copy()
    Q[0, 1] = -0.0
    assert np.signbit(Q[0, 1]) and not np.signbit(X[5, 1])
    np.testing.assert_array_equal(TrainingRows(X, 0).find(Q), [5, 6])
    np.testing.assert_array_equal(TrainingRows(Q, 0).find(X[[6, 5]]), [1, 0])


def test_training_row_holding_negative_zero_is_scored_without_its_own_entry():
    """Fitted on a row holding -0.0, the same row with 0.0 is that training row:
    scored like it, without its own bank entry."""
    X = blobs(n=100)
    X[0, 0] = -0.0
    det = CompVAEDetector(**{**SMALL, "epochs": 3, "anomaly_score": "knn"}).fit(X)
    positive = X[:1].copy()
    positive[0, 0] = 0.0
    own = det.score_samples(X[:1])
    assert det.score_samples(positive) == own
    # with its own entry (distance 0) among the neighbours it would score higher
    mu = det.transform_latent(X)
    d = np.sort(np.linalg.norm(mu - mu[0], axis=1))
    assert own == pytest.approx(-d[1:4].mean(), rel=1e-5)
    assert own < -d[:3].mean()


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


def test_auto_backend_is_exact_up_to_and_including_100000_rows(monkeypatch):
    from skhyper._vae import neighbors

    assert AUTO_EXACT_MAX_BANK == 100_000
    assert resolve_backend("auto", 100_000) == "exact"
    # without faiss, larger banks go to pynndescent (faiss's choice: test_faiss_backend.py)
    monkeypatch.setattr(neighbors, "faiss_available", lambda: False)
    assert resolve_backend("auto", 100_001) == "pynndescent"
    assert resolve_backend("auto", 10**7) == "pynndescent"


def test_pynndescent_backend_agrees_with_exact(fitted):
    pytest.importorskip("pynndescent")
    det, X = fitted
    approx = clone(det).set_params(knn_backend="pynndescent").fit(X)
    Q = X[:50] + 0.3
    # the same model; exact search runs in float32, the approximate one
    # measures its candidates in float64: equal to float32 round-off where
    # both find the same neighbours
    agree = np.isclose(approx.score_samples(Q), det.score_samples(Q), rtol=1e-5)
    assert agree.mean() > 0.9
    np.testing.assert_allclose(approx.score_samples(X[:20]), det.score_samples(X[:20]), rtol=0.05)


def test_exact_search_memory_does_not_grow_with_the_queries():
    """Kept top-k outputs must not pin each chunk's freed distances (glibc's heap):
    2,000 queries of a 50,000-row bank held 377 MB more than 200 queries did."""
    import subprocess
    import sys

    code = """
import resource, sys, numpy as np, torch
from skhyper._vae.neighbors import ExactKNN
rng = np.random.default_rng(0)
bank = torch.from_numpy(rng.normal(size=(50_000, 16)).astype(np.float32))
queries = torch.from_numpy(rng.normal(size=(2_000, 16)).astype(np.float32))
ExactKNN(bank).kneighbors(queries[:80], 4)  # warm the allocator: one chunk
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
ExactKNN(bank).kneighbors(queries, 4)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1"},
    )
    grown_mib = float(out.stdout.strip().splitlines()[-1])
    # 25 chunks of 80 x 50,000 float32 distances (15 MiB each) would be 380 MiB
    assert grown_mib < 100
