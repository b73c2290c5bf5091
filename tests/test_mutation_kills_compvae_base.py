"""What must hold of CompVAEDetector's fit (skhyper.compvae) and of the shared
labels (skhyper._utils.base): the early-stopping split, the part scales of
the combined score and the inlier threshold.

To be merged into tests/test_compvae.py and tests/test_base.py.
"""

import numpy as np
import pytest
import torch

import skhyper.compvae as compvae
from skhyper import CompVAEDetector
from skhyper._utils.base import BaseTorchDetector
from skhyper.compvae import _robust_scale

from conftest import FAST_VAE, SMALL, blobs

# -- skhyper.compvae ------------------------------------------------------------------


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


# -- skhyper._utils.base --------------------------------------------------------------


def test_labels_put_a_row_at_the_threshold_among_the_inliers():
    """decision < 0 is an outlier; decision 0 (either sign of zero) an inlier."""
    decision = np.array([-1.0, -1e-300, -0.0, 0.0, 1e-300, 2.0])
    np.testing.assert_array_equal(BaseTorchDetector._labels(decision), [-1, -1, 1, 1, 1, 1])


def test_predict_a_row_exactly_at_the_offset_is_an_inlier():
    """With offset_ at a row's own score its decision is exactly 0 and it is an inlier."""
    X = blobs(n=80)
    det = CompVAEDetector(**FAST_VAE, random_state=0).fit(X)
    det.offset_ = float(det.score_samples(X[:1])[0])
    assert det.decision_function(X[:1])[0] == 0.0
    assert det.predict(X[:1])[0] == 1


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
