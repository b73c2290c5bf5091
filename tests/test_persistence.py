"""Saving without pickle: skhyper.persistence files, skops, and the plain state
behind both (and behind pickles)."""

import io
import json
import pickle
import warnings
import zipfile

import numpy as np
import pytest
import torch

import skhyper
from skhyper import CompVAEDetector, SparKerDetector, VMFDetector
from skhyper._utils import base
from skhyper._utils.serialization import TAG, UnsupportedStateError
from skhyper.persistence import ModelFormatError, load, save

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
    assert manifest["format_version"] == base.PICKLE_FORMAT
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
    data = _rewritten(_saved(detectors[0][1]), members={"arrays/0.npy": payload.getvalue()})
    with pytest.raises(ModelFormatError, match="arrays/0.npy is not a plain array"):
        load(io.BytesIO(data))
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
    with pytest.raises(UnsupportedStateError, match="unknown object type 'Popen'"):
        load(io.BytesIO(crafted))


def test_another_format_version_is_a_clear_error(detectors):
    data = _saved(detectors[0][1])
    for version in (base.PICKLE_FORMAT - 1, base.PICKLE_FORMAT + 1, None):
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
