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
- :class:`FaissKNN`: ``faiss`` indexes, imported only when used: a flat
  index (exact: its candidates are measured again as :class:`ExactKNN`
  measures them, so the distances are the same) or an inverted-file index
  (approximate).

Backends return ``(distances, indices)`` sorted by increasing distance.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
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

BACKENDS = ("auto", "exact", "pynndescent", "faiss", "faiss-ivf")

# Largest bank for which backend="auto" with faiss installed uses faiss's flat
# (exact) index above AUTO_EXACT_MAX_BANK; larger banks get its inverted-file
# index. See benchmarks/results/faiss_backends.md.
AUTO_FAISS_FLAT_MAX_BANK = 300_000

# Extra candidates a flat faiss index returns beyond the k asked for: its
# float32 distances |q|^2 - 2 q.b + |b|^2 may order near-ties differently from
# the per-pair distances the candidates are then ranked by.
_FAISS_MARGIN = 16

# Inverted lists per sqrt(bank rows) of the IVF index, and the lists each query
# visits: on 200k Gaussian rows of dimension 16, recall@4 0.995 (16 probes: 0.86;
# 4 sqrt(n) lists with 64 probes: 0.96), see benchmarks/results/faiss_backends.md.
_IVF_LISTS_PER_ROOT = 1
_IVF_PROBES = 64

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
        # the results are allocated first: small tensors kept between the chunks'
        # large freed distances would pin them in the heap (7.6 GB measured at
        # 200k bank rows x 10k queries when each chunk's top-k was kept in a list)
        n_q = queries.shape[0]
        out_d = torch.empty((n_q, min(k, n_bank)), dtype=self.bank.dtype, device=self.bank.device)
        out_i = torch.empty((n_q, min(k, n_bank)), dtype=torch.int64, device=self.bank.device)
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
            out_d[qs : qs + q_chunk] = best_d
            out_i[qs : qs + q_chunk] = best_i
        return out_d, out_i


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


def faiss_available() -> bool:
    """Whether the ``faiss`` package can be imported (without importing it twice)."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


@contextmanager
def faiss_threads() -> Iterator[None]:
    """faiss's OpenMP threads for one call: torch's count (capped by
    ``cpu_threads`` around scoring and fitting), put back afterwards."""
    import faiss

    previous = faiss.omp_get_max_threads()
    wanted = max(1, torch.get_num_threads())
    if wanted != previous:
        faiss.omp_set_num_threads(wanted)
    try:
        yield
    finally:
        if wanted != previous:
            faiss.omp_set_num_threads(previous)


class FaissKNN:
    """Neighbours with a ``faiss`` index over the bank.

    Parameters
    ----------
    bank : Tensor of shape (n_bank, dim)
    ivf : bool
        False: ``IndexFlatL2``, exact. True: ``IndexIVFFlat`` with
        ``sqrt(n_bank)`` lists (k-means from ``seed``), 64 visited per query.
    seed : int
        Seed of the IVF index's k-means.
    """

    def __init__(self, bank: torch.Tensor, ivf: bool, seed: int) -> None:
        try:
            import faiss
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "knn_backend='faiss' needs the faiss package: pip install -e \".[faiss]\""
            ) from exc
        self.bank = bank.detach().cpu()
        self.ivf, self.seed = bool(ivf), int(seed)
        rows = np.ascontiguousarray(self.bank.numpy(), dtype=np.float32)
        n, dim = rows.shape
        with faiss_threads():
            if self.ivf:
                n_lists = max(1, min(n // 39, int(_IVF_LISTS_PER_ROOT * np.sqrt(n))))
                quantizer = faiss.IndexFlatL2(dim)
                index = faiss.IndexIVFFlat(quantizer, dim, n_lists)
                # faiss's k-means takes a 31-bit seed
                index.cp.seed = int(np.random.SeedSequence(self.seed).generate_state(1)[0] >> 1)
                index.train(rows)
                index.nprobe = min(_IVF_PROBES, n_lists)
            else:
                index = faiss.IndexFlatL2(dim)
            index.add(rows)
        self.index: Any = index
        self._quantizer = quantizer if self.ivf else None  # kept alive with the index

    def kneighbors(self, queries: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
        n_bank = self.bank.shape[0]
        if k > n_bank:
            raise ValueError(f"k={k} exceeds the bank size {n_bank}")
        q = queries.detach().cpu().to(self.bank.dtype)
        wanted = min(n_bank, k + _FAISS_MARGIN)
        with faiss_threads():
            _, idx = self.index.search(np.ascontiguousarray(q.numpy(), dtype=np.float32), wanted)
        idx = torch.from_numpy(np.asarray(idx, dtype=np.int64))
        # an IVF search that visits fewer than `wanted` rows pads with -1
        found = idx >= 0
        picked = self.bank[torch.where(found, idx, 0)]
        # per-pair distances, the very values ExactKNN's cdist gives
        dist = torch.cdist(q[:, None, :], picked, compute_mode="donot_use_mm_for_euclid_dist")
        dist = torch.where(found, dist[:, 0, :], torch.inf).double().numpy()
        idx_np = idx.numpy()
        # by distance, then bank index: ExactKNN's order on ties
        order = np.lexsort((idx_np, dist), axis=1)[:, :k]
        dist, idx_np = np.take_along_axis(dist, order, 1), np.take_along_axis(idx_np, order, 1)
        if not np.all(np.isfinite(dist)):
            raise RuntimeError("the IVF index found fewer than k neighbours of a row")
        return dist, idx_np


def _sorted_candidates(dist: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(dist, axis=1, kind="stable")
    return np.take_along_axis(dist, order, 1), np.take_along_axis(idx, order, 1)


def resolve_backend(backend: str, n_bank: int) -> str:
    """``"auto"`` -> ``"exact"`` up to :data:`AUTO_EXACT_MAX_BANK` rows; above it
    ``"faiss"`` up to :data:`AUTO_FAISS_FLAT_MAX_BANK` rows and ``"faiss-ivf"``
    beyond when faiss is installed, else ``"pynndescent"``."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        if n_bank <= AUTO_EXACT_MAX_BANK:
            return "exact"
        if not faiss_available():
            return "pynndescent"
        return "faiss" if n_bank <= AUTO_FAISS_FLAT_MAX_BANK else "faiss-ivf"
    return backend


@plain_type
class LatentBank:
    """The training rows' latent vectors, queried for mean k-NN distances.

    Parameters
    ----------
    latents : Tensor of shape (n_bank, dim)
        Row i is the latent vector of training row i.
    backend : {"auto", "exact", "pynndescent", "faiss", "faiss-ivf"}
    n_neighbors : int
        The k of the queries (the approximate index is built for k + 1).
    seed : int
        Seed of the approximate index.
    """

    def __init__(self, latents: torch.Tensor, backend: str, n_neighbors: int, seed: int) -> None:
        self.latents = latents
        self.backend = resolve_backend(backend, latents.shape[0])
        self._ann = _index(self.backend, latents, n_neighbors + 1, seed)

    def __len__(self) -> int:
        return int(self.latents.shape[0])

    def _to_plain(self) -> dict[str, Any]:
        ann = self._ann
        index = None
        if isinstance(ann, NNDescentKNN):
            index = (ann.n_neighbors, ann.random_state)
        elif isinstance(ann, FaissKNN):
            index = (0, ann.seed)
        return {"latents": self.latents, "backend": self.backend, "index": index}

    @classmethod
    def _from_plain(cls, state: dict[str, Any]) -> LatentBank:
        # the index is rebuilt (same rows and seed): it has no plain form
        bank = cls.__new__(cls)
        bank.latents, bank.backend = state["latents"], state["backend"]
        index = state["index"]
        bank._ann = None if index is None else _index(bank.backend, bank.latents, *index)
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
        elif isinstance(self._ann, FaissKNN):
            dist, idx = self._ann.kneighbors(queries, k + 1)
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
        if isinstance(self._ann, NNDescentKNN):
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


def _index(
    backend: str, latents: torch.Tensor, n_neighbors: int, seed: int
) -> NNDescentKNN | FaissKNN | None:
    """The search index of a resolved backend (None: exact search in torch)."""
    if backend == "pynndescent":
        return NNDescentKNN(latents.cpu().numpy(), n_neighbors, seed)
    if backend in ("faiss", "faiss-ivf"):
        return FaissKNN(latents, backend == "faiss-ivf", seed)
    return None


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
