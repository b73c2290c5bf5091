"""Pins of CompVAE's training (skhyper/_vae/training.py, CompVAEDetector's fit): batch
counts, the stratified batches, the validation split and cadence, the divergence check
and the paper schedule's learning-rate steps, which the fit computes and no other test
states. benchmarks/generated_mutants.py reports the mutants these kill."""

import math

import numpy as np
import pytest
import torch

import skhyper._vae.training as T
from skhyper import CompVAEDetector
from skhyper._utils.runtime import build_module, make_generator
from skhyper._vae.losses import HypersphericalRegulariser
from skhyper._vae.networks import build_vae

from conftest import SMALL, blobs


@pytest.mark.parametrize(
    "n, batch_size, counts, expected",
    [
        (1000, 64, None, 16),  # round(15.6)
        (1000, 80, None, 12),  # round(12.5) to even
        (10, 64, None, 1),  # never fewer than one
        (1000, 64, [500, 7], 3),  # each batch needs >= 2 rows of the rarest class
        (1000, 64, [500, 500], 16),  # plenty of each: the plain count
        (1000, 64, [999, 1], 1),  # a class of one row: still one batch
    ],
)
def test_batches_per_epoch(n, batch_size, counts, expected):
    labels = None if counts is None else np.repeat(np.arange(len(counts)), counts)
    assert T.n_batches(n, batch_size, labels) == expected


def test_auto_epochs_bounds():
    """ceil(250 / batches) epochs within [4, 400]."""
    assert T.auto_epochs(1) == 250
    assert T.auto_epochs(3) == 84
    assert T.auto_epochs(100) == 4
    assert T.auto_epochs(10_000) == 4


def test_stratified_batches_hold_every_class_in_even_shares():
    """With labels each of an epoch's batches takes an even share of every class; the
    batches partition the rows. Without labels, an even split of a permutation."""
    labels = np.repeat([0, 1, 2], [10, 6, 4])
    batches = T.epoch_batches(20, 2, labels, np.random.default_rng(0))
    assert len(batches) == 2
    for idx in batches:
        np.testing.assert_array_equal(np.bincount(labels[idx], minlength=3), [5, 3, 2])
    np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(20))
    plain = T.epoch_batches(20, 3, None, np.random.default_rng(0))
    assert [len(b) for b in plain] == [7, 7, 6]
    np.testing.assert_array_equal(np.sort(np.concatenate(plain)), np.arange(20))


def _train(batches_per_epoch, epochs=20, X=None, values=lambda i: 1.0, n_iter_no_change=50,
           **kwargs):
    if X is None:
        X = np.random.default_rng(0).normal(size=(40, 3))
    X = torch.from_numpy(np.asarray(X, dtype=np.float32))
    model = build_module(lambda: build_vae(3, 2, (8,), None, False), make_generator(0))
    calls = []

    def validation():
        calls.append(len(calls))
        return values(len(calls) - 1)

    history = T.train_vae(
        model, HypersphericalRegulariser(2, "full", 5e5), X, None, 1,
        epochs=epochs, batches_per_epoch=batches_per_epoch, learning_rate=1e-3,
        kl_target=100.0, generator=make_generator(1), rng=np.random.default_rng(2),
        validation=validation, n_iter_no_change=n_iter_no_change, **kwargs,
    )
    return history, calls


@pytest.mark.parametrize("batches_per_epoch, every", [(3, 4), (4, 3), (5, 2), (10, 1), (12, 1)])
def test_validation_cadence_keeps_ten_steps_between_checks(batches_per_epoch, every):
    """The held-out loss is checked in the second phase on the epochs that are multiples
    of ceil(VALIDATION_STEPS / batches per epoch), so checks are >= 10 steps apart."""
    history, calls = _train(batches_per_epoch)
    checked = [e for e, v in enumerate(history["validation"]) if not math.isnan(v)]
    assert checked == [e for e in range(10, 20) if e % every == 0]
    assert len(calls) == len(checked)
    assert T.VALIDATION_STEPS == 10


def test_a_non_finite_loss_stops_training_with_a_clear_error():
    X = np.random.default_rng(0).normal(size=(40, 3))
    X[5, 1] = np.nan
    with pytest.raises(FloatingPointError, match="diverged at epoch 0"):
        _train(4, X=X)


def test_paper_schedule_halves_the_rate_at_its_scaled_milestones(monkeypatch):
    """schedule="paper" steps Adam's rate by 0.5 at round(280 / 300 * epochs) (the second
    milestone, 450 / 300 * epochs, lies past the end)."""
    rates = []
    real = torch.optim.lr_scheduler.MultiStepLR

    def recording(opt, milestones, gamma):
        rates.append((list(milestones), gamma))
        return real(opt, milestones, gamma)

    monkeypatch.setattr(torch.optim.lr_scheduler, "MultiStepLR", recording)
    seen = []
    _train(4, epochs=30, schedule_kind="paper",
           on_epoch=lambda means: seen.append(means["loss"]))
    assert rates == [([28, 45], 0.5)]
    assert len(seen) == 30
    # "auto" has no rate steps
    rates.clear()
    _train(4, epochs=6)
    assert rates == []


@pytest.mark.parametrize(
    "params, n, expected_val",
    [
        (dict(validation_fraction=0.1), 100, 10),
        (dict(validation_fraction=0.25), 30, 8),  # round(7.5) to even
        (dict(validation_fraction=0.015), 100, 2),  # round(1.5): two rows, the least
        (dict(validation_fraction=0.014), 100, None),  # 1 row: no early stopping
        (dict(validation_fraction=0.5), 3, None),  # 2 held out would leave 1 to train on
        (dict(validation_fraction=0.5), 4, 2),
        (dict(validation_fraction=0.1, early_stopping=False), 100, None),
        (dict(validation_fraction=0.1, class_conditional=True), 100, None),
    ],
)
def test_validation_split_sizes(params, n, expected_val):
    """round(validation_fraction * n) held-out rows when at least two, and two left to train
    on; none without early stopping or in class-conditional mode (every class must stay in
    every batch)."""
    det = CompVAEDetector(**{"early_stopping": True, **params})
    train, val = det._validation_split(n, 0)
    if expected_val is None:
        assert val is None
        np.testing.assert_array_equal(train, np.arange(n))
    else:
        assert len(val) == expected_val and len(train) == n - expected_val
        np.testing.assert_array_equal(np.sort(np.r_[train, val]), np.arange(n))


def test_class_conditional_fit_trains_on_every_row_without_validation():
    """Class-conditional mode skips early stopping (no validation in the history); a
    plain fit with early stopping has one."""
    X = blobs(n=120)
    y = np.repeat([0, 1], 60)
    det = CompVAEDetector(**{**SMALL, "epochs": 4, "latent_dim": 12, "class_conditional": True,
                             "early_stopping": True}).fit(X, y)
    assert "validation" not in det.history_
    plain = CompVAEDetector(**{**SMALL, "epochs": 30, "early_stopping": True,
                               "n_iter_no_change": 1}).fit(X)
    assert "validation" in plain.history_


def test_the_plain_vae_keeps_weight_one_and_no_ramp():
    """compression="gaussian" (the plain VAE's KL, not calibrated): beta is 1 at every
    epoch and the loss is reconstruction + KL, also during the ramp."""
    params = {**SMALL, "epochs": 4, "early_stopping": False, "compression": "gaussian"}
    h = CompVAEDetector(**params).fit(blobs(n=120)).history_
    assert h["beta"] == [1.0] * 4
    for epoch in range(1, 4):
        expected = h["reconstruction"][epoch] + h["regulariser"][epoch]
        assert h["loss"][epoch] == pytest.approx(expected, rel=1e-5)
