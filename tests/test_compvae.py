"""CompVAEDetector / VMFDetector: what must hold (issue 2's acceptance list)."""

import os
import pickle
import random
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score

from skhyper import CompVAEDetector, VMFDetector
from skhyper.compvae import INPUT_CLIP, PAPER_PARAMS
from skhyper._vae.coordinates import isotropic_cos_std, isotropic_radius, to_hyperspherical
from skhyper._vae.losses import REFERENCE_DIM, GaussianKL, HypersphericalRegulariser, angle_gains
from skhyper._vae.neighbors import ExactKNN
from skhyper._vae.networks import MLPDecoder, MLPEncoder
from skhyper._utils.runtime import build_module, make_generator
from skhyper._vae.training import AUTO_STEPS, auto_epochs, schedule

SMALL = dict(latent_dim=4, hidden_layer_sizes=(32,), epochs=15, batch_size=64, random_state=0)


def blobs(n=300, d=6, seed=0):
    rng = np.random.RandomState(seed)
    centres = rng.normal(scale=3, size=(3, d))
    return centres[rng.randint(3, size=n)] + rng.normal(size=(n, d))


def planted_manifold(n_normal, n_anomalies, seed):
    """Nominal rows on a curved 2-d manifold in 20-d; anomalies break its relations
    (each feature from an independent point of the manifold), so their marginals
    look normal but the rows lie off it."""
    rng = np.random.RandomState(seed)
    A = rng.normal(size=(5, 20))

    def embed(t, s):
        lat = np.c_[np.cos(t), np.sin(t), s, s * np.cos(t), np.sin(2 * t)]
        return np.tanh(lat @ A / 2)

    X = embed(rng.uniform(0, 2 * np.pi, n_normal), rng.uniform(-1, 1, n_normal))
    X += 0.01 * rng.normal(size=X.shape)
    Xa = np.empty((n_anomalies, 20))
    for j in range(20):
        ta, sa = rng.uniform(0, 2 * np.pi, n_anomalies), rng.uniform(-1, 1, n_anomalies)
        Xa[:, j] = embed(ta, sa)[:, j]
    return X, Xa


@pytest.fixture(scope="module")
def fitted():
    X = blobs()
    return CompVAEDetector(**SMALL).fit(X), X


def mean_cosines(det, X):
    _, cos = to_hyperspherical(torch.from_numpy(det.transform_latent(X)))
    return cos.mean(dim=0).numpy()


# -- 3. compression does what it claims ------------------------------------------------


@pytest.fixture(scope="module")
def compression_fits():
    X = blobs(n=600, d=8, seed=1)
    params = dict(latent_dim=8, random_state=0)
    return X, {
        "full": CompVAEDetector(compression="full", **params).fit(X),
        "first": VMFDetector(**params).fit(X),
        "none": CompVAEDetector(compression="none", **params).fit(X),
    }


def test_full_compression_pulls_first_angle_to_pole(compression_fits):
    X, fits = compression_fits
    cos = {name: mean_cosines(det, X) for name, det in fits.items()}
    assert cos["full"][0] > 0.85
    assert cos["first"][0] > 0.85
    assert abs(cos["none"][0]) < 0.3
    assert cos["full"][0] - cos["none"][0] > 0.5


def test_full_pulls_tail_angles_first_leaves_them_isotropic(compression_fits):
    X, fits = compression_fits
    tail_full = mean_cosines(fits["full"], X)[1:-1]
    tail_first = mean_cosines(fits["first"], X)[1:-1]
    assert tail_full.mean() > 0.3
    # isotropic value of a cosine's mean is 0
    assert np.abs(tail_first).mean() < 0.15
    assert tail_full.mean() - tail_first.mean() > 0.25


@pytest.mark.parametrize("latent_dim", [3, 32])
def test_default_gains_compress_at_other_latent_sizes(latent_dim):
    X = blobs(n=400, d=8, seed=2)
    det = CompVAEDetector(latent_dim=latent_dim, random_state=0).fit(X)
    assert mean_cosines(det, X)[0] > 0.8


def test_angular_gains_are_normalised_to_reference_dim():
    ref = HypersphericalRegulariser(REFERENCE_DIM, "full", 5e5)
    np.testing.assert_allclose(ref.beta.numpy(), angle_gains(REFERENCE_DIM).numpy(), rtol=1e-6)
    assert ref.radial_scale == pytest.approx(1.0)
    for n in (4, 16, 300):
        reg = HypersphericalRegulariser(n, "full", 5e5)
        assert float(reg.beta.sum()) == pytest.approx(float(ref.beta.sum()), rel=1e-5)
        # the shape over angles is the authors' beta_i ∝ 1/sqrt(i)
        np.testing.assert_allclose(
            (reg.beta / reg.beta[0]).numpy(), (1 / np.sqrt(np.arange(1, n))), rtol=1e-5
        )


# -- the method, pinned: each fails when its line of the model is broken ------------------


def cos_spread(det, X):
    _, cos = to_hyperspherical(torch.from_numpy(det.transform_latent(X)))
    return cos.std(dim=0).numpy()


def test_isotropic_targets_give_isotropic_cosine_spread(compression_fits):
    X, fits = compression_fits
    target = isotropic_cos_std(8).numpy()
    # "none": every angle spreads as under N(0, I); "first": the tail angles do
    ratio_none = cos_spread(fits["none"], X) / target
    ratio_first = cos_spread(fits["first"], X)[1:] / target[1:]
    assert np.all((ratio_none > 0.6) & (ratio_none < 1.4)), ratio_none
    assert np.all((ratio_first > 0.6) & (ratio_first < 1.4)), ratio_first


def test_latent_radius_and_scale(compression_fits):
    X, fits = compression_fits
    for det in fits.values():
        mu, sigma = det.model_.encode(torch.from_numpy(det.transform_.transform(X)))
        r_mu = torch.linalg.vector_norm(mu, dim=1)
        assert float(r_mu.mean()) == pytest.approx(isotropic_radius(8), rel=0.1)
        assert float(r_mu.std()) < 0.2 * float(r_mu.mean())
        # sigma is small next to the radius of mu (about 0.7 per axis at initialisation)
        assert float(torch.linalg.vector_norm(sigma, dim=1).mean()) < 0.25 * float(r_mu.mean())


def test_training_forward_pass_samples_the_latent(fitted):
    det, X = fitted
    model = det.model_
    x = torch.from_numpy(det.transform_.transform(X[:20]))
    gen = torch.Generator().manual_seed(0)
    mu, sigma = model.encode(x)
    a, b = model(x, gen)[2], model(x, gen)[2]
    assert not torch.equal(a, b)  # sampling noise enters the forward pass
    # and it is sigma-sized noise around the projected mean
    z = model.sample(mu, sigma, gen)
    proj = np.sqrt(model.latent_dim) * mu / torch.linalg.vector_norm(mu, dim=1, keepdim=True)
    assert 0 < float((z - proj).abs().max()) < 10 * float(sigma.max())
    # the deterministic reconstruction decodes the mean's point on the sphere
    torch.testing.assert_close(model.decode_mean(mu), model.decoder(proj))


def test_loss_and_reconstruction_fall_over_training(compression_fits):
    _, fits = compression_fits
    for det in fits.values():
        h = det.history_
        assert h["reconstruction"][-1] < 0.5 * h["reconstruction"][0]
        assert h["regulariser"][-1] < h["regulariser"][0]


def autoencoder_knn(X_train, X_test, seed=0, steps=300):
    """The baseline the method must beat: a plain autoencoder (same MLP, no
    sampling, no regulariser) with the same latent kNN score."""
    gen = torch.Generator().manual_seed(seed)
    loc, scale = np.median(X_train, 0), np.subtract(*np.percentile(X_train, [75, 25], 0))
    A = torch.tensor((X_train - loc) / scale, dtype=torch.float32)
    B = torch.tensor((X_test - loc) / scale, dtype=torch.float32)
    enc = build_module(lambda: MLPEncoder(A.shape[1], (128, 64), 16), make_generator(seed))
    dec = build_module(lambda: MLPDecoder(16, (128, 64), A.shape[1]), make_generator(seed + 1))
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], 1e-3)
    for _ in range(steps):
        idx = torch.randperm(len(A), generator=gen)[:256]
        loss = ((dec(enc(A[idx])[0]) - A[idx]) ** 2).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        a, b = enc(A)[0], enc(B)[0]
    return -torch.cdist(b, a).topk(3, largest=False).values.mean(1).numpy()


def test_gaussian_kl_is_the_closed_form():
    rng = np.random.RandomState(0)
    mu, sigma = torch.tensor(rng.normal(size=(7, 5))), torch.tensor(rng.uniform(0.1, 2, (7, 5)))
    expected = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu, sigma), torch.distributions.Normal(0.0, 1.0)
    ).sum(1).mean()
    got = GaussianKL()(mu, sigma, None)["total"]
    assert float(got) == pytest.approx(float(expected), rel=1e-12)


def test_gaussian_vae_keeps_its_sample_off_the_sphere():
    det = CompVAEDetector(**{**SMALL, "compression": "gaussian"}).fit(blobs())
    assert not det.model_.spherical and "kl" in det.history_
    assert set(det.history_["beta"]) == {1.0}
    mu = torch.ones(3, 4) * torch.tensor([[0.1], [1.0], [3.0]])
    z = det.model_.sample(mu, torch.full_like(mu, 1e-9), torch.Generator().manual_seed(0))
    torch.testing.assert_close(z, mu)  # a spherical VAE would give radius 2 for all three


def test_reconstruction_and_combined_scores():
    X = blobs()
    det = CompVAEDetector(**{**SMALL, "anomaly_score": "reconstruction"}).fit(X)
    Q = np.r_[X[:5], X[:5] + 2.0]
    Z = torch.from_numpy(det.transform_.transform(Q))
    rec = ((det.model_.decode_mean(det.model_.encode(Z)[0]) - Z) ** 2).sum(1).numpy()
    np.testing.assert_allclose(det.score_samples(Q), -rec, rtol=1e-10)
    knn = -clone(det).set_params(anomaly_score="knn").fit(X).score_samples(Q)
    comb = clone(det).set_params(anomaly_score="combined").fit(X)
    (k_loc, k_scale), (r_loc, r_scale) = comb._part_scales.values()
    np.testing.assert_allclose(
        comb.score_samples(Q), -((knn - k_loc) / k_scale + (rec - r_loc) / r_scale), rtol=1e-6
    )
    # the parts are standardised on the training rows' own (left-one-out) scores
    train_knn = -clone(det).set_params(anomaly_score="knn").fit(X)._train_scores
    assert k_loc == pytest.approx(np.median(train_knn))
    assert k_scale == pytest.approx(np.subtract(*np.percentile(train_knn, [75, 25])))


def test_paper_schedule_and_configuration():
    # the authors' epochs: ramp sqrt(e) + 1 to epoch 100, then tail sqrt(e - 101) + 1
    s = schedule(50, 300, "paper")
    assert s.ramp == pytest.approx(np.sqrt(50) + 1) and s.weights.first == 100
    s = schedule(150, 300, "paper")
    assert s.ramp == 1 and s.weights.first == 150
    assert s.weights.tail == pytest.approx(np.sqrt(150 - 101) + 1)
    # scaled to other epoch counts
    assert schedule(15, 30, "paper").weights.tail == pytest.approx(np.sqrt(150 - 101) + 1)
    assert PAPER_PARAMS["latent_dim"] == 128 and PAPER_PARAMS["kl_target"] == 2500
    det = CompVAEDetector(**{**PAPER_PARAMS, "epochs": 30, "latent_dim": 8}).fit(blobs(n=200))
    assert det.n_epochs_ == 30


# -- 4. known answers ------------------------------------------------------------------


def test_planted_manifold_anomalies_are_found():
    X, Xa = planted_manifold(1300, 100, seed=0)
    det = CompVAEDetector(random_state=0).fit(X[:1000])
    scores = det.score_samples(np.r_[X[1000:], Xa])
    y = np.r_[np.zeros(300), np.ones(100)]
    assert roc_auc_score(y, -scores) >= 0.95


def off_manifold(n_normal, n_anomalies, seed, d=20, off=0.5):
    """Nominal rows on a curved 2-d sheet in d dimensions; anomalies are sheet
    points pushed ``off`` away from it along directions the sheet never uses."""
    rng = np.random.RandomState(seed)
    basis = np.linalg.qr(rng.normal(size=(d, d)))[0]
    t = rng.uniform(-1, 1, size=(n_normal + n_anomalies, 2))
    bend = np.sin(3 * t[:, :1]) * t[:, 1:2]
    X = np.tanh(2 * t @ basis[:, :2].T + bend @ basis[:, 2:3].T)
    X += 0.01 * rng.normal(size=X.shape)
    push = rng.normal(size=(n_anomalies, d - 3)) @ basis[:, 3:].T
    X[n_normal:] += off * push / np.linalg.norm(push, axis=1, keepdims=True)
    return X[:n_normal], X[n_normal:]


@pytest.mark.parametrize("seed", [0, 1])
def test_off_manifold_anomalies_beat_an_autoencoder_with_knn(seed):
    # a plain autoencoder maps rows pushed off the sheet back among the normal
    # codes; the VAE's score must do clearly better than that baseline
    X, Xa = off_manifold(1100, 60, seed)
    X_test, y = np.r_[X[1000:], Xa], np.r_[np.zeros(100), np.ones(60)]
    baseline = roc_auc_score(y, -autoencoder_knn(X[:1000], X_test, seed))
    for score in ("combined", "knn"):
        det = CompVAEDetector(anomaly_score=score, random_state=seed).fit(X[:1000])
        assert roc_auc_score(y, -det.score_samples(X_test)) >= baseline + 0.03, score


def test_digits_one_class():
    X, y = load_digits(return_X_y=True)
    rng = np.random.RandomState(0)
    zeros = rng.permutation(np.flatnonzero(y == 0))
    train, test = zeros[:120], np.r_[zeros[120:], np.flatnonzero(y != 0)]
    det = CompVAEDetector(random_state=0).fit(X[train])
    assert roc_auc_score(y[test] != 0, -det.score_samples(X[test])) >= 0.95


# -- 5. determinism and invariance -------------------------------------------------------


def test_same_random_state_gives_identical_scores(fitted):
    det, X = fitted
    again = clone(det).fit(X)
    np.testing.assert_array_equal(det.score_samples(X), again.score_samples(X))
    np.testing.assert_array_equal(det.history_["loss"], again.history_["loss"])


def test_different_random_state_gives_different_model(fitted):
    det, X = fitted
    other = clone(det).set_params(random_state=1).fit(X)
    assert not np.array_equal(det.score_samples(X), other.score_samples(X))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    perm_seed=st.integers(0, 2**31 - 1),
    size=st.integers(1, 60),
    batch_size=st.integers(1, 300),
    shift=st.floats(-2, 2),
)
def test_scores_are_rowwise(fitted, perm_seed, size, batch_size, shift):
    det, X = fitted
    rng = np.random.RandomState(perm_seed)
    # a mix of training rows and new rows
    Q = np.r_[X[:30], X[30:60] + shift]
    reference = det.score_samples(Q)
    perm = rng.permutation(len(Q))
    # equal up to float64 round-off (BLAS picks other kernels for other shapes)
    np.testing.assert_allclose(det.score_samples(Q[perm]), reference[perm], rtol=1e-12)
    subset = perm[:size]
    np.testing.assert_allclose(det.score_samples(Q[subset]), reference[subset], rtol=1e-12)
    rebatched = clone(det).set_params(batch_size=batch_size)
    rebatched.__dict__.update({k: v for k, v in det.__dict__.items() if k.endswith("_") or k.startswith("_")})
    np.testing.assert_allclose(rebatched.score_samples(Q), reference, rtol=1e-12)


def test_decision_function_is_shifted_score(fitted):
    det, X = fitted
    Q = X + 0.5
    np.testing.assert_array_equal(det.decision_function(Q), det.score_samples(Q) - det.offset_)
    pred = det.predict(Q)
    assert pred.dtype.kind == "i"
    np.testing.assert_array_equal(pred, np.where(det.decision_function(Q) < 0, -1, 1))


def test_scores_sign_and_dtype(fitted):
    det, X = fitted
    far = X[:5] + 50.0
    s_train, s_far = det.score_samples(X[:5]), det.score_samples(far)
    assert s_train.dtype == np.float64 and s_far.dtype == np.float64
    assert np.all(s_far < s_train.min())
    assert np.all(det.predict(far) == -1)


# -- leave-one-out on training rows, contamination ----------------------------------------


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


@pytest.mark.parametrize("contamination", [0.05, 0.2])
def test_contamination_sets_training_outlier_fraction(fitted, contamination):
    det, X = fitted
    det = clone(det).set_params(contamination=contamination).fit(X)
    assert np.mean(det.predict(X) == -1) == pytest.approx(contamination, abs=1 / len(X))


def test_auto_contamination_is_tukey_fence(fitted):
    det, X = fitted
    dist = -det.score_samples(X)
    q1, q3 = np.percentile(dist, [25, 75])
    assert det.offset_ == pytest.approx(-(q3 + 1.5 * (q3 - q1)))


# -- 6. no global side effects -----------------------------------------------------------


@pytest.mark.parametrize("random_state", [None, 3, np.random.RandomState(5)])
def test_no_global_state_is_touched(random_state):
    np.random.seed(123)
    random.seed(123)
    torch.manual_seed(123)
    before = (np.random.get_state()[1].copy(), random.getstate(), torch.get_rng_state().clone())
    env = dict(os.environ)
    det = CompVAEDetector(**{**SMALL, "random_state": random_state})
    det.fit(blobs(n=80)).score_samples(blobs(n=10, seed=4))
    after = (np.random.get_state()[1], random.getstate(), torch.get_rng_state())
    np.testing.assert_array_equal(before[0], after[0])
    assert before[1] == after[1]
    assert torch.equal(before[2], after[2])
    assert dict(os.environ) == env


# -- 7. pickle, clone, memmap --------------------------------------------------------------


def test_pickle_round_trip(fitted):
    det, X = fitted
    loaded = pickle.loads(pickle.dumps(det))
    np.testing.assert_array_equal(loaded.score_samples(X), det.score_samples(X))
    assert loaded.offset_ == det.offset_
    for value in loaded.__getstate__().values():
        if isinstance(value, torch.Tensor):
            assert value.device.type == "cpu"


def test_clone_refit_equality(fitted):
    det, X = fitted
    np.testing.assert_array_equal(clone(det).fit(X).decision_function(X), det.decision_function(X))


def test_readonly_memmap_input(tmp_path, fitted):
    det, X = fitted
    path = tmp_path / "X.dat"
    mm = np.memmap(path, dtype=np.float64, mode="w+", shape=X.shape)
    mm[:] = X
    mm.flush()
    ro = np.memmap(path, dtype=np.float64, mode="r", shape=X.shape)
    fresh = clone(det).fit(ro)
    np.testing.assert_array_equal(fresh.score_samples(ro), det.score_samples(X))


@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_other_dtypes_and_dataframes(dtype):
    pd = pytest.importorskip("pandas")
    X = (blobs(n=120) * 10).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no spurious feature-name warning from fit
        det = CompVAEDetector(**SMALL).fit(pd.DataFrame(X, columns=[f"f{i}" for i in range(6)]))
    assert list(det.feature_names_in_) == [f"f{i}" for i in range(6)]
    scores = det.score_samples(pd.DataFrame(X, columns=det.feature_names_in_))
    assert scores.dtype == np.float64 and np.isfinite(scores).all()


# -- 8. bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "X, match",
    [
        (np.array([[1.0, np.nan], [2.0, 3.0], [1.0, 1.0], [0.0, 0.0], [2.0, 2.0]]), "NaN"),
        (np.array([[1.0, np.inf], [2.0, 3.0], [1.0, 1.0], [0.0, 0.0], [2.0, 2.0]]), "infinity"),
        (np.empty((0, 3)), "0 sample"),
        (np.ones((1, 3)), "1 sample"),
        (sp.csr_matrix(np.ones((10, 3))), "[Ss]parse"),
        (np.ones((10, 3)) + 1j, "[Cc]omplex"),
        (np.array([["a", "b"]] * 10, dtype=object), "string|float"),
        (np.ones((3, 3)), "n_neighbors=3 must be smaller"),
    ],
)
def test_bad_fit_input(X, match):
    with pytest.raises(ValueError, match=match):
        CompVAEDetector(**SMALL).fit(X)


def test_one_huge_training_value_does_not_flatten_the_other_rows():
    X, Xa = planted_manifold(1100, 60, seed=3)
    y = np.r_[np.zeros(100), np.ones(60)]
    clean = CompVAEDetector(random_state=0).fit(X[:1000])
    X_bad = X[:1000].copy()
    X_bad[0] = 1e30  # mean/std scaling would squash every other row to one point
    det = CompVAEDetector(random_state=0).fit(X_bad)
    scores = det.score_samples(np.r_[X[1000:], Xa])
    assert np.isfinite(scores).all()
    ref = roc_auc_score(y, -clean.score_samples(np.r_[X[1000:], Xa]))
    assert roc_auc_score(y, -scores) >= ref - 0.02
    assert det.score_samples(X_bad[:1])[0] < np.percentile(scores, 1)


def test_rows_near_overflow_score_finite_and_most_anomalous(fitted):
    det, X = fitted
    Q = np.r_[X[:10], np.full((2, X.shape[1]), 1e154), np.full((1, X.shape[1]), -1e300)]
    scores = det.score_samples(Q)
    assert np.isfinite(scores).all()
    assert scores[10:].max() < scores[:10].min()
    assert np.all(det.predict(Q[10:]) == -1)
    # scaled values are clipped: all far rows sit at the same clipped point
    assert det._scaled(Q[10:11]).max() == INPUT_CLIP


def test_values_that_cannot_be_scaled_are_a_clear_error():
    rng = np.random.RandomState(0)
    X = np.c_[rng.normal(size=(200, 3)), rng.normal(scale=1e-150, size=200)]
    det = CompVAEDetector(**SMALL).fit(X)
    with pytest.raises(ValueError, match="too large to scale"):
        det.score_samples(np.r_[X[:2], [[0, 0, 0, 1e300]]])
    with pytest.raises(ValueError, match="too large to scale"):
        CompVAEDetector(**SMALL).fit(np.r_[X, [[0, 0, 0, 1e300]]])


def test_bad_predict_input(fitted):
    det, X = fitted
    with pytest.raises(ValueError, match="features"):
        det.score_samples(X[:, :3])
    with pytest.raises(ValueError, match="NaN"):
        det.predict(np.full((2, X.shape[1]), np.nan))
    with pytest.raises(ValueError, match="[Ss]parse"):
        det.decision_function(sp.csr_matrix(X))
    with pytest.raises(ValueError, match="2D"):
        det.score_samples(X[0])


def test_not_fitted():
    with pytest.raises(NotFittedError):
        CompVAEDetector().score_samples(np.ones((3, 2)))
    with pytest.raises(NotFittedError):
        VMFDetector().predict(np.ones((3, 2)))


@pytest.mark.parametrize(
    "params, match",
    [
        ({"image_shape": (1, 3, 3)}, "image_shape"),
        ({"image_shape": (2, 3)}, r"\(C, H, W\)"),
        ({"hidden_layer_sizes": (0,)}, "hidden_layer_sizes"),
        ({"compression": "half"}, "compression"),
        ({"device": "tpu"}, "device"),
        ({"latent_dim": 1}, "latent_dim"),
    ],
)
def test_bad_parameters(params, match):
    with pytest.raises(ValueError, match=match):
        CompVAEDetector(**{**SMALL, **params}).fit(blobs(n=20))


def test_failed_refit_leaves_previous_fit_usable(fitted):
    det, X = fitted
    det = pickle.loads(pickle.dumps(det))
    before = det.score_samples(X)
    with pytest.raises(ValueError):
        det.fit(np.c_[X, X][:3])  # fewer rows than n_neighbors + 1, other width
    with pytest.raises(ValueError):
        det.fit(np.where(X > 2, np.nan, X))
    assert det.n_features_in_ == X.shape[1]
    np.testing.assert_array_equal(det.score_samples(X), before)


# -- class-conditional mode --------------------------------------------------------------------


def test_class_conditional_classes_gather_on_their_axes():
    rng = np.random.RandomState(0)
    X = np.r_[rng.normal(size=(200, 6)), rng.normal(loc=4, size=(200, 6)), rng.normal(loc=-4, size=(6, 6))]
    y = np.r_[np.zeros(200), np.ones(200), np.full(6, 2)].astype(int)  # class 2 is rare
    det = CompVAEDetector(latent_dim=24, class_conditional=True, random_state=0).fit(X, y)
    assert list(det.classes_) == [0, 1, 2]
    mu = det.transform_latent(X)
    unit = mu / np.linalg.norm(mu, axis=1, keepdims=True)
    for c in (0, 1):
        axis = c * 10
        rows = unit[y == c]
        # each class's means point mostly along its own Cartesian axis
        assert rows[:, axis].mean() > 0.5
        other = 10 - axis
        assert rows[:, axis].mean() > rows[:, other].mean() + 0.3
    # scoring is label-free
    assert det.score_samples(X).shape == (len(X),)


def test_class_conditional_errors():
    X = blobs(n=60)
    with pytest.raises(ValueError, match="needs the class labels"):
        CompVAEDetector(**{**SMALL, "class_conditional": True}).fit(X)
    with pytest.raises(ValueError, match="latent_dim"):
        CompVAEDetector(**{**SMALL, "class_conditional": True}).fit(X, np.arange(60) % 3)
    with pytest.raises(ValueError, match="hyperspherical compression"):
        CompVAEDetector(
            **{**SMALL, "class_conditional": True, "compression": "gaussian", "latent_dim": 32}
        ).fit(X, np.arange(60) % 3)


def test_labels_ignored_without_class_conditional(fitted):
    det, X = fitted
    with_y = clone(det).fit(X, np.arange(len(X)) % 2)
    np.testing.assert_array_equal(with_y.score_samples(X), det.score_samples(X))


# -- image mode ------------------------------------------------------------------------------


def test_conv_image_mode_is_rowwise_in_eval_mode():
    X, y = load_digits(return_X_y=True)
    X = X[:200] / 16.0
    det = CompVAEDetector(
        image_shape=(1, 8, 8), conv_channels=(16, 32, 64), latent_dim=8, epochs=2, batch_size=64,
        random_state=0,
    )
    det.fit(X)
    assert det.model_.decoder.sigmoid  # data in [0, 1]
    assert not det.model_.training
    full = det.score_samples(X[:50])
    np.testing.assert_allclose(det.score_samples(X[10:20]), full[10:20], rtol=1e-5, atol=1e-6)  # float32 conv inference
    n_params = sum(p.numel() for p in det.model_.parameters())
    assert 50_000 < n_params < 1_000_000


# -- training record, progress bar -------------------------------------------------------------


def test_history_and_progress(capsys):
    det = CompVAEDetector(**{**SMALL, "epochs": 4, "verbose": 1}).fit(blobs(n=100))
    err = capsys.readouterr().err
    assert "CompVAE" in err and "4/4" in err
    assert set(det.history_) >= {"loss", "reconstruction", "regulariser", "beta"}
    assert all(len(v) == 4 for v in det.history_.values())
    quiet = CompVAEDetector(**{**SMALL, "epochs": 2}).fit(blobs(n=100))
    assert capsys.readouterr().err == ""
    assert len(quiet.history_["loss"]) == 2


def test_auto_epochs_give_enough_steps():
    params = {**SMALL, "epochs": "auto", "batch_size": 50, "early_stopping": False}
    det = CompVAEDetector(**params).fit(blobs(n=100))
    assert det.n_epochs_ == auto_epochs(2) == AUTO_STEPS // 2  # 2 batches an epoch


def test_early_stopping_ends_training_on_the_held_out_rows():
    X = blobs(n=400)
    params = {**SMALL, "epochs": 200, "n_iter_no_change": 3}
    det = CompVAEDetector(**params).fit(X)
    assert det.n_epochs_ < 200
    val = [v for v in det.history_["validation"] if v == v]  # NaN: first phase
    # the last n_iter_no_change checks did not beat the best by 0.1%
    assert min(val[-3:]) >= min(val[:-3]) * (1 - 1e-3)
    full = CompVAEDetector(**{**params, "early_stopping": False}).fit(X)
    assert full.n_epochs_ == 200 and "validation" not in full.history_
    # every training row is in the bank, held-out rows too
    assert len(det._bank) == len(X)


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
    bank, q = torch.from_numpy(rng.normal(size=(500, 4))), torch.from_numpy(rng.normal(size=(40, 4)))
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


# -- 9. CUDA -----------------------------------------------------------------------------------

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
@pytest.mark.cuda
def test_cuda_fit_scores_close_to_cpu_and_unpickles_on_cpu(tmp_path):
    import subprocess
    import sys

    X = blobs(n=300)
    det = CompVAEDetector(**{**SMALL, "device": "cuda"}).fit(X)
    assert det.device_.type == "cuda"
    assert next(det.model_.parameters()).device.type == "cuda"
    scores = det.score_samples(X)
    assert np.isfinite(scores).all()
    auto = CompVAEDetector(**{**SMALL, "device": "auto"}).fit(X)
    assert auto.device_.type == "cuda"
    path = tmp_path / "det.pkl"
    path.write_bytes(pickle.dumps(det))
    code = (
        "import pickle, numpy as np, sys;"
        f"det = pickle.loads(open({str(path)!r}, 'rb').read());"
        "X = np.load(sys.argv[1]);"
        "print(repr(det.score_samples(X).tolist()))"
    )
    np.save(tmp_path / "X.npy", X)
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "X.npy")],
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
        capture_output=True,
        text=True,
        check=True,
    )
    np.testing.assert_allclose(np.array(eval(out.stdout)), scores, rtol=1e-6)


def test_unavailable_cuda_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ValueError, match="CUDA is not available"):
        CompVAEDetector(**{**SMALL, "device": "cuda"}).fit(blobs(n=20))
