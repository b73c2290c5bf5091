"""What the shared base guarantees: seeding without global state, versioned
pickles, device-declared attributes, fit_predict reusing the fit's scores."""

import pickle
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

import skhyper
from skhyper import CompVAEDetector, SparKerDetector, VMFDetector
from skhyper._utils.base import (
    PICKLE_FORMAT,
    BaseTorchDetector,
    DeviceFallbackWarning,
    IncompatiblePickleError,
    InconsistentVersionWarning,
    weighted_percentile,
)

from conftest import FAST_SPARKER, FAST_VAE, blobs


def data(seed=0, n=160, d=5):
    rng = np.random.default_rng(seed)
    return np.r_[rng.normal(size=(n, d)), rng.normal(2.0, 0.2, size=(n // 10, d))]


def jobs():
    out = []
    for seed in range(4):
        out.append((CompVAEDetector(random_state=seed, **FAST_VAE), seed, {}))
        out.append((VMFDetector(random_state=seed, **FAST_VAE), seed, {}))
        ref = {"X_ref": np.random.default_rng(100 + seed).normal(size=(400, 5))}
        out.append((SparKerDetector(random_state=seed, **FAST_SPARKER), seed, ref))
    return out


def fit_and_score(job):
    det, seed, kw = job
    X = data(seed)
    det.fit(X, **kw)
    return det.score_samples(X), det.offset_


def test_concurrent_thread_fits_equal_serial_fits():
    serial = [fit_and_score(job) for job in jobs()]
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(fit_and_score, jobs()))
    for (s_scores, s_off), (c_scores, c_off) in zip(serial, concurrent):
        np.testing.assert_array_equal(c_scores, s_scores)
        assert c_off == s_off


def test_fitting_does_not_touch_global_generators():
    torch_state = torch.random.get_rng_state()
    np_state = np.random.get_state()[1].copy()
    for job in jobs()[:3]:
        fit_and_score(job)
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], np_state)


@pytest.fixture(scope="module")
def fitted():
    X = data()
    ref = np.random.default_rng(1).normal(size=(400, 5))
    return (
        X,
        CompVAEDetector(random_state=0, **FAST_VAE).fit(X),
        SparKerDetector(random_state=0, **FAST_SPARKER).fit(X, X_ref=ref),
    )


def test_pickles_carry_version_and_format(fitted):
    X, vae, sparker = fitted
    for det in (vae, sparker):
        state = det.__getstate__()
        assert state["_skhyper_version"] == skhyper.__version__
        assert state["_skhyper_pickle_format"] == PICKLE_FORMAT
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            loaded = pickle.loads(pickle.dumps(det))
        assert not hasattr(loaded, "_skhyper_version")
        np.testing.assert_array_equal(loaded.score_samples(X), det.score_samples(X))


def _repickled(det, **changes):
    """A pickle of ``det`` with its version fields changed (None = removed)."""
    state = det.__getstate__()
    for key, value in changes.items():
        if value is None:
            state.pop(key)
        else:
            state[key] = value
    clone = type(det).__new__(type(det))
    return clone, state


def test_other_pickle_format_is_a_clear_error(fitted):
    _, vae, sparker = fitted
    for det in (vae, sparker):
        for fmt in (PICKLE_FORMAT + 1, None):  # a newer format, or a pickle from 0.1
            clone, state = _repickled(det, _skhyper_pickle_format=fmt)
            with pytest.raises(IncompatiblePickleError, match="fit it again"):
                clone.__setstate__(state)


def test_other_version_same_format_warns(fitted):
    X, vae, _ = fitted
    clone, state = _repickled(vae, _skhyper_version="0.0.1")
    with pytest.warns(InconsistentVersionWarning, match="0.0.1"):
        clone.__setstate__(state)
    np.testing.assert_array_equal(clone.score_samples(X), vae.score_samples(X))


def test_only_declared_attributes_move_with_the_device(fitted, monkeypatch):
    _, vae, sparker = fitted
    assert CompVAEDetector._device_attributes == ("models_", "_banks")
    assert SparKerDetector._device_attributes == ()
    # unpickle as if the fitted device were a "meta" device usable here
    monkeypatch.setattr("skhyper._utils.base.usable_device", lambda device: torch.device("meta"))
    with pytest.warns(DeviceFallbackWarning):
        moved_vae = pickle.loads(pickle.dumps(vae))
    assert next(moved_vae.model_.parameters()).device.type == "meta"
    assert moved_vae._banks[0].latents.device.type == "meta"
    with pytest.warns(DeviceFallbackWarning):
        moved_sparker = pickle.loads(pickle.dumps(sparker))
    assert moved_sparker.kernels_.centers.device.type == "cpu"
    # the live estimator is left where it was
    assert next(vae.model_.parameters()).device.type == "cpu"


def test_fit_predict_reuses_fit_scores_and_equals_predict():
    X = data(3)
    for det, kw in [
        (CompVAEDetector(random_state=0, **FAST_VAE), {}),
        (SparKerDetector(random_state=0, contamination=0.1, **FAST_SPARKER),
         {"X_ref": np.random.default_rng(2).normal(size=(300, 5))}),
    ]:
        labels = det.fit_predict(X, **kw)
        np.testing.assert_array_equal(labels, det.predict(X))
        np.testing.assert_array_equal(det.training_scores_, det.score_samples(X))


def test_short_mantissa_rows_are_recognised_exactly():
    # pixels k/16: every float64 word differs only in its top bits
    from sklearn.datasets import load_digits

    X = load_digits().data / 16.0
    det = CompVAEDetector(random_state=0, **FAST_VAE).fit(X[:600])
    found = det._training_rows.find(X)
    np.testing.assert_array_equal(found[:600], np.arange(600))
    assert (found[600:] == -1).all()


# for every parameter of every detector, a valid value other than the fitted one
OTHER_VALUES = {
    "latent_dim": 3,
    "compression": "first",
    "anomaly_score": "knn",
    "hidden_layer_sizes": (8, 8),
    "image_shape": (1, 1, 5),
    "conv_channels": (4,),
    "n_neighbors": 1,
    "knn_backend": "pynndescent",
    "epochs": 2,
    "batch_size": 7,
    "learning_rate": 0.5,
    "kl_target": 10.0,
    "sigma_angle_gain": 1.0,
    "schedule": "paper",
    "early_stopping": False,
    "validation_fraction": 0.5,
    "n_iter_no_change": 1,
    "input_noise": 0.7,
    "n_estimators": 7,
    "class_conditional": True,
    "scaling": "robust",
    "contamination": 0.3,
    "device": "cpu",
    "random_state": 12345,
    "verbose": 0,
    "n_kernels": 2,
    "n_steps": 5,
    "amplitude_clip": 0.5,
    "positive_amplitudes": True,
    "width_start": 3.0,
    "width_end": 0.05,
    "anneal_fraction": 0.1,
    "n_restarts": 3,
    "init": "random",
    "calibration": None,
    "n_permutations": 1,
    "preprocessing": "quantile",
    "n_jobs": 2,
}


def _fitted_detectors():
    X = data(0)
    ref = np.random.default_rng(100).normal(size=(400, 5))
    yield CompVAEDetector(random_state=0, **FAST_VAE).fit(X), X
    yield VMFDetector(random_state=0, **FAST_VAE).fit(X), X
    yield SparKerDetector(random_state=0, **FAST_SPARKER).fit(X, X_ref=ref), X


def test_set_params_after_fit_changes_nothing_until_the_next_fit():
    """What scoring uses is fixed at fit: scikit-learn's estimators keep what they
    fitted with, so a parameter set afterwards waits for the next fit."""
    for det, X in _fitted_detectors():
        scores, decision, labels = det.score_samples(X), det.decision_function(X), det.predict(X)
        params = det.get_params()
        assert set(params) <= set(OTHER_VALUES), "give every new parameter an other value"
        for name in params:
            changed = pickle.loads(pickle.dumps(det))
            assert OTHER_VALUES[name] != params[name] or name == "verbose"
            changed.set_params(**{name: OTHER_VALUES[name]})
            np.testing.assert_array_equal(changed.score_samples(X), scores, err_msg=name)
            np.testing.assert_array_equal(changed.decision_function(X), decision, err_msg=name)
            np.testing.assert_array_equal(changed.predict(X), labels, err_msg=name)


@pytest.mark.parametrize("drop", ["_banks", "offset_", "kernels_", "n_neighbors", "n_kernels"])
def test_unpickling_an_incomplete_state_names_what_is_missing(drop):
    for det, _ in _fitted_detectors():
        state = det.__getstate__()
        if drop not in state:
            continue
        del state[drop]
        clone = object.__new__(type(det))
        with pytest.raises(IncompatiblePickleError, match=repr(drop)):
            clone.__setstate__(state)


def test_labels_put_a_row_at_the_threshold_among_the_inliers():
    """decision < 0 is an outlier; decision 0 (either sign of zero) an inlier."""
    decision = np.array([-1.0, -1e-300, -0.0, 0.0, 1e-300, 2.0])
    np.testing.assert_array_equal(BaseTorchDetector._labels(decision), [-1, -1, 1, 1, 1, 1])


def test_float_contamination_puts_the_offset_at_the_weighted_quantile():
    """Integer sample weights are repeated rows: with a float contamination the
    offset is the same quantile of the training scores either way."""
    rng = np.random.default_rng(0)
    X, w = rng.normal(size=(60, 2)), rng.integers(1, 5, size=60)
    R = rng.normal(size=(301, 2))
    params = dict(n_kernels=2, n_steps=10, n_permutations=0, contamination=0.2, random_state=0)
    weighted = SparKerDetector(**params).fit(X, X_ref=R, sample_weight=w.astype(float))
    repeated = SparKerDetector(**params).fit(np.repeat(X, w, axis=0), X_ref=R)
    assert weighted.test_statistic_ == repeated.test_statistic_  # one fit, two spellings
    scores = weighted.score_samples(X)
    assert weighted.offset_ == weighted_percentile(scores, 20.0, w.astype(float))
    assert weighted.offset_ == pytest.approx(repeated.offset_, rel=1e-12)


def test_predict_a_row_exactly_at_the_offset_is_an_inlier():
    """With offset_ at a row's own score its decision is exactly 0 and it is an inlier."""
    X = blobs(n=80)
    det = CompVAEDetector(**FAST_VAE, random_state=0).fit(X)
    det.offset_ = float(det.score_samples(X[:1])[0])
    assert det.decision_function(X[:1])[0] == 0.0
    assert det.predict(X[:1])[0] == 1


def test_torch_threads_are_capped_at_the_cpu_quota_during_a_fit(monkeypatch):
    """In a container with a CPU quota torch would start a thread per host core;
    fits and scoring run on at most the CPUs the process may use, and torch's
    own setting is put back afterwards."""
    import skhyper._utils.runtime as runtime

    before = torch.get_num_threads()
    seen = []
    monkeypatch.setattr(runtime, "allowed_cpus", lambda: 1)
    det = CompVAEDetector(random_state=0, **FAST_VAE)
    fit = det._fit

    def recording_fit(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return fit(*args, **kwargs)

    monkeypatch.setattr(det, "_fit", recording_fit)
    det.fit(data(0))
    assert seen == [1]
    assert torch.get_num_threads() == before
    with runtime.cpu_threads() as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_torch_threads_follow_threadpoolctl():
    """threadpoolctl's OpenMP limit reaches torch, so a user can set the threads."""
    from threadpoolctl import threadpool_limits

    import skhyper._utils.runtime as runtime

    with threadpool_limits(limits=1, user_api="openmp"):
        with runtime.cpu_threads() as n:
            assert n == 1 and torch.get_num_threads() == 1
