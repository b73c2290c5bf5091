"""Export of a fitted detector's ``score_samples`` to an ONNX graph.

Needs the optional extra ``pip install -e ".[onnx]"``; onnx is imported
only when :func:`to_onnx` is called, never at ``import skhyper``.

The graph is written node by node with ``onnx.helper`` from the fitted
weights rather than traced with ``torch.onnx.export``: only the networks of
the scoring path are torch modules (the scaling, the latent bank's search and
the combination of the scores run in NumPy), torch's default exporter needs
``onnxscript`` and its older one is deprecated, and a graph written by hand
keeps each step in the detector's own precision, in opset 17 operators
(onnx 1.14.1 and onnxruntime 1.16.3, the extra's floors, run it).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from scipy.special import ndtri
from sklearn.utils.validation import check_is_fitted
from torch import nn

from ._vae import networks
from ._version import __version__
from .compvae import INPUT_CLIP, RAW_CLIP, SCORES, CompVAEDetector
from .sparker import SparKerDetector

__all__ = ["to_onnx"]

OPSET = 17
# the IR version of opset 17: runtimes older than onnx 1.23's default still load the model
IR_VERSION = 8

_AFFINE = ("standard", "robust", "winsorized")
# backends whose bank search the graph reproduces: exact ones
_EXACT_BACKENDS = ("exact", "faiss")
# the labels' tie band, relative to the largest training score's size (see to_onnx)
LABEL_TOLERANCE = 1e-5
# nodes of the tabulated normal quantile function (see _ndtri); its error is below 1e-14
_NDTRI_NODES = 4096


def to_onnx(
    detector: Any,
    *,
    dtype: Any = np.float64,
    anomaly_score: str | None = None,
    with_labels: bool = False,
) -> Any:
    """ONNX graph of a fitted detector's ``score_samples`` (and, on request, its labels).

    The graph takes ``X`` of shape (n_samples, n_features), the training
    features in their order, and returns ``score_samples`` of shape
    (n_samples,), float64, higher = more normal, as the detector does; with
    ``with_labels=True`` also ``decision_function`` and the ``predict``
    label, with the fitted ``offset_`` inside the graph. It
    holds the whole scoring path with the fitted values as constants: for
    :class:`~skhyper.CompVAEDetector` and :class:`~skhyper.VMFDetector` the
    input scaling and clip, each member's encoder mean and decoder mean,
    the exact search of its latent bank, the reconstruction error and the
    combination of the parts and of the members; for
    :class:`~skhyper.SparKerDetector` the scaling and the kernels.

    Read more in the :ref:`User Guide <export>`.

    Parameters
    ----------
    detector : CompVAEDetector, VMFDetector or SparKerDetector
        A fitted detector. CompVAE models with either network (MLP, or the
        conv net of ``image_shape``), every ``scaling`` and any
        ``n_estimators`` are exported.

    dtype : {np.float64, np.float32}, default=np.float64
        Element type of the graph's input ``X``. The graph computes in the
        detector's own precision whichever it is: float32 rows give the
        scores ``score_samples`` gives them.

    anomaly_score : {"knn", "reconstruction", "combined"}, default=None
        The CompVAE score the graph computes, as ``score_variants`` does;
        None: the fitted ``anomaly_score_``. Must be None for SparKer.

    with_labels : bool, default=False
        Whether the graph also outputs ``"decision_function"``
        (``score_samples - offset_``, float64) and ``"label"`` (int64, +1
        inlier, -1 outlier), the detector's ``decision_function`` and
        ``predict``. The tie rule is ``predict``'s: a row exactly at the
        threshold (decision 0) is an inlier. Since the graph's scores differ
        from the detector's by round-off, a row is labelled -1 only when its
        exported decision is below ``-tol``, ``tol = 1e-5 * max(1, |offset_|,
        max|training_scores_|)`` (``LABEL_TOLERANCE``, in the metadata as
        ``label_tolerance``): rows at the threshold keep +1, and only a row
        whose decision lies within ``tol`` below 0 can get +1 from the graph
        where ``predict`` says -1.

    Returns
    -------
    model : onnx.ModelProto
        The graph, opset 17, with input ``"X"`` and output
        ``"score_samples"`` (then ``"decision_function"`` and ``"label"``
        with ``with_labels=True``). Its metadata holds the estimator's name,
        the score and ``offset_`` (``decision_function = score_samples -
        offset``). Rows are scored independently: a row with a NaN gets NaN
        scores (and label 0) while the other rows get theirs.

    Raises
    ------
    ImportError
        If onnx is not installed.
    TypeError
        If ``detector`` is not one of the detectors above.
    sklearn.exceptions.NotFittedError
        If ``detector`` is not fitted.
    NotImplementedError
        For a model the graph cannot reproduce: a CompVAE bank searched
        approximately (``knn_backend`` ``"pynndescent"`` or ``"faiss-ivf"``;
        an exact search of it would differ from ``score_samples`` wherever
        the approximate search misses a neighbour), or a network with a layer or
        setting the exporter does not know (batch norms without running
        statistics, adaptive pooling over uneven windows, layers that
        skhyper's networks do not use).
    ValueError
        For an unknown ``dtype`` or ``anomaly_score``.

    See Also
    --------
    skhyper.CompVAEDetector.score_variants : The scores of each ``anomaly_score``.

    Notes
    -----
    ``score_samples`` scores a row identical to a training row without that
    row's own entry in the latent bank (it recognises training rows by their
    bits); the graph scores every row as a new row, so a training row's
    exported kNN distance counts its own entry, at distance zero. Rows whose
    scaled value overflows, which the detector refuses, are scored at the
    clip.

    The graph measures kNN distances in float64 from the float32 bank, where
    the detector measures them in float32, and runs the conv net in float32
    as the detector does: the scores of the MLP nets agree to about 1e-6
    relative, those of the conv net to about 1e-5 of the scores' scale.
    SparKer's agree to 1e-14. ``score_samples`` refuses a row with a NaN;
    the graph gives that row NaN and scores the others. The graph holds the bank: scoring ``n`` rows
    at once takes about ``8 * n * n_bank`` bytes for a bank of ``n_bank``
    rows, so feed large inputs in batches. A model over 2 GB (protobuf's
    limit) is saved with ``onnx.save_model(model, path,
    save_as_external_data=True)`` and loaded from that path.

    Examples
    --------
    >>> import numpy as np
    >>> from skhyper import CompVAEDetector
    >>> from skhyper.export import to_onnx
    >>> rng = np.random.RandomState(0)
    >>> det = CompVAEDetector(epochs=3, random_state=0).fit(rng.normal(size=(200, 4)))
    >>> import pytest
    >>> onnx = pytest.importorskip("onnx")
    >>> ort = pytest.importorskip("onnxruntime")
    >>> model = to_onnx(det)
    >>> onnx.checker.check_model(model)
    >>> session = ort.InferenceSession(
    ...     model.SerializeToString(), providers=["CPUExecutionProvider"]
    ... )
    >>> X_new = rng.normal(size=(5, 4))
    >>> scores = session.run(None, {"X": X_new})[0]
    >>> bool(np.allclose(scores, det.score_samples(X_new), rtol=1e-5, atol=1e-5))
    True
    """
    if not isinstance(detector, (CompVAEDetector, SparKerDetector)):
        raise TypeError(
            "to_onnx exports CompVAEDetector, VMFDetector and SparKerDetector; got "
            f"{type(detector).__name__}."
        )
    check_is_fitted(detector)
    if np.dtype(dtype) not in (np.dtype(np.float64), np.dtype(np.float32)):
        raise ValueError(f"dtype must be np.float64 or np.float32, got {dtype!r}.")
    if isinstance(detector, SparKerDetector):
        if anomaly_score is not None:
            raise ValueError("anomaly_score applies to CompVAE models; SparKer has one score.")
        score = "log_ratio"
    else:
        score = detector.anomaly_score_ if anomaly_score is None else anomaly_score
        if score not in SCORES:
            raise ValueError(f"anomaly_score must be among {SCORES} or None; got {score!r}.")
        _check_banks(detector)
    try:
        import onnx
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError('skhyper.export needs onnx: pip install -e ".[onnx]"') from exc

    g = _Graph(onnx)
    x = g.cast("X", np.float64) if np.dtype(dtype) == np.float32 else "X"
    if isinstance(detector, SparKerDetector):
        out = _sparker_graph(g, x, detector)
    else:
        out = _compvae_graph(g, x, detector, score)
    # a NaN propagates through every step to its own row's score (no step mixes
    # rows or indexes a table with it); the label needs the row's flag
    out = g.op("Identity", out, name="score_samples")
    helper = onnx.helper
    outputs = [
        helper.make_tensor_value_info("score_samples", onnx.TensorProto.DOUBLE, ["n_samples"])
    ]
    tol = LABEL_TOLERANCE * max(
        1.0, abs(float(detector.offset_)), float(np.max(np.abs(detector.training_scores_)))
    )
    if with_labels:
        has_nan = g.op("ReduceMax", g.cast(g.op("IsNaN", x), np.int64), axes=[1], keepdims=0)
        has_nan = g.cast(has_nan, bool)
        decision = g.op(
            "Sub", out, g.const(float(detector.offset_), np.float64), name="decision_function"
        )
        below = g.op("Less", decision, g.const(-tol, np.float64))
        label = g.op("Where", below, g.const(-1, np.int64), g.const(1, np.int64))
        g.op("Where", has_nan, g.const(0, np.int64), label, name="label")
        outputs += [
            helper.make_tensor_value_info(
                "decision_function", onnx.TensorProto.DOUBLE, ["n_samples"]
            ),
            helper.make_tensor_value_info("label", onnx.TensorProto.INT64, ["n_samples"]),
        ]
    inputs = [
        helper.make_tensor_value_info(
            "X",
            helper.np_dtype_to_tensor_dtype(np.dtype(dtype)),
            ["n_samples", int(detector.n_features_in_)],
        )
    ]
    name = f"{type(detector).__name__}.score_samples"
    graph = helper.make_graph(g.nodes, name, inputs, outputs, initializer=g.initializers)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="skhyper",
        producer_version=__version__,
        doc_string=f"score_samples of a fitted {type(detector).__name__} (higher = more normal)",
    )
    model.ir_version = IR_VERSION
    helper.set_model_props(
        model,
        {
            "estimator": type(detector).__name__,
            "score": score,
            "offset": repr(float(detector.offset_)),
            "label_tolerance": repr(tol),
        },
    )
    return model


class _Graph:
    """Nodes and constants of the graph being written, with unique names."""

    def __init__(self, onnx: Any) -> None:
        self.onnx = onnx
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._count = 0

    def _name(self, stem: str) -> str:
        self._count += 1
        return f"{stem}_{self._count}"

    def const(self, value: Any, dtype: Any) -> str:
        name = self._name("const")
        array = np.ascontiguousarray(np.asarray(value, dtype=dtype))
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def op(self, op_type: str, *inputs: str, name: str | None = None, **attrs: Any) -> str:
        out = self._name(op_type.lower()) if name is None else name
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), [out], **attrs))
        return out

    def op2(self, op_type: str, *inputs: str, **attrs: Any) -> tuple[str, str]:
        outs = [self._name(op_type.lower()) for _ in range(2)]
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), outs, **attrs))
        return outs[0], outs[1]

    def cast(self, x: str, dtype: Any) -> str:
        return self.op("Cast", x, to=self.onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))

    def axes(self, *axes: int) -> str:
        return self.const(list(axes), np.int64)

    def sum(self, x: str, axis: int, keepdims: int = 0) -> str:
        return self.op("ReduceSum", x, self.axes(axis), keepdims=keepdims)


# -- the input scaling -------------------------------------------------------------------


def _scaling(g: _Graph, x: str, transform: Any) -> str:
    """``transform.transform`` of float64 rows (its own clip included)."""
    kind = transform.kind
    if kind == "none":
        z = x
    elif kind in _AFFINE:
        z = g.op(
            "Div",
            g.op("Sub", x, g.const(transform.loc, np.float64)),
            g.const(transform.scale, np.float64),
        )
    elif kind == "quantile":
        z = _quantile(g, x, transform)
    else:
        raise NotImplementedError(f"to_onnx cannot export the input scaling {kind!r}.")
    clip = getattr(transform, "clip", None)
    return z if clip is None else _clip(g, z, clip)


def _clip(g: _Graph, x: str, limit: float) -> str:
    return g.op("Clip", x, g.const(-limit, np.float64), g.const(limit, np.float64))


def _quantile(g: _Graph, x: str, transform: Any) -> str:
    """The quantile-normal scaling: ``ndtri`` of the mean of ``np.interp`` up and down."""
    q = np.asarray(transform.quantiles, dtype=np.float64).T  # (n_features, n_quantiles)
    probs = np.asarray(transform.probs, dtype=np.float64)
    up = _interp(g, x, q, probs)
    down = _interp(g, g.op("Neg", x), -q[:, ::-1], -probs[::-1])
    u = g.op("Mul", g.const(0.5, np.float64), g.op("Sub", up, down))
    eps = float(transform.eps)
    u = g.op("Clip", u, g.const(eps, np.float64), g.const(1.0 - eps, np.float64))
    return _ndtri(g, u, eps)


def _interp(g: _Graph, x: str, xp: np.ndarray, fp: np.ndarray) -> str:
    """``np.interp(x[:, j], xp[j], fp)`` for every column j, as numpy computes it.

    numpy interpolates from the last knot at or below x; a search by halving
    steps (a fixed number for a given table) finds it per entry.
    """
    n_features, m = xp.shape
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        slopes = (fp[1:] - fp[:-1]) / (xp[:, 1:] - xp[:, :-1])
    # a slope between repeated knots is never used (the search passes them)
    slopes = np.where(np.isfinite(slopes), slopes, 0.0)
    slopes = np.concatenate([slopes, np.zeros((n_features, 1))], axis=1)
    offsets = g.const(np.arange(n_features) * m, np.int64)
    flat_xp = g.const(xp.ravel(), np.float64)
    last = g.const(m - 1, np.int64)
    pos = g.op("ConstantOfShape", g.op("Shape", x), value=_int64_tensor(g, 0))
    step = 1 << ((m - 1).bit_length() - 1) if m > 1 else 0
    while step >= 1:
        cand = g.op("Add", pos, g.const(step, np.int64))
        knot = g.op("Gather", flat_xp, g.op("Add", g.op("Min", cand, last), offsets))
        take = g.op("And", g.op("LessOrEqual", knot, x), g.op("LessOrEqual", cand, last))
        pos = g.op("Where", take, cand, pos)
        step //= 2
    flat = g.op("Add", pos, offsets)
    x_j = g.op("Gather", flat_xp, flat)
    slope = g.op("Gather", g.const(slopes.ravel(), np.float64), flat)
    value = g.op(
        "Add",
        g.op("Mul", slope, g.op("Sub", x, x_j)),
        g.op("Gather", g.const(fp, np.float64), pos),
    )
    value = g.op("Where", g.op("Equal", pos, last), g.const(fp[-1], np.float64), value)
    below = g.op("Less", x, g.const(xp[:, 0], np.float64))
    return g.op("Where", below, g.const(fp[0], np.float64), value)


def _int64_tensor(g: _Graph, value: int) -> Any:
    return g.onnx.numpy_helper.from_array(np.array([value], dtype=np.int64))


def _ndtri(g: _Graph, u: str, eps: float) -> str:
    """``scipy.special.ndtri(u)`` for u in ``[eps, 1 - eps]``.

    ONNX has no normal quantile function and onnxruntime no float64 ``Erf``
    to invert, so it is tabulated here: in ``s = sqrt(-2 log p)``, ``p =
    min(u, 1 - u)``, ``-ndtri(p)`` is smooth, and a cubic Hermite
    interpolation between scipy's values (with their exact derivatives) at
    4096 nodes is within 1e-14 of ``ndtri``.
    """
    lo = math.sqrt(2.0 * math.log(2.0)) - 1e-3
    hi = math.sqrt(-2.0 * math.log(eps)) + 1e-3
    nodes = np.linspace(lo, hi, _NDTRI_NODES)
    h = (hi - lo) / (_NDTRI_NODES - 1)
    p = np.exp(-0.5 * nodes * nodes)
    value = -ndtri(p)
    # d/ds of -ndtri(exp(-s^2 / 2)) is s p / pdf; times h, the cell's width in s
    slope = nodes * p * math.sqrt(2.0 * math.pi) * np.exp(0.5 * value * value) * h

    one = g.const(1.0, np.float64)
    tail = g.op("Min", u, g.op("Sub", one, u))
    s = g.op("Sqrt", g.op("Mul", g.const(-2.0, np.float64), g.op("Log", tail)))
    cell = g.op("Div", g.op("Sub", s, g.const(lo, np.float64)), g.const(h, np.float64))
    cell = g.op("Floor", cell)
    cell = g.op(
        "Clip", cell, g.const(0.0, np.float64), g.const(_NDTRI_NODES - 2, np.float64)
    )
    # a NaN entry must not index the tables (it stays NaN through s and t)
    cell = g.op("Where", g.op("IsNaN", cell), g.const(0.0, np.float64), cell)
    index = g.cast(cell, np.int64)
    t = g.op(
        "Div",
        g.op("Sub", s, g.op("Gather", g.const(nodes, np.float64), index)),
        g.const(h, np.float64),
    )
    t2 = g.op("Mul", t, t)
    t3 = g.op("Mul", t2, t)

    def basis(c3: float, c2: float, c1: float, c0: float) -> str:
        """The cubic ``c3 t^3 + c2 t^2 + c1 t + c0``."""
        total = g.const(c0, np.float64)
        for c, power in ((c3, t3), (c2, t2), (c1, t)):
            total = g.op("Add", total, g.op("Mul", g.const(c, np.float64), power))
        return total

    next_index = g.op("Add", index, g.const(1, np.int64))
    parts = [
        (basis(2.0, -3.0, 0.0, 1.0), value, index),
        (basis(1.0, -2.0, 1.0, 0.0), slope, index),
        (basis(-2.0, 3.0, 0.0, 0.0), value, next_index),
        (basis(1.0, -1.0, 0.0, 0.0), slope, next_index),
    ]
    total = None
    for weight, table, at in parts:
        term = g.op("Mul", weight, g.op("Gather", g.const(table, np.float64), at))
        total = term if total is None else g.op("Add", total, term)
    lower = g.op("Less", u, g.const(0.5, np.float64))
    return g.op("Where", lower, g.op("Neg", total), total)


# -- CompVAE -----------------------------------------------------------------------------


def _check_banks(detector: CompVAEDetector) -> None:
    for bank in detector._banks:
        if bank.backend not in _EXACT_BACKENDS:
            raise NotImplementedError(
                f"This model's latent bank is searched approximately (knn_backend="
                f"{bank.backend!r}), which an ONNX graph does not reproduce: an exact "
                "search of the same bank differs from score_samples wherever the "
                "approximate search misses a neighbour. Refit with knn_backend='exact' "
                "or 'faiss' (exact, for large banks)."
            )


def _compvae_graph(g: _Graph, x: str, detector: CompVAEDetector, score: str) -> str:
    """``score_samples`` of new rows: ``score_variants``' arithmetic, node by node."""
    z = _scaling(g, x, detector.transform_)
    z = _clip(g, z, RAW_CLIP if detector.transform_.kind == "none" else INPUT_CLIP)
    members = []
    for model, bank, scales in zip(detector.models_, detector._banks, detector._part_scales):
        knn, rec = _member_parts(g, z, model, bank, int(detector.n_neighbors_))
        members.append(_combine(g, knn, rec, score, scales))
    if len(members) == 1:
        return g.op("Neg", members[0])
    # as _average: the mean of each member's score standardised by its training scores
    total = None
    for member, member_scales in zip(members, detector._member_scales):
        loc, scale = member_scales[score]
        standardised = _standardise(g, member, loc, scale)
        total = standardised if total is None else g.op("Add", total, standardised)
    return g.op("Neg", g.op("Div", total, g.const(float(len(members)), np.float64)))


def _standardise(g: _Graph, x: str, loc: float, scale: float) -> str:
    return g.op(
        "Div", g.op("Sub", x, g.const(loc, np.float64)), g.const(scale, np.float64)
    )


def _combine(
    g: _Graph, knn: str, rec: str, score: str, scales: dict[str, tuple[float, float]]
) -> str:
    """``compvae._combine``: one member's anomaly score from its two parts."""
    if score == "knn":
        return knn
    if score == "reconstruction":
        return rec
    return g.op(
        "Add",
        _standardise(g, knn, *scales["knn"]),
        _standardise(g, rec, *scales["reconstruction"]),
    )


def _member_parts(
    g: _Graph, z: str, model: nn.Module, bank: Any, n_neighbors: int
) -> tuple[str, str]:
    """One member's kNN distance and reconstruction error (float64) of scaled rows."""
    dtype = _numpy_dtype(next(model.parameters()))
    zm = z if dtype == np.float64 else g.cast(z, dtype)
    latent_dim = int(model.latent_dim)
    mu = _encoder_mean(g, zm, model.encoder, latent_dim, dtype)
    x_hat = _decoder(g, _project(g, mu, model, dtype), model.decoder, latent_dim, dtype)
    diff = g.op("Sub", x_hat, zm)
    rec = g.sum(g.op("Mul", diff, diff), axis=1)
    if dtype != np.float64:
        rec = g.cast(rec, np.float64)
    return _knn(g, mu, bank, n_neighbors), rec


def _project(g: _Graph, mu: str, model: nn.Module, dtype: Any) -> str:
    """``SphericalVAE._project``: the mean onto the sphere of radius sqrt(n)."""
    if not model.spherical:
        return mu
    norm = g.op("Sqrt", g.sum(g.op("Mul", mu, mu), axis=1, keepdims=1))
    norm = g.op("Max", norm, g.const(1e-12, dtype))
    scaled = g.op("Mul", mu, g.const(math.sqrt(model.latent_dim), dtype))
    return g.op("Div", scaled, norm)


def _knn(g: _Graph, mu: str, bank: Any, k: int) -> str:
    """Mean distance to the k nearest bank rows, by exact search.

    The detector rounds the means to the bank's dtype (float32) and measures
    each difference there; here the rounded means and the bank go to float64
    and distances come from ``|q|^2 - 2 q.b + |b|^2``, which needs no
    (rows, bank, latent) array and is at least as accurate.
    """
    latents = bank.latents.detach().cpu()
    q = g.cast(g.cast(mu, _numpy_dtype(latents)), np.float64)
    # the bank is stored in its own dtype (half the model's size in float32)
    bank_t = g.cast(g.const(latents.numpy().T, _numpy_dtype(latents)), np.float64)
    rows = latents.double().numpy()
    cross = g.op("MatMul", q, bank_t)
    q_sq = g.sum(g.op("Mul", q, q), axis=1, keepdims=1)
    d2 = g.op(
        "Add",
        g.op("Sub", q_sq, g.op("Mul", cross, g.const(2.0, np.float64))),
        g.const((rows * rows).sum(axis=1)[None, :], np.float64),
    )
    d2 = g.op("Max", d2, g.const(0.0, np.float64))
    nearest, _ = g.op2("TopK", d2, g.const([k], np.int64), axis=1, largest=0, sorted=1)
    return g.op("ReduceMean", g.op("Sqrt", nearest), axes=[1], keepdims=0)


# -- the networks ------------------------------------------------------------------------


def _numpy_dtype(tensor: torch.Tensor) -> Any:
    return torch.empty((), dtype=tensor.dtype).numpy().dtype


def _array(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy()


def _unknown(module: nn.Module) -> NotImplementedError:
    return NotImplementedError(
        f"to_onnx cannot export the layer {type(module).__name__}: this model's "
        "network is not one skhyper's exporter knows."
    )


def _encoder_mean(
    g: _Graph, x: str, encoder: nn.Module, latent_dim: int, dtype: Any
) -> str:
    """The encoder's ``mu`` (its sigma is not scored)."""
    if isinstance(encoder, networks.MLPEncoder):
        h, _ = _layers(g, x, encoder.body, (0,), dtype)
    elif isinstance(encoder, networks.ConvEncoder):
        shape = tuple(int(s) for s in encoder.image_shape)
        h = g.op("Reshape", x, g.const([-1, *shape], np.int64))
        h, _ = _layers(g, h, encoder.body, shape, dtype)
        h = g.op("Flatten", h, axis=1)
    else:
        raise _unknown(encoder)
    head = encoder.head
    return _linear(g, h, head.weight[:latent_dim], head.bias[:latent_dim])


def _decoder(g: _Graph, z: str, decoder: nn.Module, latent_dim: int, dtype: Any) -> str:
    if isinstance(decoder, networks.MLPDecoder):
        return _layers(g, z, decoder.body, (latent_dim,), dtype)[0]
    if not isinstance(decoder, networks.ConvDecoder):
        raise _unknown(decoder)
    fh, fw = decoder.sizes[-1]
    shape: tuple[int, ...] = (int(decoder.top), int(fh), int(fw))
    h = _linear(g, z, decoder.head.weight, decoder.head.bias)
    h = g.op("Reshape", h, g.const([-1, *shape], np.int64))
    targets = list(reversed(decoder.sizes[:-1]))
    for block, conv, size in zip(decoder.blocks, decoder.convs, targets):
        h, shape = _layers(g, h, block, shape, dtype)
        h, shape = _nearest(g, h, shape, (int(size[0]), int(size[1])))
        h, shape = _layers(g, h, conv, shape, dtype)
    h, shape = _layers(g, h, decoder.out, shape, dtype)
    if decoder.sigmoid:
        h = g.op("Sigmoid", h)
    return g.op("Flatten", h, axis=1)


def _layers(
    g: _Graph, x: str, module: nn.Module, shape: tuple[int, ...], dtype: Any
) -> tuple[str, tuple[int, ...]]:
    """``module(x)`` and one row's output shape, for the layers of skhyper's networks."""
    if isinstance(module, nn.Sequential):
        for layer in module:
            x, shape = _layers(g, x, layer, shape, dtype)
        return x, shape
    if isinstance(module, nn.Linear):
        return _linear(g, x, module.weight, module.bias), (int(module.out_features),)
    if isinstance(module, nn.LeakyReLU):
        return _leaky_relu(g, x, module.negative_slope, dtype), shape
    if isinstance(module, nn.Conv2d):
        return _conv(g, x, module, shape)
    if isinstance(module, nn.BatchNorm2d):
        return _batch_norm(g, x, module), shape
    if isinstance(module, nn.AdaptiveAvgPool2d):
        return _adaptive_pool(g, x, module, shape)
    if isinstance(module, networks.ResidualBlock):
        h, _ = _layers(g, x, module.conv1, shape, dtype)
        h = _leaky_relu(g, _batch_norm(g, h, module.bn1), networks._SLOPE, dtype)
        h, _ = _layers(g, h, module.conv2, shape, dtype)
        h = g.op("Add", x, _batch_norm(g, h, module.bn2))
        return _leaky_relu(g, h, networks._SLOPE, dtype), shape
    raise _unknown(module)


def _leaky_relu(g: _Graph, x: str, slope: float, dtype: Any) -> str:
    # torch's formula: ONNX's LeakyRelu holds its slope in float32, off by 1e-9 in float64
    scaled = g.op("Mul", x, g.const(slope, dtype))
    return g.op("Where", g.op("Greater", x, g.const(0.0, dtype)), x, scaled)


def _linear(g: _Graph, x: str, weight: torch.Tensor, bias: torch.Tensor | None) -> str:
    w = _array(weight)
    b = np.zeros(w.shape[0], dtype=w.dtype) if bias is None else _array(bias)
    return g.op("Gemm", x, g.const(w, w.dtype), g.const(b, w.dtype), transB=1)


def _conv(
    g: _Graph, x: str, conv: nn.Conv2d, shape: tuple[int, ...]
) -> tuple[str, tuple[int, ...]]:
    if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        raise _unknown(conv)
    w = _array(conv.weight)
    inputs = [x, g.const(w, w.dtype)]
    if conv.bias is not None:
        inputs.append(g.const(_array(conv.bias), w.dtype))
    (ph, pw), (sh, sw), (dh, dw) = conv.padding, conv.stride, conv.dilation
    (kh, kw) = conv.kernel_size
    out = g.op(
        "Conv",
        *inputs,
        kernel_shape=[kh, kw],
        pads=[ph, pw, ph, pw],
        strides=[sh, sw],
        dilations=[dh, dw],
        group=int(conv.groups),
    )
    _, h, wd = shape
    h = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wd = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    return out, (int(conv.out_channels), h, wd)


def _batch_norm(g: _Graph, x: str, bn: nn.BatchNorm2d) -> str:
    """The eval-mode batch norm, ``x * alpha + beta`` per channel."""
    if bn.training or bn.running_mean is None or bn.running_var is None:
        raise NotImplementedError(
            "to_onnx exports batch norms in eval mode with running statistics only."
        )
    mean, var = bn.running_mean.double().cpu(), bn.running_var.double().cpu()
    weight = bn.weight.double().cpu() if bn.affine else torch.ones_like(mean)
    bias = bn.bias.double().cpu() if bn.affine else torch.zeros_like(mean)
    alpha = weight / torch.sqrt(var + bn.eps)
    beta = bias - mean * alpha
    dtype = _numpy_dtype(bn.running_mean)
    per_channel = (-1, 1, 1)
    return g.op(
        "Add",
        g.op("Mul", x, g.const(alpha.numpy().reshape(per_channel), dtype)),
        g.const(beta.numpy().reshape(per_channel), dtype),
    )


def _adaptive_pool(
    g: _Graph, x: str, pool: nn.AdaptiveAvgPool2d, shape: tuple[int, ...]
) -> tuple[str, tuple[int, ...]]:
    """Adaptive average pooling whose windows are evenly spaced (those of the
    conv nets' halvings are): an ``AveragePool``."""
    c, h, w = shape
    size = pool.output_size
    size = (size, size) if isinstance(size, int) else size
    out = tuple(n_in if n is None else int(n) for n, n_in in zip(size, (h, w)))
    kernel, stride = [], []
    for n_in, n_out in zip((h, w), out):
        starts = [(i * n_in) // n_out for i in range(n_out)]
        ends = [-((-(i + 1) * n_in) // n_out) for i in range(n_out)]
        sizes = {e - s for s, e in zip(starts, ends)}
        steps = {b - a for a, b in zip(starts, starts[1:])} or {1}
        if len(sizes) != 1 or len(steps) != 1:
            raise NotImplementedError(
                f"to_onnx cannot export adaptive pooling from {n_in} to {n_out} "
                "(its windows are not evenly spaced)."
            )
        kernel.append(sizes.pop())
        stride.append(steps.pop())
    pooled = g.op("AveragePool", x, kernel_shape=kernel, strides=stride)
    return pooled, (c, *out)


def _nearest(
    g: _Graph, x: str, shape: tuple[int, ...], size: tuple[int, int]
) -> tuple[str, tuple[int, ...]]:
    """``F.interpolate(x, size, mode="nearest")`` as two gathers of the source
    rows and columns torch picks (read off an interpolated index grid)."""
    c, h, w = shape
    grid = torch.stack(
        torch.meshgrid(
            torch.arange(h, dtype=torch.float64),
            torch.arange(w, dtype=torch.float64),
            indexing="ij",
        )
    )
    picked = torch.nn.functional.interpolate(grid[None], size=size, mode="nearest")[0]
    rows = picked[0, :, 0].long().numpy()
    cols = picked[1, 0, :].long().numpy()
    x = g.op("Gather", x, g.const(rows, np.int64), axis=2)
    return g.op("Gather", x, g.const(cols, np.int64), axis=3), (c, *size)


# -- SparKer -----------------------------------------------------------------------------


def _sparker_graph(g: _Graph, x: str, detector: SparKerDetector) -> str:
    """``-f(x)`` of the fitted kernels, as ``KernelEnsemble.terms`` computes it."""
    centers, amplitudes = detector.kernels_.single_parameters()
    width = float(detector.width_)
    z = _scaling(g, x, detector.transform_)
    # explicit differences, as the detector's scoring (no cancellation)
    diff = g.op(
        "Sub",
        g.op("Unsqueeze", z, g.axes(1)),
        g.const(_array(centers.double())[None], np.float64),
    )
    ell = g.op(
        "Div",
        g.op("Neg", g.sum(g.op("Mul", diff, diff), axis=2)),
        g.const(2.0 * width * width, np.float64),
    )
    top = g.op("ReduceMax", ell, axes=[1], keepdims=1)
    lse = g.op(
        "Add",
        g.op("Log", g.sum(g.op("Exp", g.op("Sub", ell, top)), axis=1, keepdims=1)),
        top,
    )
    # a row whose log kernels all overflow gets zero terms, as in the detector
    finite = g.op("Not", g.op("Or", g.op("IsInf", lse), g.op("IsNaN", lse)))
    lse = g.op("Where", finite, lse, g.const(0.0, np.float64))
    terms = g.op("Exp", g.op("Sub", g.op("Mul", ell, g.const(2.0, np.float64)), lse))
    weighted = g.op("Mul", terms, g.const(_array(amplitudes.double())[None], np.float64))
    f = g.sum(weighted, axis=1)
    clip = detector.transform_.clip
    if clip is not None:
        # a row beyond the scaling's clip takes the kernels' largest excess, as in the detector
        reach = g.op("ReduceMax", g.op("Abs", z), axes=[1], keepdims=0)
        far = g.op("GreaterOrEqual", reach, g.const(clip, np.float64))
        f = g.op("Where", far, g.const(detector._far_excess(), np.float64), f)
    return g.op("Neg", f)
