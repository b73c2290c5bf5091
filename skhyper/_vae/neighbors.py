"""k-nearest-neighbour search over a bank of latent vectors.

- :class:`LatentBank`: the one interface the estimators use. It holds the
  training rows' latent vectors, answers mean k-NN distances with a
  training row's own entry left out, and picks the backend.
- :class:`TrainingRows`: recognises training rows among query rows, so a
  training row scored later is also scored without its own entry.
- :class:`ExactKNN`: chunked brute force in torch on the bank's device. Each
  pairwise distance is computed on its own (no matrix-product expansion), in
  the bank's dtype, so results do not depend on how queries are batched.
- :class:`NNDescentKNN`: approximate search with ``pynndescent``, imported
  only when used (its numba compilation costs tens of seconds in a fresh
  process).

Backends return ``(distances, indices)`` sorted by increasing distance.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .._utils.serialization import plain_type

# Largest bank for which backend="auto" uses exact search. Measured by
# benchmarks/bench_knn_backends.py with as many queries as bank rows (fit scores
# its own rows): once compiled, pynndescent is faster from about 10,000 rows,
# but its first call in a process pays ~24 s of numba compilation and its
# recall@3 is only 0.78-0.85; counting the compile, the two meet near 100,000.
AUTO_EXACT_MAX_BANK = 100_000

BACKENDS = ("auto", "exact", "pynndescent")

# Default cap on the number of pairwise distances held at once.
_PAIRS_PER_CHUNK = 4_000_000

# Bank rows whose graph neighbours are measured at once.
_GRAPH_BLOCK = 8192


class ExactKNN:
    """Exact neighbours by chunked ``torch.cdist`` and a running top-k.

    Parameters
    ----------
    bank : Tensor of shape (n_bank, dim)
    """

    def __init__(self, bank: torch.Tensor) -> None:
        self.bank = bank

    def kneighbors(
        self, queries: torch.Tensor, k: int, max_pairs: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n_bank = self.bank.shape[0]
        if k > n_bank:
            raise ValueError(f"k={k} exceeds the bank size {n_bank}")
        pairs = _PAIRS_PER_CHUNK if max_pairs is None else max(int(max_pairs), 1)
        queries = queries.to(device=self.bank.device, dtype=self.bank.dtype)
        q_chunk = max(1, min(queries.shape[0], pairs // max(n_bank, 1)))
        b_chunk = max(k, pairs // q_chunk)
        out_d, out_i = [], []
        for qs in range(0, queries.shape[0], q_chunk):
            q = queries[qs : qs + q_chunk]
            best_d = best_i = None
            for bs in range(0, n_bank, b_chunk):
                d = torch.cdist(
                    q,
                    self.bank[bs : bs + b_chunk],
                    compute_mode="donot_use_mm_for_euclid_dist",
                )
                kk = min(k, d.shape[1])
                d, i = torch.topk(d, kk, dim=1, largest=False, sorted=True)
                i = i + bs
                if best_d is None:
                    best_d, best_i = d, i
                else:
                    cat_d = torch.cat([best_d, d], dim=1)
                    cat_i = torch.cat([best_i, i], dim=1)
                    # stable sort keeps the lower bank index first on ties
                    order = torch.sort(cat_d, dim=1, stable=True).indices[:, :k]
                    best_d = torch.gather(cat_d, 1, order)
                    best_i = torch.gather(cat_i, 1, order)
            out_d.append(best_d)
            out_i.append(best_i)
        return torch.cat(out_d), torch.cat(out_i)


class NNDescentKNN:
    """Approximate neighbours with ``pynndescent.NNDescent``.

    Parameters
    ----------
    bank : ndarray of shape (n_bank, dim)
    n_neighbors : int
        Neighbours per node of the index graph (at least the k queried).
    random_state : int
    """

    def __init__(self, bank: np.ndarray, n_neighbors: int, random_state: int) -> None:
        try:
            from pynndescent import NNDescent
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "knn_backend='pynndescent' needs the pynndescent package: "
                "pip install pynndescent"
            ) from exc
        self.bank = np.asarray(bank, dtype=np.float64)
        self.n_neighbors, self.random_state = int(n_neighbors), int(random_state)
        self.index: Any = NNDescent(
            np.ascontiguousarray(bank, dtype=np.float32),
            n_neighbors=max(int(n_neighbors), 30),
            # pynndescent seeds a RandomState, which takes 32 bits; our seeds have 63
            random_state=int(np.random.SeedSequence(int(random_state)).generate_state(1)[0]),
            n_jobs=1,
        )
        self.index.prepare()

    def kneighbors(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        # a wider search than pynndescent's default (0.1) for better recall
        idx, _ = self.index.query(
            np.ascontiguousarray(queries, dtype=np.float32), k=k, epsilon=0.25
        )
        # exact distances of the returned candidates, in float64
        diff = queries.astype(np.float64)[:, None, :] - self.bank[idx]
        dist = np.sqrt((diff * diff).sum(axis=2))
        return _sorted_candidates(dist, idx)

    def bank_neighbors(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest *other* bank rows of every bank row, from the index graph.

        The graph was built with the index, so this costs O(n k d), not a
        search: the leave-one-out scores of a large training set come from it.
        """
        graph = np.asarray(self.index.neighbor_graph[0])
        n = graph.shape[0]
        out_d, out_i = np.empty((n, k)), np.empty((n, k), dtype=graph.dtype)
        # rows in blocks: the (rows, candidates, dim) differences bound the memory
        for start in range(0, n, _GRAPH_BLOCK):
            idx = graph[start : start + _GRAPH_BLOCK]
            rows = np.arange(start, start + idx.shape[0])[:, None]
            # the graph lists each row itself (at distance 0) and pads with -1
            usable = (idx != rows) & (idx >= 0)
            diff = self.bank[rows, :] - self.bank[np.where(usable, idx, 0)]
            dist = np.where(usable, np.sqrt((diff * diff).sum(axis=2)), np.inf)
            dist, idx = _sorted_candidates(dist, idx)
            block = slice(start, start + len(idx))
            out_d[block], out_i[block] = dist[:, :k], idx[:, :k]
        if not np.all(np.isfinite(out_d)):
            raise RuntimeError("the approximate index found fewer than k neighbours of a row")
        return out_d, out_i


def _sorted_candidates(dist: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(dist, axis=1, kind="stable")
    return np.take_along_axis(dist, order, 1), np.take_along_axis(idx, order, 1)


def resolve_backend(backend: str, n_bank: int) -> str:
    """``"auto"`` -> ``"exact"`` up to :data:`AUTO_EXACT_MAX_BANK` rows, else ``"pynndescent"``."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        return "exact" if n_bank <= AUTO_EXACT_MAX_BANK else "pynndescent"
    return backend


@plain_type
class LatentBank:
    """The training rows' latent vectors, queried for mean k-NN distances.

    Parameters
    ----------
    latents : Tensor of shape (n_bank, dim)
        Row i is the latent vector of training row i.
    backend : {"auto", "exact", "pynndescent"}
    n_neighbors : int
        The k of the queries (the approximate index is built for k + 1).
    seed : int
        Seed of the approximate index.
    """

    def __init__(self, latents: torch.Tensor, backend: str, n_neighbors: int, seed: int) -> None:
        self.latents = latents
        self.backend = resolve_backend(backend, latents.shape[0])
        self._ann = (
            NNDescentKNN(latents.cpu().numpy(), n_neighbors + 1, seed)
            if self.backend == "pynndescent"
            else None
        )

    def __len__(self) -> int:
        return int(self.latents.shape[0])

    def _to_plain(self) -> dict[str, Any]:
        ann = self._ann
        return {
            "latents": self.latents,
            "backend": self.backend,
            "index": None if ann is None else (ann.n_neighbors, ann.random_state),
        }

    @classmethod
    def _from_plain(cls, state: dict[str, Any]) -> LatentBank:
        # the approximate index is rebuilt (same rows and seed): it has no plain form
        bank = cls.__new__(cls)
        bank.latents, bank.backend = state["latents"], state["backend"]
        index = state["index"]
        bank._ann = (
            None
            if index is None
            else NNDescentKNN(bank.latents.cpu().numpy(), index[0], index[1])
        )
        return bank

    def mean_distance(
        self,
        queries: torch.Tensor,
        k: int,
        own: np.ndarray,
        max_pairs: int | None = None,
    ) -> np.ndarray:
        """Mean distance to the ``k`` nearest bank rows, float64, shape (n_queries,).

        ``own[i]`` is the bank index of query i's own entry, left out of its
        neighbours, or -1 for a query that is not a bank row.
        """
        if self._ann is None:
            dist_t, idx_t = ExactKNN(self.latents).kneighbors(queries, k + 1, max_pairs)
            dist, idx = dist_t.cpu().numpy().astype(np.float64), idx_t.cpu().numpy()
        else:
            dist, idx = self._ann.kneighbors(queries.cpu().numpy(), k + 1)
        is_own = idx == np.asarray(own)[:, None]
        # drop the row's own entry when listed, otherwise the (k+1)-th neighbour
        drop = np.where(is_own.any(axis=1), is_own.argmax(axis=1), k)
        keep = np.ones_like(is_own)
        keep[np.arange(len(drop)), drop] = False
        return dist[keep].reshape(-1, k).mean(axis=1)

    def leave_one_out_distance(
        self,
        k: int,
        batch_size: int,
        max_pairs: int | None = None,
        on_batch: Callable[[], object] | None = None,
    ) -> np.ndarray:
        """:meth:`mean_distance` of every bank row with its own entry left out.

        With the approximate backend the neighbours come from the index's own
        graph (built with it, each row's nearest other rows), not from n new
        queries.
        """
        if self._ann is not None:
            out = self._ann.bank_neighbors(k)[0].mean(axis=1)
            if on_batch is not None:
                on_batch()
            return out
        n = len(self)
        out = np.empty(n, dtype=np.float64)
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            out[start:stop] = self.mean_distance(
                self.latents[start:stop], k, np.arange(start, stop), max_pairs
            )
            if on_batch is not None:
                on_batch()
        return out


def _mix64(z: np.ndarray) -> np.ndarray:
    """The SplitMix64 finaliser, element-wise: a bijection of uint64 that
    spreads every input bit over the whole word (arithmetic wraps mod 2**64)."""
    z = z ^ (z >> np.uint64(30))
    z = z * np.uint64(0xBF58476D1CE4E5B9)
    z = z ^ (z >> np.uint64(27))
    z = z * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@plain_type
class TrainingRows:
    """Recognises training rows by the bits of their float64 values.

    Each row gets a 64-bit key: a random odd-weighted sum of its float64
    words, each word first passed through a bijective bit mixer. Without the
    mixer, data with short mantissas (integers, pixels k/255) have their
    variation in a word's top bits only, and the key would keep as few as 16
    bits of it.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_features)
    seed : int
        Seed of the key multipliers.
    """

    def __init__(self, X: np.ndarray, seed: int) -> None:
        self.multipliers = np.random.default_rng(seed).integers(
            1, np.iinfo(np.int64).max, size=X.shape[1], dtype=np.int64
        ).astype(np.uint64) | np.uint64(1)
        keys = self._keys(X)
        self.order = np.argsort(keys, kind="stable")
        self.sorted_keys = keys[self.order]

    def _keys(self, X: np.ndarray) -> np.ndarray:
        X64 = np.ascontiguousarray(X, dtype=np.float64) + 0.0  # -0.0 -> 0.0
        return (_mix64(X64.view(np.uint64)) * self.multipliers).sum(axis=1, dtype=np.uint64)

    def find(self, X: np.ndarray) -> np.ndarray:
        """Training index of each row of X that is a training row, else -1."""
        keys = self._keys(X)
        pos = np.searchsorted(self.sorted_keys, keys)
        pos = np.minimum(pos, len(self.sorted_keys) - 1)
        hit = self.sorted_keys[pos] == keys
        return np.where(hit, self.order[pos], -1)
