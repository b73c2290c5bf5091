"""Saving and loading fitted detectors without pickle.

:func:`save` writes a detector to one zip file: ``skhyper.json`` (the class,
the format number, the versions that wrote it, and the parameters and fitted
attributes as JSON) and ``arrays/*.npy`` (every array, the network weights
included, in numpy's own format). :func:`load` reads it back and refuses
anything else: a file that is not such a zip (a pickle, say), another format
number, a class that is not one of skhyper's detectors, an array stored as
pickled objects, an array whose dtype, shape or size is not the one the
state declares, damaged or truncated data. It never unpickles and never
imports a name read from the file, so loading a model file runs no code from
it, and it allocates no more than the arrays' total size, which it checks
against ``max_bytes`` before reading any of them.

Pickles, ``joblib`` and ``skops.io`` keep working: the detectors' pickled
state is the same plain data (see the user guide's persistence page).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from typing import IO, Any

import numpy as np
import scipy
import sklearn
import torch

from ._utils.base import (
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

#: What ``skhyper.json`` names itself.
FORMAT_NAME = "skhyper-model"
#: The file format :func:`save` writes. 6: each array reference in the state
#: gives the array's dtype and shape. Format 5 files (references by number
#: only) still load.
FORMAT_VERSION = 6
_READABLE_FORMATS = (5, FORMAT_VERSION)

#: The arrays' total size in memory (bytes) that :func:`load` reads by default.
MAX_BYTES = 2**30

# the detectors a file may hold, by the name it gives; nothing else is built
_CLASSES: dict[str, type[BaseTorchDetector]] = {
    cls.__name__: cls for cls in (CompVAEDetector, VMFDetector, SparKerDetector)
}

_MANIFEST = "skhyper.json"
# a manifest this large is not one skhyper wrote (arrays go in their own files)
_MAX_MANIFEST_BYTES = 64 * 2**20
_MARKERS = ("__tuple__", "__array__", "__object_array__", "__dict__")
# an .npy header (numpy pads it to 64 bytes; ours are about 128): magic, version, length, text
_MAX_NPY_HEADER = 2**14
# decompressed per read: what reading an array holds besides the array itself
_CHUNK = 2**20
# the dtypes of a plain state: bool, integers, floats, complex, bytes and str (no
# object, structured or datetime array)
_PLAIN_KINDS = "biufcSU"
# what a damaged file raises inside zipfile, zlib and numpy's header reader
_READ_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    ValueError,
    struct.error,
    OverflowError,
    RuntimeError,  # an encrypted member
    NotImplementedError,  # an unknown compression method
    SyntaxError,
    RecursionError,
)


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
        "format_version": FORMAT_VERSION,
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


def load(
    file: str | os.PathLike | IO[bytes], *, max_bytes: int | None = MAX_BYTES
) -> BaseTorchDetector:
    """Read a detector written by :func:`save`.

    Nothing in the file is unpickled or imported: the class must be one of
    skhyper's detectors and every array a plain numeric, boolean or string
    array. Before reading any array, ``load`` checks each one's dtype and
    shape (as the state gives them) against the zip's declared size of its
    member and adds up the memory they need; it then reads each member in
    bounded pieces, checking its header, its length and its CRC. A detector
    fitted on a GPU loads onto the CPU, with a ``DeviceFallbackWarning``,
    where no GPU is available; a file written by another skhyper version of
    the same format loads with an ``InconsistentVersionWarning``.

    Parameters
    ----------
    file : str, path-like or binary file object
        A file written by :func:`save`.
    max_bytes : int or None, default=MAX_BYTES
        The most memory (bytes) the file's arrays may take together; a
        file whose arrays need more is refused before any is read. The
        default, ``MAX_BYTES`` (1 GiB), holds a CompVAE detector fitted on
        a few million rows; raise it for a larger model from a source you
        trust, or pass None for no limit.

    Returns
    -------
    estimator : CompVAEDetector, VMFDetector or SparKerDetector
        The detector, scoring as the saved one did.

    Raises
    ------
    ModelFormatError
        If the file is not a skhyper model file, is of another format
        version, names a class that is not a skhyper detector, holds an
        array that would need pickle to read, an array whose dtype, shape or
        size is not the one the state declares, arrays larger than
        ``max_bytes``, damaged data (a bad CRC, a broken zip or npy header,
        a truncated member) or a state this skhyper cannot build a detector
        from. The message names the member and what is wrong; the error
        that revealed it, if any, is chained.
    FileNotFoundError
        If ``file`` is a path to no file.

    See Also
    --------
    save : Write a detector.

    Examples
    --------
    >>> import io
    >>> from skhyper import CompVAEDetector
    >>> from skhyper.persistence import ModelFormatError, load, save
    >>> buffer = io.BytesIO()
    >>> save(CompVAEDetector(), buffer)
    >>> type(load(io.BytesIO(buffer.getvalue()))).__name__
    'CompVAEDetector'
    >>> try:
    ...     load(io.BytesIO(buffer.getvalue()[:-30]))  # the end of the file cut off
    ... except ModelFormatError as exc:
    ...     print(exc)  # doctest: +ELLIPSIS
    This is not a skhyper model file (a zip holding skhyper.json) or it is damaged: ...
    """
    if max_bytes is not None and (
        not isinstance(max_bytes, (int, np.integer))
        or isinstance(max_bytes, bool)
        or max_bytes < 0
    ):
        raise ValueError(f"max_bytes must be a non-negative integer or None, got {max_bytes!r}")
    if isinstance(file, (str, os.PathLike)):
        # a missing file is the caller's error, not the file's
        with open(file, "rb") as handle:
            return _load(handle, max_bytes)
    return _load(file, max_bytes)


def _load(file: IO[bytes], max_bytes: int | None) -> BaseTorchDetector:
    try:
        archive = zipfile.ZipFile(file, "r")
    except _READ_ERRORS as exc:
        raise ModelFormatError(
            "This is not a skhyper model file (a zip holding skhyper.json) or it is "
            f"damaged: {_why(exc)}. A pickle or joblib file is not read here: loading one "
            "runs code from it. Use pickle/joblib only on files you trust."
        ) from exc
    with archive:
        manifest, version = _manifest(archive)
        name = manifest.get("class")
        cls = _CLASSES.get(name) if isinstance(name, str) else None
        if cls is None:
            raise ModelFormatError(
                f"The file names the class {name!r}, which is not one of skhyper's "
                f"detectors ({', '.join(sorted(_CLASSES))}); it is not loaded."
            )
        # every array is checked (and their total bounded) before any is read
        members = _Members(archive, version, max_bytes)
        _decode_state(manifest.get("state"), members.plan)
        state = _decode_state(manifest.get("state"), members.read)
    if not isinstance(state, dict):
        raise ModelFormatError("skhyper.json: the state is not a mapping of attributes.")
    estimator = cls.__new__(cls)
    try:
        estimator.__setstate__(state)
    except (Warning, MemoryError):  # warnings turned errors are the caller's choice
        raise
    except Exception as exc:
        raise ModelFormatError(
            f"skhyper.json: the state is not one skhyper {__version__} can build a "
            f"{cls.__name__} from: {_why(exc)}"
        ) from exc
    return estimator


def _why(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _manifest(archive: zipfile.ZipFile) -> tuple[dict[str, Any], int]:
    try:
        info = archive.getinfo(_MANIFEST)
    except KeyError:
        raise ModelFormatError(
            "This zip file holds no skhyper.json: it was not written by skhyper.persistence.save."
        ) from None
    if info.file_size > _MAX_MANIFEST_BYTES:
        raise ModelFormatError("skhyper.json is too large to be a skhyper manifest.")
    try:
        raw = archive.read(info)
    except _READ_ERRORS as exc:
        raise ModelFormatError(f"skhyper.json is damaged: {_why(exc)}") from exc
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ModelFormatError(f"skhyper.json is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise ModelFormatError("skhyper.json does not describe a skhyper model.")
    version = manifest.get("format_version")
    if version not in _READABLE_FORMATS:
        versions = manifest.get("versions")
        written_by = versions.get("skhyper") if isinstance(versions, dict) else None
        written_by = written_by or "an unknown version"
        raise ModelFormatError(
            f"This model file is in skhyper format {version!r} (written by skhyper "
            f"{written_by}); skhyper {__version__} reads formats "
            f"{' and '.join(map(str, _READABLE_FORMATS))}. Load it with skhyper "
            f"{written_by} or fit the detector again."
        )
    return manifest, version


class _Members:
    """The ``arrays/*.npy`` members the state references: checked, then read.

    :meth:`plan` sees every reference first: it checks the dtype and shape
    the state gives (format 5 files give none: they come from the member's
    npy header) against the member's declared size in the zip, and adds up
    the bytes the arrays need against ``max_bytes``. :meth:`read` then reads
    each member in bounded pieces into an array of the planned size.
    """

    def __init__(self, archive: zipfile.ZipFile, version: int, max_bytes: int | None) -> None:
        self.archive = archive
        self.version = version
        self.max_bytes = max_bytes
        self.total = 0
        self.planned: dict[int, tuple[zipfile.ZipInfo, np.dtype, tuple[int, ...]]] = {}

    def plan(self, ref: dict[str, Any]) -> None:
        index = ref["__array__"]
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise ModelFormatError(f"skhyper.json: bad array reference {index!r}")
        name = f"arrays/{index}.npy"
        if index in self.planned:
            raise ModelFormatError(f"skhyper.json references {name} twice")
        keys = {"__array__", "dtype", "shape"} if self.version >= 6 else {"__array__"}
        if set(ref) != keys:
            raise ModelFormatError(
                f"skhyper.json: the reference to {name} has the keys {sorted(ref)}, not "
                f"{sorted(keys)} (format {self.version})"
            )
        try:
            info = self.archive.getinfo(name)
        except KeyError:
            raise ModelFormatError(f"the file lacks {name}") from None
        if self.version >= 6:
            dtype, shape = _declared(name, ref["dtype"], ref["shape"])
        else:
            with self._open(info) as member:
                dtype, shape, _ = _header(name, member)
        nbytes = math.prod(shape) * dtype.itemsize
        extra = info.file_size - nbytes  # the npy header, if the sizes agree
        if not 0 < extra <= _MAX_NPY_HEADER:
            raise ModelFormatError(
                f"{name}: the zip declares {info.file_size} bytes uncompressed, but an array "
                f"of shape {shape} and dtype {dtype.str} takes {nbytes} bytes plus a header "
                f"of at most {_MAX_NPY_HEADER}; it is not read."
            )
        self.total += nbytes
        if self.max_bytes is not None and self.total > self.max_bytes:
            raise ModelFormatError(
                f"{name} (shape {shape}, dtype {dtype.str}: {nbytes} bytes) takes the "
                f"file's arrays to {self.total} bytes or more, over max_bytes="
                f"{self.max_bytes}; nothing is read. To load a model this large from a "
                "source you trust, pass a larger max_bytes (or None) to load."
            )
        self.planned[index] = (info, dtype, shape)

    def read(self, ref: dict[str, Any]) -> np.ndarray:
        info, dtype, shape = self.planned[ref["__array__"]]
        name = info.filename
        with self._open(info) as member:
            found_dtype, found_shape, fortran = _header(name, member)
            if (found_dtype, found_shape, fortran) != (dtype, shape, False):
                order = ", Fortran order" if fortran else ""
                raise ModelFormatError(
                    f"{name} holds an array of shape {found_shape} and dtype "
                    f"{found_dtype.str}{order}; the state declares shape {shape} and "
                    f"dtype {dtype.str}. It is not read."
                )
            nbytes = math.prod(shape) * dtype.itemsize
            left = info.file_size - member.tell()
            if left != nbytes:
                raise ModelFormatError(
                    f"{name} is truncated: after its header it holds {left} of the "
                    f"{nbytes} bytes of its array"
                    if left < nbytes
                    else f"{name} holds {left - nbytes} bytes after its array"
                )
            out = np.empty(shape, dtype=dtype)
            view = out.reshape(-1).view(np.uint8)
            done = 0
            while done < view.nbytes:
                # bounded pieces: a member cannot inflate past its declared size
                piece = member.read(min(_CHUNK, view.nbytes - done))
                if not piece:
                    raise ModelFormatError(
                        f"{name} is truncated: {done} of its {view.nbytes} bytes of data"
                    )
                view[done : done + len(piece)] = np.frombuffer(piece, dtype=np.uint8)
                done += len(piece)
        return out

    @contextlib.contextmanager
    def _open(self, info: zipfile.ZipInfo) -> Iterator[IO[bytes]]:
        """The member, open; what zipfile or zlib raise on reading it is the member's damage."""
        try:
            with self.archive.open(info) as member:
                yield member
        except ModelFormatError:
            raise
        except _READ_ERRORS as exc:
            raise ModelFormatError(f"{info.filename} is damaged: {_why(exc)}") from exc


def _declared(name: str, dtype: Any, shape: Any) -> tuple[np.dtype, tuple[int, ...]]:
    """The dtype and shape a format-6 state gives an array, checked."""
    if not isinstance(shape, list) or len(shape) > 32 or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
    ):
        raise ModelFormatError(f"skhyper.json: bad shape {shape!r} for {name}")
    try:
        if not isinstance(dtype, str):
            raise TypeError(f"not a string: {dtype!r}")
        parsed = np.dtype(dtype)
    except (TypeError, ValueError, SyntaxError) as exc:
        raise ModelFormatError(f"skhyper.json: bad dtype {dtype!r} for {name}") from exc
    return _plain_dtype(name, parsed), tuple(shape)


def _plain_dtype(name: str, dtype: np.dtype) -> np.dtype:
    if dtype.kind not in _PLAIN_KINDS or dtype.itemsize == 0:
        raise ModelFormatError(
            f"{name} is not a plain array (dtype {dtype}); it is not loaded: only bool, "
            "numeric, bytes and str arrays are (an object array would unpickle)."
        )
    return dtype


def _header(name: str, member: IO[bytes]) -> tuple[np.dtype, tuple[int, ...], bool]:
    """The dtype, shape and order of the npy file ``member``; only its header is read."""
    # zipfile's errors (a bad CRC, say) go on to the caller: the member is damaged
    try:
        version = np.lib.format.read_magic(member)
        length_format = {(1, 0): "<H", (2, 0): "<I"}.get(version)
        if length_format is None:
            raise ValueError(f"npy format {version}, not one numpy writes for plain arrays")
        raw_length = member.read(struct.calcsize(length_format))
        (length,) = struct.unpack(length_format, raw_length)
        if length > _MAX_NPY_HEADER:
            raise ValueError(f"a header of {length} bytes (skhyper's take about 100)")
        # numpy's parser reads the whole header before it checks its length: give it a bounded one
        text = raw_length + member.read(length)
        parse = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, fortran, dtype = parse(io.BytesIO(text), max_header_size=_MAX_NPY_HEADER)
        if not all(isinstance(n, int) and n >= 0 for n in shape):
            raise ValueError(f"bad shape {shape!r}")
    except (ValueError, SyntaxError, struct.error, RecursionError, MemoryError) as exc:
        raise ModelFormatError(f"{name} has no valid npy header: {_why(exc)}") from exc
    return _plain_dtype(name, dtype), tuple(shape), bool(fortran)


def _decode_state(state: Any, array: Callable[[dict[str, Any]], Any]) -> Any:
    """The state, ``array(reference)`` standing for each array; a malformed one refused."""
    try:
        return _decode(state, array)
    except ModelFormatError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError, RecursionError) as exc:
        raise ModelFormatError(f"skhyper.json: the state is malformed: {_why(exc)}") from exc


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
        arrays.append(np.asarray(value, order="C"))  # keeps a 0-d array 0-d
        return {"__array__": len(arrays) - 1, "dtype": value.dtype.str, "shape": list(value.shape)}
    raise TypeError(f"cannot save a {type(value).__name__} (the state is not plain data)")


def _decode(value: Any, array: Callable[[dict[str, Any]], Any]) -> Any:
    if isinstance(value, list):
        return [_decode(v, array) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1 and "__tuple__" in value:
        return tuple(_decode(v, array) for v in value["__tuple__"])
    if len(value) == 1 and "__dict__" in value:
        return {k: _decode(v, array) for k, v in value["__dict__"].items()}
    if "__array__" in value:
        return array(value)
    if set(value) == {"__object_array__", "shape"}:
        out = np.empty(len(value["__object_array__"]), dtype=object)
        out[:] = value["__object_array__"]
        return out.reshape(value["shape"])
    return {k: _decode(v, array) for k, v in value.items()}
