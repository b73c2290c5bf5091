"""CompVAEDetector and VMFDetector: a VAE with a hyperspherically regularised,
compressed latent, scored by kNN distance between latent means."""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from sklearn.base import _fit_context
from sklearn.preprocessing import LabelEncoder
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_array, column_or_1d

from ._base import BaseTorchDetector, restore_on_failure
from ._progress import Progress
from ._torch import batch_slices, local_torch_seed, make_generator, to_tensor
from .losses import (
    COMPRESSIONS,
    ROLL_STEP,
    HypersphericalRegulariser,
    MeanWeights,
    reconstruction_error,
)
from .neighbors import AUTO_EXACT_MAX_BANK, ExactKNN, NNDescentKNN
from .networks import SphericalVAE, build_vae

# Weights of mu's angular mean terms over training (spec/compvae.md): the first
# angle's weight is raised late in training, the tail angles' ramp up in the
# second phase.
_W_FIRST, _W_FIRST_LATE = 100.0, 150.0
_W_TAIL_START, _W_TAIL_END = 1.0, 10.0

# epochs="auto": about this many gradient steps, within these epoch bounds
_AUTO_STEPS = 1500
_AUTO_EPOCHS_MIN, _AUTO_EPOCHS_MAX = 20, 400


def auto_epochs(n_batches: int) -> int:
    """Epochs giving about ``_AUTO_STEPS`` optimiser steps at ``n_batches`` per epoch."""
    return int(np.clip(math.ceil(_AUTO_STEPS / n_batches), _AUTO_EPOCHS_MIN, _AUTO_EPOCHS_MAX))


def _row_keys(X: np.ndarray, multipliers: np.ndarray) -> np.ndarray:
    """A 64-bit key per row from the bits of its float64 values.

    Used to recognise training rows at scoring time. Odd multipliers make the
    map from one differing word to the key injective.
    """
    X64 = np.ascontiguousarray(X, dtype=np.float64) + 0.0  # -0.0 -> 0.0
    words = X64.view(np.uint64)
    return (words * multipliers).sum(axis=1, dtype=np.uint64)


class CompVAEDetector(BaseTorchDetector):
    """Compressed hyperspherical VAE with kNN scoring in latent space.

    A VAE whose latent means are regularised through minibatch statistics of
    their hyperspherical coordinates (radius and angle cosines) and, with
    ``compression="full"``, pulled toward a pole of the sphere so that normal
    data form one small, dense island. The anomaly score of a row is the mean
    Euclidean distance from its latent mean to the ``n_neighbors`` nearest
    latent means of the training rows (a training row is scored without its
    own entry).

    Read more in ``doc/compvae.md``.

    Parameters
    ----------
    latent_dim : int, default=16
        Dimension n of the latent space (>= 2).

    compression : {"full", "first", "none"}, default="full"
        Mean targets of the latent means' angles: ``"full"`` pulls every
        angle to the north pole (Comp.VAE), ``"first"`` only the first (the
        vMF-like ablation, see :class:`VMFDetector`), ``"none"`` keeps the
        latent isotropic (a plain VAE baseline with the same network and score).

    hidden_layer_sizes : tuple of int, default=(128, 64)
        Widths of the MLP encoder's hidden layers (the decoder mirrors them).
        Ignored when ``image_shape`` is given.

    image_shape : tuple of int (C, H, W), default=None
        When given, each row is an image flattened in C, H, W order and a small
        residual convolutional encoder/decoder is used.

    n_neighbors : int, default=3
        Number of training latent means averaged in the score.

    knn_backend : {"auto", "exact", "pynndescent"}, default="auto"
        ``"exact"``: chunked brute force on the model's device;
        ``"pynndescent"``: approximate nearest neighbours (needs the
        ``pynndescent`` package); ``"auto"``: exact when the training set has
        at most ``skhyper.neighbors.AUTO_EXACT_MAX_BANK`` rows.

    epochs : int or "auto", default="auto"
        Training epochs. ``"auto"`` gives about 1,500 optimiser steps
        (``ceil(1500 / batches per epoch)``, clipped to [20, 400] epochs), so
        small and large training sets both train enough. The first half is the ramp phase (regulariser weight
        ``sqrt(epoch) + 1``), the second half ramps up the tail angles' pull.

    batch_size : int, default=256
        Rows per minibatch, for training and inference.

    learning_rate : float, default=1e-3
        Adam learning rate.

    kl_target : float, default=100.0
        After the first epoch the regulariser's weight is set to
        ``kl_target * mean(reconstruction) / mean(regulariser)``.

    sigma_angle_gain : float, default=5e5
        Gain of the angular term on the encoder scales (keeps them isotropic).

    class_conditional : bool, default=False
        If True, ``fit(X, y)`` takes in-distribution class labels: each class
        gathers around its own axis of the latent (batches are stratified so
        that every batch holds every class). Scoring does not use labels.

    standardize : "auto" or bool, default="auto"
        Standardise features with the training mean and std before the
        network. ``"auto"``: yes for rows, no when ``image_shape`` is given.

    contamination : "auto" or float, default="auto"
        Expected fraction of outliers in the training data. A float sets
        ``offset_`` at that quantile of the training scores. ``"auto"`` uses
        Tukey's fence on the training kNN distances: rows farther than
        ``Q3 + 1.5 IQR`` are outliers.

    device : str or torch.device, default="auto"
        ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"``,
        ``"cuda:1"``. Resolved in ``fit``.

    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, batch order and latent sampling through
        local generators (global RNG state is never touched).

    verbose : int, default=0
        Show a progress bar over epochs when > 0.

    Attributes
    ----------
    model_ : torch.nn.Module
        The fitted VAE (float64, eval mode).
    device_ : torch.device
        Device the model was fitted on.
    offset_ : float
        ``decision_function = score_samples - offset_``.
    history_ : dict of list
        Per-epoch mean of ``loss``, ``reconstruction``, ``regulariser`` and
        its four parts; ``beta`` is the calibrated regulariser weight.
    classes_ : ndarray
        Class labels seen in class-conditional mode (else absent).
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Defined only when X has feature names that are all strings.

    See Also
    --------
    VMFDetector : The same model compressing only the first angle.
    sklearn.ensemble.IsolationForest : The usual baseline.

    Examples
    --------
    >>> import numpy as np
    >>> from skhyper import CompVAEDetector
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(200, 5))
    >>> det = CompVAEDetector(epochs=5, random_state=0).fit(X)
    >>> det.predict([[0, 0, 0, 0, 0], [8, 8, 8, 8, 8]])
    array([ 1, -1])
    """

    _parameter_constraints: dict = {
        **BaseTorchDetector._parameter_constraints,
        "latent_dim": [Interval(Integral, 2, None, closed="left")],
        "compression": [StrOptions(set(COMPRESSIONS))],
        "hidden_layer_sizes": [tuple, list],
        "image_shape": [None, tuple, list],
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "knn_backend": [StrOptions({"auto", "exact", "pynndescent"})],
        "epochs": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "kl_target": [Interval(Real, 0, None, closed="left")],
        "sigma_angle_gain": [Interval(Real, 0, None, closed="left")],
        "class_conditional": ["boolean"],
        "standardize": [StrOptions({"auto"}), "boolean"],
    }

    def __init__(
        self,
        *,
        latent_dim: int = 16,
        compression: str = "full",
        hidden_layer_sizes: tuple[int, ...] = (128, 64),
        image_shape: tuple[int, int, int] | None = None,
        n_neighbors: int = 3,
        knn_backend: str = "auto",
        epochs: int | str = "auto",
        batch_size: int = 256,
        learning_rate: float = 1e-3,
        kl_target: float = 100.0,
        sigma_angle_gain: float = 5e5,
        class_conditional: bool = False,
        standardize: str | bool = "auto",
        contamination: str | float = "auto",
        device: str | torch.device = "auto",
        random_state: Any = None,
        verbose: int = 0,
    ) -> None:
        self.latent_dim = latent_dim
        self.compression = compression
        self.hidden_layer_sizes = hidden_layer_sizes
        self.image_shape = image_shape
        self.n_neighbors = n_neighbors
        self.knn_backend = knn_backend
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.kl_target = kl_target
        self.sigma_angle_gain = sigma_angle_gain
        self.class_conditional = class_conditional
        self.standardize = standardize
        self.contamination = contamination
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _compression(self) -> str:
        return self.compression

    # -- fit ----------------------------------------------------------------------

    @restore_on_failure
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any = None) -> CompVAEDetector:
        """Fit the VAE and build the latent bank.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training rows (assumed mostly normal).
        y : array-like of shape (n_samples,), default=None
            In-distribution class labels, used only when
            ``class_conditional=True``; otherwise ignored.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        X = self._validate_fit_data(X)
        n_samples, n_features = X.shape
        if self.n_neighbors >= n_samples:
            raise ValueError(
                f"n_neighbors={self.n_neighbors} must be smaller than the number of "
                f"training samples ({n_samples}): each training row is scored "
                "without its own entry."
            )
        hidden = self._check_hidden()
        image_shape = self._check_image_shape(n_features)
        labels, classes = self._check_labels(y, n_samples)

        device, seed = self._start_fit()
        standardize = image_shape is None if self.standardize == "auto" else self.standardize
        if standardize:
            mean = X.mean(axis=0, dtype=np.float64)
            scale = X.std(axis=0, dtype=np.float64)
            scale[scale < 1e-12] = 1.0
        else:
            mean, scale = np.zeros(n_features), np.ones(n_features)
        sigmoid = image_shape is not None and X.min() >= 0 and X.max() <= 1

        with local_torch_seed(seed):
            model = build_vae(n_features, self.latent_dim, hidden, image_shape, sigmoid)
        model.to(device)
        regulariser = HypersphericalRegulariser(
            self.latent_dim, self._compression(), self.sigma_angle_gain
        ).to(device)

        X_train = to_tensor((X - mean) / scale, device)
        history = self._train(model, regulariser, X_train, labels, len(classes), seed, device)

        model = model.double().eval()
        for p in model.parameters():
            p.requires_grad_(False)
        self._scaling = (mean, scale)
        bank = self._encode_means(model, X, device)

        self.device_ = device
        self.model_ = model
        self.history_ = history
        if classes is not None:
            self.classes_ = classes
        self._bank = bank
        self._ann = self._build_ann(bank, seed)
        multipliers = np.random.default_rng(seed).integers(
            1, np.iinfo(np.int64).max, size=n_features, dtype=np.int64
        ).astype(np.uint64) | np.uint64(1)
        keys = _row_keys(X, multipliers)
        order = np.argsort(keys, kind="stable")
        self._key_multipliers = multipliers
        self._train_keys = keys[order]
        self._train_key_rows = order

        self._set_offset(self._scores(X))
        return self

    def _check_hidden(self) -> tuple[int, ...]:
        hidden = tuple(self.hidden_layer_sizes)
        if not all(isinstance(h, Integral) and h >= 1 for h in hidden):
            raise ValueError(
                f"hidden_layer_sizes must be positive integers, got {self.hidden_layer_sizes!r}"
            )
        return tuple(int(h) for h in hidden)

    def _check_image_shape(self, n_features: int) -> tuple[int, int, int] | None:
        if self.image_shape is None:
            return None
        shape = tuple(self.image_shape)
        if len(shape) != 3 or not all(isinstance(s, Integral) and s >= 1 for s in shape):
            raise ValueError(f"image_shape must be (C, H, W), got {self.image_shape!r}")
        if math.prod(shape) != n_features:
            raise ValueError(
                f"image_shape={shape} holds {math.prod(shape)} values but X has "
                f"{n_features} features."
            )
        return (int(shape[0]), int(shape[1]), int(shape[2]))

    def _check_labels(self, y: Any, n_samples: int) -> tuple[np.ndarray | None, Any]:
        if not self.class_conditional:
            return None, ()
        if y is None:
            raise ValueError("class_conditional=True needs the class labels y in fit(X, y).")
        y = column_or_1d(check_array(y, ensure_2d=False, dtype=None), warn=True)
        if y.shape[0] != n_samples:
            raise ValueError(f"y has {y.shape[0]} labels but X has {n_samples} rows.")
        encoder = LabelEncoder().fit(y)
        labels = encoder.transform(y)
        n_classes = len(encoder.classes_)
        if (n_classes - 1) * ROLL_STEP >= self.latent_dim:
            raise ValueError(
                f"class_conditional with {n_classes} classes needs latent_dim > "
                f"{(n_classes - 1) * ROLL_STEP} (each class gets its own axis, "
                f"{ROLL_STEP} apart); got latent_dim={self.latent_dim}."
            )
        return labels, encoder.classes_

    def _n_batches(self, n: int, labels: np.ndarray | None) -> int:
        n_batches = max(1, int(round(n / self.batch_size)))
        if labels is not None:
            # each batch needs >= 2 rows of every class for its statistics
            n_batches = max(1, min(n_batches, int(np.bincount(labels).min()) // 2))
        return n_batches

    def _batches(self, n: int, labels: np.ndarray | None, rng: np.random.Generator) -> list:
        """Index arrays of one epoch; stratified so each batch holds every class."""
        n_batches = self._n_batches(n, labels)
        if labels is None:
            return np.array_split(rng.permutation(n), n_batches)
        per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
        chunks = [np.array_split(p, n_batches) for p in per_class]
        return [np.concatenate([c[b] for c in chunks]) for b in range(n_batches)]

    def _train(
        self,
        model: SphericalVAE,
        regulariser: HypersphericalRegulariser,
        X: torch.Tensor,
        labels: np.ndarray | None,
        n_classes: int,
        seed: int,
        device: torch.device,
    ) -> dict[str, list[float]]:
        gen = make_generator(seed + 1, device)
        rng = np.random.default_rng(seed + 2)
        opt = torch.optim.Adam(model.parameters(), lr=self.learning_rate, fused=True)
        labels_t = None if labels is None else torch.as_tensor(labels, device=device)
        n = X.shape[0]
        epochs = auto_epochs(self._n_batches(n, labels)) if self.epochs == "auto" else self.epochs
        ramp_end = max(1, epochs // 2)
        late = max(ramp_end, (3 * epochs) // 4)
        beta = None
        history: dict[str, list[float]] = {}
        model.train()
        with Progress(epochs, "CompVAE", self.verbose) as bar:
            for epoch in range(epochs):
                if epoch < ramp_end:
                    ramp = math.sqrt(epoch) + 1.0
                    tail = _W_TAIL_START
                else:
                    ramp = 1.0
                    frac = (epoch - ramp_end + 1) / max(1, epochs - ramp_end)
                    tail = _W_TAIL_START + frac * (_W_TAIL_END - _W_TAIL_START)
                weights = MeanWeights(
                    first=_W_FIRST_LATE if epoch >= late else _W_FIRST, tail=tail
                )
                sums: dict[str, torch.Tensor] = {}
                batches = self._batches(n, labels, rng)
                for idx in batches:
                    idx_t = torch.as_tensor(idx, device=device)
                    xb = X[idx_t]
                    lb = None if labels_t is None else labels_t[idx_t]
                    mu, sigma, x_hat = model(xb, gen)
                    rec = reconstruction_error(x_hat, xb)
                    reg = regulariser(mu, sigma, weights, lb, n_classes)
                    if beta is None:  # first batch: provisional calibration
                        beta = self._calibrate(rec.item(), reg["total"].item())
                    loss = rec + beta * ramp * reg["total"]
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    parts = {"loss": loss, "reconstruction": rec, "regulariser": reg["total"]}
                    parts.update({k: v for k, v in reg.items() if k != "total"})
                    for key, value in parts.items():
                        sums[key] = sums.get(key, 0.0) + value.detach()
                means = {k: float(v) / len(batches) for k, v in sums.items()}
                if not all(math.isfinite(v) for v in means.values()):
                    raise FloatingPointError(
                        f"CompVAE training diverged at epoch {epoch} (non-finite loss); "
                        "try a smaller learning_rate or standardised inputs."
                    )
                if epoch == 0:
                    beta = self._calibrate(means["reconstruction"], means["regulariser"])
                means["beta"] = beta
                for key, value in means.items():
                    history.setdefault(key, []).append(value)
                bar.update(postfix=f"loss={means['loss']:.4g}")
        return history

    def _calibrate(self, reconstruction: float, regulariser: float) -> float:
        return self.kl_target * reconstruction / max(regulariser, 1e-12)

    def _build_ann(self, bank: torch.Tensor, seed: int) -> NNDescentKNN | None:
        backend = self.knn_backend
        if backend == "auto":
            backend = "exact" if bank.shape[0] <= AUTO_EXACT_MAX_BANK else "pynndescent"
        if backend == "exact":
            return None
        return NNDescentKNN(bank.cpu().numpy(), self.n_neighbors + 1, seed)

    # -- scoring -----------------------------------------------------------------------

    def _encode_means(
        self, model: SphericalVAE, X: np.ndarray, device: torch.device
    ) -> torch.Tensor:
        mean, scale = self._scaling
        out = []
        with torch.no_grad():
            for sl in batch_slices(X.shape[0], self.batch_size):
                xb = to_tensor((X[sl] - mean) / scale, device, dtype=torch.float64)
                out.append(model.encode(xb)[0])
        return torch.cat(out)

    def _own_rows(self, X: np.ndarray) -> np.ndarray:
        """Training index of each row of X that is a training row, else -1."""
        keys = _row_keys(X, self._key_multipliers)
        pos = np.searchsorted(self._train_keys, keys)
        pos = np.minimum(pos, len(self._train_keys) - 1)
        hit = self._train_keys[pos] == keys
        return np.where(hit, self._train_key_rows[pos], -1)

    def _mean_knn_distance(self, mu: torch.Tensor, own: np.ndarray) -> np.ndarray:
        k = self.n_neighbors
        if self._ann is None:
            dist_t, idx_t = ExactKNN(self._bank).kneighbors(mu, k + 1)
            dist, idx = dist_t.cpu().numpy().astype(np.float64), idx_t.cpu().numpy()
        else:
            dist, idx = self._ann.kneighbors(mu.cpu().numpy(), k + 1)
        is_own = idx == own[:, None]
        # drop the row's own entry when listed, otherwise the (k+1)-th neighbour
        drop = np.where(is_own.any(axis=1), is_own.argmax(axis=1), k)
        keep = np.ones_like(is_own)
        keep[np.arange(len(drop)), drop] = False
        return dist[keep].reshape(-1, k).mean(axis=1)

    def score_samples(self, X: Any) -> np.ndarray:
        """Opposite of the anomaly score: minus the mean latent kNN distance.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        scores : ndarray of shape (n_samples,), dtype float64
            Higher is more normal. Rows identical to a training row are scored
            without that row's own entry in the bank.
        """
        return self._scores(self._validate_predict_data(X))

    def _scores(self, X: np.ndarray) -> np.ndarray:
        device = self._inference_device()
        scores = np.empty(X.shape[0], dtype=np.float64)
        for sl in batch_slices(X.shape[0], self.batch_size):
            mu = self._encode_means(self.model_, X[sl], device)
            scores[sl] = -self._mean_knn_distance(mu, self._own_rows(X[sl]))
        return scores

    def transform_latent(self, X: Any) -> np.ndarray:
        """Latent means of X (the space the kNN score is computed in).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        mu : ndarray of shape (n_samples, latent_dim), dtype float64
        """
        X = self._validate_predict_data(X)
        return self._encode_means(self.model_, X, self._inference_device()).cpu().numpy()

    def _auto_offset(self, train_scores: np.ndarray) -> float:
        q1, q3 = np.percentile(-train_scores, [25, 75])
        return -(q3 + 1.5 * (q3 - q1))


class VMFDetector(CompVAEDetector):
    """The vMF-like ablation of :class:`CompVAEDetector`: only the first angle
    of the latent means is compressed toward the pole; the other angles keep
    their isotropic targets.

    Parameters are those of :class:`CompVAEDetector` without ``compression``.

    Examples
    --------
    >>> import numpy as np
    >>> from skhyper import VMFDetector
    >>> X = np.random.RandomState(0).normal(size=(200, 5))
    >>> VMFDetector(epochs=5, random_state=0).fit(X).predict([[8, 8, 8, 8, 8]])
    array([-1])
    """

    _parameter_constraints: dict = {
        k: v for k, v in CompVAEDetector._parameter_constraints.items() if k != "compression"
    }

    def __init__(
        self,
        *,
        latent_dim: int = 16,
        hidden_layer_sizes: tuple[int, ...] = (128, 64),
        image_shape: tuple[int, int, int] | None = None,
        n_neighbors: int = 3,
        knn_backend: str = "auto",
        epochs: int | str = "auto",
        batch_size: int = 256,
        learning_rate: float = 1e-3,
        kl_target: float = 100.0,
        sigma_angle_gain: float = 5e5,
        class_conditional: bool = False,
        standardize: str | bool = "auto",
        contamination: str | float = "auto",
        device: str | torch.device = "auto",
        random_state: Any = None,
        verbose: int = 0,
    ) -> None:
        self.latent_dim = latent_dim
        self.hidden_layer_sizes = hidden_layer_sizes
        self.image_shape = image_shape
        self.n_neighbors = n_neighbors
        self.knn_backend = knn_backend
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.kl_target = kl_target
        self.sigma_angle_gain = sigma_angle_gain
        self.class_conditional = class_conditional
        self.standardize = standardize
        self.contamination = contamination
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _compression(self) -> str:
        return "first"
