"""SparKerDetector, the batched kernel ensemble and stats.sparker_test."""

import copy
import dataclasses
import inspect
import math
import pickle
import random
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binom
from sklearn import config_context
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

import skhyper
import skhyper._sparker.twosample as twosample
from skhyper import SparKerDetector
from skhyper._sparker import kernels as kern
from skhyper._sparker.kernels import KernelEnsemble, _augment, train_kernels, width_schedule
from skhyper.stats import sparker_test

from conftest import SPARKER as FAST
from conftest import bump_sample

# fits without X_ref here are deliberate; the warning is tested in test_sparker_api.py
pytestmark = pytest.mark.filterwarnings("ignore::skhyper.sparker.NoReferenceWarning")


# -- the kernel module ---------------------------------------------------------


def test_manual_gradient_matches_autograd():
    gen = torch.Generator().manual_seed(0)
    T, M, d, N = 3, 4, 5, 120
    X = torch.randn(N, d, generator=gen, dtype=torch.float64)
    model = KernelEnsemble(
        torch.randn(T, M, d, generator=gen, dtype=torch.float64),
        torch.randn(T, M, generator=gen, dtype=torch.float64),
    )
    wd = torch.rand(T, N, generator=gen, dtype=torch.float64)
    wr = torch.rand(T, N, generator=gen, dtype=torch.float64)
    ratio = wd.sum(1) / wr.sum(1)
    loss, g_mu, g_a = model.loss_and_grad(_augment(X), *kern.row_weights(wd, wr), 1.3, 37)
    f = model(X, 1.3)
    ref_loss = (ratio[:, None] * wr * (f.exp() - 1) - wd * f).sum(1)
    ref_loss.sum().backward()
    np.testing.assert_allclose(loss, ref_loss.detach(), rtol=1e-10)
    np.testing.assert_allclose(g_mu, model.centers.grad, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(g_a, model.amplitudes.grad, rtol=1e-8, atol=1e-12)


def test_toys_are_one_batched_program(monkeypatch):
    """Three toys trained together equal three single fits, in n_steps + 1 calls."""
    gen = torch.Generator().manual_seed(1)
    N, d, M, T = 300, 3, 3, 3
    X = torch.randn(N, d, generator=gen)
    is_data = torch.rand(T, N, generator=gen) < 0.3
    wd, wr = is_data.float(), (~is_data).float()
    init = kern.kmeans_plus_plus(X, wd, torch.rand(T, M, generator=gen))
    widths, stages = width_schedule(1.5, [0.6, 0.3], 25, 0.5)
    calls = []
    original = KernelEnsemble.loss_and_grad

    def counting(self, *args, **kwargs):
        calls.append(self.n_toys)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(KernelEnsemble, "loss_and_grad", counting)
    opts = dict(widths=widths, stages=stages, learning_rate=0.05, clip=5.0, chunk_size=128)
    batched = train_kernels(X, wd, wr, init, **opts)
    assert calls == [T] * (len(widths) + 1)
    for t in range(T):
        single = train_kernels(X, wd[t : t + 1], wr[t : t + 1], init[t : t + 1], **opts)
        np.testing.assert_allclose(single.loss[:, 0], batched.loss[:, t], rtol=1e-4)
        np.testing.assert_allclose(single.centers[:, 0], batched.centers[:, t], atol=1e-4)


def test_adam_is_torch_adam():
    """The fit's own Adam takes torch.optim.Adam's steps (two rates, fresh gradients)."""
    gen = torch.Generator().manual_seed(0)
    ours = [torch.randn(3, 4, generator=gen), torch.randn(3, generator=gen)]
    theirs = [p.clone().requires_grad_() for p in ours]
    adam = kern.Adam([(ours[0], 0.05), (ours[1], 0.2)])
    ref = torch.optim.Adam([{"params": [theirs[0]], "lr": 0.05}, {"params": [theirs[1]]}], lr=0.2)
    for _ in range(30):
        grads = [torch.randn(p.shape, generator=gen) for p in ours]
        adam.step(grads)
        for p, g in zip(theirs, grads):
            p.grad = g.clone()
        ref.step()
    for mine, torch_p in zip(ours, theirs):
        np.testing.assert_allclose(mine, torch_p.detach(), rtol=1e-6, atol=1e-7)


def test_weighted_draw_follows_the_weights_toy_by_toy():
    """Each toy draws ~ its own weights, from its own uniforms alone."""
    weights = torch.tensor([[0.0, 1.0, 3.0, 0.0], [2.0, 0.0, 0.0, 2.0]])
    u = torch.linspace(0.0, 1.0, 4001)[:-1]
    draws = torch.stack([kern.weighted_draw(weights, torch.stack([v, v])) for v in u], 1)
    for row, w in zip(draws, weights):
        freq = torch.bincount(row, minlength=4).double() / len(u)
        np.testing.assert_allclose(freq, w / w.sum(), atol=1e-3)
    # a toy's draw does not depend on the toy beside it
    alone = kern.weighted_draw(weights[:1], torch.tensor([0.3]))
    assert int(alone) == int(kern.weighted_draw(weights, torch.tensor([0.3, 0.9]))[0])


def test_small_problems_train_their_toys_as_one_program(monkeypatch):
    """A small test trains all its toys in one batch (two programs in all); a
    large one keeps batches of TOY_BATCH."""
    calls = []
    original = twosample.train_kernels

    def recording(Z, w_data, *args, **kwargs):
        calls.append(w_data.shape[0])
        return original(Z, w_data, *args, **kwargs)

    monkeypatch.setattr(twosample, "train_kernels", recording)
    X, R, _, _ = bump_sample(0, n_data=100, n_ref=400, d=3)
    sparker_test(X, R, n_kernels=4, n_steps=10, n_permutations=60, random_state=0)
    assert calls == [1, 60]

    def batch(n_rows):
        problem = twosample._Problem(
            np.empty((n_rows, 1), np.float32), np.ones(n_rows), 1,
            twosample.SparKerOptions(), np.ones(2), np.zeros(2, int), "cpu",
        )
        return twosample.toy_batch_size(problem)

    # 8 kernels and one restart per toy: 4 toys fit the budget at this size
    assert batch(twosample.BATCH_TRIPLES // 32) == twosample.TOY_BATCH
    assert batch(twosample.BATCH_TRIPLES // (8 * 50)) == 50
    assert batch(100) == 100  # never more than the toys


def test_excess_seeding_starts_on_the_data_only_clump():
    """The first seed sits where data exceed the reference, not where data are dense.

    Reference and data share a dense cluster in proportion (no excess there,
    though it holds the most data rows) and the data alone hold a smaller
    clump: the clump explains the excess.
    """
    gen = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    shared, clump = np.array([-3.0, -3.0]), np.array([3.0, 3.0])
    R = np.r_[rng.normal(size=(1000, 2)), shared + 0.05 * rng.normal(size=(1000, 2))]
    D = np.r_[
        rng.normal(size=(200, 2)),
        shared + 0.05 * rng.normal(size=(200, 2)),  # the reference's proportion
        clump + 0.05 * rng.normal(size=(30, 2)),  # data only
    ]
    X = torch.from_numpy(np.r_[D, R]).float()
    wd = torch.zeros(1, len(X))
    wd[0, : len(D)] = 1.0
    graph = kern.pooled_neighbours(X, torch.ones(len(X)), len(X), 400, gen)
    seeds = kern.excess_seeding(X, wd, 1.0 - wd, *graph, 0.3, torch.rand(1, 4, generator=gen))
    assert torch.linalg.norm(seeds[0, 0] - torch.from_numpy(clump).float()) < 0.3


def test_excess_seeding_never_starts_in_a_deficit():
    """Where the reference is denser than the data a kernel would explain a
    deficit, not an excess: the first seed never goes there.

    The data (twice the reference's size) spread over a Gaussian; the
    reference puts most of its rows in a tight cluster where the data have
    none. Near the cluster the scaled reference outweighs the data by far
    more than the data anywhere outweigh the reference.
    """
    gen = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(1)
    hole = np.array([-3.0, -3.0])
    D = rng.normal(size=(800, 2))
    R = np.r_[rng.normal(size=(100, 2)), hole + 0.05 * rng.normal(size=(300, 2))]
    X = torch.from_numpy(np.r_[D, R]).float()
    wd = torch.zeros(1, len(X))
    wd[0, : len(D)] = 1.0
    wr = 1.0 - wd
    width = 0.3
    graph = kern.pooled_neighbours(X, torch.ones(len(X)), len(X), 20, gen)
    first = kern.excess_seeding(X, wd, wr, *graph, width, torch.rand(1, 4, generator=gen))[0, 0]
    # the excess a kernel at the first seed explains, over every pooled row
    k = torch.exp(-((X - first) ** 2).sum(1) / (2 * width**2))
    ratio = wd.sum() / wr.sum()
    assert float(((wd[0] - ratio * wr[0]) * k).sum()) > 0
    assert torch.linalg.norm(first - torch.from_numpy(hole).float()) > 1.0


def test_reseed_restarts_each_later_scale():
    """With a zero rate nothing moves: each scale keeps exactly its own seeds."""
    gen = torch.Generator().manual_seed(2)
    N, d, M, T = 200, 3, 2, 2
    X = torch.randn(N, d, generator=gen)
    is_data = torch.rand(T, N, generator=gen) < 0.3
    wd, wr = is_data.float(), (~is_data).float()
    init = torch.randn(T, M, d, generator=gen)
    later = torch.randn(T, M, d, generator=gen)
    widths, stages = width_schedule(2.0, [1.0, 0.5], 20, 0.5)
    asked = []

    def reseed(width):
        asked.append(width)
        return later

    fit = train_kernels(X, wd, wr, init, widths=widths, stages=stages, learning_rate=0.0,
                        clip=5.0, reseed=reseed)
    assert asked == [0.5]
    torch.testing.assert_close(fit.centers[0], init)
    torch.testing.assert_close(fit.centers[1], later)


def test_the_final_update_can_be_the_kept_fit():
    """Each step's loss is recorded before its update, and the last update is
    evaluated too: on a loss that falls at every step the kept fit is the
    one after the last update, below every recorded loss."""
    gen = torch.Generator().manual_seed(3)
    X = torch.randn(300, 2, generator=gen, dtype=torch.float64)
    X[:30] = 1.5 + 0.1 * X[:30]  # a clump among the data rows
    wd = torch.zeros(1, 300, dtype=torch.float64)
    wd[0, :100] = 1.0
    init = X[:2].unsqueeze(0).clone()
    fit = train_kernels(X, wd, 1.0 - wd, init, widths=np.full(15, 0.5), learning_rate=0.01,
                        clip=5.0)
    assert np.all(np.diff(fit.history[:, 0]) < 0)
    assert float(fit.loss[0, 0]) < fit.history[-1, 0]
    kept = KernelEnsemble(fit.centers[0], fit.amplitudes[0])
    loss, _, _ = kept.loss_and_grad(_augment(X), *kern.row_weights(wd, 1.0 - wd), 0.5, 4096)
    assert float(loss[0]) == pytest.approx(float(fit.loss[0, 0]), rel=1e-12)


def test_width_schedule_anneals_then_holds():
    w, stage = width_schedule(2.0, 0.2, 10, 0.5)
    assert w[0] == 2.0 and np.all(w[4:] == 0.2) and np.all(np.diff(w) <= 0)
    np.testing.assert_array_equal(stage, [-1] * 4 + [0] * 6)


def test_multiscale_schedule_holds_each_width_in_turn():
    w, stage = width_schedule(2.0, [1.0, 0.5, 0.1], 30, 0.5)
    assert w[0] == 2.0 and np.all(np.diff(w) <= 0)
    for s, end in enumerate([1.0, 0.5, 0.1]):
        held = np.flatnonzero(stage == s)
        assert len(held) >= 5 and np.all(w[held] == end)
        assert np.all(np.diff(held) == 1)  # one contiguous plateau per width
    assert np.all(w[stage == -1] > w[-1])
    with pytest.raises(ValueError):
        width_schedule(1.0, [0.5, 0.2, 0.1], 2, 0.5)


@pytest.mark.parametrize("d", [2, 8, 64])
def test_centre_learning_rate_is_held_at_its_size_in_8_dimensions(monkeypatch, d):
    """Adam moves a centre by about lr * sqrt(d) per step: above 8 dimensions
    the centres' rate is lr * sqrt(8 / d), the amplitudes' stays lr."""
    rates = []
    original = twosample.train_kernels

    def recording(*args, **kwargs):
        rates.append((kwargs["learning_rate"], kwargs["center_lr"]))
        return original(*args, **kwargs)

    monkeypatch.setattr(twosample, "train_kernels", recording)
    rng = np.random.default_rng(0)
    SparKerDetector(
        n_kernels=2, n_steps=4, learning_rate=0.1, n_permutations=0, random_state=0
    ).fit(rng.normal(size=(40, d)), X_ref=rng.normal(size=(90, d)))
    expected = 0.1 * math.sqrt(8 / d) if d > 8 else 0.1
    assert rates == [(0.1, pytest.approx(expected, rel=1e-12))]


def test_typical_distance_is_the_median_pairwise_distance():
    """Rows at 0, 1 and 10: distances 1, 9 and 10, median 9 (mean 6.7); a row
    of weight zero is never drawn."""
    Z = torch.tensor([[0.0], [1.0], [10.0], [1000.0]])
    w = torch.tensor([1.0, 1.0, 1.0, 0.0])
    assert twosample.typical_distance(Z, w, torch.Generator().manual_seed(0)) == 9.0


# -- known answers --------------------------------------------------------------


def test_planted_bump_is_found():
    data, ref, labels, mu = bump_sample(0)
    det = SparKerDetector(n_permutations=199, random_state=0).fit(data, X_ref=ref)
    assert det.pvalue_ < 0.01
    positive = det.amplitudes_ > 0
    assert positive.any()
    # the bump's own spread is 0.1 per coordinate (0.2 in norm for d = 4)
    assert np.linalg.norm(det.centers_[positive] - mu, axis=1).min() < 0.3
    assert roc_auc_score(labels, -det.score_samples(data)) >= 0.9
    assert det.predict(mu[None])[0] == -1


def test_each_width_finds_its_own_kind_of_anomaly():
    """A slab (rows shifted in one coordinate, spread in the others) is found at
    the broad held width; a small dense bump at the narrow one."""
    rng = np.random.default_rng(0)
    ref, data = rng.normal(size=(2000, 4)), rng.normal(size=(500, 4))
    data[:25, 0] = 3.0 + 0.1 * rng.normal(size=25)
    slab = SparKerDetector(n_permutations=19, random_state=0).fit(data, X_ref=ref)
    assert slab.pvalue_ == 0.05 and slab.width_ == slab.widths_[0] > slab.widths_[-1]
    labels = np.r_[np.ones(25), np.zeros(475)]
    assert roc_auc_score(labels, -slab.score_samples(data)) >= 0.9

    data, ref, labels, _ = bump_sample(1)
    bump = SparKerDetector(n_permutations=19, random_state=0).fit(data, X_ref=ref)
    assert bump.pvalue_ == 0.05 and bump.width_ == bump.widths_[-1]
    assert bump.scale_pvalues_[-1] < bump.scale_pvalues_[0]
    assert roc_auc_score(labels, -bump.score_samples(data)) >= 0.9


def test_one_held_width_is_the_plain_permutation_test():
    data, ref, _, _ = bump_sample(2, n_data=300, n_ref=900)
    det = SparKerDetector(width_end=0.1, n_steps=40, n_permutations=19, random_state=0)
    det.fit(data, X_ref=ref)
    assert det.widths_.shape == (1,) and det.width_ == det.widths_[0]
    assert det.pvalue_ == (1 + np.sum(det.null_statistics_ >= det.test_statistic_)) / 20


def test_null_rejection_rate_gaussian():
    """D and R from one distribution: the fraction of p <= 0.05 stays near 0.05.

    With 19 permutations p <= 0.05 has probability exactly 1/20 under the null.
    Over 20 repetitions P(Binomial(20, 0.05) >= 4) = 0.016: the bound below
    fails by chance 1.6% of the time for a valid test (fixed seeds here).
    """
    reps, bound = 20, 3
    assert binom.sf(bound, reps, 0.05) < 0.02
    rejections = 0
    for seed in range(reps):
        rng = np.random.default_rng(100 + seed)
        det = SparKerDetector(
            n_kernels=3, n_steps=30, n_permutations=19, random_state=seed
        ).fit(rng.normal(size=(100, 2)), X_ref=rng.normal(size=(300, 2)))
        rejections += det.pvalue_ <= 0.05
    assert rejections <= bound


def test_null_rejection_rate_heavy_tails():
    reps, bound = 20, 3
    rejections = 0
    for seed in range(reps):
        rng = np.random.default_rng(200 + seed)
        det = SparKerDetector(
            n_kernels=3,
            n_steps=30,
            n_permutations=19,
            preprocessing="quantile",
            random_state=seed,
        ).fit(rng.standard_t(2, size=(100, 2)), X_ref=rng.standard_t(2, size=(300, 2)))
        rejections += det.pvalue_ <= 0.05
    assert rejections <= bound


def test_reference_calibration_and_high_dimension():
    """d = 1000: finite losses, finite gradients, the shifted rows found."""
    rng = np.random.default_rng(3)
    d = 1000
    ref = rng.normal(size=(1500, d))
    data = rng.normal(size=(150, d))
    data[:15] = 3.0 * np.eye(d)[0] + 0.3 * rng.normal(size=(15, d))
    # one narrow held width and few steps, under reference calibration: the
    # defaults are tested in high dimension below
    det = SparKerDetector(
        n_kernels=3,
        n_steps=40,
        width_end=0.1,
        learning_rate=0.05,
        calibration="reference",
        n_permutations=19,
        random_state=0,
    ).fit(data, X_ref=ref)
    assert np.all(np.isfinite(det.history_["loss"]))
    assert np.all(np.isfinite(det.null_statistics_))
    assert det.pvalue_ <= 0.05
    labels = np.r_[np.ones(15), np.zeros(135)]
    assert roc_auc_score(labels, -det.score_samples(data)) >= 0.9
    # gradients at the fitted kernels, through autograd in float64
    Z = torch.from_numpy(det.transform_.transform(data))
    model = KernelEnsemble(det.kernels_.centers.detach(), det.kernels_.amplitudes.detach())
    model(Z, det.width_).sum().backward()
    assert torch.isfinite(model.centers.grad).all()
    assert torch.isfinite(model.amplitudes.grad).all()


def test_high_dimension_clump_found_with_defaults():
    """d = 500, 20 of 300 data rows in a tight clump: the default seeding starts a
    kernel on the clump (a kernel cannot travel there in 500 dimensions), so the
    test rejects and the top kernel's term singles the clump out."""
    rng = np.random.default_rng(5)
    d = 500
    ref = rng.normal(size=(900, d))
    data = rng.normal(size=(300, d))
    centre = np.zeros(d)
    centre[:2] = 1.5
    data[:20] = centre + 0.1 * rng.normal(size=(20, d))
    det = SparKerDetector(n_permutations=19, random_state=0).fit(data, X_ref=ref)
    assert det.pvalue_ <= 0.05
    terms = det.kernel_terms(data)
    labels = np.r_[np.ones(20), np.zeros(280)]
    top = int(np.argmax(terms[:20].sum(0)))
    assert det.amplitudes_[top] > 0
    assert roc_auc_score(labels, terms[:, top]) >= 0.95


def test_unsupervised_mode_flags_a_dense_cluster():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(400, 2)), [2.0, 2.0] + 0.05 * rng.normal(size=(40, 2))])
    det = SparKerDetector(n_permutations=0, random_state=0).fit(X)
    assert det.pvalue_ is None and det.null_statistics_ is None
    assert det.predict([[2.0, 2.0]])[0] == -1
    assert det.offset_ == pytest.approx(-np.log(2))


def test_sparker_test_result():
    data, ref, _, mu = bump_sample(1, n_data=300, n_ref=1200)
    res = sparker_test(data, ref, n_kernels=4, n_permutations=19, random_state=0, n_steps=60)
    assert res.null_statistics.shape == (19,)
    S = len(res.widths)
    assert res.scale_statistics.shape == res.scale_pvalues.shape == (S,)
    assert res.statistic in res.scale_statistics
    chosen = int(np.flatnonzero(res.scale_statistics == res.statistic)[0])
    assert res.scale_pvalues[chosen] == (1 + np.sum(res.null_statistics >= res.statistic)) / 20
    # the min-p correction costs at most a factor of the number of widths
    assert 1 / 20 <= res.pvalue <= min(1.0, S * res.scale_pvalues.min())
    assert res.zscore == pytest.approx(-__import__("scipy").stats.norm.ppf(res.pvalue))
    assert res.kernels.centers.shape == (4, 4) and res.kernels.amplitudes.shape == (4,)
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.statistic = 0.0
    with pytest.raises(ValueError, match="calibration"):
        sparker_test(data, ref, calibration=None)


def test_sparker_test_and_the_estimator_share_defaults_and_constraints():
    """One set of options: the same defaults, the same numbers, the same errors."""
    test_defaults = {
        name: p.default
        for name, p in inspect.signature(sparker_test).parameters.items()
        if p.default is not inspect.Parameter.empty and name != "sample_weight"
    }
    est_defaults = SparKerDetector().get_params()
    assert test_defaults == {name: est_defaults[name] for name in test_defaults}
    data, ref, _, _ = bump_sample(2, n_data=200, n_ref=600)
    res = sparker_test(data, ref, **FAST)
    det = SparKerDetector(**FAST).fit(data, X_ref=ref)
    assert (res.statistic, res.pvalue) == (det.test_statistic_, det.pvalue_)
    np.testing.assert_array_equal(res.null_statistics, det.null_statistics_)
    np.testing.assert_array_equal(res.kernels.centers, det.centers_)
    invalid = [
        ("n_steps", 0),
        ("init", "kmeans"),
        ("preprocessing", "minmax"),
        ("width_end", "0.1"),
        ("batch_size", 0),
        ("n_jobs", 1.5),
        ("positive_amplitudes", "yes"),
    ]
    for name, value in invalid:
        with pytest.raises(ValueError) as from_test:
            sparker_test(data, ref, **{**FAST, name: value})
        with pytest.raises(ValueError) as from_estimator:
            SparKerDetector(**{**FAST, name: value}).fit(data, X_ref=ref)
        assert type(from_test.value) is type(from_estimator.value)
        message = str(from_test.value).replace("sparker_test", "SparKerDetector")
        assert message == str(from_estimator.value)
    with pytest.raises(TypeError, match="unexpected keyword"):
        sparker_test(data, ref, n_kernel=3)
    # the samples go through the same checks, under their own names
    with pytest.raises(ValueError, match="reference has 3 features, but data has 4"):
        sparker_test(data, ref[:, :3])
    with pytest.raises(ValueError, match="X_ref has 3 features, but X has 4"):
        SparKerDetector(**FAST).fit(data, X_ref=ref[:, :3])


def test_no_call_stack_inspection_in_the_package():
    """The detector does not look up who called it (a Pipeline, say): it
    checks the samples it is given."""
    package = Path(skhyper.__file__).parent
    pattern = re.compile(r"_getframe|currentframe|inspect\.stack|f_back|getouterframes")
    found = [
        f"{path.relative_to(package)}:{n}"
        for path in sorted(package.rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert found == []


# -- metadata routing --------------------------------------------------------------


def _statistic(est, X, y=None):
    return est.test_statistic_ if hasattr(est, "test_statistic_") else est[-1].test_statistic_


def test_pipeline_and_gridsearch_routing_off():
    data, ref, _, _ = bump_sample(2, n_data=200, n_ref=600)
    pipe = Pipeline([("id", FunctionTransformer()), ("sk", SparKerDetector(**FAST))])
    pipe.fit(data, sk__X_ref=ref)
    direct = SparKerDetector(**FAST).fit(data, X_ref=ref)
    np.testing.assert_array_equal(pipe.score_samples(data), direct.score_samples(data))
    search = GridSearchCV(
        SparKerDetector(**FAST), {"n_kernels": [2, 4]}, scoring=_statistic, cv=2
    )
    search.fit(data, X_ref=ref)
    assert search.best_estimator_.n_kernels in (2, 4)


def test_gridsearch_routing_on():
    data, ref, _, _ = bump_sample(3, n_data=200, n_ref=600)
    with config_context(enable_metadata_routing=True):
        est = SparKerDetector(**FAST).set_fit_request(X_ref=True)
        search = GridSearchCV(est, {"n_kernels": [2, 4]}, scoring=_statistic, cv=2)
        search.fit(data, X_ref=ref)
        pipe = Pipeline([("sk", SparKerDetector(**FAST).set_fit_request(X_ref=True))])
        pipe.fit(data, X_ref=ref)
        assert np.isfinite(pipe[-1].test_statistic_)
        # an unrequested X_ref is an error, not silently ignored
        with pytest.raises(Exception, match="X_ref"):
            Pipeline([("sk", SparKerDetector(**FAST))]).fit(data, X_ref=ref)


def test_equal_length_reference_warns():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 2))
    with pytest.warns(UserWarning, match="exactly as many rows") as record:
        SparKerDetector(**FAST).fit(X, X_ref=rng.normal(size=(50, 2)))
    assert record[0].filename == __file__  # points at the caller's fit line
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SparKerDetector(**FAST).fit(X, X_ref=rng.normal(size=(51, 2)))


# -- bad input --------------------------------------------------------------------


@pytest.mark.parametrize(
    "X, X_ref, params, match",
    [
        (np.array([[np.nan, 0.0], [1.0, 1.0], [2.0, 0.0]]), None, {}, "NaN"),
        (np.ones((5, 2)), np.array([[np.inf, 0.0]] * 30), {}, "X_ref"),
        (np.ones((5, 2)), np.ones((30, 3)), {}, "features"),
        (np.ones((20, 2)), np.ones((30, 2)), {"calibration": "reference"}, "too few"),
        (np.empty((0, 2)), None, {}, "0 sample"),
        (np.ones((1, 2)), None, {}, "1 sample"),
        (sp.csr_matrix(np.eye(3)), None, {}, "[Ss]parse"),
        (np.ones((5, 2)), sp.csr_matrix(np.ones((30, 2))), {}, "X_ref"),
        (np.ones((5, 2)), None, {"width_end": (0.5, -0.1)}, "width_end"),
        (np.ones((5, 2)), None, {"width_end": ()}, "width_end"),
        (np.ones((5, 2)), None, {"width_end": (0.5, 0.2, 0.1), "n_steps": 2}, "n_steps"),
    ],
)
def test_bad_input(X, X_ref, params, match):
    with pytest.raises(ValueError, match=match):
        SparKerDetector(**{**FAST, **params}).fit(X, X_ref=X_ref)


def test_failed_refit_keeps_previous_fit():
    rng = np.random.default_rng(0)
    X, R = rng.normal(size=(60, 2)), rng.normal(size=(200, 2))
    det = SparKerDetector(**FAST).fit(X, X_ref=R)
    before = det.score_samples(X)
    with pytest.raises(ValueError):
        det.fit(rng.normal(size=(60, 3)), X_ref=R)
    assert det.n_features_in_ == 2
    np.testing.assert_array_equal(det.score_samples(X), before)


# -- determinism, invariances, side effects -------------------------------------------


def test_determinism_pickle_clone_and_no_global_state():
    rng = np.random.default_rng(0)
    X, R = rng.normal(size=(80, 3)), rng.normal(size=(300, 3))
    np_state = np.random.get_state()[1].copy()
    torch_state = torch.get_rng_state().clone()
    py_state = random.getstate()
    a = SparKerDetector(**FAST).fit(X, X_ref=R)
    b = clone(a).fit(X, X_ref=R)
    assert np.array_equal(np.random.get_state()[1], np_state)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert random.getstate() == py_state
    np.testing.assert_array_equal(a.score_samples(X), b.score_samples(X))
    np.testing.assert_array_equal(a.null_statistics_, b.null_statistics_)
    c = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(c.score_samples(X), a.score_samples(X))
    assert clone(a).get_params() == a.get_params()


def test_verbose_progress(capsys):
    rng = np.random.default_rng(0)
    SparKerDetector(**{**FAST, "verbose": 1}).fit(rng.normal(size=(40, 2)))
    assert "SparKer" in capsys.readouterr().err


_FITTED = {}


def _fitted():
    if not _FITTED:
        data, ref, _, _ = bump_sample(4, n_data=200, n_ref=600)
        _FITTED["det"] = SparKerDetector(**FAST).fit(data, X_ref=ref)
    return _FITTED["det"]


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), batch=st.integers(1, 64))
def test_scores_row_order_and_batch_size_invariant(seed, batch):
    det = _fitted()
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(37, 4)) * 2
    full = det.score_samples(Z)
    perm = rng.permutation(len(Z))
    np.testing.assert_array_equal(det.score_samples(Z[perm]), full[perm])
    # scoring chunks by the batch size fitted with; score the same fit in other chunks
    small = copy.deepcopy(det)
    small._batch_size = batch
    np.testing.assert_array_equal(small.score_samples(Z), full)
    assert full.dtype == np.float64
