"""The thread policy: one thread for small work and beside busy CPUs, the
user's limit first, and fits that do not depend on the thread count."""

import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

import skhyper._utils.runtime as runtime
from skhyper import CompVAEDetector, SparKerDetector
from skhyper.stats import sparker_test

from conftest import FAST_VAE


@pytest.fixture
def two_cpus(monkeypatch):
    """A machine of two CPUs that the test says are free, torch allowed both."""
    before = torch.get_num_threads()
    monkeypatch.setattr(runtime, "allowed_cpus", lambda: 2)
    monkeypatch.setattr(runtime, "busy_cpus", lambda samples=3: 0)
    torch.set_num_threads(2)
    yield monkeypatch
    torch.set_num_threads(before)


def test_small_work_runs_on_one_thread(two_cpus):
    assert runtime.thread_count(runtime.SMALL_WORK - 1) == 1
    assert runtime.thread_count(runtime.SMALL_WORK) == 2
    assert runtime.thread_count() == 2


def test_busy_cpus_are_left_alone(two_cpus):
    two_cpus.setattr(runtime, "busy_cpus", lambda samples=3: 1)
    assert runtime.thread_count() == 1
    two_cpus.setattr(runtime, "busy_cpus", lambda samples=3: 5)
    assert runtime.thread_count() == 1


def test_the_users_limit_comes_first(two_cpus):
    torch.set_num_threads(1)
    assert runtime.thread_count() == 1
    with runtime.cpu_threads() as n:
        assert n == 1
    assert runtime.thread_count(limit=2) == 2
    two_cpus.setattr(runtime, "allowed_cpus", lambda: 1)
    assert runtime.thread_count(limit=2) == 1


def test_cpu_threads_sets_and_puts_back(two_cpus):
    with runtime.cpu_threads(1) as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with runtime.cpu_threads(single=True) as n:
        assert n == 1 and torch.get_num_threads() == 1
    with runtime.cpu_threads() as n:
        assert n == 2 and torch.get_num_threads() == 2
    assert torch.get_num_threads() == 2


def test_a_fit_beside_a_busy_cpu_uses_one_thread(two_cpus):
    seen = []
    det = CompVAEDetector(random_state=0, **FAST_VAE)
    fit = det._fit

    def recording_fit(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return fit(*args, **kwargs)

    two_cpus.setattr(det, "_fit", recording_fit)
    X = np.random.default_rng(0).normal(size=(120, 4))
    det.fit(X)
    two_cpus.setattr(runtime, "busy_cpus", lambda samples=3: 1)
    det.fit(X)
    assert seen == [2, 1]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_busy_cpus_sees_another_process():
    """A process spinning beside this one is counted (the count of a machine
    that is busy anyway is at least as large)."""
    rival = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        deadline = time.monotonic() + 20
        while runtime.busy_cpus() < 1:
            assert time.monotonic() < deadline, "a spinning process was never seen"
            time.sleep(0.05)
    finally:
        rival.kill()
        rival.wait()
    assert runtime._own_running() >= 1
    assert runtime._procs_running() >= 1


def _with_threads(n, fn):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        return fn()
    finally:
        torch.set_num_threads(before)


def test_conv_fit_does_not_depend_on_the_thread_count(two_cpus):
    """oneDNN's convolution gradients change with the thread count; the conv
    net trains on one thread, so fits agree bit for bit."""
    X = load_digits().data[:200]

    def scores():
        det = CompVAEDetector(
            random_state=0, image_shape=(1, 8, 8), conv_channels=(4, 8), latent_dim=4,
            epochs=6, batch_size=32,
        ).fit(X)
        return _with_threads(1, lambda: det.score_samples(X[:50]))

    np.testing.assert_array_equal(_with_threads(1, scores), _with_threads(2, scores))


def test_mlp_and_sparker_do_not_depend_on_the_thread_count(two_cpus):
    X = load_digits().data[:100]

    def vae():
        return CompVAEDetector(random_state=0, **FAST_VAE).fit(X).score_samples(X)

    np.testing.assert_array_equal(_with_threads(1, vae), _with_threads(2, vae))

    rng = np.random.default_rng(0)
    reference = rng.normal(size=(400, 3))
    data = np.r_[rng.normal(size=(90, 3)), rng.normal([2, 2, 0], 0.1, size=(10, 3))]

    def test():
        res = sparker_test(data, reference, n_permutations=4, random_state=0)
        return res.statistic, res.pvalue

    assert _with_threads(1, test) == _with_threads(2, test)

    def detector():
        det = SparKerDetector(n_permutations=2, random_state=0).fit(data, X_ref=reference)
        return det.score_samples(data)

    np.testing.assert_array_equal(_with_threads(1, detector), _with_threads(2, detector))


def test_busy_cpus_counts_other_processes_only(monkeypatch):
    """Runnable threads of this process (torch's workers) are not busy CPUs;
    the fewest over the samples counts, so a blip is not a busy CPU."""
    monkeypatch.setattr(runtime, "_own_running", lambda: 3)
    monkeypatch.setattr(runtime, "_procs_running", lambda: 3)
    assert runtime.busy_cpus() == 0
    counts = iter([6, 4, 5])
    monkeypatch.setattr(runtime, "_procs_running", lambda: next(counts))
    assert runtime.busy_cpus() == 1
    monkeypatch.setattr(runtime, "_procs_running", lambda: None)
    assert runtime.busy_cpus() == 0
