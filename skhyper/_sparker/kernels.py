"""Sparse ensembles of competing Gaussian kernels, batched over toys.

The model (Grosso et al. 2025, "SparKer") learns a log density ratio with M
local kernels sharing one isotropic width sigma:

    l_k(x) = -||x - mu_k||^2 / (2 sigma^2)
    f(x)   = sum_k a_k softmax_k(l(x)) exp(l_k(x))
           = sum_k a_k exp(2 l_k(x) - logsumexp_j l_j(x))

evaluated in log space so that it stays finite in thousands of dimensions.
Every parameter carries a leading *toy* dimension T: T independent problems
(the observed split, permutation or reference toys, restarts) share the rows
of one pooled sample and differ only in per-row data / reference weights, so
they train as one tensor program. Nothing here knows about scikit-learn.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .._utils.serialization import plain_module

LOG_FLOOR = -40.0


def _augment(X: torch.Tensor) -> torch.Tensor:
    """Rows ``[x, 1, ||x||^2]`` so one matmul yields the log kernels."""
    ones = torch.ones(X.shape[0], 1, dtype=X.dtype, device=X.device)
    return torch.cat([X, ones, (X * X).sum(1, keepdim=True)], dim=1)


def _augment_centers(centers: torch.Tensor, width: float) -> torch.Tensor:
    """Columns matching :func:`_augment`: ``X_aug @ result^T == l``."""
    inv = 1.0 / (width * width)
    mu2 = (centers * centers).sum(-1, keepdim=True)
    half = torch.full_like(mu2, -0.5 * inv)
    return torch.cat([centers * inv, -0.5 * inv * mu2, half], dim=-1)


def log_kernels(X: torch.Tensor, centers: torch.Tensor, width: float) -> torch.Tensor:
    """Exact ``l`` of shape (T, N, M) from explicit differences (no cancellation).

    Used for scoring, where a row's value must not depend on the other rows.
    """
    diff = X.unsqueeze(0).unsqueeze(2) - centers.unsqueeze(1)
    return -(diff * diff).sum(-1) / (2.0 * width * width)


# rows per block of the gradient's row sums (see _rows_product)
_ROW_BLOCK = 64
# the loss's (row, kernel x toy) arrays are processed in chunks of about this
# many numbers (4 MiB of float32): larger ones spill out of the CPU's cache,
# and each of the dozen passes over them then waits on memory
_CHUNK_NUMBERS = 2**20


def _rows_product(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a.T @ b`` summed over rows in fixed blocks, whatever the thread count.

    A plain matrix product over thousands of rows lets the BLAS split the
    row sum between threads, so its last bits depend on how many threads
    run; a fit is chaotic enough that those bits change the fitted
    statistic. Here each block of ``_ROW_BLOCK`` rows is one small product
    and the blocks are summed along a batch dimension, both independent of
    the thread count. ``a`` is the narrow operand (its blocks are copied
    transposed); ``b``, the wide one, must be contiguous (its blocks are
    views).
    """
    n = a.shape[0]
    full = n - n % _ROW_BLOCK
    out = torch.zeros(a.shape[1], b.shape[1], dtype=a.dtype, device=a.device)
    if full:
        blocks_a = a[:full].reshape(-1, _ROW_BLOCK, a.shape[1]).transpose(1, 2)
        blocks_b = b[:full].view(-1, _ROW_BLOCK, b.shape[1])
        out += torch.bmm(blocks_a, blocks_b).sum(0)
    if full < n:
        out += a[full:].T @ b[full:]
    return out


@plain_module(lambda config: KernelEnsemble(torch.zeros(config["shape"])))
class KernelEnsemble(nn.Module):
    """T independent ensembles of M kernels in d dimensions.

    Parameters
    ----------
    centers : Tensor of shape (T, M, d)
        Initial centres.
    amplitudes : Tensor of shape (T, M), optional
        Initial amplitudes (zeros by default).
    """

    def __init__(
        self, centers: torch.Tensor, amplitudes: torch.Tensor | None = None
    ) -> None:
        super().__init__()
        self.centers = nn.Parameter(centers.detach().clone())
        if amplitudes is None:
            amplitudes = torch.zeros(centers.shape[:2], dtype=centers.dtype)
        self.amplitudes = nn.Parameter(
            amplitudes.detach().clone().to(centers.device, centers.dtype)
        )

    @classmethod
    def single(cls, centers: torch.Tensor, amplitudes: torch.Tensor) -> KernelEnsemble:
        """One ensemble (T = 1) of centres (M, d) and amplitudes (M,)."""
        return cls(centers.unsqueeze(0), amplitudes.unsqueeze(0))

    @property
    def config(self) -> dict:
        """What a saved ensemble is rebuilt from (its weights aside)."""
        return {"shape": tuple(int(s) for s in self.centers.shape)}

    @property
    def n_toys(self) -> int:
        return int(self.centers.shape[0])

    def _check_single(self) -> None:
        if self.n_toys != 1:
            raise ValueError(f"this ensemble holds {self.n_toys} toys, not a single one")

    def single_parameters(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Centres (M, d) and amplitudes (M,) of a single ensemble (see :meth:`single`)."""
        self._check_single()
        return self.centers[0], self.amplitudes[0]

    def single_contributions(self, X: torch.Tensor, width: float) -> torch.Tensor:
        """Each kernel's term of f with its amplitude, for a single ensemble: (N, M).

        ``a_k softmax_k(l) exp(l_k)``; a row's terms sum to its f.
        """
        self._check_single()
        return (self.terms(X, width) * self.amplitudes.unsqueeze(1))[0]

    def terms(self, X: torch.Tensor, width: float) -> torch.Tensor:
        """Each kernel's term of f before its amplitude, ``softmax_k(l) exp(l_k)``:
        shape (T, N, M).

        A row so far from every centre that all its squared distances
        overflow (``l = -inf``) gets zero terms, the limit of f far away,
        rather than ``-inf - (-inf) = NaN``.
        """
        ell = log_kernels(X, self.centers, width)
        lse = torch.logsumexp(ell, dim=-1, keepdim=True)
        lse = torch.where(torch.isfinite(lse), lse, torch.zeros_like(lse))
        return torch.exp(2.0 * ell - lse)

    def forward(self, X: torch.Tensor, width: float) -> torch.Tensor:
        """f for every toy and row: shape (T, N). Differentiable (autograd)."""
        return (self.terms(X, width) * self.amplitudes.unsqueeze(1)).sum(-1)

    @torch.no_grad()
    def loss_and_grad(
        self,
        X_aug: torch.Tensor,
        data_rows: torch.Tensor,
        ref_rows: torch.Tensor,
        width: float,
        chunk_size: int,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """NP loss per toy and its exact gradient, for all toys at once.

        ``data_rows`` and ``ref_rows`` (N, T) hold each row's weight in each
        toy, row-major; the reference weights are already multiplied by the
        toy's ratio N_D / N_R (see :func:`row_weights`), so that
        ``L_t = sum_i ref_rows[i,t] (e^f - 1) - sum_i data_rows[i,t] f``.
        The gradient is written out by hand (it is short) so that rows can be
        processed in chunks without autograd keeping every chunk alive: at
        most ``chunk_size`` rows, fewer when the toys are many (see
        :data:`_CHUNK_NUMBERS`).

        Returns ``(loss (T,), grad_centers (T, M, d), grad_amplitudes (T, M))``.
        """
        a = self.amplitudes
        mu = self.centers
        T, M, d = mu.shape
        # one GEMM gives every toy's log kernels, laid out (row, kernel, toy):
        # the per-(row, toy) factors then broadcast over a middle dimension
        # and the sums over kernels add M contiguous slabs, both far cheaper
        # on the CPU than with the M kernels innermost
        mu_aug = _augment_centers(mu, width).transpose(0, 1).reshape(M * T, d + 2).T.contiguous()
        a_kt = a.T.contiguous()  # (M, T)
        loss = torch.zeros(T, dtype=torch.float64, device=mu.device)
        # row sums of c g [x, 1] and of c f p [x, 1], shape (d + 1, M * T)
        cg_x = torch.zeros(d + 1, M * T, dtype=mu.dtype, device=mu.device)
        cfp_x = torch.zeros_like(cg_x)
        rows = max(_ROW_BLOCK, _CHUNK_NUMBERS // (M * T) // _ROW_BLOCK * _ROW_BLOCK)
        chunk_size = min(chunk_size, rows)
        for start in range(0, X_aug.shape[0], chunk_size):
            sl = slice(start, start + chunk_size)
            xa = X_aug[sl]
            n = xa.shape[0]
            # the floor keeps exp() out of float32 denormals (very slow on
            # CPU); e^-40 is far below anything that moves the loss, and its
            # square still a normal float32. k = e^l, p = k / sum k, and
            # g = p k = exp(2 l - logsumexp l), without a logsumexp
            k = torch.matmul(xa, mu_aug).clamp_(LOG_FLOOR, 0.0).exp_().view(n, M, T)
            p = k * k.sum(1, keepdim=True).reciprocal_()
            g = k.mul_(p)
            f = g[:, 0] * a_kt[0]
            for j in range(1, M):
                f.addcmul_(g[:, j], a_kt[j])
            wd, wr = data_rows[sl], ref_rows[sl]
            ef = torch.exp(f)
            loss += (wr * (ef - 1.0) - wd * f).sum(0, dtype=torch.float64)
            c = wr * ef - wd  # dL/df, (n, T)
            x1 = xa[:, : d + 1]
            cg_x += _rows_product(x1, g.mul_(c.unsqueeze(1)).view(n, M * T))
            cfp_x += _rows_product(x1, p.mul_((c * f).unsqueeze(1)).view(n, M * T))
        # dL/dl_j = c (2 a_j g_j - f p_j); the ones column gives its row sum
        h = cg_x * (2.0 * a_kt.reshape(1, M * T)) - cfp_x
        hx = h[:d].T.reshape(M, T, d).transpose(0, 1)
        hsum = h[d].view(M, T).T
        inv = 1.0 / (width * width)
        grad_mu = (hx - hsum.unsqueeze(-1) * mu) * inv
        return loss, grad_mu, cg_x[d].view(M, T).T.contiguous()


def row_weights(
    w_data: torch.Tensor, w_ref: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Toys' (T, N) data and reference weights as the row-major (N, T) pair
    :meth:`KernelEnsemble.loss_and_grad` takes, the reference's scaled by
    each toy's ratio ``sum(w_data) / sum(w_ref)``."""
    ratio = w_data.sum(1, keepdim=True) / w_ref.sum(1, keepdim=True)
    return w_data.T.contiguous(), (w_ref * ratio).T.contiguous()


@torch.no_grad()
def value_histogram(
    X: torch.Tensor,
    centers: torch.Tensor,
    amplitudes: torch.Tensor,
    width: float,
    weights: torch.Tensor,
    levels: torch.Tensor,
    chunk_size: int,
) -> torch.Tensor:
    """Weighted histogram of f of each of T ensembles over the rows: (T, G + 1).

    ``centers`` (T, M, d) and ``amplitudes`` (T, M) are T fitted ensembles
    sharing the rows ``X`` (N, d); row i counts with ``weights[t, i]`` for
    ensemble t (e.g. its data weights). Bin j holds the rows with
    ``levels[j - 1] <= f < levels[j]`` (G increasing levels). f is computed
    like the training loss, one matrix product per chunk of rows.
    """
    T, M, d = centers.shape
    mu_aug = _augment_centers(centers, width).reshape(T * M, d + 2).T.contiguous()
    X_aug = _augment(X)
    hist = torch.zeros(T, levels.numel() + 1, dtype=torch.float64, device=X.device)
    for start in range(0, X.shape[0], chunk_size):
        sl = slice(start, start + chunk_size)
        n = X_aug[sl].shape[0]
        ell = torch.matmul(X_aug[sl], mu_aug).clamp_(LOG_FLOOR, 0.0).view(n, T, M)
        lse = torch.logsumexp(ell, dim=-1, keepdim=True)
        f = (torch.exp(2.0 * ell - lse) * amplitudes).sum(-1).T.contiguous()  # (T, n)
        bins = torch.bucketize(f, levels.to(f.dtype), right=True)
        hist.scatter_add_(1, bins, weights[:, sl].double())
    return hist


def weighted_draw(weights: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """One index per row of ``weights`` (T, N), drawn with probability ~ weight.

    ``uniforms`` (T,) in [0, 1) are the draws' randomness: each toy brings
    its own, from its own generator, so a toy's draw does not depend on the
    toys it shares a call with (a batched ``torch.multinomial`` would tie
    them to one generator).
    """
    cdf = torch.cumsum(weights.double(), dim=1)
    target = uniforms.double().unsqueeze(1) * cdf[:, -1:]
    idx = torch.searchsorted(cdf, target, right=True).squeeze(1)
    return idx.clamp_(max=weights.shape[1] - 1)


def kmeans_plus_plus(
    X: torch.Tensor,
    weights: torch.Tensor,
    uniforms: torch.Tensor,
    first: torch.Tensor | None = None,
) -> torch.Tensor:
    """Weighted k-means++ seeding for every toy at once.

    ``weights`` has shape (T, N) (a toy's data weights); ``uniforms`` (T, M)
    are each toy's draws in [0, 1), one per kernel (see :func:`weighted_draw`).
    Returns (T, M, d). ``first`` (T,) fixes each toy's first centre (default:
    drawn ~ weights).
    """
    T, n_kernels = uniforms.shape
    x2 = (X * X).sum(1)
    idx = weighted_draw(weights, uniforms[:, 0]) if first is None else first
    chosen = [X[idx]]
    dmin = (
        x2.unsqueeze(0) - 2.0 * chosen[0] @ X.T + (chosen[0] ** 2).sum(1, keepdim=True)
    ).clamp_min_(0.0)
    for j in range(1, n_kernels):
        prob = weights * dmin
        # toys whose data are all covered already fall back to the weights
        empty = prob.sum(1, keepdim=True) <= 0
        prob = torch.where(empty, weights, prob)
        c = X[weighted_draw(prob, uniforms[:, j])]
        chosen.append(c)
        dist = (x2.unsqueeze(0) - 2.0 * c @ X.T + (c * c).sum(1, keepdim=True)).clamp_min_(0.0)
        dmin = torch.minimum(dmin, dist)
    return torch.stack(chosen, dim=1).reshape(T, n_kernels, X.shape[1])


def pooled_neighbours(
    X: torch.Tensor, weights: torch.Tensor, n_candidates: int, n_neighbours: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Candidate rows and their nearest rows in X, themselves included.

    Up to ``n_candidates`` rows are drawn with probability ~ ``weights``
    (N,) without replacement; for each, the ``n_neighbours`` nearest rows
    (Euclidean; the candidate is its own nearest). Nothing here depends on
    which rows are data, so one graph serves the observed split and every
    toy. Returns the candidates' indices (C,), their neighbours' indices
    (C, k) and squared distances (C, k).
    """
    n_c = int(min(n_candidates, int((weights > 0).sum())))
    cand = torch.multinomial(weights, n_c, replacement=False, generator=generator)
    k = int(min(n_neighbours, X.shape[0]))
    x2 = (X * X).sum(1)
    idx, dist = [], []
    # candidates per block, so that a block's distances stay near 2**22 numbers
    chunk_size = max(1, 2**22 // X.shape[0])
    for start in range(0, n_c, chunk_size):
        c = cand[start : start + chunk_size]
        d2 = (x2[c, None] - 2.0 * X[c] @ X.T + x2[None, :]).clamp_min_(0.0)
        d2[torch.arange(len(c), device=X.device), c] = 0.0
        near = torch.topk(d2, k, dim=1, largest=False)
        idx.append(near.indices)
        dist.append(near.values)
    return cand, torch.cat(idx), torch.cat(dist)


def excess_seeding(
    X: torch.Tensor,
    w_data: torch.Tensor,
    w_ref: torch.Tensor,
    candidates: torch.Tensor,
    neighbours: torch.Tensor,
    sq_distances: torch.Tensor,
    width: float,
    uniforms: torch.Tensor,
) -> torch.Tensor:
    """k-means++ seeding on the candidate rows, by the excess a kernel there would explain.

    A kernel of ``width`` centred on candidate c with amplitude zero has the
    loss gradient ``-sum_j (w_data[j] - ratio * w_ref[j]) k(x_c, x_j)``
    (ratio = the toy's N_D / N_R): its *excess*, here summed over c's
    nearest rows. Toy t seeds its first kernel on the candidate of largest
    excess and the others with weight ~ excess**2 (k-means++'s distance
    factor spreading them); candidates are pooled rows, data or reference
    alike, since a centre need not sit on a data row. A toy with no
    positive excess anywhere seeds by plain k-means++ on its data weights
    over the candidates. In high dimension a kernel cannot travel far
    during training (a centre moves by about the learning rate per
    coordinate and step), so it must start near an over-density to find it.
    ``uniforms`` (T, M) are each toy's draws (see :func:`kmeans_plus_plus`).
    Returns (T, M, d).
    """
    ratio = w_data.sum(1, keepdim=True) / w_ref.sum(1, keepdim=True)  # (T, 1)
    k = torch.exp(-sq_distances / (2.0 * width * width))  # (C, k)
    net = w_data - ratio * w_ref  # (T, N)
    excess = (net[:, neighbours] * k).sum(-1).clamp_min(0.0)  # (T, C)
    seed_w = excess * excess
    first = seed_w.argmax(1)
    none = seed_w.sum(1, keepdim=True) <= 0
    if bool(none.any()):
        fallback = w_data[:, candidates]
        # not even a data row among the candidates: any candidate will do
        fallback = torch.where(fallback.sum(1, keepdim=True) > 0, fallback, 1.0)
        seed_w = torch.where(none, fallback, seed_w)
        first = torch.where(none.squeeze(1), weighted_draw(seed_w, uniforms[:, 0]), first)
    return kmeans_plus_plus(X[candidates], seed_w, uniforms, first=first)


def random_rows(X: torch.Tensor, weights: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """The plain start: centres at M rows drawn with probability ~ weight
    (with replacement; ``uniforms`` (T, M), see :func:`weighted_draw`)."""
    idx = torch.stack(
        [weighted_draw(weights, uniforms[:, j]) for j in range(uniforms.shape[1])], dim=1
    )
    return X[idx]


def held_widths(width_end: float | Sequence[float], n_steps: int) -> np.ndarray:
    """``width_end`` as distinct held widths, broad to narrow, checked.

    Raises a ``ValueError`` naming the problem for an empty, non-positive or
    non-finite ``width_end``, or fewer steps than widths.
    """
    try:
        values = np.atleast_1d(np.asarray(width_end, dtype=object))
        # a bool is an int, but True is no width
        is_bool = any(isinstance(v, (bool, np.bool_)) for v in values.ravel())
        ends = np.empty(0) if is_bool else values.astype(np.float64)
    except (TypeError, ValueError):
        ends = np.empty(0)
    if ends.ndim != 1 or ends.size == 0 or not np.all(np.isfinite(ends) & (ends > 0)):
        raise ValueError(
            "width_end must be a positive number or a non-empty sequence of "
            f"positive numbers; got {width_end!r}."
        )
    ends = np.unique(ends)[::-1]
    if n_steps < ends.size:
        raise ValueError(
            f"n_steps={n_steps} is too few for {ends.size} held widths "
            "(width_end): each needs at least one step."
        )
    return ends


def width_schedule(
    start: float, ends: float | Sequence[float], n_steps: int, anneal_fraction: float
) -> tuple[np.ndarray, np.ndarray]:
    """Annealing from ``start`` down to each held width in turn.

    ``ends`` is one width or several (see :func:`held_widths`; used broad to
    narrow). The steps are split evenly between the scales; in each, the
    width falls geometrically from the previous width over
    ``anneal_fraction`` of the scale's steps and is then held. Returns the
    width of every step and its scale index while held (-1 while annealing).
    """
    ends = held_widths(ends, n_steps)
    bounds = np.linspace(0, n_steps, len(ends) + 1).round().astype(int)
    widths = np.empty(n_steps, dtype=np.float64)
    stage = np.full(n_steps, -1, dtype=np.int64)
    prev = float(start)
    for s, end in enumerate(ends):
        lo, hi = bounds[s], bounds[s + 1]
        n_anneal = min(max(int(round(anneal_fraction * (hi - lo))), 1), hi - lo)
        if s == 0:
            ramp = np.geomspace(prev, end, n_anneal)
        else:
            ramp = np.geomspace(prev, end, n_anneal + 1)[1:]
        ramp[-1] = end
        widths[lo : lo + n_anneal] = ramp
        widths[lo + n_anneal : hi] = end
        stage[lo + n_anneal - 1 : hi] = s
        prev = float(end)
    return widths, stage


def scale_widths(widths: np.ndarray, stages: np.ndarray) -> np.ndarray:
    """The held width of each scale of a schedule (see :func:`width_schedule`)."""
    return np.array([widths[np.flatnonzero(stages == s)[0]] for s in range(int(stages.max()) + 1)])


class Adam:
    """Adam with ``torch.optim.Adam``'s defaults and update, on given gradients.

    The same arithmetic as torch's single-tensor Adam (betas 0.9 and 0.999,
    eps 1e-8, no weight decay), without its per-step bookkeeping: a fit
    takes a few hundred steps on tiny tensors, where that bookkeeping, not
    the update, is the cost. ``params`` pairs each tensor with its rate.
    """

    betas = (0.9, 0.999)
    eps = 1e-8

    def __init__(self, params: Sequence[tuple[torch.Tensor, float]]) -> None:
        self.params = [(p, float(lr)) for p, lr in params]
        self.moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p, _ in self.params]
        self.n_steps = 0

    @torch.no_grad()
    def step(self, grads: Sequence[torch.Tensor]) -> None:
        self.n_steps += 1
        b1, b2 = self.betas
        correction1 = 1.0 - b1**self.n_steps
        correction2 = math.sqrt(1.0 - b2**self.n_steps)
        for (p, lr), (m, v), g in zip(self.params, self.moments, grads):
            m.lerp_(g, 1.0 - b1)
            v.mul_(b2).addcmul_(g, g, value=1.0 - b2)
            denom = (v.sqrt() / correction2).add_(self.eps)
            p.addcdiv_(m, denom, value=-lr / correction1)


@dataclass
class KernelFit:
    """Result of :func:`train_kernels`: per held width (scale, S of them) and toy (T)."""

    centers: torch.Tensor  # (S, T, M, d) at the lowest loss while held
    amplitudes: torch.Tensor  # (S, T, M)
    widths: np.ndarray  # (S,) the held widths
    loss: torch.Tensor  # (S, T) lowest loss at each held width
    history: np.ndarray  # (n_steps, T) loss at each step


def train_kernels(
    X: torch.Tensor,
    w_data: torch.Tensor,
    w_ref: torch.Tensor,
    init_centers: torch.Tensor,
    *,
    widths: np.ndarray,
    stages: np.ndarray | None = None,
    learning_rate: float,
    clip: float,
    positive: bool = False,
    chunk_size: int = 4096,
    center_lr: float | None = None,
    callback: Callable[[int, torch.Tensor], None] | None = None,
    reseed: Callable[[float], torch.Tensor] | None = None,
) -> KernelFit:
    """Full-batch Adam on (centres, amplitudes) of T toys at once.

    ``X`` (N, d) is shared; toy t sees rows with data weights ``w_data[t]`` and
    reference weights ``w_ref[t]``. Amplitudes are clipped to [-clip, clip]
    after each step (``center_lr`` overrides the centres' rate). ``stages``
    gives each step's scale index while the width is held (-1 while
    annealing; default: one scale, held wherever the width equals its last
    value). At each held width the parameters with the lowest loss seen are
    kept per toy, so each returned loss is a minimum, not the last iterate.
    With ``positive`` the amplitudes are clipped to [0, clip] instead: the
    model can only describe excesses of the data over the reference.
    With ``reseed``, each later scale starts afresh: when its annealing
    begins, the centres are set to ``reseed(its held width)`` (T, M, d), the
    amplitudes to zero and the optimiser's state is cleared, so each scale
    is its own fit rather than a continuation of the broader one.
    """
    widths = np.asarray(widths, dtype=np.float64)
    if stages is None:
        stages = np.where(widths == widths[-1], 0, -1)
    n_scales = int(stages.max()) + 1
    model = KernelEnsemble(init_centers)
    data_rows, ref_rows = row_weights(w_data, w_ref)
    X_aug = _augment(X)

    center_lr = learning_rate if center_lr is None else center_lr

    def optimiser() -> Adam:
        return Adam([(model.centers, center_lr), (model.amplitudes, learning_rate)])

    opt = optimiser()
    T = model.n_toys
    held = scale_widths(widths, stages)
    best_loss = torch.full((n_scales, T), math.inf, dtype=torch.float64, device=X.device)
    best_mu = model.centers.detach().unsqueeze(0).repeat(n_scales, 1, 1, 1)
    best_a = model.amplitudes.detach().unsqueeze(0).repeat(n_scales, 1, 1)

    def keep_best(scale: int, loss: torch.Tensor) -> None:
        better = loss < best_loss[scale]
        best_loss[scale] = torch.where(better, loss, best_loss[scale])
        best_mu[scale] = torch.where(better[:, None, None], model.centers.detach(), best_mu[scale])
        best_a[scale] = torch.where(better[:, None], model.amplitudes.detach(), best_a[scale])

    history = np.empty((len(widths), T))
    for step, width in enumerate(widths):
        if reseed is not None and step > 0 and 0 <= stages[step - 1] != stages[step]:
            with torch.no_grad():
                model.centers.copy_(reseed(float(held[stages[step - 1] + 1])))
                model.amplitudes.zero_()
            opt = optimiser()
        loss, g_mu, g_a = model.loss_and_grad(
            X_aug, data_rows, ref_rows, float(width), chunk_size
        )
        history[step] = loss.cpu().numpy()
        if stages[step] >= 0:
            keep_best(int(stages[step]), loss)
        opt.step((g_mu, g_a))
        with torch.no_grad():
            model.amplitudes.clamp_(0.0 if positive else -clip, clip)
        if callback is not None:
            callback(step, loss)
    # the last update is evaluated too, so the final iterate can win
    loss, _, _ = model.loss_and_grad(X_aug, data_rows, ref_rows, float(held[-1]), chunk_size)
    keep_best(n_scales - 1, loss)
    return KernelFit(best_mu, best_a, held, best_loss, history)
