"""The VAE's training loop: the beta schedule, auto epochs and the training
record (skhyper._vae.training)."""

import numpy as np
import pytest

from skhyper import CompVAEDetector
from skhyper._vae.training import AUTO_STEPS, auto_epochs, schedule
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
