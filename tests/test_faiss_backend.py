"""knn_backend="faiss" (flat index, exact) and "faiss-ivf" (approximate):
the same scores as exact search, recall, persistence, the choice of "auto"
and faiss's OpenMP threads (skhyper._vae.neighbors.FaissKNN)."""

import pickle

import numpy as np
import pytest
import torch

from skhyper import CompVAEDetector
from skhyper._vae import neighbors
from skhyper._vae.neighbors import (
    AUTO_EXACT_MAX_BANK,
    AUTO_FAISS_FLAT_MAX_BANK,
    ExactKNN,
    FaissKNN,
    resolve_backend,
)

from conftest import SMALL, blobs

faiss = pytest.importorskip("faiss")


def test_flat_index_gives_exact_search_distances_and_order():
    rng = np.random.default_rng(0)
    bank = torch.from_numpy(rng.normal(size=(3000, 8)).astype(np.float32))
    bank[10:20] = bank[0]  # eleven rows at one point: ties
    queries = torch.cat([torch.from_numpy(rng.normal(size=(200, 8)).astype(np.float32)), bank[:5]])
    d_ref, i_ref = ExactKNN(bank).kneighbors(queries, 6)
    d, i = FaissKNN(bank, ivf=False, seed=0).kneighbors(queries, 6)
    np.testing.assert_array_equal(d, d_ref.double().numpy())
    np.testing.assert_array_equal(i[:200], i_ref[:200].numpy())
    # among tied rows any may come first (the scores use the distances); faiss's
    # order is the lower bank index first
    assert set(i[200].tolist()) <= {0, *range(10, 20)}
    np.testing.assert_array_equal(i[200], [0, 10, 11, 12, 13, 14])


def test_faiss_scores_equal_exact_scores():
    X = blobs(n=400)
    exact = CompVAEDetector(**{**SMALL, "knn_backend": "exact"}).fit(X)
    flat = CompVAEDetector(**{**SMALL, "knn_backend": "faiss"}).fit(X)
    assert flat._banks[0].backend == "faiss"
    np.testing.assert_array_equal(flat.training_scores_, exact.training_scores_)
    Q = np.vstack([X[:50] + 0.3, X[:10]])
    for name in ("knn", "combined"):
        np.testing.assert_array_equal(
            flat.score_variants(Q, (name,))[name], exact.score_variants(Q, (name,))[name]
        )


def test_ivf_finds_most_neighbours_and_measures_them_exactly():
    rng = np.random.default_rng(1)
    bank = torch.from_numpy(rng.normal(size=(20_000, 8)).astype(np.float32))
    queries = torch.from_numpy(rng.normal(size=(500, 8)).astype(np.float32))
    ivf = FaissKNN(bank, ivf=True, seed=0)
    assert ivf.index.nlist == int(np.sqrt(20_000)) and ivf.index.nprobe == 64
    d, i = ivf.kneighbors(queries, 4)
    _, i_ref = ExactKNN(bank).kneighbors(queries, 4)
    recall = np.mean([len(set(a) & set(b)) / 4 for a, b in zip(i, i_ref.numpy())])
    assert recall > 0.95
    # the returned neighbours' distances are the exact per-pair ones, sorted
    exact = torch.cdist(queries[:, None, :], bank[torch.from_numpy(i)],
                        compute_mode="donot_use_mm_for_euclid_dist")[:, 0, :]
    np.testing.assert_array_equal(d, exact.double().numpy())
    assert np.all(np.diff(d, axis=1) >= 0)


def test_ivf_index_is_reproducible_from_its_seed():
    rng = np.random.default_rng(2)
    bank = torch.from_numpy(rng.normal(size=(5000, 6)).astype(np.float32))
    q = torch.from_numpy(rng.normal(size=(300, 6)).astype(np.float32))
    a = FaissKNN(bank, ivf=True, seed=3).kneighbors(q, 3)
    b = FaissKNN(bank, ivf=True, seed=3).kneighbors(q, 3)
    np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize("backend", ["faiss", "faiss-ivf"])
def test_pickled_faiss_bank_scores_the_same(backend):
    X = blobs(n=300)
    det = CompVAEDetector(**{**SMALL, "knn_backend": backend}).fit(X)
    Q = X[:40] + 0.2
    again = pickle.loads(pickle.dumps(det))
    assert again._banks[0].backend == backend
    np.testing.assert_array_equal(again.score_samples(Q), det.score_samples(Q))


@pytest.mark.parametrize("backend", ["faiss", "faiss-ivf"])
def test_model_file_keeps_the_faiss_backend(backend, tmp_path):
    from skhyper import persistence

    X = blobs(n=300)
    det = CompVAEDetector(**{**SMALL, "knn_backend": backend}).fit(X)
    persistence.save(det, tmp_path / "model.skhyper")
    again = persistence.load(tmp_path / "model.skhyper")
    assert again._banks[0].backend == backend
    Q = X[:40] + 0.2
    np.testing.assert_array_equal(again.score_samples(Q), det.score_samples(Q))


def test_auto_picks_faiss_for_large_banks(monkeypatch):
    assert AUTO_FAISS_FLAT_MAX_BANK == 300_000
    monkeypatch.setattr(neighbors, "faiss_available", lambda: True)
    assert resolve_backend("auto", AUTO_EXACT_MAX_BANK) == "exact"
    assert resolve_backend("auto", AUTO_EXACT_MAX_BANK + 1) == "faiss"
    assert resolve_backend("auto", AUTO_FAISS_FLAT_MAX_BANK) == "faiss"
    assert resolve_backend("auto", AUTO_FAISS_FLAT_MAX_BANK + 1) == "faiss-ivf"
    for backend in ("exact", "pynndescent", "faiss", "faiss-ivf"):
        assert resolve_backend(backend, 10) == backend
    with pytest.raises(ValueError, match="backend must be one of"):
        resolve_backend("annoy", 10)


def test_faiss_available_says_whether_faiss_imports(monkeypatch):
    assert neighbors.faiss_available()
    import builtins

    real_import = builtins.__import__

    def no_faiss(name, *args, **kwargs):
        if name == "faiss":
            raise ImportError("no faiss here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_faiss)
    assert not neighbors.faiss_available()
    assert resolve_backend("auto", AUTO_EXACT_MAX_BANK + 1) == "pynndescent"


def test_faiss_threads_follow_torch_and_are_put_back(monkeypatch):
    calls = []
    monkeypatch.setattr(faiss, "omp_get_max_threads", lambda: 7)
    monkeypatch.setattr(faiss, "omp_set_num_threads", calls.append)
    bank = torch.from_numpy(np.random.default_rng(0).normal(size=(500, 4)).astype(np.float32))
    FaissKNN(bank, ivf=False, seed=0).kneighbors(bank[:5], 2)
    wanted = torch.get_num_threads()
    # each faiss call runs on torch's (capped) count and restores faiss's own
    assert calls == [wanted, 7, wanted, 7]


def test_fitting_and_scoring_leave_thread_settings_alone():
    before = (torch.get_num_threads(), faiss.omp_get_max_threads())
    X = blobs(n=200)
    CompVAEDetector(**{**SMALL, "knn_backend": "faiss-ivf"}).fit(X).score_samples(X[:20])
    assert (torch.get_num_threads(), faiss.omp_get_max_threads()) == before


def test_k_larger_than_the_bank_is_refused():
    bank = torch.zeros((3, 2))
    with pytest.raises(ValueError, match="exceeds the bank size 3"):
        FaissKNN(bank, ivf=False, seed=0).kneighbors(bank, 4)
