"""The loop shared by the two-sample benchmarks, and the peers they share.

``bench_twosample.py``, ``bench_highdim.py`` and ``tune_sparker.py`` run
every method on the same draws: for each (case, eps) cell and each seed, one
draw ``(D, R, injected mask of D)`` and, for each method, one test of D
against R. :func:`run_grid` is that loop, with one policy:

- a method that raises on a draw gets that draw's ``error`` recorded and a
  NaN p-value, and the run goes on (summaries use the draws that ran; the
  results rows list the errors);
- warnings are shown, except those in :data:`EXPECTED_WARNINGS`, filtered by
  class and message.

A method is a callable ``(draw, seed) -> dict`` with at least ``"pvalue"``;
``"score"`` (one value per row of D, higher = more likely injected, NaN
where the method did not score the row) becomes the draw's ``row_auroc``
(injected rows positive), any other ``"<name>_score"`` becomes
``"<name>_auroc"``; other keys are kept as they are.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any, NamedTuple

import numpy as np
from scipy.special import ndtri

from skhyper.metrics import outlier_roc_auc

ALPHA = 0.05
Z_STAR = 2.0  # NPLM's threshold on Z = Phi^-1(1 - p)

# (category, message start) of the warnings these runs expect; the others are shown
EXPECTED_WARNINGS: tuple[tuple[type[Warning], str], ...] = (
    # equal N_D and N_R (satellite) is by design here, not a CV slicing accident
    (UserWarning, "X_ref has exactly as many rows"),
)


class Draw(NamedTuple):
    """One draw: data D, reference R, which rows of D are injected, and the
    planted centre when there is one (None otherwise)."""

    D: np.ndarray
    R: np.ndarray
    injected: np.ndarray
    centre: np.ndarray | None = None


Runner = Callable[[Draw, int], dict[str, Any]]


# ----------------------------------------------------------------------- the loop


def row_auroc(injected: np.ndarray, score: np.ndarray | None) -> float:
    """AUROC of ``score`` (high = injected) over the rows of D it scored; NaN
    when there is no score or the scored rows hold a single class."""
    if score is None or not injected.any():
        return np.nan
    ok = np.isfinite(score)
    if not (injected[ok].any() and (~injected[ok]).any()):
        return np.nan
    return outlier_roc_auc(injected[ok].astype(int), score[ok], higher_is_normal=False)


def run_draws(
    make_draw: Callable[[int], Draw], runners: Mapping[str, Runner], seeds: Iterable[int]
) -> dict[str, list[dict[str, Any]]]:
    """Every method on the draw of every seed; per method, one record per draw.

    Each record has ``pvalue``, ``error`` (empty when the method ran),
    ``seconds``, the sizes ``n_D``, ``n_R``, ``d``, the AUROC of each score,
    and the method's other keys.
    """
    records: dict[str, list[dict[str, Any]]] = {m: [] for m in runners}
    for seed in seeds:
        draw = make_draw(seed)
        for m, run in runners.items():
            t0 = time.perf_counter()
            try:
                with warnings.catch_warnings():
                    for category, message in EXPECTED_WARNINGS:
                        warnings.filterwarnings("ignore", message=message, category=category)
                    r = dict(run(draw, seed))
                r["error"] = ""
            except Exception as exc:  # recorded; the run goes on
                r = {"pvalue": np.nan, "error": f"{type(exc).__name__}: {exc}"[:300]}
            r["seconds"] = time.perf_counter() - t0
            for key in [k for k in r if k == "score" or k.endswith("_score")]:
                name = "row_auroc" if key == "score" else key[: -len("score")] + "auroc"
                r[name] = row_auroc(draw.injected, r.pop(key))
            r.update(n_D=len(draw.D), n_R=len(draw.R), d=int(draw.D.shape[1]))
            records[m].append(r)
    return records


def run_grid(
    cells: Iterable[tuple[str, float]],
    seeds: Sequence[int],
    make_draw: Callable[[str, float, int], Draw],
    runners: Mapping[str, Runner],
    summarise: Callable[[str, float, str, list[dict[str, Any]]], dict[str, Any]],
    line: Callable[[dict[str, Any]], str],
) -> list[dict[str, Any]]:
    """:func:`run_draws` on each (case, eps) cell; one results row per cell and
    method, from ``summarise(case, eps, method, records)``, printed as ``line(row)``."""
    rows = []
    for case, eps in cells:
        records = run_draws(partial(make_draw, case, eps), runners, seeds)
        for m, recs in records.items():
            row = summarise(case, eps, m, recs)
            rows.append(row)
            print(line(row), flush=True)
    return rows


# ---------------------------------------------------------------------- summaries


def finite_mean(records: Sequence[dict[str, Any]], key: str) -> float:
    """Mean of ``key`` over the records where it is finite; NaN if none."""
    v = np.array([r.get(key, np.nan) for r in records], dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else np.nan


def pvalues(records: Sequence[dict[str, Any]]) -> np.ndarray:
    return np.array([r["pvalue"] for r in records], dtype=np.float64)


def power(pv: np.ndarray, alpha: float = ALPHA) -> float:
    """Fraction of the draws with a p-value that have p < alpha; NaN if none."""
    pv = pv[np.isfinite(pv)]
    return float(np.mean(pv < alpha)) if pv.size else np.nan


def z_metrics(pv: np.ndarray) -> tuple[float, float]:
    """Median Z and P(Z > Z_STAR) over the draws with a p-value, Z = Phi^-1(1 - p).

    Not ``skhyper.stats.power_metrics``: that one ranks observed statistics
    against one shared null sample, while each draw here has its own test (its
    own R, D and permutations; C2ST's p is a Mann-Whitney p, with no null
    statistics at all), so the draws' own p-values are summarised directly. Its
    power is also ``Z >= Phi^-1(1 - alpha)``, not ``Z > 2``."""
    pv = pv[np.isfinite(pv)]
    if not pv.size:
        return np.nan, np.nan
    z = ndtri(1.0 - pv)
    return float(np.median(z)), float(np.mean(z > Z_STAR))


def errors(records: Sequence[dict[str, Any]]) -> str:
    """The distinct errors of the records, joined by "; " (empty when none)."""
    return "; ".join(sorted({r["error"] for r in records if r["error"]}))


def z_cap(n_perm: int) -> float:
    """The largest Z a permutation p-value with n_perm permutations can give."""
    return float(ndtri(1.0 - 1.0 / (n_perm + 1)))


# -------------------------------------------------------------------- the methods


def top_positive_kernel(est: Any, D: np.ndarray, R: np.ndarray) -> tuple[int, np.ndarray] | None:
    """The fitted detector's top positive kernel and its term over the rows of D.

    The top one explains the most excess of D over R,
    ``sum_D t_k - (N_D / N_R) sum_R t_k`` with ``t = kernel_terms`` (amplitudes
    often tie at the clip, so the largest amplitude does not single one out).
    None when no amplitude is positive.
    """
    amp = np.asarray(est.amplitudes_)
    if not (amp > 0).any():
        return None
    t_d, t_r = est.kernel_terms(D), est.kernel_terms(R)
    excess = t_d.sum(0) - len(D) / len(R) * t_r.sum(0)
    top = int(np.argmax(np.where(amp > 0, excess, -np.inf)))
    return top, t_d[:, top]


def run_c2st(D: np.ndarray, R: np.ndarray, seed: int) -> dict[str, Any]:
    """Classifier two-sample test: a gradient boosting classifier trained on a
    stratified half of D u R, one-sided Mann-Whitney p of its held-out scores
    of D rows against R rows; the score is its probability for the held-out D
    rows (NaN for the others)."""
    from scipy.stats import mannwhitneyu
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import train_test_split

    X = np.r_[D, R]
    lab = np.r_[np.ones(len(D), int), np.zeros(len(R), int)]
    idx = np.arange(len(X))
    a, b = train_test_split(idx, test_size=0.5, stratify=lab, random_state=seed)
    clf = HistGradientBoostingClassifier(random_state=seed).fit(X[a], lab[a])
    s = clf.predict_proba(X[b])[:, 1]
    p = mannwhitneyu(s[lab[b] == 1], s[lab[b] == 0], alternative="greater").pvalue
    b_d = b[lab[b] == 1]  # rows of D in the evaluation half
    score = np.full(len(D), np.nan)
    score[b_d] = s[lab[b] == 1]
    return {"pvalue": float(p), "score": score}


def run_mmd(
    D: np.ndarray, R: np.ndarray, n_perm: int, seed: int, max_rows: int = 2000
) -> dict[str, Any]:
    """Gaussian-kernel MMD test: features standardised on the pooled sample,
    median-heuristic width, biased MMD^2, permutation p; D and R each
    subsampled to at most ``max_rows``. The score is the witness function on
    the subsampled D rows (NaN for the others)."""
    rng = np.random.default_rng(seed)
    d_idx = rng.choice(len(D), min(len(D), max_rows), replace=False)
    Ds = D[d_idx]
    Rs = R[rng.choice(len(R), min(len(R), max_rows), replace=False)]
    Z = np.r_[Ds, Rs]
    Z = (Z - Z.mean(0)) / np.where(Z.std(0) > 0, Z.std(0), 1.0)
    sq = (Z * Z).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * Z @ Z.T, 0)
    med = np.median(d2[np.triu_indices(len(Z), 1)])
    K = np.exp(-d2 / max(med, 1e-12)).astype(np.float32)
    n_d, n = len(Ds), len(Z)
    base = np.r_[np.full(n_d, 1.0 / n_d), np.full(n - n_d, -1.0 / (n - n_d))]
    A = np.empty((n, n_perm + 1), np.float32)
    A[:, 0] = base
    for j in range(1, n_perm + 1):
        A[:, j] = base[rng.permutation(n)]
    stats = np.einsum("ij,ij->j", A, K @ A)
    p = (1 + np.sum(stats[1:] >= stats[0])) / (1 + n_perm)
    witness = K[:, :n_d].mean(1) - K[:, n_d:].mean(1)  # high where D is over-dense
    score = np.full(len(D), np.nan)
    score[d_idx] = witness[:n_d]
    return {"pvalue": float(p), "score": score}
