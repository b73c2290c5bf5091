"""The VAE's training loop: the beta schedule, auto epochs and the training
record (skhyper._vae.training)."""

import math

import numpy as np
import pytest
import torch

from skhyper import CompVAEDetector
from skhyper._utils.runtime import build_module, make_generator
from skhyper._vae.losses import HypersphericalRegulariser
from skhyper._vae.networks import build_vae
from skhyper._vae.training import AUTO_STEPS, auto_epochs, schedule, train_vae
from skhyper.compvae import PAPER_PARAMS

from conftest import SMALL, blobs


def test_loss_and_reconstruction_fall_over_training(compression_fits):
    _, fits = compression_fits
    for det in fits.values():
        h = det.history_
        assert h["reconstruction"][-1] < 0.5 * h["reconstruction"][0]
        assert h["regulariser"][-1] < h["regulariser"][0]


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


def test_auto_epochs_give_enough_steps():
    params = {**SMALL, "epochs": "auto", "batch_size": 50, "early_stopping": False}
    det = CompVAEDetector(**params).fit(blobs(n=100))
    assert det.n_epochs_ == auto_epochs(2) == AUTO_STEPS // 2  # 2 batches an epoch


def test_auto_schedule_ramps_as_sqrt_epoch_plus_one_in_the_first_half():
    """"auto" over 20 epochs: the regulariser's ramp is sqrt(epoch) + 1 in the
    first half, then 1; the tail angles' weight rises linearly from 1 to 10
    over the second half; the first angle's weight is 100, 150 in the last
    quarter."""
    for epoch in range(10):
        s = schedule(epoch, 20)
        assert s.ramp == pytest.approx(math.sqrt(epoch) + 1.0, rel=1e-15)
        assert not s.second_phase and s.weights.tail == 1.0 and s.weights.first == 100.0
    for epoch in range(10, 20):
        s = schedule(epoch, 20)
        assert s.ramp == 1.0 and s.second_phase
        assert s.weights.tail == pytest.approx(1.0 + 9.0 * (epoch - 9) / 10, rel=1e-15)
        assert s.weights.first == (150.0 if epoch >= 15 else 100.0)


def test_loss_is_reconstruction_plus_ramped_weighted_regulariser():
    """Each epoch after the first (whose beta is provisional until its end):
    mean loss = mean reconstruction + beta * ramp * mean regulariser."""
    params = {**SMALL, "epochs": 6, "early_stopping": False}
    h = CompVAEDetector(**params).fit(blobs(n=120)).history_
    for epoch in range(1, 6):
        ramp = schedule(epoch, 6).ramp
        expected = h["reconstruction"][epoch] + h["beta"][epoch] * ramp * h["regulariser"][epoch]
        assert h["loss"][epoch] == pytest.approx(expected, rel=1e-5)
    assert schedule(2, 6).ramp > 2  # the ramp is not 1 there


def test_calibrated_weight_is_kl_target_times_the_first_epoch_ratio():
    """beta = kl_target * mean reconstruction / mean regulariser of the first
    epoch, and stays there (doc: ``kl_target``)."""
    params = {**SMALL, "epochs": 4, "kl_target": 37.0, "early_stopping": False}
    h = CompVAEDetector(**params).fit(blobs(n=120)).history_
    expected = 37.0 * h["reconstruction"][0] / h["regulariser"][0]
    assert h["beta"] == pytest.approx([expected] * 4, rel=1e-12)


def _train_with_validation(values, n_iter_no_change, epochs=20):
    """train_vae on a tiny VAE (10 batches an epoch, so one check an epoch) with
    a held-out loss that returns ``values(i)`` at its i-th call."""
    X = torch.from_numpy(np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32))
    model = build_module(lambda: build_vae(3, 2, (8,), None, False), make_generator(0))
    calls = []

    def validation():
        calls.append(len(calls))
        return values(len(calls) - 1)

    history = train_vae(
        model,
        HypersphericalRegulariser(2, "full", 5e5),
        X,
        None,
        1,
        epochs=epochs,
        batches_per_epoch=10,
        learning_rate=1e-3,
        kl_target=100.0,
        generator=make_generator(1),
        rng=np.random.default_rng(2),
        validation=validation,
        n_iter_no_change=n_iter_no_change,
    )
    return history, len(calls)


@pytest.mark.parametrize("n_iter_no_change", [1, 3])
def test_early_stopping_stops_at_the_n_iter_no_change_th_check_without_improvement(
    n_iter_no_change,
):
    """A held-out loss that never improves on its first check (every later
    check ties it) stops training at exactly the n_iter_no_change-th check
    after it; checks start with the second phase (epoch 10 of 20)."""
    history, n_calls = _train_with_validation(lambda i: 1.0, n_iter_no_change)
    assert n_calls == 1 + n_iter_no_change
    assert len(history["loss"]) == 10 + 1 + n_iter_no_change
    assert np.isnan(history["validation"][:10]).all()
    assert history["validation"][10:] == [1.0] * (1 + n_iter_no_change)


def test_early_stopping_needs_a_relative_fall_of_tol():
    """Falls smaller than ``tol`` (1e-3, relative to the best) are no improvement."""
    history, n_calls = _train_with_validation(lambda i: (1.0 - 4e-4) ** i, 2)
    assert n_calls == 3 and len(history["loss"]) == 13
    # falls of 2 tol each are improvements: training runs to the end
    history, n_calls = _train_with_validation(lambda i: (1.0 - 2e-3) ** i, 2)
    assert n_calls == 10 and len(history["loss"]) == 20


# -- the denoising objective --------------------------------------------------------------


def test_input_noise_corrupts_the_model_input_only_in_training(monkeypatch):
    """With ``input_noise`` the network sees corrupted rows while training, the
    reconstruction target stays the clean rows, and scoring sees clean rows."""
    import skhyper._vae.networks as N
    import skhyper._vae.training as T

    X = blobs(n=200)
    seen = {"inputs": [], "targets": []}
    real_error, real_forward = T.reconstruction_error, N.SphericalVAE.forward

    def recording_error(x_hat, x):
        seen["targets"].append(x.detach().clone())
        return real_error(x_hat, x)

    def recording_forward(model, x, generator):
        seen["inputs"].append(x.detach().clone())
        return real_forward(model, x, generator)

    monkeypatch.setattr(T, "reconstruction_error", recording_error)
    monkeypatch.setattr(N.SphericalVAE, "forward", recording_forward)
    det = CompVAEDetector(**{**SMALL, "epochs": 2, "early_stopping": False, "input_noise": 0.5})
    det.fit(X)
    Z = torch.as_tensor(det.transform_.transform(X), dtype=torch.float32)
    rows = {tuple(r) for r in Z.numpy().round(5)}
    assert seen["inputs"] and len(seen["inputs"]) == len(seen["targets"])
    for x_in, target in zip(seen["inputs"], seen["targets"]):
        # targets are clean training rows; inputs differ from them by noise of std 0.5
        assert all(tuple(r) in rows for r in target.numpy().round(5))
        assert (x_in - target).std().item() == pytest.approx(0.5, rel=0.15)
    # inference is noise-free: scores are repeatable and equal the clean-row reconstruction
    Zd = torch.from_numpy(det.transform_.transform(X[:5]))
    rec = ((det.model_.decode_mean(det.model_.encode(Zd)[0]) - Zd) ** 2).sum(1).numpy()
    variants = det.score_variants(X[:5], ("reconstruction",))
    np.testing.assert_allclose(variants["reconstruction"], -rec, rtol=1e-10)
    np.testing.assert_array_equal(det.score_samples(X), det.score_samples(X))


def test_input_noise_changes_the_fit_and_zero_is_the_plain_vae():
    X = blobs(n=200)
    plain = CompVAEDetector(**SMALL).fit(X)
    noisy = CompVAEDetector(**{**SMALL, "input_noise": 0.3}).fit(X)
    zero = CompVAEDetector(**{**SMALL, "input_noise": 0.0}).fit(X)
    np.testing.assert_array_equal(zero.score_samples(X), plain.score_samples(X))
    assert not np.array_equal(noisy.score_samples(X), plain.score_samples(X))
