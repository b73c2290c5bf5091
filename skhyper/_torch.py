"""Torch runtime helpers shared by the estimators: devices, local seeding,
array/tensor conversion, batching and device-portable state.

Nothing here touches global state: seeds go into local generators (or a
forked RNG that is restored on exit), devices are resolved per call.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from sklearn.utils import check_random_state

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


def seed_from_random_state(random_state: Any) -> int:
    """Draw a 31-bit seed from a scikit-learn ``random_state``.

    ``None`` draws fresh OS entropy instead of touching numpy's global
    ``RandomState`` (which ``check_random_state(None)`` would return).
    """
    if random_state is None:
        return int(np.random.default_rng().integers(_INT32_MAX))
    return int(check_random_state(random_state).randint(_INT32_MAX))


@contextlib.contextmanager
def local_torch_seed(seed: int) -> Iterator[None]:
    """Seed torch's CPU generator inside a block and restore it afterwards.

    Used around module construction (``nn.Linear`` draws its initial weights
    from the default generator). Only the CPU generator is forked and seeded,
    so no CUDA state is created or changed.
    """
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        yield


def make_generator(seed: int, device: torch.device) -> torch.Generator:
    """A torch generator on ``device`` seeded with ``seed``."""
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


def to_tensor(
    X: np.ndarray, device: torch.device, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Copy an array (read-only and memmaps included) into a tensor."""
    arr = np.array(X, dtype=torch.empty((), dtype=dtype).numpy().dtype, copy=True, order="C")
    return torch.from_numpy(arr).to(device)


def batch_slices(n: int, batch_size: int) -> Iterator[slice]:
    """Consecutive slices of at most ``batch_size`` rows covering ``range(n)``."""
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def state_to_cpu(state: dict[str, Any]) -> dict[str, Any]:
    """Copy of an estimator ``__dict__`` with all torch state on the CPU.

    Modules are deep-copied before moving (``Module.to`` is in place), so the
    live estimator is left on its device.
    """
    out = {}
    for key, value in state.items():
        if isinstance(value, torch.nn.Module):
            on_cpu = all(p.device.type == "cpu" for p in value.parameters()) and all(
                b.device.type == "cpu" for b in value.buffers()
            )
            out[key] = value if on_cpu else copy.deepcopy(value).cpu()
        elif isinstance(value, torch.Tensor):
            out[key] = value.cpu()
        else:
            out[key] = value
    return out


def state_to_device(state: dict[str, Any], device: torch.device) -> None:
    """Move torch state in an unpickled ``__dict__`` onto ``device`` in place."""
    for key, value in state.items():
        if isinstance(value, torch.nn.Module):
            value.to(device)
        elif isinstance(value, torch.Tensor):
            state[key] = value.to(device)


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
