"""feature_contributions: per-row, per-feature explanations of the anomaly score."""

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.exceptions import NotFittedError

from skhyper import CompVAEDetector, SparKerDetector, VMFDetector

from conftest import SMALL, SPARKER

N_FEATURES = 6
# the sum relation holds to this fraction of the interquartile range of the
# training rows' anomaly scores (measured: at most 2e-3)
SUM_RTOL = 1e-2

VARIANTS = {
    "knn": lambda: CompVAEDetector(anomaly_score="knn", **SMALL),
    "reconstruction": lambda: CompVAEDetector(anomaly_score="reconstruction", **SMALL),
    "combined": lambda: CompVAEDetector(anomaly_score="combined", **SMALL),
    "vmf": lambda: VMFDetector(**SMALL),
    "ensemble": lambda: CompVAEDetector(n_estimators=2, **SMALL),
}


def correlated(n, rng):
    """Rows near a plane through the 6-d space (every feature of unit variance)."""
    W = np.random.RandomState(0).normal(size=(2, N_FEATURES))
    W /= np.sqrt((W**2).sum(axis=0) + 0.09)
    return rng.normal(size=(n, 2)) @ W + 0.3 * rng.normal(size=(n, N_FEATURES))


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(1)
    X = correlated(300, rng)
    # normal rows, each with one feature pushed 8 standard deviations out
    planted = correlated(N_FEATURES, rng) + 8 * np.eye(N_FEATURES) * X.std(axis=0)
    return X, correlated(40, rng), planted


@pytest.fixture(scope="module")
def fits(data):
    X = data[0]
    return {name: make().fit(X) for name, make in VARIANTS.items()}


@pytest.fixture(scope="module")
def sparker():
    """A clump offset along feature 0 in the data, against a standard-normal reference."""
    rng = np.random.default_rng(0)
    R = rng.normal(size=(2000, 4))
    clump = rng.normal(size=(40, 4)) * 0.1 + [2.5, 0.0, 0.0, 0.0]
    X = np.vstack([rng.normal(size=(400, 4)), clump])
    det = SparKerDetector(**{**SPARKER, "n_permutations": 0}).fit(X, X_ref=R)
    return det, X


def baseline_row(det):
    """The row at the centre of the detector's scaling (scaled-space origin)."""
    return det.transform_.inverse_transform(np.zeros((1, det.n_features_in_)))


def score_iqr(det, X):
    q1, q3 = np.percentile(-det.score_samples(X), [25, 75])
    return q3 - q1


# -- known answers ------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(VARIANTS))
def test_planted_feature_gets_most_of_the_attribution(fits, data, name):
    planted = data[2]
    C = fits[name].feature_contributions(planted)
    rows = np.arange(N_FEATURES)
    np.testing.assert_array_equal(C.argmax(axis=1), rows)
    assert np.all(C[rows, rows] > 0.5 * np.abs(C).sum(axis=1))


def test_sparker_clump_feature_gets_most_of_the_attribution(sparker):
    det, _ = sparker
    C = det.feature_contributions([[2.5, 0.0, 0.0, 0.0], [2.5, 0.1, -0.1, 0.05]])
    assert np.all(C.argmax(axis=1) == 0)
    assert np.all(C[:, 0] > 0.9 * np.abs(C).sum(axis=1))
    assert np.all(C[:, 0] > 1.0)  # the clump's excess is large


# -- the sum relation ---------------------------------------------------------------------


@pytest.mark.parametrize("name", list(VARIANTS))
def test_contributions_sum_to_the_score_less_one_constant(fits, data, name):
    det = fits[name]
    X, normal, planted = data
    rows = np.vstack([normal, planted, baseline_row(det)])
    shift = det.feature_contributions(rows).sum(axis=1) + det.score_samples(rows)
    assert np.ptp(shift) <= SUM_RTOL * score_iqr(det, X)
    if name == "reconstruction":  # exact: no kNN part, nothing subtracted
        np.testing.assert_allclose(shift, 0.0, atol=1e-10)
    if name == "knn":  # the constant is the baseline's kNN distance
        np.testing.assert_allclose(
            shift, det.score_samples(baseline_row(det))[0], atol=SUM_RTOL * score_iqr(det, X)
        )


def test_tighter_tolerance_gives_a_tighter_sum(fits, data):
    det = fits["combined"]
    X, normal, planted = data
    rows = np.vstack([normal, planted])
    spread = [
        np.ptp(det.feature_contributions(rows, rtol=rtol).sum(axis=1) + det.score_samples(rows))
        for rtol in (1e-2, 1e-5)
    ]
    assert spread[1] < spread[0]


def test_sparker_sum_relation(sparker):
    det, X = sparker
    rows = np.vstack([X[::10], np.random.default_rng(1).normal(size=(20, 4)) * 2])
    shift = det.feature_contributions(rows).sum(axis=1) + det.score_samples(rows)
    # measured: 5e-5 off, on anomaly scores spanning 2.7
    np.testing.assert_allclose(shift, det.score_samples(baseline_row(det))[0], atol=1e-3)


def test_training_rows_are_explained_without_their_own_entry(fits, data):
    det, X = fits["knn"], data[0]
    k = det.n_neighbors_
    # the training rows whose entries are the baseline's nearest: their paths leave
    # the entry out at the baseline too, so their constant is that distance without it
    bank = det.transform_latent(X)
    dist = np.linalg.norm(bank - det.transform_latent(baseline_row(det)), axis=1)
    nearest = np.argsort(dist)[: k + 1]
    rows = np.r_[np.arange(40), nearest[:k]]
    expected = np.full(len(rows), dist[nearest[:k]].mean())
    for i, row in enumerate(rows):
        if row in nearest[:k]:
            expected[i] = dist[nearest[nearest != row]].mean()
    shift = det.feature_contributions(X[rows]).sum(axis=1) + det.score_samples(X[rows])
    np.testing.assert_allclose(-shift, expected, atol=SUM_RTOL * score_iqr(det, X))


# -- shapes, frames, invariance, state ------------------------------------------------------


@pytest.mark.parametrize("name", ["combined", "ensemble"])
def test_shape_dtype_and_row_independence(fits, data, name):
    det = fits[name]
    rows = np.vstack([data[1][:8], data[2]])
    C = det.feature_contributions(rows)
    assert C.shape == (len(rows), N_FEATURES) and C.dtype == np.float64
    close = dict(rtol=1e-9, atol=1e-12)
    perm = np.random.RandomState(0).permutation(len(rows))
    np.testing.assert_allclose(det.feature_contributions(rows[perm]), C[perm], **close)
    np.testing.assert_allclose(det.feature_contributions(rows[3:5]), C[3:5], **close)
    one_by_one = np.vstack([det.feature_contributions(r[None]) for r in rows[:4]])
    np.testing.assert_allclose(one_by_one, C[:4], **close)


def test_dataframe_in_dataframe_out(data, sparker):
    X, normal, _ = data
    names = [f"f{j}" for j in range(N_FEATURES)]
    det = CompVAEDetector(**SMALL).fit(pd.DataFrame(X, columns=names))
    frame = pd.DataFrame(normal[:5], columns=names, index=[10, 3, 7, 1, 99])
    C = det.feature_contributions(frame)
    assert isinstance(C, pd.DataFrame)
    assert list(C.columns) == names and list(C.index) == [10, 3, 7, 1, 99]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # fitted with names, given none
        np.testing.assert_allclose(C.to_numpy(), det.feature_contributions(normal[:5]))

    sk, Xs = sparker
    frame = pd.DataFrame(Xs[:3], index=["a", "b", "c"])
    C = sk.feature_contributions(frame)
    assert isinstance(C, pd.DataFrame) and list(C.index) == ["a", "b", "c"]
    assert not isinstance(sk.feature_contributions(Xs[:3]), pd.DataFrame)


def test_explaining_changes_nothing(fits, data, sparker):
    det, sk = fits["ensemble"], sparker[0]
    rows = np.vstack([data[1], data[2]])
    before = det.score_samples(rows), sk.score_samples(rows[:, :4])
    params = [p.detach().clone() for m in det.models_ for p in m.parameters()]
    # fit leaves the last training step's gradients in place
    grads = [p.grad.clone() for m in det.models_ for p in m.parameters()]
    torch_state, numpy_state = torch.random.get_rng_state(), np.random.get_state()
    with torch.no_grad():  # the methods take their gradients whatever the caller's mode
        inside = det.feature_contributions(rows), sk.feature_contributions(rows[:, :4])
        assert not torch.is_grad_enabled()
    assert torch.is_grad_enabled()
    np.testing.assert_array_equal(inside[0], det.feature_contributions(rows))
    np.testing.assert_array_equal(inside[1], sk.feature_contributions(rows[:, :4]))
    assert np.abs(inside[0]).max() > 0.1 and np.abs(inside[1]).max() > 0.1
    np.testing.assert_array_equal(det.score_samples(rows), before[0])
    np.testing.assert_array_equal(sk.score_samples(rows[:, :4]), before[1])
    after = [p for m in det.models_ for p in m.parameters()]
    assert all(torch.equal(p, q) and not p.requires_grad for p, q in zip(after, params))
    assert all(torch.equal(p.grad, g) for p, g in zip(after, grads))
    assert all(p.grad is None for p in sk.kernels_.parameters())
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], numpy_state[1])


def test_a_pickled_detector_explains_alike(fits, data, sparker):
    rows = np.vstack([data[1][:5], data[2]])
    for det, X in ((fits["ensemble"], rows), (sparker[0], rows[:, :4])):
        copy = pickle.loads(pickle.dumps(det))
        np.testing.assert_array_equal(copy.feature_contributions(X), det.feature_contributions(X))


def test_conv_net_runs_in_float32():
    rng = np.random.RandomState(0)
    images = rng.uniform(size=(80, 64))
    det = CompVAEDetector(
        image_shape=(1, 8, 8), conv_channels=(4,), latent_dim=4, epochs=2, batch_size=32,
        random_state=0,
    ).fit(images)
    C = det.feature_contributions(images[:5])
    assert C.shape == (5, 64) and C.dtype == np.float64
    shift = C.sum(axis=1) + det.score_samples(images[:5])
    assert np.ptp(shift) <= 1e-3 * score_iqr(det, images) + 1e-4


# -- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [lambda: CompVAEDetector(**SMALL), lambda: SparKerDetector()])
def test_unfitted_raises(make):
    with pytest.raises(NotFittedError):
        make().feature_contributions(np.zeros((2, 3)))


def test_wrong_number_of_features_and_bad_options_raise(fits, sparker):
    for det in (fits["combined"], sparker[0]):
        with pytest.raises(ValueError, match="features"):
            det.feature_contributions(np.zeros((2, 5)))
        with pytest.raises(ValueError, match="n_segments"):
            det.feature_contributions(np.zeros((2, det.n_features_in_)), n_segments=0)
        with pytest.raises(ValueError, match="rtol"):
            det.feature_contributions(np.zeros((2, det.n_features_in_)), rtol=-1.0)
