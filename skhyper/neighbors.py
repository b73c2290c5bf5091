"""k-nearest-neighbour backends over a bank of latent vectors.

- :class:`ExactKNN`: chunked brute force in torch on the bank's device. Each
  pairwise distance is computed on its own (no matrix-product expansion), in
  the bank's dtype, so results do not depend on how queries are batched.
- :class:`NNDescentKNN`: approximate search with ``pynndescent``, imported
  only when used (its numba compilation costs tens of seconds in a fresh
  process).

Both return ``(distances, indices)`` sorted by increasing distance.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

# Largest bank for which knn_backend="auto" uses exact search. Measured by
# benchmarks/bench_knn_backends.py with as many queries as bank rows (fit scores
# its own rows): once compiled, pynndescent is faster from about 10,000 rows,
# but its first call in a process pays ~24 s of numba compilation and its
# recall@3 is only 0.78-0.85; counting the compile, the two meet near 100,000.
AUTO_EXACT_MAX_BANK = 100_000

# Cap on the number of pairwise distances held at once (per query chunk).
_PAIRS_PER_CHUNK = 4_000_000


class ExactKNN:
    """Exact neighbours by chunked ``torch.cdist`` and a running top-k.

    Parameters
    ----------
    bank : Tensor of shape (n_bank, dim)
    """

    def __init__(self, bank: torch.Tensor) -> None:
        self.bank = bank

    def kneighbors(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        n_bank = self.bank.shape[0]
        if k > n_bank:
            raise ValueError(f"k={k} exceeds the bank size {n_bank}")
        queries = queries.to(device=self.bank.device, dtype=self.bank.dtype)
        q_chunk = max(1, min(queries.shape[0], _PAIRS_PER_CHUNK // max(n_bank, 1)))
        b_chunk = max(k, _PAIRS_PER_CHUNK // q_chunk)
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
        self.index: Any = NNDescent(
            np.ascontiguousarray(bank, dtype=np.float32),
            n_neighbors=max(int(n_neighbors), 30),
            random_state=random_state,
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
        order = np.argsort(dist, axis=1, kind="stable")
        return np.take_along_axis(dist, order, 1), np.take_along_axis(idx, order, 1)
