"""Saving without pickle: skhyper.persistence files, skops, and the plain state
behind both (and behind pickles)."""

import io
import json
import pickle
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import skhyper
from skhyper import CompVAEDetector, SparKerDetector, VMFDetector
from skhyper._utils import base
from skhyper._utils.serialization import TAG, UnsupportedStateError
from skhyper.persistence import FORMAT_VERSION, MAX_BYTES, ModelFormatError, load, save

from conftest import FAST_SPARKER, FAST_VAE

RNG = np.random.default_rng(0)
X = RNG.normal(size=(240, 5))
X_NEW = RNG.normal(size=(60, 5)) * 1.5
REF = RNG.normal(size=(400, 5))
IMAGES = RNG.uniform(size=(80, 16))


def _detectors():
    """(name, fitted detector, rows to score) for every kind of fitted state."""
    return [
        ("compvae", CompVAEDetector(random_state=0, **FAST_VAE).fit(X), X_NEW),
        (
            "ensemble",
            CompVAEDetector(random_state=0, n_estimators=2, **FAST_VAE).fit(X),
            X_NEW,
        ),
        ("vmf", VMFDetector(random_state=0, anomaly_score="knn", **FAST_VAE).fit(X), X_NEW),
        (
            "conv",
            CompVAEDetector(
                random_state=0, image_shape=(1, 4, 4), conv_channels=(4,), epochs=2
            ).fit(IMAGES),
            IMAGES[:20],
        ),
        (
            "class-conditional",
            CompVAEDetector(
                random_state=0, class_conditional=True, **{**FAST_VAE, "latent_dim": 12}
            ).fit(X, np.where(X[:, 0] > 0, "a", "b")),
            X_NEW,
        ),
        ("sparker", SparKerDetector(random_state=0, **FAST_SPARKER).fit(X, X_ref=REF), X_NEW),
    ]


@pytest.fixture(scope="module")
def detectors():
    return _detectors()


def _saved(det):
    buffer = io.BytesIO()
    save(det, buffer)
    return buffer.getvalue()


def _assert_same_scores(loaded, det, rows):
    # the training rows too: they are scored without their own bank entry
    for Z in (rows, X if det.n_features_in_ == 5 else IMAGES):
        np.testing.assert_array_equal(loaded.score_samples(Z), det.score_samples(Z))
    assert loaded.offset_ == det.offset_
    assert loaded.get_params() == det.get_params()


def test_save_load_round_trip(detectors, tmp_path):
    for name, det, rows in detectors:
        path = tmp_path / f"{name}.skhyper"
        save(det, path)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # same versions, same device: no warning
            loaded = load(path)
        assert type(loaded) is type(det), name
        _assert_same_scores(loaded, det, rows)


def test_an_unfitted_detector_round_trips():
    det = CompVAEDetector(latent_dim=7, n_estimators=3)
    loaded = load(io.BytesIO(_saved(det)))
    assert loaded.get_params() == det.get_params()
    assert not hasattr(loaded, "offset_")


def test_feature_names_survive():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(5)])
    det = CompVAEDetector(random_state=0, **FAST_VAE).fit(frame)
    loaded = load(io.BytesIO(_saved(det)))
    np.testing.assert_array_equal(loaded.feature_names_in_, det.feature_names_in_)
    with pytest.raises(ValueError, match="feature names"):
        loaded.score_samples(frame.rename(columns={"f0": "other"}))


def test_the_file_is_json_and_npy_arrays(detectors):
    _, det, _ = detectors[0]
    with zipfile.ZipFile(io.BytesIO(_saved(det))) as archive:
        names = archive.namelist()
        manifest = json.loads(archive.read("skhyper.json"))
    assert names[0] == "skhyper.json"
    assert all(n.startswith("arrays/") and n.endswith(".npy") for n in names[1:])
    assert manifest["format"] == "skhyper-model"
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["class"] == "CompVAEDetector"
    assert manifest["versions"]["skhyper"] == skhyper.__version__
    assert set(manifest["versions"]) == {"skhyper", "scikit-learn", "torch", "numpy", "scipy"}
    assert manifest["state"]["latent_dim"] == FAST_VAE["latent_dim"]


def test_pickled_state_is_plain_data(detectors):
    """What pickle and skops see: containers, numbers, strings and arrays only."""

    def walk(value):
        if isinstance(value, dict):
            for v in value.values():
                yield from walk(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                yield from walk(v)
        else:
            yield value

    plain = (type(None), bool, int, float, str, np.ndarray)
    for name, det, _ in detectors:
        leaves = list(walk(det.__getstate__()))
        odd = {type(v).__name__ for v in leaves if not isinstance(v, plain)}
        assert not odd, (name, odd)
        assert all(v.dtype != object for v in leaves if isinstance(v, np.ndarray)), name


def test_pickle_round_trip_of_the_plain_state(detectors):
    for _, det, rows in detectors:
        _assert_same_scores(pickle.loads(pickle.dumps(det)), det, rows)


def test_skops_round_trip_trusts_only_the_detector_type(detectors):
    sio = pytest.importorskip("skops.io")
    for name, det, rows in detectors:
        data = sio.dumps(det)
        expected = [f"{type(det).__module__}.{type(det).__name__}"]
        assert sio.get_untrusted_types(data=data) == expected, name
        loaded = sio.loads(data, trusted=expected)
        _assert_same_scores(loaded, det, rows)


def test_an_unknown_object_in_the_state_is_refused():
    det = CompVAEDetector(random_state=0, **FAST_VAE).fit(X)
    det.note_ = object()
    with pytest.raises(UnsupportedStateError, match="builtins.object has no plain form"):
        pickle.dumps(det)


# -- what load refuses -----------------------------------------------------------------


class _Payload:
    """Unpickling this writes a file: the side effect a safe loader must not have."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (exec, (f"open({self.path!r}, 'w').write('ran')",))


def test_a_pickle_file_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "model.skhyper"
    path.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(ModelFormatError, match="not a skhyper model file"):
        load(path)
    assert not marker.exists()
    # the payload is real: unpickling it does run it
    pickle.loads(path.read_bytes())
    assert marker.exists()


def _rewritten(data, *, manifest=None, members=None):
    """The zip ``data`` with its manifest changed by ``manifest(dict)`` and
    members replaced (name -> bytes)."""
    members = dict(members or {})
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            content = src.read(name)
            if name == "skhyper.json" and manifest is not None:
                text = json.loads(content)
                manifest(text)
                content = json.dumps(text).encode()
            dst.writestr(name, members.pop(name, content))
        for name, content in members.items():
            dst.writestr(name, content)
    return out.getvalue()


def test_an_array_holding_a_pickle_is_refused_without_running_it(tmp_path, detectors):
    marker = tmp_path / "ran"
    payload = io.BytesIO()
    np.save(payload, np.array([_Payload(marker)], dtype=object), allow_pickle=True)
    members = {"arrays/0.npy": payload.getvalue()}

    def declare_an_object_array(manifest):
        (ref,) = [r for r in _refs(manifest["state"]) if r["__array__"] == 0]
        ref.update(dtype="|O", shape=[1])

    data = _saved(detectors[0][1])
    for crafted, message in [
        # the state declares the object array: refused before the member is opened
        (_rewritten(data, manifest=declare_an_object_array, members=members),
         "arrays/0.npy is not a plain array"),
        # the state declares the array that was there: the member is not that array
        (_rewritten(data, members=members), "arrays/0.npy"),
    ]:
        with pytest.raises(ModelFormatError, match=message):
            load(io.BytesIO(crafted))
    # a format-5 state declares nothing: the member's own header is refused
    old = _rewritten(
        FORMAT5_FILE.read_bytes(), members={f"arrays/{i}.npy": payload.getvalue() for i in (0, 14)}
    )
    with pytest.raises(ModelFormatError, match="arrays/0.npy is not a plain array"):
        load(io.BytesIO(old))
    assert not marker.exists()


def test_a_class_that_is_not_a_detector_is_refused(detectors):
    data = _saved(detectors[0][1])
    for name in ("os.system", "IsolationForest", "LatentBank", None):
        crafted = _rewritten(data, manifest=lambda m, name=name: m.update({"class": name}))
        with pytest.raises(ModelFormatError, match="not one of skhyper's detectors"):
            load(io.BytesIO(crafted))


def test_an_unknown_tag_in_the_state_is_refused(detectors):
    data = _saved(detectors[0][1])

    def tag_something_else(manifest):
        manifest["state"]["transform_"][TAG] = "Popen"

    crafted = _rewritten(data, manifest=tag_something_else)
    with pytest.raises(ModelFormatError, match="unknown object type 'Popen'") as info:
        load(io.BytesIO(crafted))
    assert isinstance(info.value.__cause__, UnsupportedStateError)


def test_another_format_version_is_a_clear_error(detectors):
    data = _saved(detectors[0][1])
    for version in (4, FORMAT_VERSION + 1, None, "6"):
        crafted = _rewritten(data, manifest=lambda m, v=version: m.update({"format_version": v}))
        with pytest.raises(ModelFormatError, match=rf"format {version!r} .*fit the detector again"):
            load(io.BytesIO(crafted))


def test_other_files_are_clear_errors(detectors):
    with pytest.raises(ModelFormatError, match="holds no skhyper.json"):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("model.json", "{}")
        load(io.BytesIO(buffer.getvalue()))
    other = _rewritten(_saved(detectors[0][1]), manifest=lambda m: m.update({"format": "x"}))
    with pytest.raises(ModelFormatError, match="does not describe a skhyper model"):
        load(io.BytesIO(other))
    with pytest.raises(FileNotFoundError):
        load("/nonexistent/model.skhyper")


def test_save_takes_only_skhyper_detectors():
    from sklearn.ensemble import IsolationForest

    with pytest.raises(TypeError, match="save writes skhyper's detectors"):
        save(IsolationForest(), io.BytesIO())


def test_another_skhyper_version_warns(detectors):
    _, det, rows = detectors[0]

    def older(manifest):
        manifest["state"]["_skhyper_version"] = "0.0.1"

    crafted = _rewritten(_saved(det), manifest=older)
    with pytest.warns(base.InconsistentVersionWarning, match="0.0.1"):
        loaded = load(io.BytesIO(crafted))
    _assert_same_scores(loaded, det, rows)


# -- devices -----------------------------------------------------------------------------


def test_a_gpu_model_loads_on_the_cpu_with_a_warning(monkeypatch, detectors):
    """Emulated: the model says it was fitted on CUDA; this process cannot use it."""
    for name, det, rows in detectors:
        monkeypatch.setattr(det, "device_", torch.device("cuda", 0))
        data = _saved(det)
        monkeypatch.setattr(base, "usable_device", lambda device: torch.device("cpu"))
        with pytest.warns(base.DeviceFallbackWarning, match="fitted on cuda:0"):
            loaded = load(io.BytesIO(data))
        monkeypatch.undo()
        assert loaded.device_ == torch.device("cuda", 0), name
        assert loaded._inference_device().type == "cpu" or torch.cuda.is_available()
        for value in loaded.__dict__.values():
            for module in value if isinstance(value, list) else [value]:
                if isinstance(module, torch.nn.Module):
                    assert all(p.device.type == "cpu" for p in module.parameters())
        np.testing.assert_array_equal(loaded.score_samples(rows), det.score_samples(rows))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_models_round_trip_on_cuda():
    for det in (
        CompVAEDetector(random_state=0, device="cuda", **FAST_VAE).fit(X),
        SparKerDetector(random_state=0, device="cuda", **FAST_SPARKER).fit(X, X_ref=REF),
    ):
        loaded = load(io.BytesIO(_saved(det)))
        assert loaded.device_ == det.device_
        if isinstance(det, CompVAEDetector):
            assert next(loaded.model_.parameters()).device.type == "cuda"
        np.testing.assert_array_equal(loaded.score_samples(X_NEW), det.score_samples(X_NEW))


def test_an_approximate_index_is_rebuilt_the_same():
    pytest.importorskip("pynndescent")
    det = CompVAEDetector(random_state=0, knn_backend="pynndescent", **FAST_VAE).fit(X)
    loaded = load(io.BytesIO(_saved(det)))
    assert loaded._banks[0]._ann is not None
    np.testing.assert_array_equal(loaded.score_samples(X_NEW), det.score_samples(X_NEW))


def test_a_random_state_instance_round_trips():
    """A ``RandomState`` parameter is kept as its generator state, not pickled."""
    sio = pytest.importorskip("skops.io")
    det = CompVAEDetector(random_state=np.random.RandomState(5), **FAST_VAE).fit(X)
    expected = det.random_state.get_state(legacy=False)
    data = sio.dumps(det)
    for loaded in (
        load(io.BytesIO(_saved(det))),
        pickle.loads(pickle.dumps(det)),
        sio.loads(data, trusted=sio.get_untrusted_types(data=data)),
    ):
        state = loaded.random_state.get_state(legacy=False)
        np.testing.assert_array_equal(state["state"]["key"], expected["state"]["key"])
        assert state["state"]["pos"] == expected["state"]["pos"]
        np.testing.assert_array_equal(loaded.score_samples(X_NEW), det.score_samples(X_NEW))
    assert sio.get_untrusted_types(data=data) == ["skhyper.compvae.CompVAEDetector"]


# -- older files and classes_ ------------------------------------------------------------

DATA = Path(__file__).parent / "data"
# written by skhyper 0.2.0.dev0's save and pickle (format 5, classes_ = () in the state):
# CompVAEDetector(latent_dim=3, hidden_layer_sizes=(4,), epochs=2, batch_size=20,
# n_neighbors=3, random_state=0).fit(X_SMALL)
FORMAT5_FILE = DATA / "compvae-format5.skhyper"
FORMAT5_PICKLE = DATA / "compvae-format5.pkl"
X_SMALL = np.random.default_rng(0).normal(size=(40, 3))


def _quiet_load(file, **kwargs):
    with warnings.catch_warnings():
        # a later skhyper version reads these files with an InconsistentVersionWarning
        warnings.simplefilter("ignore", base.InconsistentVersionWarning)
        return load(file, **kwargs)


def test_a_format_5_file_and_pickle_still_load_without_classes():
    with zipfile.ZipFile(FORMAT5_FILE) as archive:
        manifest = json.loads(archive.read("skhyper.json"))
    assert manifest["format_version"] == 5
    assert manifest["state"]["classes_"] == {"__tuple__": []}
    with open(FORMAT5_PICKLE, "rb") as handle:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", base.InconsistentVersionWarning)
            pickled = pickle.load(handle)
    from_file = _quiet_load(FORMAT5_FILE)
    for det in (from_file, pickled):
        assert type(det) is CompVAEDetector
        assert not det.class_conditional and not hasattr(det, "classes_")
        np.testing.assert_array_equal(det.score_samples(X_SMALL), from_file.score_samples(X_SMALL))
    # saved again, it is a format-6 file that loads the same
    again = load(io.BytesIO(_saved(from_file)))
    np.testing.assert_array_equal(again.score_samples(X_SMALL), from_file.score_samples(X_SMALL))
    # the arrays are those of the file, shapes and dtypes included
    with zipfile.ZipFile(FORMAT5_FILE) as archive:
        training = np.load(io.BytesIO(archive.read("arrays/14.npy")))
    np.testing.assert_array_equal(again.training_scores_, training)
    assert again.training_scores_.dtype == training.dtype


def test_classes_only_in_class_conditional_mode():
    y = np.where(X_SMALL[:, 0] > 0, "a", "b")
    small = dict(hidden_layer_sizes=(4,), epochs=2, batch_size=20, random_state=0)
    det = CompVAEDetector(latent_dim=3, **small).fit(X_SMALL)
    assert not hasattr(det, "classes_")
    det = CompVAEDetector(latent_dim=12, class_conditional=True, **small).fit(X_SMALL, y)
    assert list(det.classes_) == ["a", "b"]
    # a refit without classes leaves none from before
    det.set_params(class_conditional=False).fit(X_SMALL)
    assert not hasattr(det, "classes_")
    assert "classes_" not in det.__getstate__()


# -- damaged and hostile files -----------------------------------------------------------
#
# Built from a small detector's file: each kind of damage an audit of load found, and each
# must raise ModelFormatError naming the member and what is wrong, reading nothing large.


@pytest.fixture(scope="module")
def small_file():
    """A small fitted detector's file (format 6), its manifest and its members."""
    data = _saved(_quiet_load(FORMAT5_FILE))
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    return data, json.loads(members.pop("skhyper.json")), members


def _refs(value):
    """The array references of a manifest's state (the dicts themselves)."""
    if isinstance(value, list):
        for v in value:
            yield from _refs(v)
    elif isinstance(value, dict):
        if "__array__" in value:
            yield value
        else:
            for v in value.values():
                yield from _refs(v)


def _ref(manifest, index):
    (ref,) = [r for r in _refs(manifest["state"]) if r["__array__"] == index]
    return ref


def _npy_header(dtype, shape):
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": tuple(shape)}
    )
    return buffer.getvalue()


def _npy(array):
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _zip(manifest, members, zeros=None):
    """A deflated zip of ``manifest`` and ``members``; ``zeros=(name, header, n)``
    adds a member of ``header`` and ``n`` zero bytes, written a MiB at a time."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("skhyper.json", json.dumps(manifest))
        for name, content in members.items():
            if zeros is None or name != zeros[0]:
                archive.writestr(name, content)
        if zeros is not None:
            name, header, n = zeros
            with archive.open(name, "w", force_zip64=n >= zipfile.ZIP64_LIMIT) as member:
                member.write(header)
                for start in range(0, n, 2**20):
                    member.write(bytes(min(2**20, n - start)))
    return buffer.getvalue()


def _with_declared_size(data, name, size):
    """``data`` with the uncompressed size the zip declares for ``name`` set to ``size``
    (in its local header and in the central directory); its content and CRC unchanged."""
    data = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        local = archive.getinfo(name).header_offset
    assert data[local : local + 4] == b"PK\x03\x04"
    data[local + 22 : local + 26] = size.to_bytes(4, "little")
    key = name.encode()
    central = data.find(b"PK\x01\x02")
    while central >= 0 and data[central + 46 : central + 46 + len(key)] != key:
        central = data.find(b"PK\x01\x02", central + 1)
    assert central >= 0
    data[central + 24 : central + 28] = size.to_bytes(4, "little")
    return bytes(data)


def _copy(manifest):
    return json.loads(json.dumps(manifest))


# a bomb inflates to this many bytes; reading it would raise a process's peak by as much
BOMB = 2**27
# 16 float64 elements: what the crafted manifests declare for the attacked array
SMALL = (16,)


def _hostile_files(small_file):
    """``{kind: (file bytes, max_bytes to load it with, the error it must raise)}``."""
    _, manifest, members = small_file
    last = len(members) - 1
    name = f"arrays/{last}.npy"

    def declaring(shape, dtype="<f8"):
        m = _copy(manifest)
        _ref(m, last).update(shape=list(shape), dtype=dtype)
        return m

    huge = (20 * 2**27,)
    small_npy = _npy(np.zeros(SMALL))
    # the honest bomb: a valid array of BOMB bytes, declared as such everywhere
    honest = _zip(
        declaring((BOMB // 8,)), members, zeros=(name, _npy_header("<f8", (BOMB // 8,)), BOMB)
    )
    # the manifest says 16 elements, the zip holds (and declares) BOMB bytes
    oversized_member = _zip(
        declaring(SMALL), members, zeros=(name, _npy_header("<f8", SMALL), BOMB)
    )
    # the zip declares the 16 elements' size, but the data inflates to BOMB bytes
    lying = _with_declared_size(oversized_member, name, len(small_npy))
    # format 5 (no shapes in the manifest): the npy header asks for 20 GiB
    old = _copy(manifest)
    old["format_version"] = 5
    for ref in _refs(old["state"]):
        del ref["dtype"], ref["shape"]
    short = _npy_header("<f8", huge) + bytes(128)
    # format 5 again: an npy header that says it is BOMB bytes long (of zeros)
    long_header = b"\x93NUMPY\x02\x00" + BOMB.to_bytes(4, "little")
    return {
        "honest bomb": (honest, 2**20, rf"{name} .*over max_bytes=1048576"),
        "member larger than its shape": (
            oversized_member, None, rf"{name}: the zip declares {BOMB + 128} bytes uncompressed"
        ),
        "member inflating past its declared size": (lying, None, rf"{name} is damaged: .*CRC"),
        "header declaring 20 GiB": (
            _zip(declaring(huge), {**members, name: short}),
            None,
            rf"{name}: the zip declares 256 bytes uncompressed, but an array of shape "
            rf"\({huge[0]},\) and dtype <f8 takes {huge[0] * 8} bytes",
        ),
        "header declaring 20 GiB, the manifest 16 elements": (
            _zip(declaring(SMALL), {**members, name: _npy_header("<f8", huge) + bytes(8)}),
            None,
            rf"{name} holds an array of shape \({huge[0]},\) .*the state declares shape \(16,\)",
        ),
        "format 5, header declaring 20 GiB": (
            _zip(old, {**members, name: short}),
            None,
            rf"{name}: the zip declares 256 bytes uncompressed, but an array of shape "
            rf"\({huge[0]},\)",
        ),
        "format 5, header of 128 MiB": (
            _zip(old, members, zeros=(name, long_header, BOMB)),
            None,
            rf"{name} has no valid npy header: ValueError: a header of {BOMB} bytes",
        ),
    }


@pytest.fixture(scope="module")
def hostile_files(small_file):
    return _hostile_files(small_file)


@pytest.mark.parametrize("kind", [
    "honest bomb",
    "member larger than its shape",
    "member inflating past its declared size",
    "header declaring 20 GiB",
    "header declaring 20 GiB, the manifest 16 elements",
    "format 5, header declaring 20 GiB",
    "format 5, header of 128 MiB",
])
def test_bombs_and_oversized_arrays_are_refused(hostile_files, kind):
    data, max_bytes, message = hostile_files[kind]
    kwargs = {} if max_bytes is None else {"max_bytes": max_bytes}
    with pytest.raises(ModelFormatError, match=message):
        _quiet_load(io.BytesIO(data), **kwargs)


# loads each file named on its command line in a fresh process; prints how far the
# process's peak memory rose above what a first, valid load left it at
_PEAK_SCRIPT = """
import json, resource, sys, warnings
warnings.simplefilter("ignore")
from skhyper.persistence import load
max_bytes, valid, *paths = sys.argv[1:]
load(valid)  # imports and first-use allocations happen before the baseline
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
errors = []
for path in paths:
    try:
        load(path, max_bytes=int(max_bytes)) if max_bytes != "default" else load(path)
        errors.append("loaded")
    except Exception as exc:
        errors.append(type(exc).__name__)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"errors": errors, "risen_bytes": (peak - before) * 1024}))
"""


def _peak_rise(tmp_path, files, max_bytes, valid):
    """(exception names, rise of the peak memory in bytes) of loading ``files``."""
    paths = []
    for i, data in enumerate(files):
        paths.append(tmp_path / f"{i}.skhyper")
        paths[-1].write_bytes(data)
    (tmp_path / "valid.skhyper").write_bytes(valid)
    out = subprocess.run(
        [sys.executable, "-c", _PEAK_SCRIPT, str(max_bytes), str(tmp_path / "valid.skhyper"),
         *map(str, paths)],
        capture_output=True, text=True, check=True, timeout=600,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["errors"], result["risen_bytes"]


def test_hostile_files_raise_without_allocating_them(tmp_path, small_file, hostile_files):
    """Peak memory, measured in a child process: no hostile file raises it by much."""
    valid, _, _ = small_file
    files = [data for data, _, _ in hostile_files.values()]
    errors, risen = _peak_rise(tmp_path, files, 2**20, valid)
    assert errors == ["ModelFormatError"] * len(files)
    # reading a bomb would raise it by BOMB bytes; a refused one by a MiB read buffer at most
    assert risen < BOMB // 8


@pytest.mark.slow
def test_a_2_gib_zero_bomb_is_refused_by_the_default_limit(tmp_path, small_file):
    """The audit's file: a valid header and 2 GiB of deflated zeros, about 2 MB on disk."""
    valid, manifest, members = small_file
    last = len(members) - 1
    n = 2 * 2**30
    assert n > MAX_BYTES
    manifest = _copy(manifest)
    _ref(manifest, last).update(shape=[n // 8])
    header = _npy_header("<f8", (n // 8,))
    bomb = _zip(manifest, members, zeros=(f"arrays/{last}.npy", header, n))
    errors, risen = _peak_rise(tmp_path, [bomb], "default", valid)
    assert errors == ["ModelFormatError"]
    assert risen < n // 64
    with pytest.raises(ModelFormatError, match=f"over max_bytes={MAX_BYTES}"):
        load(io.BytesIO(bomb))


def test_max_bytes_bounds_the_arrays_total(small_file):
    data, _, members = small_file
    total = sum(np.load(io.BytesIO(content)).nbytes for content in members.values())
    loaded = load(io.BytesIO(data), max_bytes=total)
    load(io.BytesIO(data), max_bytes=None)
    with pytest.raises(ModelFormatError, match=f"over max_bytes={total - 1}; nothing is read"):
        load(io.BytesIO(data), max_bytes=total - 1)
    np.testing.assert_array_equal(loaded.score_samples(X_SMALL), load(io.BytesIO(data))
                                  .score_samples(X_SMALL))
    for bad in (-1, 1.5, "1", True):
        with pytest.raises(ValueError, match="max_bytes must be a non-negative integer"):
            load(io.BytesIO(data), max_bytes=bad)


def test_arrays_not_as_the_state_declares_are_refused(small_file):
    _, manifest, members = small_file
    last = len(members) - 1
    name = f"arrays/{last}.npy"
    array = np.load(io.BytesIO(members[name]))
    assert array.ndim == 1 and array.dtype == np.float64
    header = len(_npy_header(array.dtype, array.shape))
    wrong = {
        # same size, another dtype or shape
        "dtype": (_npy(array.view(np.int64)), r"dtype <i8; the state declares .* dtype <f8"),
        "shape": (_npy(array.reshape(2, -1)), rf"shape \(2, {len(array) // 2}\) and dtype <f8; "),
        # float32: the zip's size does not fit the state's float64 shape
        "size": (
            _npy(array.astype(np.float32)),
            rf"the zip declares {len(array) * 4 + header} bytes uncompressed, but an array of "
            rf"shape \({len(array)},\) and dtype <f8 takes {len(array) * 8} bytes",
        ),
        # the array cut short, the zip consistent with it
        "truncated npy": (
            members[name][:-8],
            rf"is truncated: after its header it holds {array.nbytes - 8} of the "
            rf"{array.nbytes} bytes",
        ),
        # data after the array
        "trailing data": (members[name] + b"\0" * 8, "holds 8 bytes after its array"),
        "no npy header": (b"\0" * len(members[name]), "has no valid npy header"),
        # an object array (its pointers would be read from the file): refused unread
        "object array": (
            _npy_header(object, array.shape) + members[name][header:],
            "is not a plain array",
        ),
    }
    for content, message in wrong.values():
        with pytest.raises(ModelFormatError, match=rf"{name}.*{message}"):
            load(io.BytesIO(_zip(manifest, {**members, name: content})))
    # the dtype and shape the state gives, in Fortran order (read as C order: transposed)
    matrix = _copy(manifest)
    _ref(matrix, last)["shape"] = [2, len(array) // 2]
    fortran = _npy(np.asfortranarray(array.reshape(2, -1)))
    with pytest.raises(ModelFormatError, match=rf"{name} .*Fortran order; the state declares"):
        load(io.BytesIO(_zip(matrix, {**members, name: fortran})))
    # a state asking for an object, datetime or structured array is refused before reading
    for dtype, message in [
        *[(d, rf"{name} is not a plain array") for d in ("|O", "<M8[ns]", "<m8[s]", "|V8", "<U0")],
        *[(d, rf"bad dtype .* for {name}") for d in (7, "no dtype", "[('a', '<f8')]")],
    ]:
        crafted = _copy(manifest)
        _ref(crafted, last)["dtype"] = dtype
        with pytest.raises(ModelFormatError, match=message):
            load(io.BytesIO(_zip(crafted, members)))
    for shape in ([-1], [1.5], "16", [True]):
        crafted = _copy(manifest)
        _ref(crafted, last)["shape"] = shape
        with pytest.raises(ModelFormatError, match=rf"bad shape .* for {name}"):
            load(io.BytesIO(_zip(crafted, members)))


def test_a_member_cut_short_inside_its_compressed_data(small_file):
    """The zip declares the full size, the data stops early (with a matching CRC)."""
    _, manifest, members = small_file
    name = f"arrays/{len(members) - 1}.npy"
    full = len(members[name])
    data_bytes = np.load(io.BytesIO(members[name])).nbytes
    cut = _with_declared_size(
        _zip(manifest, {**members, name: members[name][:-24]}), name, full
    )
    with pytest.raises(ModelFormatError, match=rf"{name} is truncated: {data_bytes - 24} of "):
        load(io.BytesIO(cut))


def test_references_that_do_not_fit_the_archive(small_file):
    _, manifest, members = small_file
    last = len(members) - 1
    missing = dict(members)
    del missing[f"arrays/{last}.npy"]
    with pytest.raises(ModelFormatError, match=f"the file lacks arrays/{last}.npy"):
        load(io.BytesIO(_zip(manifest, missing)))
    twice = _copy(manifest)
    _ref(twice, 0).update(_ref(manifest, last))
    with pytest.raises(ModelFormatError, match=f"references arrays/{last}.npy twice"):
        load(io.BytesIO(_zip(twice, members)))
    untyped = _copy(manifest)
    del _ref(untyped, last)["shape"]
    with pytest.raises(ModelFormatError, match=f"reference to arrays/{last}.npy has the keys"):
        load(io.BytesIO(_zip(untyped, members)))
    for index in (-1, "0", 1.0):
        bad = _copy(manifest)
        _ref(bad, last)["__array__"] = index
        with pytest.raises(ModelFormatError, match="bad array reference"):
            load(io.BytesIO(_zip(bad, members)))


def test_a_bad_crc_names_the_member(small_file):
    data, _, members = small_file
    name = f"arrays/{len(members) - 1}.npy"
    stored = _rewritten(data)  # the same members, stored uncompressed
    at = stored.index(members[name]) + len(members[name]) - 1
    flipped = stored[:at] + bytes([stored[at] ^ 1]) + stored[at + 1 :]
    with pytest.raises(ModelFormatError, match=rf"{name} is damaged: BadZipFile: Bad CRC-32"):
        load(io.BytesIO(flipped))
    at = stored.index(b'"format"')
    flipped = stored[:at] + b"'" + stored[at + 1 :]
    with pytest.raises(ModelFormatError, match="skhyper.json is damaged: BadZipFile: Bad CRC"):
        load(io.BytesIO(flipped))


def test_a_cut_file_is_a_model_format_error(small_file):
    """The file cut short, or a span of it cut out (every offset moves)."""
    data, _, _ = small_file
    for start in range(0, len(data), 37):
        for damaged in (data[:start], *(data[:start] + data[start + n :] for n in (1, 16, 300))):
            with pytest.raises(ModelFormatError):
                load(io.BytesIO(damaged))


def test_flipped_bytes_raise_model_format_error_or_change_nothing(small_file):
    """Over many seeds, one to three bytes anywhere in the file changed: the file loads
    unchanged (a byte no reader looks at, such as a date) or ModelFormatError is raised."""
    data, _, _ = small_file
    det = load(io.BytesIO(data))
    expected = det.score_samples(X_SMALL)
    outcomes = {"refused": 0, "same": 0}
    for seed in range(400):
        rng = np.random.default_rng(seed)
        damaged = bytearray(data)
        for at in rng.integers(0, len(data), size=rng.integers(1, 4)):
            damaged[at] ^= int(rng.integers(1, 256))
        try:
            loaded = load(io.BytesIO(bytes(damaged)))
        except ModelFormatError:
            outcomes["refused"] += 1
            continue
        np.testing.assert_array_equal(loaded.score_samples(X_SMALL), expected, err_msg=seed)
        outcomes["same"] += 1
    assert outcomes["refused"] > outcomes["same"] > 0
