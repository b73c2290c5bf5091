"""CompVAEDetector / VMFDetector: what must hold (issue 2's acceptance list)."""

import copy
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

import skhyper.compvae as compvae
from skhyper import CompVAEDetector, VMFDetector
from skhyper._utils.runtime import build_module, make_generator
from skhyper._vae.networks import ConvEncoder, MLPDecoder, MLPEncoder
from skhyper.compvae import INPUT_CLIP, _robust_scale

from conftest import FAST_VAE, SMALL, blobs


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


def test_reconstruction_and_combined_scores():
    X = blobs()
    det = CompVAEDetector(**{**SMALL, "anomaly_score": "reconstruction"}).fit(X)
    Q = np.r_[X[:5], X[:5] + 2.0]
    Z = torch.from_numpy(det.transform_.transform(Q))
    rec = ((det.model_.decode_mean(det.model_.encode(Z)[0]) - Z) ** 2).sum(1).numpy()
    np.testing.assert_allclose(det.score_samples(Q), -rec, rtol=1e-10)
    knn = -clone(det).set_params(anomaly_score="knn").fit(X).score_samples(Q)
    comb = clone(det).set_params(anomaly_score="combined").fit(X)
    (k_loc, k_scale), (r_loc, r_scale) = comb._part_scales[0].values()
    np.testing.assert_allclose(
        comb.score_samples(Q), -((knn - k_loc) / k_scale + (rec - r_loc) / r_scale), rtol=1e-6
    )
    # the parts are standardised on the training rows' own (left-one-out) scores
    train_knn = -clone(det).set_params(anomaly_score="knn").fit(X).training_scores_
    assert k_loc == pytest.approx(np.median(train_knn))
    assert k_scale == pytest.approx(np.subtract(*np.percentile(train_knn, [75, 25])))


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


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
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
    # scoring chunks by the batch size fitted with; score the same fit in other chunks
    rebatched = copy.deepcopy(det)
    rebatched._batch_size = batch_size
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


# -- contamination ----------------------------------------------------------------------


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
        (np.ones((3, 3)), "a minimum of 4 is required"),
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
    X = np.r_[
        rng.normal(size=(200, 6)), rng.normal(loc=4, size=(200, 6)), rng.normal(loc=-4, size=(6, 6))
    ]
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


# -- training record, progress bar -------------------------------------------------------------


def test_history_and_progress(capsys):
    det = CompVAEDetector(**{**SMALL, "epochs": 4, "verbose": 1}).fit(blobs(n=100))
    err = capsys.readouterr().err
    assert "CompVAE" in err and "4/4" in err
    # every long phase after training has a bar of its own
    for phase in ("encoding the training rows", "latent bank (exact)", "leave-one-out scores"):
        assert phase in err
    assert set(det.history_) >= {"loss", "reconstruction", "regulariser", "beta"}
    assert all(len(v) == 4 for v in det.history_.values())
    quiet = CompVAEDetector(**{**SMALL, "epochs": 2}).fit(blobs(n=100))
    assert capsys.readouterr().err == ""
    assert len(quiet.history_["loss"]) == 2


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
    assert len(det._banks[0]) == len(X)


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


def test_vmf_is_compvae_with_the_first_angle_compressed():
    """VMFDetector declares no parameter of its own: CompVAE's, less compression."""
    vmf_params = VMFDetector().get_params()
    compvae_params = CompVAEDetector().get_params()
    assert vmf_params == {k: v for k, v in compvae_params.items() if k != "compression"}
    assert "compression" not in vars(VMFDetector())
    with pytest.raises(TypeError, match="compression"):
        VMFDetector(compression="full")
    X = np.random.RandomState(0).normal(size=(120, 4))
    params = dict(latent_dim=4, hidden_layer_sizes=(16,), epochs=3, random_state=0)
    vmf = VMFDetector(**params).fit(X)
    first = CompVAEDetector(compression="first", **params).fit(X)
    np.testing.assert_array_equal(vmf.score_samples(X), first.score_samples(X))
    assert repr(VMFDetector(latent_dim=4)) == "VMFDetector(latent_dim=4)"


@pytest.mark.parametrize("scaling", ["standard", "winsorized", "robust", "quantile"])
def test_huge_units_rank_rows_as_ordinary_units_do(scaling):
    """Features in units of 1e153 ... 1e300 are scaled, not collapsed: their squares
    overflow float64, but the ranking of the rows is that of the same data in
    ordinary units (it used to give every row one score, AUROC 0.5)."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(200, 4))
    Q = np.r_[rng.normal(size=(40, 4)), rng.normal(size=(10, 4)) + 4.0]
    params = {**SMALL, "epochs": 3, "scaling": scaling}
    plain = CompVAEDetector(**params).fit(X)
    expected = plain.score_samples(Q)
    for factor in (1e153, 1e200, 1e300):
        det = CompVAEDetector(**params).fit(X * factor)
        scores = det.score_samples(Q * factor)
        assert np.isfinite(scores).all() and np.ptp(scores) > 0
        assert np.array_equal(np.argsort(scores), np.argsort(expected)), factor
        assert 0 < np.mean(det.predict(Q * factor) == -1) < 1


def test_unscaled_values_beyond_the_float32_range_are_refused_and_clipped():
    rng = np.random.RandomState(0)
    X = rng.uniform(size=(150, 4))
    with pytest.raises(ValueError, match="scaling='none'"):
        CompVAEDetector(**{**SMALL, "scaling": "none"}).fit(np.r_[X, [[1e300, 0, 0, 0]]])
    det = CompVAEDetector(**{**SMALL, "epochs": 2, "scaling": "none"}).fit(X)
    scores = det.score_samples(np.r_[X[:5], [[1e300, 0, 0, 0], [-1e300, 0, 0, 0]]])
    assert np.isfinite(scores).all()  # it used to score -inf
    assert scores[5:].max() < scores[:5].min()


@pytest.mark.parametrize("random_state", [0, 2**32 - 1, np.random.RandomState(7)])
def test_approximate_backend_takes_any_random_state(random_state):
    """pynndescent wants a 32-bit seed; the fit's seeds have 63 bits (it failed at
    any size with numpy's 'Seed must be between 0 and 2**32 - 1')."""
    pytest.importorskip("pynndescent")
    X = blobs(n=120)
    det = CompVAEDetector(
        **{**SMALL, "epochs": 2, "knn_backend": "pynndescent", "random_state": random_state}
    ).fit(X)
    exact = copy.deepcopy(det)
    bank = det._banks[0]
    exact._banks = [type(bank)(bank.latents, "exact", det.n_neighbors_, 0)]
    # leave-one-out training scores from the index's graph, equal to exact search's
    np.testing.assert_allclose(
        bank.leave_one_out_distance(3, 64),
        exact._banks[0].leave_one_out_distance(3, 64),
        rtol=1e-5,
    )
    assert np.isfinite(det.score_samples(X)).all()


def test_early_stopping_never_trains_on_its_validation_rows(monkeypatch):
    """The rows held out for early stopping are not among the rows the VAE
    trains on; together the two sets are every training row, once."""
    split, trained = [], []
    original_split = CompVAEDetector._validation_split
    original_train = compvae.train_vae

    def recording_split(self, n_samples, seed):
        out = original_split(self, n_samples, seed)
        split.append(out)
        return out

    def recording_train(model, regulariser, X, *args, **kwargs):
        trained.append(X.clone())
        return original_train(model, regulariser, X, *args, **kwargs)

    monkeypatch.setattr(CompVAEDetector, "_validation_split", recording_split)
    monkeypatch.setattr(compvae, "train_vae", recording_train)
    X = blobs(n=100)
    det = CompVAEDetector(
        **{**SMALL, "epochs": 4}, early_stopping=True, validation_fraction=0.2
    ).fit(X)
    [(train_rows, val_rows)] = split
    assert val_rows is not None and len(val_rows) == 20
    assert np.intersect1d(train_rows, val_rows).size == 0
    np.testing.assert_array_equal(np.sort(np.r_[train_rows, val_rows]), np.arange(100))
    # the tensor trained on holds the scaled training rows and none of the held-out ones
    Z = torch.from_numpy(det.transform_.transform(X).astype(np.float32))
    [seen] = trained
    assert seen.shape == (80, X.shape[1])
    torch.testing.assert_close(seen, Z[torch.as_tensor(train_rows)], rtol=0, atol=0)
    held_out = Z[torch.as_tensor(val_rows)]
    assert not (seen[:, None, :] == held_out[None, :, :]).all(-1).any()


def test_robust_scale_of_a_constant_part_is_one():
    """A part whose interquartile range is zero is centred and left unscaled."""
    assert _robust_scale(np.full(7, 2.5)) == (2.5, 1.0)
    loc, scale = _robust_scale(np.arange(5.0))
    assert (loc, scale) == (2.0, 2.0)


def test_duplicated_rows_give_finite_scores_and_offset():
    """Every row repeated more often than n_neighbors: every training row's kNN
    distance is 0, so the kNN part has no spread; the combined score, the
    offset and the scores of new rows stay finite."""
    base = blobs(n=6, seed=3)
    X = np.repeat(base, 10, axis=0)
    det = CompVAEDetector(**FAST_VAE, anomaly_score="combined", random_state=0).fit(X)
    assert np.isfinite(det.offset_)
    scores = det.score_samples(np.r_[X, base + 0.5, base + 10.0])
    assert np.all(np.isfinite(scores))
    assert np.all(np.isfinite(det.decision_function(X)))


@pytest.mark.parametrize("fraction", [0.1, 0.25])
def test_validation_split_partitions_the_rows(fraction):
    """The early-stopping split: disjoint, sorted, together every row."""
    det = CompVAEDetector(validation_fraction=fraction)
    train_rows, val_rows = det._validation_split(40, seed=5)
    assert len(val_rows) == round(fraction * 40)
    assert np.all(np.diff(train_rows) > 0) and np.all(np.diff(val_rows) > 0)
    np.testing.assert_array_equal(np.union1d(train_rows, val_rows), np.arange(40))
    assert np.intersect1d(train_rows, val_rows).size == 0


def test_no_early_stopping_without_two_rows_to_hold_out():
    """Fewer than 2 held-out rows, or fewer than 2 left to train on: no split."""
    everything = np.arange(10)
    for fraction in (0.1, 0.9):  # 1 row held out, then 1 row left
        train_rows, val_rows = CompVAEDetector(validation_fraction=fraction)._validation_split(
            10, seed=0
        )
        assert val_rows is None
        np.testing.assert_array_equal(train_rows, everything)
    assert CompVAEDetector(validation_fraction=0.2)._validation_split(10, seed=0)[1].size == 2


# -- ensembles and the network choice ------------------------------------------------------


def _member_score(det, model, bank, scales, Q, knn=None):
    """One member's combined anomaly score of Q, from its model and bank (by hand)."""
    Z = torch.from_numpy(det.transform_.transform(Q))
    mu = model.encode(Z)[0]
    rec = ((model.decode_mean(mu) - Z) ** 2).sum(1).numpy()
    if knn is None:
        knn = torch.cdist(mu, bank.latents.double()).topk(3, largest=False).values.mean(1)
        knn = knn.numpy()
    (k_loc, k_scale), (r_loc, r_scale) = scales["knn"], scales["reconstruction"]
    return (knn - k_loc) / k_scale + (rec - r_loc) / r_scale


def test_ensemble_members_differ_and_their_standardised_scores_are_averaged():
    X = blobs()
    Q = np.r_[X[:5] + 2.0, X[:5] - 3.0]  # not training rows: no own entry to leave out
    single = CompVAEDetector(**SMALL).fit(X)
    det = CompVAEDetector(**{**SMALL, "n_estimators": 3}).fit(X)
    assert len(det.models_) == len(det._banks) == 3 and det.model_ is det.models_[0]
    weights = [torch.cat([p.flatten() for p in m.parameters()]) for m in det.models_]
    assert not torch.equal(weights[0], weights[1]) and not torch.equal(weights[1], weights[2])
    # the first member is the single model's fit
    assert torch.equal(weights[0], torch.cat([p.flatten() for p in single.model_.parameters()]))
    members = list(zip(det.models_, det._banks, det._part_scales))
    test = [_member_score(det, m, b, s, Q) for m, b, s in members]
    np.testing.assert_allclose(test[0], -single.score_samples(Q), rtol=1e-6)
    train = [
        _member_score(det, m, b, s, X, knn=b.leave_one_out_distance(3, 64)) for m, b, s in members
    ]
    np.testing.assert_allclose(train[0], -single.training_scores_, rtol=1e-6)
    # each member is standardised by the median and IQR of its own training scores
    scales = [_robust_scale(t) for t in train]
    for (loc, scale), fitted in zip(scales, det._member_scales):
        assert fitted["combined"] == pytest.approx((loc, scale))
    for scores, rows in ((det.score_samples(Q), test), (det.training_scores_, train)):
        expected = np.mean([(r - loc) / scale for r, (loc, scale) in zip(rows, scales)], axis=0)
        np.testing.assert_allclose(scores, -expected, rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(
        pickle.loads(pickle.dumps(det)).score_samples(Q), det.score_samples(Q)
    )


def test_image_shape_chooses_the_conv_net_and_rows_the_mlp():
    X = load_digits().data[:120] / 16.0
    conv = CompVAEDetector(image_shape=(1, 8, 8), latent_dim=4, epochs=1, random_state=0).fit(X)
    mlp = CompVAEDetector(latent_dim=4, epochs=1, random_state=0).fit(X)
    assert isinstance(conv.model_.encoder, ConvEncoder)
    assert isinstance(mlp.model_.encoder, MLPEncoder)
