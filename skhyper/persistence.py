"""Saving and loading fitted detectors without pickle.

:func:`save` writes a detector to one zip file: ``skhyper.json`` (the class,
the format number, the versions that wrote it, and the parameters and fitted
attributes as JSON) and ``arrays/*.npy`` (every array, the network weights
included, in numpy's own format). :func:`load` reads it back and refuses
anything else: a file that is not such a zip (a pickle, say), another format
number, a class that is not one of skhyper's detectors, an array stored as
pickled objects. It never unpickles and never imports a name read from the
file, so loading a model file runs no code from it.

Pickles, ``joblib`` and ``skops.io`` keep working: the detectors' pickled
state is the same plain data (see the user guide's persistence page).
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from typing import IO, Any

import numpy as np
import scipy
import sklearn
import torch

from ._utils.base import (
    PICKLE_FORMAT,
    BaseTorchDetector,
    DeviceFallbackWarning,
    IncompatiblePickleError,
    InconsistentVersionWarning,
)
from ._version import __version__
from .compvae import CompVAEDetector, VMFDetector
from .sparker import SparKerDetector

__all__ = [
    "DeviceFallbackWarning",
    "IncompatiblePickleError",
    "InconsistentVersionWarning",
    "ModelFormatError",
    "load",
    "save",
]

#: What ``skhyper.json`` names itself; the format number is ``PICKLE_FORMAT``.
FORMAT_NAME = "skhyper-model"

# the detectors a file may hold, by the name it gives; nothing else is built
_CLASSES: dict[str, type[BaseTorchDetector]] = {
    cls.__name__: cls for cls in (CompVAEDetector, VMFDetector, SparKerDetector)
}

_MANIFEST = "skhyper.json"
# a manifest this large is not one skhyper wrote (arrays go in their own files)
_MAX_MANIFEST_BYTES = 64 * 2**20
_MARKERS = ("__tuple__", "__array__", "__object_array__", "__dict__")


class ModelFormatError(ValueError):
    """The file is not a skhyper model file this version can read."""


def save(estimator: BaseTorchDetector, file: str | os.PathLike | IO[bytes]) -> None:
    """Write a fitted (or unfitted) skhyper detector to ``file``.

    Parameters
    ----------
    estimator : CompVAEDetector, VMFDetector or SparKerDetector
        The detector to save, fitted or not.
    file : str, path-like or binary file object
        Where to write. By convention the name ends in ``.skhyper``.

    Raises
    ------
    TypeError
        If ``estimator`` is not one of skhyper's detectors.

    See Also
    --------
    load : Read the file back.

    Examples
    --------
    >>> import io
    >>> import numpy as np
    >>> from skhyper import CompVAEDetector
    >>> from skhyper.persistence import load, save
    >>> X = np.random.default_rng(0).normal(size=(100, 3))
    >>> det = CompVAEDetector(epochs=2, random_state=0).fit(X)
    >>> buffer = io.BytesIO()
    >>> save(det, buffer)
    >>> loaded = load(io.BytesIO(buffer.getvalue()))
    >>> bool(np.array_equal(loaded.score_samples(X), det.score_samples(X)))
    True
    """
    name = type(estimator).__name__
    if _CLASSES.get(name) is not type(estimator):
        raise TypeError(
            f"save writes skhyper's detectors ({', '.join(sorted(_CLASSES))}), "
            f"not {type(estimator).__module__}.{type(estimator).__qualname__}."
        )
    arrays: list[np.ndarray] = []
    manifest = {
        "format": FORMAT_NAME,
        "format_version": PICKLE_FORMAT,
        "class": name,
        "versions": {
            "skhyper": __version__,
            "scikit-learn": sklearn.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "scipy": scipy.__version__,
        },
        "state": _encode(estimator.__getstate__(), arrays),
    }
    text = json.dumps(manifest, indent=1, allow_nan=True)
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(_MANIFEST, text)
        for i, array in enumerate(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, array, allow_pickle=False)
            archive.writestr(f"arrays/{i}.npy", buffer.getvalue())


def load(file: str | os.PathLike | IO[bytes]) -> BaseTorchDetector:
    """Read a detector written by :func:`save`.

    Nothing in the file is unpickled or imported: the class must be one of
    skhyper's detectors and every array a plain numeric, boolean or string
    array. A detector fitted on a GPU loads onto the CPU, with a
    ``DeviceFallbackWarning``, where no GPU is available; a file written by
    another skhyper version of the same format loads with an
    ``InconsistentVersionWarning``.

    Parameters
    ----------
    file : str, path-like or binary file object
        A file written by :func:`save`.

    Returns
    -------
    estimator : CompVAEDetector, VMFDetector or SparKerDetector
        The detector, scoring as the saved one did.

    Raises
    ------
    ModelFormatError
        If the file is not a skhyper model file, is of another format
        version, names a class that is not a skhyper detector, or holds an
        array that would need pickle to read.

    See Also
    --------
    save : Write a detector.
    """
    try:
        archive = zipfile.ZipFile(file, "r")
    except zipfile.BadZipFile as exc:
        raise ModelFormatError(
            "This is not a skhyper model file (a zip holding skhyper.json). A pickle or "
            "joblib file is not read here: loading one runs code from it. Use "
            "pickle/joblib only on files you trust."
        ) from exc
    with archive:
        manifest = _manifest(archive)
        name = manifest.get("class")
        cls = _CLASSES.get(name) if isinstance(name, str) else None
        if cls is None:
            raise ModelFormatError(
                f"The file names the class {name!r}, which is not one of skhyper's "
                f"detectors ({', '.join(sorted(_CLASSES))}); it is not loaded."
            )
        state = _decode(manifest.get("state"), archive)
    if not isinstance(state, dict):
        raise ModelFormatError("The file's state is not a mapping of attributes.")
    estimator = cls.__new__(cls)
    estimator.__setstate__(state)
    return estimator


def _manifest(archive: zipfile.ZipFile) -> dict[str, Any]:
    try:
        info = archive.getinfo(_MANIFEST)
    except KeyError:
        raise ModelFormatError(
            "This zip file holds no skhyper.json: it was not written by skhyper.persistence.save."
        ) from None
    if info.file_size > _MAX_MANIFEST_BYTES:
        raise ModelFormatError("skhyper.json is too large to be a skhyper manifest.")
    try:
        manifest = json.loads(archive.read(info).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFormatError(f"skhyper.json is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise ModelFormatError("skhyper.json does not describe a skhyper model.")
    version = manifest.get("format_version")
    if version != PICKLE_FORMAT:
        written_by = (manifest.get("versions") or {}).get("skhyper", "an unknown version")
        raise ModelFormatError(
            f"This model file is in skhyper format {version!r} (written by skhyper "
            f"{written_by}); skhyper {__version__} reads format {PICKLE_FORMAT}. Load it "
            f"with skhyper {written_by} or fit the detector again."
        )
    return manifest


def _encode(value: Any, arrays: list[np.ndarray]) -> Any:
    """JSON for the plain state; arrays are appended to ``arrays`` and referenced."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, arrays) for v in value]}
    if isinstance(value, list):
        return [_encode(v, arrays) for v in value]
    if isinstance(value, dict):
        encoded = {k: _encode(v, arrays) for k, v in value.items()}
        return {"__dict__": encoded} if any(m in value for m in _MARKERS) else encoded
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            items = value.ravel().tolist()
            if not all(v is None or isinstance(v, (bool, int, float, str)) for v in items):
                raise TypeError("only object arrays of strings and numbers can be saved")
            return {"__object_array__": items, "shape": list(value.shape)}
        arrays.append(np.ascontiguousarray(value))
        return {"__array__": len(arrays) - 1}
    raise TypeError(f"cannot save a {type(value).__name__} (the state is not plain data)")


def _decode(value: Any, archive: zipfile.ZipFile) -> Any:
    if isinstance(value, list):
        return [_decode(v, archive) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1 and "__tuple__" in value:
        return tuple(_decode(v, archive) for v in value["__tuple__"])
    if len(value) == 1 and "__dict__" in value:
        return {k: _decode(v, archive) for k, v in value["__dict__"].items()}
    if len(value) == 1 and "__array__" in value:
        return _array(archive, value["__array__"])
    if set(value) == {"__object_array__", "shape"}:
        out = np.empty(len(value["__object_array__"]), dtype=object)
        out[:] = value["__object_array__"]
        return out.reshape(value["shape"])
    return {k: _decode(v, archive) for k, v in value.items()}


def _array(archive: zipfile.ZipFile, index: Any) -> np.ndarray:
    if not isinstance(index, int) or isinstance(index, bool):
        raise ModelFormatError(f"bad array reference {index!r} in skhyper.json")
    name = f"arrays/{index}.npy"
    try:
        with archive.open(name) as member:
            return np.lib.format.read_array(member, allow_pickle=False)
    except KeyError:
        raise ModelFormatError(f"the file lacks {name}") from None
    except ValueError as exc:
        # numpy refuses object arrays without allow_pickle: they would unpickle
        raise ModelFormatError(f"{name} is not a plain array ({exc}); it is not loaded.") from exc
