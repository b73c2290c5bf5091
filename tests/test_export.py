"""skhyper.export.to_onnx: the exported graph scores new rows as score_samples does.

Tolerance: ``|onnx - sklearn| <= 1e-5 + 1e-5 * |sklearn|`` (``assert_allclose``
with ``rtol=atol=1e-5``); the differences seen are about 1e-7 of the scores'
scale for the MLP nets (the detector's kNN distances are float32) and 1e-14
for SparKer. The conv net runs in float32 in both, and the standardised
scores carry the latent means' round-off over the spread of the training
scores: it is checked within 1e-5 of its largest score.
"""

import copy
import subprocess
import sys

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest
from sklearn.exceptions import NotFittedError
from torch import nn

from skhyper import CompVAEDetector, SparKerDetector, VMFDetector
from skhyper.export import to_onnx

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

TINY = dict(latent_dim=4, hidden_layer_sizes=(16,), epochs=3, batch_size=64, random_state=0)
TOL = dict(rtol=1e-5, atol=1e-5)


def rows(n, seed, d=5):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, d))
    X[:, 1] = np.round(X[:, 1])  # repeated values: repeated quantiles, tied knots
    return X


X_TRAIN = rows(200, 0)
# new rows: in range, far out (past the input clip) and near training rows
X_NEW = np.vstack([rows(40, 1) * 1.5, [[1e6, -1e6, 0.0, 3.0, -3.0]], X_TRAIN[:3] + 0.25])


def run(model, X, everything=False):
    onnx.checker.check_model(model, full_check=True)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    out = session.run(None, {"X": X})
    return out if everything else out[0]


@pytest.fixture(scope="module")
def det():
    return CompVAEDetector(**TINY).fit(X_TRAIN)


@pytest.mark.parametrize("anomaly_score", ["knn", "reconstruction", "combined"])
def test_each_anomaly_score_matches_score_samples(anomaly_score, det):
    if anomaly_score != det.anomaly_score_:
        det = CompVAEDetector(anomaly_score=anomaly_score, **TINY).fit(X_TRAIN)
    out = run(to_onnx(det), X_NEW)
    assert out.dtype == np.float64 and out.shape == (X_NEW.shape[0],)
    np.testing.assert_allclose(out, det.score_samples(X_NEW), **TOL)


def test_anomaly_score_option_matches_score_variants(det):
    variants = det.score_variants(X_NEW)
    for name, expected in variants.items():
        np.testing.assert_allclose(run(to_onnx(det, anomaly_score=name), X_NEW), expected, **TOL)


@pytest.mark.parametrize("scaling", ["standard", "robust", "quantile", "none"])
def test_each_scaling_matches_score_samples(scaling):
    det = CompVAEDetector(scaling=scaling, **TINY).fit(X_TRAIN)
    X = X_NEW.copy()
    if scaling == "none":
        X[-4, 0] = 1e20  # past RAW_CLIP
    np.testing.assert_allclose(run(to_onnx(det), X), det.score_samples(X), **TOL)


def test_quantile_scaling_matches_numpy_on_knots():
    # interpolation from the knots and the normal quantiles, against the transform itself
    det = CompVAEDetector(scaling="quantile", anomaly_score="reconstruction", **TINY)
    det.fit(X_TRAIN)
    knots = det.transform_.quantiles[::37]
    X = np.vstack([X_NEW, knots, np.nextafter(knots, np.inf), np.nextafter(knots, -np.inf)])
    np.testing.assert_allclose(run(to_onnx(det), X), det.score_samples(X), rtol=1e-12)


@pytest.mark.parametrize(
    "params",
    [dict(n_estimators=2), dict(compression="gaussian")],
    ids=["ensemble", "gaussian"],
)
def test_ensemble_and_plain_vae_match_score_samples(params):
    det = CompVAEDetector(**params, **TINY).fit(X_TRAIN)
    assert len(det.models_) == params.get("n_estimators", 1)
    np.testing.assert_allclose(run(to_onnx(det), X_NEW), det.score_samples(X_NEW), **TOL)


def test_vmf_detector_matches_score_samples():
    det = VMFDetector(**TINY).fit(X_TRAIN)
    model = to_onnx(det)
    assert {p.key: p.value for p in model.metadata_props}["estimator"] == "VMFDetector"
    np.testing.assert_allclose(run(model, X_NEW), det.score_samples(X_NEW), **TOL)


@pytest.fixture(scope="module")
def conv():
    rng = np.random.RandomState(0)
    X = rng.uniform(size=(128, 2 * 7 * 9))  # odd sizes: uneven pooling and upsampling
    det = CompVAEDetector(
        image_shape=(2, 7, 9), conv_channels=(4, 8), latent_dim=4, epochs=2, batch_size=64,
        random_state=0,
    )
    return det.fit(X), rng.uniform(size=(20, X.shape[1]))


def test_conv_net_matches_score_samples(conv):
    det, X_new = conv
    for name, expected in det.score_variants(X_new).items():
        model = to_onnx(det, anomaly_score=name)
        out = run(model, X_new)
        # float32 round-off, relative to the scale of the scores
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
        session = ort.InferenceSession(
            model.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        one = np.concatenate([session.run(None, {"X": X_new[i : i + 1]})[0] for i in range(3)])
        np.testing.assert_allclose(one, out[:3], rtol=1e-6)


def test_batch_size_does_not_change_a_row_score(det):
    model = to_onnx(det)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    many = session.run(None, {"X": X_NEW})[0]
    one = np.concatenate([session.run(None, {"X": X_NEW[i : i + 1]})[0] for i in range(5)])
    np.testing.assert_allclose(one, many[:5], rtol=1e-12, atol=0)


def test_float32_input_and_offset_metadata(det):
    X32 = X_NEW.astype(np.float32)
    model = to_onnx(det, dtype=np.float32)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    out = run(model, X32)
    np.testing.assert_allclose(out, det.score_samples(X32), **TOL)
    offset = float({p.key: p.value for p in model.metadata_props}["offset"])
    np.testing.assert_allclose(out - offset, det.decision_function(X32), **TOL)


def test_training_rows_are_scored_as_new_rows(det):
    # score_samples leaves a training row's own bank entry out; the graph cannot
    knn = to_onnx(det, anomaly_score="knn")
    exported = run(knn, X_TRAIN[:10])
    own_left_out = det.score_variants(X_TRAIN[:10], ("knn",))["knn"]
    assert np.all(exported > own_left_out)


@pytest.mark.parametrize("preprocessing", ["standard", "quantile"])
def test_sparker_matches_score_samples(preprocessing):
    rng = np.random.RandomState(0)
    reference = rng.normal(size=(500, 4))
    data = np.vstack([rng.normal(size=(280, 4)), 0.1 * rng.normal(size=(20, 4)) + 1.5])
    det = SparKerDetector(
        n_kernels=4, n_steps=30, n_permutations=5, preprocessing=preprocessing, random_state=0
    ).fit(data, X_ref=reference)
    X_new = np.vstack([rng.normal(size=(30, 4)) * 2, [[1e9, 0, 0, 0]]])
    np.testing.assert_allclose(run(to_onnx(det), X_new), det.score_samples(X_new), **TOL)


def test_importing_the_module_leaves_onnx_unimported():
    code = "import sys, skhyper.export; assert 'onnx' not in sys.modules, 'onnx imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# -- refusals -------------------------------------------------------------------------


@pytest.mark.parametrize("unfitted", [CompVAEDetector(), VMFDetector(), SparKerDetector()])
def test_unfitted_detector_is_refused(unfitted):
    with pytest.raises(NotFittedError):
        to_onnx(unfitted)


def test_other_estimators_and_options_are_refused(det):
    with pytest.raises(TypeError, match="exports CompVAEDetector"):
        to_onnx(IsolationForest().fit(X_TRAIN))
    with pytest.raises(ValueError, match="dtype"):
        to_onnx(det, dtype=np.int64)
    with pytest.raises(ValueError, match="anomaly_score"):
        to_onnx(det, anomaly_score="density")


@pytest.mark.parametrize("backend", ["pynndescent", "faiss-ivf"])
def test_approximate_bank_is_refused(det, backend, monkeypatch):
    # an exact search of an approximate bank differs from score_samples on the rows
    # whose neighbours the approximate search misses (8 of 1,000 by up to 5e-2 seen):
    # the graph would not decide like the detector
    monkeypatch.setattr(det._banks[0], "backend", backend)
    with pytest.raises(NotImplementedError, match="Refit with knn_backend='exact' or 'faiss'"):
        to_onnx(det)
    with pytest.raises(TypeError, match="exact_search"):
        to_onnx(det, exact_search=True)


def test_faiss_flat_bank_exports_like_the_exact_one():
    pytest.importorskip("faiss")
    exact = CompVAEDetector(knn_backend="exact", **TINY).fit(X_TRAIN)
    flat = CompVAEDetector(knn_backend="faiss", **TINY).fit(X_TRAIN)
    assert flat._banks[0].backend == "faiss"
    np.testing.assert_array_equal(flat.score_samples(X_NEW), exact.score_samples(X_NEW))
    out = run(to_onnx(flat), X_NEW)
    np.testing.assert_array_equal(out, run(to_onnx(exact), X_NEW))
    np.testing.assert_allclose(out, flat.score_samples(X_NEW), **TOL)


def test_unknown_layers_are_refused(det):
    other = copy.deepcopy(det)
    other.models_[0].encoder.body[1] = nn.Tanh()
    with pytest.raises(NotImplementedError, match="Tanh"):
        to_onnx(other)


def test_uneven_adaptive_pooling_and_batch_statistics_are_refused(conv):
    det, _ = conv
    uneven = copy.deepcopy(det)
    uneven.models_[0].encoder.body[4] = nn.AdaptiveAvgPool2d(4)  # windows of 2, 3, 3, 2 rows
    with pytest.raises(NotImplementedError, match="adaptive pooling from 7 to 4"):
        to_onnx(uneven)
    training = copy.deepcopy(det)
    training.models_[0].train()
    with pytest.raises(NotImplementedError, match="eval mode"):
        to_onnx(training)


# -- labels: the decision inside the graph ----------------------------------------------


def _labels_agree(det, X, model=None):
    """The graph's three outputs against the detector's, on every row of X."""
    model = to_onnx(det, with_labels=True) if model is None else model
    assert [o.name for o in model.graph.output] == ["score_samples", "decision_function", "label"]
    scores, decision, label = run(model, X, everything=True)
    assert label.dtype == np.int64 and decision.dtype == np.float64
    np.testing.assert_allclose(scores, det.score_samples(X), **TOL)
    # the decision subtracts offset_ from the score: its error is the score's
    error = np.abs(decision - det.decision_function(X))
    assert np.all(error <= 1e-5 * (1 + np.abs(det.score_samples(X))))
    np.testing.assert_array_equal(label, det.predict(X))
    return label


def test_labels_equal_predict_with_the_offset_inside(det):
    for contamination in ("auto", 0.1, 0.3):
        det = copy.deepcopy(det).set_threshold(contamination=contamination)
        label = _labels_agree(det, X_NEW)
        assert set(label) == {-1, 1}
    meta = {p.key: p.value for p in to_onnx(det, with_labels=True).metadata_props}
    expected = 1e-5 * max(1.0, abs(det.offset_), np.abs(det.training_scores_).max())
    assert float(meta["label_tolerance"]) == expected


def _at_threshold(det, X, rows):
    """Each of ``rows`` put exactly at the threshold in turn: labels still agree."""
    scores = det.score_samples(X)
    for i in rows:
        tied = copy.deepcopy(det).set_threshold(offset=float(scores[i]))
        assert tied.decision_function(X)[i] == 0.0
        label = _labels_agree(tied, X)
        assert label[i] == 1  # a row at the threshold is an inlier, as in predict


def test_rows_exactly_at_the_threshold_are_inliers(det):
    _at_threshold(det, X_NEW, range(0, 40, 3))


def test_labels_equal_predict_for_every_detector(conv):
    vmf = VMFDetector(**TINY).fit(X_TRAIN)
    _at_threshold(vmf, X_NEW, range(0, 40, 7))
    conv_det, X_conv = conv
    _at_threshold(conv_det, X_conv, range(0, 20, 4))
    rng = np.random.RandomState(0)
    sparker = SparKerDetector(n_kernels=4, n_steps=30, n_permutations=5, random_state=0).fit(
        rng.normal(size=(300, 4)) + 0.3, X_ref=rng.normal(size=(500, 4))
    )
    _at_threshold(sparker, rng.normal(size=(60, 4)) * 2, range(0, 60, 6))


def test_labels_equal_predict_on_a_real_test_set():
    """Breast cancer (ships with scikit-learn): benign rows train, every other row tests."""
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    benign = X[y == 1]
    train, test = benign[:250], np.vstack([benign[250:], X[y == 0]])
    det = CompVAEDetector(scaling="robust", **TINY).fit(train)
    for contamination in (0.05, 0.2):
        det.set_threshold(contamination=contamination)
        label = _labels_agree(det, test)
        assert (label == -1).sum() > 100


def test_label_tolerance_is_below_zero_only(det):
    # below the band an outlier in both; inside it (documented) an inlier in the graph
    scores = det.score_samples(X_NEW[:40])
    i = int(np.argmin(scores))
    meta = {p.key: p.value for p in to_onnx(det, with_labels=True).metadata_props}
    tol = float(meta["label_tolerance"])
    outside = copy.deepcopy(det).set_threshold(offset=float(scores[i]) + 2 * tol)
    assert _labels_agree(outside, X_NEW)[i] == -1
    inside = copy.deepcopy(det).set_threshold(offset=float(scores[i]) + 0.6 * tol)
    assert inside.predict(X_NEW[i : i + 1])[0] == -1
    assert run(to_onnx(inside, with_labels=True), X_NEW, everything=True)[2][i] == 1


# -- rows are independent: NaN rows -----------------------------------------------------


@pytest.mark.parametrize("scaling", ["standard", "robust", "quantile", "winsorized", "none"])
def test_a_nan_row_gets_nan_and_the_others_their_scores(scaling):
    det = CompVAEDetector(scaling=scaling, **TINY).fit(X_TRAIN)
    X = X_NEW.copy()
    X[3, 2] = np.nan
    X[7] = np.nan
    scores, decision, label = run(to_onnx(det, with_labels=True), X, everything=True)
    others = np.ones(X.shape[0], bool)
    others[[3, 7]] = False
    assert np.isnan(scores[[3, 7]]).all() and np.isnan(decision[[3, 7]]).all()
    np.testing.assert_array_equal(label[[3, 7]], [0, 0])
    np.testing.assert_allclose(scores[others], det.score_samples(X[others]), **TOL)
    np.testing.assert_array_equal(label[others], det.predict(X[others]))
    # the float32 graph as well
    out32 = run(to_onnx(det, dtype=np.float32), X.astype(np.float32))
    assert np.isnan(out32[[3, 7]]).all() and np.isfinite(out32[others]).all()


def test_a_nan_row_in_a_sparker_graph():
    rng = np.random.RandomState(0)
    det = SparKerDetector(
        n_kernels=4, n_steps=30, n_permutations=5, preprocessing="quantile", random_state=0
    ).fit(rng.normal(size=(300, 4)), X_ref=rng.normal(size=(500, 4)))
    X = rng.normal(size=(20, 4))
    X[5, 1] = np.nan
    out = run(to_onnx(det), X)
    assert np.isnan(out[5]) and np.isfinite(np.delete(out, 5)).all()
    np.testing.assert_allclose(np.delete(out, 5), det.score_samples(np.delete(X, 5, 0)), **TOL)
