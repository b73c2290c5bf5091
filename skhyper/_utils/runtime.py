"""Torch runtime helpers shared by the estimators: devices, explicit random
generators, parameter initialisation and array/tensor conversion.

Nothing here touches global state: every random draw goes through a
``torch.Generator`` or ``numpy.random.Generator`` made for one fit, so fits
running at the same time in threads do not disturb each other.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import joblib
import numpy as np
import torch
from sklearn.utils import check_random_state
from torch import nn

_INT32_MAX = np.iinfo(np.int32).max


def resolve_device(device: str | torch.device) -> torch.device:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"`` into a device.

    ``"auto"`` picks CUDA when available. An explicit CUDA device that is not
    available raises a ``ValueError`` naming it.
    """
    if isinstance(device, torch.device):
        dev = device
    elif device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"Unknown device {device!r}.") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r} was requested but CUDA is not available.")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} was requested but only "
                f"{torch.cuda.device_count()} CUDA device(s) are visible."
            )
    elif dev.type != "cpu":
        raise ValueError(f"Unsupported device {device!r}; use 'auto', 'cpu' or 'cuda[:i]'.")
    return dev


def usable_device(device: torch.device) -> torch.device:
    """``device`` if it can be used in this process, else the CPU.

    A model fitted on a GPU and unpickled on a CPU-only machine scores on the
    CPU.
    """
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            return torch.device("cpu")
    return device


# -- threads ---------------------------------------------------------------------


def allowed_cpus() -> int:
    """The CPUs this process may use: its affinity and its cgroup CPU quota."""
    return max(1, int(joblib.cpu_count()))


# Below this many input numbers (rows x features) a call runs on one thread
# without looking at the machine: a second thread gains nothing there
# (benchmarks/bench_threads.py).
SMALL_WORK = 2**14


def _procs_running() -> int | None:
    """Runnable threads on the machine now (Linux's /proc/stat), else None."""
    try:
        with open("/proc/stat", "rb") as fh:
            for line in fh:
                if line.startswith(b"procs_running "):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _own_running() -> int:
    """This process's threads that are runnable now (at least the caller)."""
    running = 0
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return 1
    for task in tasks:
        try:
            with open(f"/proc/self/task/{task}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        # the state letter follows the command name's closing parenthesis
        end = stat.rfind(b")")
        running += stat[end + 2 : end + 3] == b"R"
    return max(1, running)


def busy_cpus(samples: int = 3) -> int:
    """CPUs other processes are running on now: runnable threads not ours.

    The smallest count over a few samples a millisecond apart, so that a
    thread that runs for an instant is not taken for a busy CPU; 0 where the
    system does not say (outside Linux).
    """
    counts = []
    for i in range(samples):
        if i:
            time.sleep(1e-3)
        total = _procs_running()
        if total is None:
            return 0
        counts.append(max(0, total - _own_running()))
    return min(counts)


def thread_count(work: float = math.inf, *, limit: int | None = None) -> int:
    """Torch's intra-op threads for a call that processes ``work`` input numbers.

    The policy (``doc/guide/practical.rst``, "Threads"):

    - the user's limit comes first: torch's own count, which follows
      ``torch.set_num_threads``, ``OMP_NUM_THREADS`` and
      ``threadpoolctl.threadpool_limits``, capped at :func:`allowed_cpus`;
    - small work (under :data:`SMALL_WORK` numbers) runs on one thread;
    - other work takes the allowed CPUs that no other process is running on
      at the start of the call, at least one. OpenMP threads wait for each
      other at every operation, so a thread that shares its CPU with another
      job holds all the others back (ten times slower and more).
    """
    if limit is None:
        limit = min(torch.get_num_threads(), allowed_cpus())
    if limit <= 1 or work < SMALL_WORK:
        return 1
    return max(1, min(limit, allowed_cpus() - busy_cpus()))


@contextmanager
def cpu_threads(work: float = math.inf, *, single: bool = False) -> Iterator[int]:
    """Torch's intra-op threads for one fit or scoring call: :func:`thread_count`.

    ``single=True`` runs on one thread whatever the machine: the conv net's
    training, whose gradients change with the thread count (oneDNN splits
    its reductions by thread), so that a fit is the same on every machine.
    The count is put back afterwards.
    """
    current = torch.get_num_threads()
    wanted = 1 if single else thread_count(work, limit=min(current, allowed_cpus()))
    if wanted != current:
        torch.set_num_threads(wanted)
    try:
        yield wanted
    finally:
        if wanted != current:
            torch.set_num_threads(current)


# -- seeds and generators -------------------------------------------------------


def fit_seed_sequence(random_state: Any) -> np.random.SeedSequence:
    """The root of all of one fit's randomness, from a scikit-learn ``random_state``.

    An int gives the same root every time. ``None`` draws fresh OS entropy
    instead of touching numpy's global ``RandomState`` (which
    ``check_random_state(None)`` would return); a ``RandomState`` instance is
    advanced by one draw, as scikit-learn's estimators do.
    """
    if random_state is None:
        return np.random.SeedSequence()
    return np.random.SeedSequence(int(check_random_state(random_state).randint(_INT32_MAX)))


def seed_of(sequence: np.random.SeedSequence) -> int:
    """A 63-bit integer seed (for ``torch.Generator.manual_seed``) from a ``SeedSequence``."""
    return int(sequence.generate_state(1, np.uint64)[0] >> np.uint64(1))


def spawn_seeds(root: np.random.SeedSequence, n: int) -> list[int]:
    """``n`` independent 63-bit seeds spawned from ``root`` (one per use)."""
    return [seed_of(child) for child in root.spawn(n)]


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator on ``device`` seeded with ``seed``."""
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    return gen


def build_module(factory: Callable[[], nn.Module], generator: torch.Generator) -> nn.Module:
    """Construct a module without touching torch's global generator.

    The module is built on the meta device (no memory, no random draws), then
    materialised on the CPU, and every layer gets torch's default
    initialisation drawn from ``generator``, layer by layer in construction
    order (so a generator seeded like the global one gives the same weights).
    """
    with torch.device("meta"):
        module = factory()
    module = module.to_empty(device="cpu")
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, (nn.Linear, nn.modules.conv._ConvNd)):
                nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
                if layer.bias is not None:
                    fan_in = layer.weight[0].numel()
                    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                    nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
            elif isinstance(layer, nn.modules.batchnorm._NormBase):
                layer.reset_parameters()  # ones, zeros and running statistics
            elif any(True for _ in layer.parameters(recurse=False)) or any(
                True for _ in layer.buffers(recurse=False)
            ):
                raise TypeError(f"no deterministic initialisation for {type(layer).__name__}")
    return module


# -- arrays and tensors -----------------------------------------------------------


def to_tensor(
    X: np.ndarray, device: torch.device, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Copy an array (read-only and memmaps included) into a tensor."""
    arr = np.array(X, dtype=torch.empty((), dtype=dtype).numpy().dtype, copy=True, order="C")
    return torch.from_numpy(arr).to(device)

