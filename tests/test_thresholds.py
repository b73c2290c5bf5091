"""Thresholds without refitting, the training scores a detector keeps, and the
outlier probability computed from them."""

import numpy as np
import pytest
from scipy import stats
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import InvalidParameterError

from skhyper import CompVAEDetector, SparKerDetector, VMFDetector

from conftest import FAST_SPARKER, FAST_VAE

RNG = np.random.default_rng(3)
X = RNG.normal(size=(300, 4))
REF = RNG.normal(size=(600, 4))
WEIGHTS = RNG.integers(0, 4, size=X.shape[0]).astype(float)


def _fits(**params):
    """(detector, fit kwargs) pairs, each fitted with ``params``."""
    pairs = [
        (CompVAEDetector(random_state=0, **FAST_VAE, **params), {}),
        (VMFDetector(random_state=0, **FAST_VAE, **params), {}),
        (
            SparKerDetector(random_state=0, **FAST_SPARKER, **params),
            {"X_ref": REF, "sample_weight": WEIGHTS},
        ),
    ]
    return [(det.fit(X, **kwargs), kwargs) for det, kwargs in pairs]


@pytest.fixture(scope="module")
def fitted():
    return _fits()


def test_a_new_contamination_equals_a_refit(fitted):
    for det, kwargs in fitted:
        moved = clone(det).fit(X, **kwargs)
        scores = moved.score_samples(X)
        for contamination in (0.37, 0.02, "auto"):
            refit = (
                det
                if contamination == det.contamination
                else clone(det).set_params(contamination=contamination).fit(X, **kwargs)
            )
            assert moved.set_threshold(contamination=contamination) is moved
            assert moved.offset_ == refit.offset_, (type(det).__name__, contamination)
            assert moved.contamination == contamination
            # the model is untouched: same scores, and predict follows the threshold
            np.testing.assert_array_equal(moved.score_samples(X), scores)
            np.testing.assert_array_equal(moved.predict(X), refit.predict(X))
            np.testing.assert_array_equal(moved.decision_function(X), scores - refit.offset_)


def test_the_threshold_comes_back(fitted):
    for det, _ in fitted:
        before = det.offset_
        det.set_threshold(contamination=0.2)
        det.set_threshold(contamination="auto")
        assert det.offset_ == before


def test_an_explicit_offset_labels_by_score(fitted):
    for det, _ in fitted:
        scores = det.score_samples(X)
        cut = float(np.quantile(scores, 0.3))
        contamination = det.contamination
        det.set_threshold(offset=cut)
        assert det.offset_ == cut and det.contamination == contamination
        np.testing.assert_array_equal(det.predict(X) == -1, scores < cut)
        det.set_threshold(contamination="auto")


def test_bad_thresholds_are_clear_errors(fitted):
    det, _ = fitted[0]
    offset = det.offset_
    with pytest.raises(ValueError, match="exactly one"):
        det.set_threshold()
    with pytest.raises(ValueError, match="exactly one"):
        det.set_threshold(contamination=0.1, offset=0.0)
    for bad in (0.0, 0.7, "most"):
        with pytest.raises(InvalidParameterError, match="contamination"):
            det.set_threshold(contamination=bad)
    for bad in (np.nan, np.inf, "low"):
        with pytest.raises(ValueError, match="finite number"):
            det.set_threshold(offset=bad)
    assert det.offset_ == offset and det.contamination == "auto"
    with pytest.raises(NotFittedError):
        CompVAEDetector().set_threshold(contamination=0.1)


def test_training_scores_are_the_fit_rows_scores(fitted):
    for det, _ in fitted:
        assert det.training_scores_.shape == (X.shape[0],)
        # CompVAE scores a training row without its own bank entry, as at fit
        np.testing.assert_allclose(det.training_scores_, det.score_samples(X), rtol=1e-12)


# -- the outlier probability ------------------------------------------------------------


def test_outlier_probability_is_the_rank_among_training_scores(fitted):
    # training rows among them: a row tied with its own training score is not above itself
    rows = np.vstack([RNG.normal(size=(50, 4)) * 2, X[:30]])
    for det, kwargs in fitted:
        weights = kwargs.get("sample_weight", np.ones(X.shape[0]))
        s = det.score_samples(rows)
        above = (det.training_scores_[None, :] > s[:, None]) @ weights
        expected = above / (weights.sum() + 1)
        np.testing.assert_allclose(det.outlier_probability(rows), expected, rtol=0, atol=1e-12)


def test_outlier_probability_ranks_like_the_score(fitted):
    rows = np.vstack([RNG.normal(size=(40, 4)), [[8.0, 8.0, 8.0, 8.0]]])
    det, _ = fitted[0]
    p = det.outlier_probability(rows)
    assert p.dtype == np.float64 and p.shape == (41,)
    assert np.all((p >= 0) & (p < 1))
    # opposite order to score_samples
    s = det.score_samples(rows)
    assert np.all(np.diff(p[np.argsort(s)]) <= 0)
    assert p[-1] == X.shape[0] / (X.shape[0] + 1)  # no training row scores lower


def test_outlier_probability_of_new_normal_rows_is_uniform():
    """Calibrated: rows drawn like the training rows get uniform probabilities."""
    rng = np.random.default_rng(11)
    train, new = rng.normal(size=(1500, 3)), rng.normal(size=(1500, 3))
    det = CompVAEDetector(random_state=0, **FAST_VAE).fit(train)
    p = det.outlier_probability(new)
    assert stats.kstest(p, "uniform").pvalue > 0.001
    # and it agrees with predict at the same contamination
    det.set_threshold(contamination=0.1)
    flagged = det.predict(new) == -1
    assert abs((p > 0.9).mean() - flagged.mean()) < 0.01


def test_outlier_probability_needs_a_fitted_detector():
    with pytest.raises(NotFittedError):
        CompVAEDetector().outlier_probability(X)
