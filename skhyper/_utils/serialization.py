"""Fitted state as plain data: what pickles, skops files and ``skhyper.persistence``
files hold.

A detector's state is turned into a tree of dicts, lists, tuples, strings,
Python numbers, ``None`` and numpy arrays, and back. Torch modules become their
constructor settings and ``state_dict`` as arrays; tensors become arrays;
devices become their names; the package's own helper objects (the latent bank,
the input scaling, ...) become tagged dicts of their attributes, and a
``RandomState`` given as ``random_state`` its state. Nothing else
is accepted, so no file written from this state needs ``pickle`` to be read,
and skops sees no type but the estimator's own.

Classes take part by registering with :func:`plain_type` (objects rebuilt from
their ``__dict__``) or :func:`plain_module` (torch modules rebuilt from a
config), under a name that is stored in the state; reading looks the name up
in this registry and never imports anything.
"""

from __future__ import annotations

from collections.abc import Callable
from numbers import Integral, Real
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

T = TypeVar("T", bound=type)

# the tag of a converted object in the plain tree; no state key of ours starts with it
TAG = "__skhyper_type__"

_TYPES: dict[str, type] = {}
_MODULES: dict[str, tuple[type, Callable[[dict], nn.Module]]] = {}

def plain_type(cls: T) -> T:
    """Register ``cls``, whose instances are rebuilt from their (plain) ``__dict__``.

    ``cls`` may define ``_to_plain(self) -> dict`` and
    ``_from_plain(cls, state) -> instance`` to convert attributes that are not
    plain (tensors, indexes); by default its ``__dict__`` is converted.
    """
    _TYPES[cls.__name__] = cls
    return cls


def plain_module(build: Callable[[dict], nn.Module]) -> Callable[[T], T]:
    """Register a module class; ``build(config)`` makes an instance with the
    right shapes, whose parameters and buffers are then loaded. The instance's
    ``config`` attribute (a plain dict) is what ``build`` gets back."""

    def register(cls: T) -> T:
        _MODULES[cls.__name__] = (cls, build)
        return cls

    return register


class UnsupportedStateError(TypeError):
    """Fitted state holds an object that has no plain form."""


def to_plain(value: Any) -> Any:
    """``value`` as plain data (new containers; arrays are not copied)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (Integral, Real)):
        return value
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise UnsupportedStateError("only dicts with string keys have a plain form")
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(to_plain(v) for v in value)
    if isinstance(value, torch.device):
        return {TAG: "device", "name": str(value)}
    if isinstance(value, np.random.RandomState):  # a random_state parameter
        return {TAG: "RandomState", "state": to_plain(value.get_state(legacy=False))}
    if isinstance(value, torch.Tensor):
        return {TAG: "tensor", "array": _array(value)}
    name = type(value).__name__
    if isinstance(value, nn.Module) and _MODULES.get(name, (None,))[0] is type(value):
        return {
            TAG: "module",
            "class": name,
            "config": to_plain(value.config),
            "state_dict": {k: _array(t) for k, t in value.state_dict().items()},
            "training": bool(value.training),
            "requires_grad": any(p.requires_grad for p in value.parameters()),
            "channels_last": any(
                t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(
                    memory_format=torch.channels_last
                )
                for t in value.parameters()
            ),
        }
    if _TYPES.get(name) is type(value):
        attrs = value._to_plain() if hasattr(value, "_to_plain") else vars(value)
        return {TAG: name, "state": to_plain(attrs)}
    raise UnsupportedStateError(
        f"{type(value).__module__}.{type(value).__qualname__} has no plain form; "
        "register it with skhyper._utils.serialization"
    )


def from_plain(value: Any, device: torch.device | None = None) -> Any:
    """Inverse of :func:`to_plain`; tensors and modules go to ``device`` (default CPU)."""
    device = torch.device("cpu") if device is None else device
    if isinstance(value, list):
        return [from_plain(v, device) for v in value]
    if isinstance(value, tuple):
        return tuple(from_plain(v, device) for v in value)
    if not isinstance(value, dict):
        return value
    tag = value.get(TAG)
    if tag is None:
        return {k: from_plain(v, device) for k, v in value.items()}
    if tag == "device":
        return torch.device(value["name"])
    if tag == "RandomState":
        generator = np.random.RandomState()
        generator.set_state(from_plain(value["state"]))
        return generator
    if tag == "tensor":
        return torch.from_numpy(np.array(value["array"])).to(device)
    if tag == "module":
        return _module(value, device)
    cls = _TYPES.get(tag)
    if cls is None:
        raise UnsupportedStateError(f"unknown object type {tag!r} in the state")
    state = from_plain(value["state"], device)
    if hasattr(cls, "_from_plain"):
        return cls._from_plain(state)
    obj = cls.__new__(cls)
    obj.__dict__.update(state)
    return obj


def _array(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().contiguous().numpy().copy()


def _module(value: dict, device: torch.device) -> nn.Module:
    entry = _MODULES.get(value["class"])
    if entry is None:
        raise UnsupportedStateError(f"unknown module type {value['class']!r} in the state")
    _, build = entry
    # on the meta device: no memory and no random draws before the weights are loaded
    with torch.device("meta"):
        module = build(from_plain(value["config"]))
    # assign=True: the loaded tensors, with their dtypes, replace the meta ones
    tensors = {k: torch.from_numpy(np.array(a)) for k, a in value["state_dict"].items()}
    module.load_state_dict(tensors, strict=True, assign=True)
    if any(t.is_meta for t in [*module.parameters(), *module.buffers()]):
        raise UnsupportedStateError(f"the state of a {value['class']} lacks some of its tensors")
    module = module.to(device)
    if value["channels_last"]:
        module = module.to(memory_format=torch.channels_last)
    module.train(bool(value["training"]))
    for p in module.parameters():
        p.requires_grad_(bool(value["requires_grad"]))
    return module
