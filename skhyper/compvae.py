"""CompVAEDetector and VMFDetector: a VAE with a hyperspherically regularised,
compressed latent, scored by kNN distance between latent means."""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import gen_batches
from sklearn.utils.validation import check_array, column_or_1d

from ._base import BaseTorchDetector, FitContext, fit_method
from ._compat import Interval, StrOptions, get_chunk_n_rows
from ._progress import Progress
from ._torch import build_module, make_generator, spawn_seeds, to_tensor
from .losses import COMPRESSIONS, ROLL_STEP, HypersphericalRegulariser
from .neighbors import BACKENDS, LatentBank, TrainingRows
from .networks import build_vae
from .preprocessing import IdentityTransform, InputTransform
from .training import auto_epochs, n_batches, train_vae


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
    transform_ : object
        The input scaling fitted on the training rows (``transform(X)``).
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
        "knn_backend": [StrOptions(set(BACKENDS))],
        "epochs": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "kl_target": [Interval(Real, 0, None, closed="left")],
        "sigma_angle_gain": [Interval(Real, 0, None, closed="left")],
        "class_conditional": ["boolean"],
        "standardize": [StrOptions({"auto"}), "boolean"],
    }

    _device_attributes = ("model_", "_bank")

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

    @fit_method
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
        return self._fit_validated(X, y)

    def _fit(self, X: np.ndarray, y: Any, context: FitContext) -> tuple[np.ndarray, None]:
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
        device = context.device
        init_seed, sample_seed, batch_seed, index_seed = spawn_seeds(context.seeds, 4)

        standardize = image_shape is None if self.standardize == "auto" else self.standardize
        transform = InputTransform("standard", X) if standardize else IdentityTransform()
        sigmoid = image_shape is not None and X.min() >= 0 and X.max() <= 1
        model = build_module(
            lambda: build_vae(n_features, self.latent_dim, hidden, image_shape, sigmoid),
            make_generator(init_seed),
        ).to(device)
        regulariser = HypersphericalRegulariser(
            self.latent_dim, self._compression(), self.sigma_angle_gain
        ).to(device)

        per_epoch = n_batches(n_samples, self.batch_size, labels)
        epochs = auto_epochs(per_epoch) if self.epochs == "auto" else self.epochs
        with Progress(epochs, "CompVAE", self.verbose) as bar:
            history = train_vae(
                model,
                regulariser,
                to_tensor(transform.transform(X), device),
                labels,
                len(classes),
                epochs=epochs,
                batches_per_epoch=per_epoch,
                learning_rate=self.learning_rate,
                kl_target=self.kl_target,
                generator=make_generator(sample_seed, device),
                rng=np.random.default_rng(batch_seed),
                on_epoch=lambda m: bar.update(postfix=f"loss={m['loss']:.4g}"),
            )
        model = model.double().eval()
        for p in model.parameters():
            p.requires_grad_(False)

        self.model_ = model
        self.transform_ = transform
        self.history_ = history
        if classes is not None:
            self.classes_ = classes
        self._bank = LatentBank(
            self._encode_means(X, device), self.knn_backend, self.n_neighbors, index_seed
        )
        self._training_rows = TrainingRows(X, index_seed)
        train_scores = -self._bank.leave_one_out_distance(
            self.n_neighbors, self.batch_size, self._max_pairs(self.batch_size)
        )
        return train_scores, None

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

    # -- scoring -----------------------------------------------------------------------

    def _encode_means(self, X: np.ndarray, device: torch.device) -> torch.Tensor:
        out = []
        with torch.no_grad():
            for sl in gen_batches(X.shape[0], self.batch_size):
                xb = to_tensor(self.transform_.transform(X[sl]), device, dtype=torch.float64)
                out.append(self.model_.encode(xb)[0])
        return torch.cat(out)

    def _max_pairs(self, n_queries: int) -> int:
        """Pairwise distances per kNN chunk, within scikit-learn's ``working_memory``."""
        rows = get_chunk_n_rows(row_bytes=8 * len(self._bank), max_n_rows=max(n_queries, 1))
        return rows * len(self._bank)

    def score_samples(self, X: Any) -> np.ndarray:
        """Opposite of the anomaly score: minus the mean latent kNN distance.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to score, with the training features.

        Returns
        -------
        scores : ndarray of shape (n_samples,), dtype float64
            Higher is more normal. Rows identical to a training row are scored
            without that row's own entry in the bank.
        """
        X = self._validate_predict_data(X)
        device = self._inference_device()
        scores = np.empty(X.shape[0], dtype=np.float64)
        for sl in gen_batches(X.shape[0], self.batch_size):
            mu = self._encode_means(X[sl], device)
            own = self._training_rows.find(X[sl])
            scores[sl] = -self._bank.mean_distance(
                mu, self.n_neighbors, own, self._max_pairs(mu.shape[0])
            )
        return scores

    def transform_latent(self, X: Any) -> np.ndarray:
        """Latent means of X (the space the kNN score is computed in).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to encode, with the training features.

        Returns
        -------
        mu : ndarray of shape (n_samples, latent_dim), dtype float64
        """
        X = self._validate_predict_data(X)
        return self._encode_means(X, self._inference_device()).cpu().numpy()

    def _auto_offset(self, train_scores: np.ndarray) -> float:
        q1, q3 = np.percentile(-train_scores, [25, 75])
        return -(q3 + 1.5 * (q3 - q1))


class VMFDetector(CompVAEDetector):
    """The vMF-like ablation of :class:`CompVAEDetector`.

    Only the first angle of the latent means is compressed toward the pole;
    the other angles keep their isotropic targets.

    Parameters
    ----------
    latent_dim : int, default=16
        Dimension n of the latent space (>= 2).
    hidden_layer_sizes : tuple of int, default=(128, 64)
        Widths of the MLP encoder's hidden layers (the decoder mirrors them).
    image_shape : tuple of int (C, H, W), default=None
        Rows are images flattened in C, H, W order; a residual conv VAE is used.
    n_neighbors : int, default=3
        Number of training latent means averaged in the score.
    knn_backend : {"auto", "exact", "pynndescent"}, default="auto"
        Exact search, approximate search, or exact up to
        ``skhyper.neighbors.AUTO_EXACT_MAX_BANK`` training rows.
    epochs : int or "auto", default="auto"
        Training epochs; ``"auto"`` gives about 1,500 optimiser steps.
    batch_size : int, default=256
        Rows per minibatch, for training and inference.
    learning_rate : float, default=1e-3
        Adam learning rate.
    kl_target : float, default=100.0
        Sets the regulariser's weight after the first epoch.
    sigma_angle_gain : float, default=5e5
        Gain of the angular term on the encoder scales.
    class_conditional : bool, default=False
        ``fit(X, y)`` gathers each class around its own latent axis.
    standardize : "auto" or bool, default="auto"
        Standardise features on the training rows (``"auto"``: not for images).
    contamination : "auto" or float, default="auto"
        Expected outlier fraction; ``"auto"`` is Tukey's fence on the training
        kNN distances.
    device : str or torch.device, default="auto"
        ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``.
    random_state : int, RandomState instance or None, default=None
        Seeds every random draw of the fit through local generators.
    verbose : int, default=0
        Show a progress bar over epochs when > 0.

    Each is described in full in :class:`CompVAEDetector`; this class is that
    estimator with ``compression="first"``.

    Attributes
    ----------
    model_ : torch.nn.Module
        The fitted VAE (float64, eval mode).
    transform_ : object
        The input scaling fitted on the training rows.
    device_ : torch.device
        Device the model was fitted on.
    offset_ : float
        ``decision_function = score_samples - offset_``.
    history_ : dict of list
        Per-epoch means of the loss and its parts.
    classes_ : ndarray
        Class labels seen in class-conditional mode (else absent).
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Defined only when X has feature names that are all strings.

    See Also
    --------
    CompVAEDetector : Every angle compressed (the full method).

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
