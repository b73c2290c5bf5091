"""Pins of the plain-state conversion (skhyper/_utils/serialization.py): numpy scalars,
the module record's flags (memory format, training mode, gradients) and the refusals,
which the round-trip tests go through without stating. benchmarks/generated_mutants.py
reports the mutants these kill."""

import numpy as np
import pytest
import torch

from skhyper._utils.serialization import (
    TAG,
    UnsupportedStateError,
    from_plain,
    to_plain,
)
from skhyper._vae.networks import build_vae


@pytest.mark.parametrize(
    "value, expected",
    [
        (np.float32(1.5), 1.5),
        (np.float64(-2.25), -2.25),
        (np.int64(7), 7),
        (np.int8(-3), -3),
        (np.bool_(True), True),
        (np.bool_(False), False),
    ],
)
def test_numpy_scalars_become_python_numbers(value, expected):
    """A numpy scalar is stored as the Python number of its value (JSON writes it; no
    numpy type reaches a file)."""
    for plain in (to_plain(value), to_plain({"x": [value]})["x"][0]):
        assert plain == expected and type(plain) is type(expected)


@pytest.mark.parametrize("value", [None, True, False, "text", 3, 2.5, 10**30])
def test_plain_values_pass_unchanged(value):
    plain = to_plain(value)
    assert plain is value or (plain == value and type(plain) is type(value))
    assert from_plain(plain) == value and type(from_plain(plain)) is type(value)


def test_containers_keep_their_kind_and_arrays_are_not_copied():
    array = np.arange(3.0)
    plain = to_plain({"a": (1, [array]), "b": {"c": None}})
    assert isinstance(plain["a"], tuple) and isinstance(plain["a"][1], list)
    assert plain["a"][1][0] is array
    back = from_plain(plain)
    assert isinstance(back["a"], tuple) and back["b"] == {"c": None}
    with pytest.raises(UnsupportedStateError, match="string keys"):
        to_plain({1: 2})
    with pytest.raises(UnsupportedStateError, match="no plain form"):
        to_plain(object())
    with pytest.raises(UnsupportedStateError, match="unknown object type 'Nope'"):
        from_plain({TAG: "Nope", "state": {}})
    with pytest.raises(UnsupportedStateError, match="unknown module type 'Nope'"):
        from_plain({TAG: "module", "class": "Nope"})


def test_devices_and_tensors_round_trip():
    plain = to_plain({"d": torch.device("cpu"), "t": torch.arange(4.0).reshape(2, 2).T})
    assert plain["d"] == {TAG: "device", "name": "cpu"}
    assert isinstance(plain["t"][TAG], str) and plain["t"]["array"].flags.c_contiguous
    back = from_plain(plain)
    assert back["d"] == torch.device("cpu")
    torch.testing.assert_close(back["t"], torch.arange(4.0).reshape(2, 2).T)
    # inside lists and tuples too
    back = from_plain(to_plain(([torch.device("cpu")], (torch.ones(1), 2))))
    assert back[0] == [torch.device("cpu")] and isinstance(back[1], tuple)
    assert isinstance(back[1][0], torch.Tensor) and back[1][1] == 2


def _conv_vae():
    return build_vae(64, 4, (16,), (1, 8, 8), False, channels=(4, 8))


@pytest.mark.parametrize("channels_last", [False, True])
def test_a_module_keeps_its_memory_format(channels_last):
    """A conv net kept channels-last (as a CPU fit keeps it) is stored with that flag and
    loads channels-last; a contiguous one stays contiguous. An MLP has no 4-d tensor."""
    model = _conv_vae()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    plain = to_plain(model)
    assert plain["channels_last"] is channels_last
    back = from_plain(plain)
    convs = [p for p in back.parameters() if p.dim() == 4]
    assert convs
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    other = torch.contiguous_format if channels_last else torch.channels_last
    assert all(p.is_contiguous(memory_format=fmt) for p in convs)
    assert not all(p.is_contiguous(memory_format=other) for p in convs)
    mlp = build_vae(6, 4, (16,), None, False)
    assert to_plain(mlp.to(memory_format=torch.channels_last))["channels_last"] is False


@pytest.mark.parametrize("training, requires_grad", [(True, True), (False, False),
                                                     (True, False), (False, True)])
def test_a_module_keeps_its_mode_and_gradient_flags(training, requires_grad):
    model = build_vae(6, 4, (16,), None, False).train(training)
    for p in model.parameters():
        p.requires_grad_(requires_grad)
    plain = to_plain(model)
    assert plain["training"] is training and plain["requires_grad"] is requires_grad
    back = from_plain(plain)
    assert back.training is training
    assert all(m.training is training for m in back.modules())
    assert all(p.requires_grad is requires_grad for p in back.parameters())
    x = torch.randn(5, 6)
    model.eval(), back.eval()
    torch.testing.assert_close(back.encode(x)[0], model.encode(x)[0], rtol=0, atol=0)


def test_a_module_missing_a_tensor_is_refused():
    plain = to_plain(build_vae(6, 4, (16,), None, False))
    name = next(iter(plain["state_dict"]))
    del plain["state_dict"][name]
    with pytest.raises(Exception, match=name.split(".")[-1]):
        from_plain(plain)


def test_a_random_state_keeps_its_stream():
    generator = np.random.RandomState(3)
    generator.uniform(size=5)
    back = from_plain(to_plain(generator))
    np.testing.assert_array_equal(back.uniform(size=4), generator.uniform(size=4))


def test_tensors_and_modules_go_to_the_device_asked_for():
    """``from_plain(..., device)`` puts tensors and modules there (the meta device stands
    in for a GPU here); without one, on the CPU."""
    plain = to_plain({"t": torch.ones(2), "m": build_vae(6, 4, (16,), None, False)})
    meta = from_plain(plain, torch.device("meta"))
    assert meta["t"].device.type == "meta"
    assert all(p.device.type == "meta" for p in meta["m"].parameters())
    cpu = from_plain(plain)
    assert cpu["t"].device.type == "cpu"
    assert all(p.device.type == "cpu" for p in cpu["m"].parameters())


@pytest.mark.parametrize("size, match", [(40 * 2**20, "does not describe"),
                                         (64 * 2**20 + 1, "too large")])
def test_the_manifest_may_take_up_to_64_mib(size, match):
    """A skhyper.json of 40 MiB is read (and judged by its content); past 64 MiB it is
    refused unread."""
    import io
    import zipfile

    from skhyper.persistence import ModelFormatError, load

    body = b'{"format": "other"}'
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("skhyper.json", body + b" " * (size - len(body)))
    with pytest.raises(ModelFormatError, match=match):
        load(io.BytesIO(buffer.getvalue()))
