"""LatentEncoder: CompVAE's latent space as a transformer step."""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skhyper import CompVAEDetector, LatentEncoder, SparKerDetector
from skhyper.sparker import make_reference_pipeline

from conftest import FAST_SPARKER, FAST_VAE

VAE = dict(FAST_VAE, latent_dim=3, random_state=0)


@pytest.fixture(scope="module")
def samples():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(300, 5))
    ref = rng.normal(size=(400, 5))
    data = np.vstack([rng.normal(size=(150, 5)), 2.5 + 0.2 * rng.normal(size=(30, 5))])
    return train, data, ref


def test_transform_is_the_fitted_detectors_latent(samples):
    train, data, _ = samples
    enc = LatentEncoder(CompVAEDetector(**VAE)).fit(train)
    manual = CompVAEDetector(**VAE).fit(train)
    Z = enc.transform(data)
    assert Z.shape == (len(data), 3) and Z.dtype == np.float64
    np.testing.assert_array_equal(Z, manual.transform_latent(data))
    np.testing.assert_array_equal(enc.fit_transform(train), manual.transform_latent(train))
    assert list(enc.get_feature_names_out()) == [f"latentencoder{i}" for i in range(3)]


def test_reference_pipeline_equals_the_manual_composition(samples):
    """make_reference_pipeline(encoder, SparKer) fits the encoder on the pooled
    rows and tests the encoded samples: the same scores as doing it by hand."""
    _, data, ref = samples
    sparker = SparKerDetector(**FAST_SPARKER, random_state=0)
    pipe = make_reference_pipeline(LatentEncoder(CompVAEDetector(**VAE)), clone(sparker))
    pipe.fit(data, X_ref=ref)
    enc = LatentEncoder(CompVAEDetector(**VAE)).fit(np.vstack([data, ref]))
    det = clone(sparker).fit(enc.transform(data), X_ref=enc.transform(ref))
    np.testing.assert_array_equal(pipe.score_samples(data), det.score_samples(enc.transform(data)))
    assert pipe[-1].pvalue_ == det.pvalue_


def test_a_frozen_prefitted_encoder_is_not_refitted(samples):
    """Fitted on rows outside both samples and frozen, the encoder keeps its fit."""
    train, data, ref = samples
    enc = LatentEncoder(CompVAEDetector(**VAE)).fit(train)
    pipe = make_reference_pipeline(
        FrozenEstimator(enc), SparKerDetector(**FAST_SPARKER, random_state=0)
    )
    pipe.fit(data, X_ref=ref)
    det = SparKerDetector(**FAST_SPARKER, random_state=0).fit(
        enc.transform(data), X_ref=enc.transform(ref)
    )
    np.testing.assert_array_equal(pipe.score_samples(data), det.score_samples(enc.transform(data)))


def test_default_detector_clone_pickle_and_pipeline(samples):
    train, data, _ = samples
    enc = LatentEncoder().fit(train[:100])
    assert isinstance(enc.detector_, CompVAEDetector) and enc.detector is None
    assert enc.transform(data).shape == (len(data), CompVAEDetector().latent_dim)
    fitted = LatentEncoder(CompVAEDetector(**VAE)).fit(train)
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(again.transform(data), fitted.transform(data))
    assert not hasattr(clone(fitted), "detector_")
    # the detector given is cloned, not fitted in place
    vae = CompVAEDetector(**VAE)
    LatentEncoder(vae).fit(train)
    assert not hasattr(vae, "offset_")
    pipe = make_pipeline(StandardScaler(), LatentEncoder(CompVAEDetector(**VAE))).fit(train)
    assert pipe.transform(data).shape == (len(data), 3)


def test_feature_names_follow_the_detector(samples):
    pd = pytest.importorskip("pandas")
    train, data, _ = samples
    frame = pd.DataFrame(train, columns=[f"f{i}" for i in range(5)])
    enc = LatentEncoder(CompVAEDetector(**VAE)).fit(frame)
    assert list(enc.feature_names_in_) == list(frame.columns)
    enc.fit(train)
    assert not hasattr(enc, "feature_names_in_")
    out = enc.set_output(transform="pandas").transform(data)
    assert list(out.columns) == [f"latentencoder{i}" for i in range(3)]


def test_bad_input():
    with pytest.raises(NotFittedError):
        LatentEncoder().transform(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="detector"):
        LatentEncoder(detector=StandardScaler()).fit(np.zeros((10, 2)))
    enc = LatentEncoder(CompVAEDetector(**VAE)).fit(np.random.default_rng(0).normal(size=(50, 4)))
    with pytest.raises(ValueError, match="features"):
        enc.transform(np.zeros((3, 2)))
