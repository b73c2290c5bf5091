"""CompVAEDetector and VMFDetector: a VAE with a hyperspherically regularised,
compressed latent, scored by kNN distance between latent means."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import gen_batches
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d

from ._utils.attribution import (
    PathFunction,
    frame_like,
    integrated_gradients,
    mean_distance_to,
)
from ._utils.base import BaseTorchDetector, FitContext, fit_context
from ._utils.compat import Interval, StrOptions, get_chunk_n_rows
from ._utils.preprocessing import TRANSFORMS, IdentityTransform, InputTransform
from ._utils.progress import Progress
from ._utils.runtime import build_module, cpu_threads, make_generator, spawn_seeds, to_tensor
from ._vae.losses import (
    COMPRESSIONS,
    ROLL_STEP,
    GaussianKL,
    HypersphericalRegulariser,
    row_reconstruction_error,
)
from ._vae.neighbors import BACKENDS, ExactKNN, LatentBank, TrainingRows, resolve_backend
from ._vae.networks import CHANNELS, build_vae
from ._vae.training import SCHEDULES, auto_epochs, n_batches, train_vae

SCORES = ("knn", "reconstruction", "combined")

# Scaled inputs are clipped to this many scale units: farther is "far" either
# way, and the squared error of a clipped row stays finite in float32.
INPUT_CLIP = 1e3
# Unscaled inputs (scaling="none") are clipped to this: a row's squared error,
# summed over up to a million features, stays finite in float32.
RAW_CLIP = 1e15

#: The authors' configuration (:doc:`/compvae`): ``CompVAEDetector(**PAPER_PARAMS)``.
#: Their conv widths apply with ``image_shape``; their 300 epochs are about 7,000
#: steps for 6,000 rows (75k on CIFAR-10 with a smaller batch).
PAPER_PARAMS: dict[str, Any] = {
    "latent_dim": 128,
    "kl_target": 2500.0,
    "epochs": 300,
    "schedule": "paper",
    "learning_rate": 2e-4,
    "early_stopping": False,
    "conv_channels": CHANNELS,
    "anomaly_score": "knn",
}


class CompVAEDetector(BaseTorchDetector):
    """Compressed hyperspherical VAE with kNN scoring in latent space.

    A VAE whose latent means are regularised through minibatch statistics of
    their hyperspherical coordinates (radius and angle cosines) and, with
    ``compression="full"``, pulled toward a pole of the sphere so that normal
    data form one small, dense island. With ``anomaly_score="knn"`` (the paper's
    score) the anomaly score of a row is the mean Euclidean distance from its
    latent mean to the ``n_neighbors`` nearest latent means of the training
    rows (a training row is scored without its own entry); the model's
    reconstruction error can be used too, alone or combined with it.

    Read more in :doc:`/compvae`.

    Parameters
    ----------
    latent_dim : int, default=16
        Dimension n of the latent space (>= 2).

    compression : {"full", "first", "none", "gaussian"}, default="full"
        Mean targets of the latent means' angles: ``"full"`` pulls every
        angle to the north pole (Comp.VAE), ``"first"`` only the first (the
        vMF-like ablation, see :class:`VMFDetector`), ``"none"`` keeps the
        hyperspherical regulariser with isotropic targets. ``"gaussian"`` is
        the plain VAE of the paper's comparison: a Gaussian latent sample (no
        renormalisation onto the sphere) and the per-sample KL divergence to
        N(0, I) with weight 1 instead of the hyperspherical regulariser; same
        networks and score.

    anomaly_score : {"knn", "reconstruction", "combined"}, default="combined"
        ``"knn"``: the mean latent kNN distance (the paper's score);
        ``"reconstruction"``: the squared error of the reconstruction of the
        latent mean, in scaled units; ``"combined"``: the sum of the two,
        each first standardised by the median and interquartile range of the
        training rows' own scores (kNN left-one-out). The default was chosen
        on the mean AUROC over tuning splits of the tabular, embedding and
        Fashion-MNIST benchmarks (:doc:`/compvae`).

    hidden_layer_sizes : tuple of int, default=(128, 64)
        Widths of the MLP encoder's hidden layers (the decoder mirrors them).
        Ignored when ``image_shape`` is given.

    image_shape : tuple of int (C, H, W), default=None
        When given, each row is an image flattened in C, H, W order and a small
        residual convolutional encoder/decoder is used.

    conv_channels : tuple of int, default=(8, 16, 32)
        Channels of the conv net's stages (one 2x pooling each), used with
        ``image_shape``. The authors' widths are (16, 32, 64), about 1.5x
        the time per step on a CPU.

    n_neighbors : int, default=3
        Number of training latent means averaged in the score. A training
        row is scored without its own entry, so ``fit`` needs at least
        ``n_neighbors + 1`` rows.

    knn_backend : {"auto", "exact", "pynndescent", "faiss", "faiss-ivf"}, \
default="auto"
        ``"exact"``: chunked brute force on the model's device;
        ``"pynndescent"``: approximate nearest neighbours (needs the
        ``pynndescent`` package); ``"faiss"``: faiss's flat index, exact (the
        scores are those of ``"exact"``), and ``"faiss-ivf"`` its inverted-file
        index, approximate (both need ``pip install -e ".[faiss]"``);
        ``"auto"``: exact when the training set has at most 100,000 rows, else
        ``"faiss"`` up to 300,000 rows and ``"faiss-ivf"`` above when faiss is
        installed, ``"pynndescent"`` when it is not.

    epochs : int or "auto", default="auto"
        Training epochs (at most, with ``early_stopping``). ``"auto"`` gives
        about 250 optimiser steps, within 4 to 400 epochs, so small and large
        training sets both train enough.

    batch_size : int, default=256
        Rows per minibatch, for training and inference.

    learning_rate : float, default=1e-3
        Adam learning rate.

    kl_target : float, default=100.0
        After the first epoch the regulariser's weight is set to
        ``kl_target * mean(reconstruction) / mean(regulariser)`` (not used
        with ``compression="gaussian"``).

    sigma_angle_gain : float, default=5e5
        Gain of the angular term on the encoder scales (keeps them isotropic).

    schedule : {"auto", "paper"}, default="auto"
        ``"auto"``: the first half of the epochs ramps the regulariser's
        weight (``sqrt(epoch) + 1``), the second half raises the tail angles'
        pull linearly to 10. ``"paper"``: the authors' schedule scaled to
        ``epochs`` (exact at 300): ramp over the first third, then tail
        weight ``sqrt(epoch - 101) + 1`` and a halved learning rate from
        epoch 280. ``PAPER_PARAMS`` holds the rest of their setting.

    early_stopping : bool, default=True
        Hold out ``validation_fraction`` of the training rows while training
        and stop once their reconstruction error, checked after each epoch of
        the second phase (at most once per 10 steps), has not fallen by 0.1%
        for ``n_iter_no_change`` checks. The held-out rows still enter the
        latent bank. Not used with ``class_conditional`` (every class must be
        in every batch).

    validation_fraction : float, default=0.1
        Fraction of the training rows held out for early stopping (at least
        2 rows; without 2 rows to spare, no early stopping).

    n_iter_no_change : int, default=10
        Checks without improvement before training stops.

    input_noise : float, default=0.0
        Standard deviation of Gaussian noise added to the scaled training
        rows, in scaled units (pixel units for images): the network learns to
        reconstruct the clean row from a corrupted one (a denoising
        objective). Training only: the held-out rows, the latent bank and
        every score see clean rows. 0 trains a plain VAE.

    n_estimators : int, default=1
        Number of VAEs fitted, each from its own seeds (weights, batch order,
        latent samples, noise) on the same rows. With more than one, the
        anomaly score is the mean over members of each member's score
        standardised by the median and interquartile range of its training
        rows' scores, as bagged detectors average their members. Fit and
        score cost grow in proportion.

    class_conditional : bool, default=False
        If True, ``fit(X, y)`` takes in-distribution class labels: each class
        gathers around its own axis of the latent (batches are stratified so
        that every batch holds every class). Scoring does not use labels.

    scaling : {"auto", "winsorized", "standard", "robust", "quantile", "none"}, \
default="auto"
        Per-feature scaling fitted on the training rows: mean and std with the
        most extreme 0.1% of rows at each end clipped, mean and std, median
        and interquartile range, or quantiles mapped to normal scores.
        ``"auto"``: ``"winsorized"`` for rows (one huge value does not flatten
        the others), ``"none"`` when ``image_shape`` is given. Scaled
        values are clipped to ``+-INPUT_CLIP`` (1e3) scale units, unscaled
        ones to ``+-RAW_CLIP`` (1e15; ``fit`` refuses larger values with
        ``"none"``); values whose scaled form overflows are refused with a
        ValueError.

    contamination : "auto" or float, default="auto"
        Expected fraction of outliers in the training data. A float sets
        ``offset_`` at that quantile of the training scores. ``"auto"`` uses
        Tukey's fence on the training rows' anomaly scores (kNN part left
        one out): rows above ``Q3 + 1.5 IQR`` are outliers.

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
    models_ : list of torch.nn.Module
        The ``n_estimators`` fitted VAEs.
    model_ : torch.nn.Module
        The first of ``models_`` (the only one when ``n_estimators=1``): the
        fitted VAE in eval mode: trained in float32, converted to float64
        for rows (a row's score then does not depend on the batch); conv nets
        stay float32 (10x faster) and run every inference chunk at the batch
        size fitted with (the last one padded), so that a row's score does not
        depend on the rows scored with it either.
    transform_ : object
        The input scaling fitted on the training rows (``transform(X)``).
    anomaly_score_ : str
        The ``anomaly_score`` fitted with; ``score_samples`` uses it (setting
        the parameter after ``fit`` changes nothing until the next ``fit``).
    n_neighbors_ : int
        The ``n_neighbors`` fitted with, likewise.
    n_epochs_ : int
        Epochs trained by ``model_`` (fewer than planned when early stopping
        ends training).
    device_ : torch.device
        Device the model was fitted on.
    offset_ : float
        ``decision_function = score_samples - offset_``; moved without
        refitting by ``set_threshold``.
    training_scores_ : ndarray of shape (n_samples,)
        ``score_samples`` of the training rows (each without its own bank
        entry), which ``offset_``, ``set_threshold`` and
        ``outlier_probability`` are computed from.
    history_ : dict of list
        ``model_``'s per-epoch mean of ``loss``, ``reconstruction``, ``regulariser`` and
        its parts; ``beta`` is the regulariser's weight, ``validation`` the
        held-out reconstruction error (second phase, with early stopping).
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
        "anomaly_score": [StrOptions(set(SCORES))],
        "hidden_layer_sizes": [tuple, list],
        "image_shape": [None, tuple, list],
        "conv_channels": [tuple, list],
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "knn_backend": [StrOptions(set(BACKENDS))],
        "epochs": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "kl_target": [Interval(Real, 0, None, closed="left")],
        "sigma_angle_gain": [Interval(Real, 0, None, closed="left")],
        "schedule": [StrOptions(set(SCHEDULES))],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "input_noise": [Interval(Real, 0, None, closed="left")],
        "n_estimators": [Interval(Integral, 1, None, closed="left")],
        "class_conditional": ["boolean"],
        "scaling": [StrOptions({"auto", "none", *TRANSFORMS})],
    }

    _device_attributes = ("models_", "_banks")
    _fitted_attributes = (
        *BaseTorchDetector._fitted_attributes,
        "models_",
        "transform_",
        "anomaly_score_",
        "n_neighbors_",
        "_batch_size",
        "_banks",
        "_training_rows",
        "_part_scales",
        "_member_scales",
    )

    def __init__(
        self,
        *,
        latent_dim: int = 16,
        compression: str = "full",
        anomaly_score: str = "combined",
        hidden_layer_sizes: tuple[int, ...] = (128, 64),
        image_shape: tuple[int, int, int] | None = None,
        conv_channels: tuple[int, ...] = (8, 16, 32),
        n_neighbors: int = 3,
        knn_backend: str = "auto",
        epochs: int | str = "auto",
        batch_size: int = 256,
        learning_rate: float = 1e-3,
        kl_target: float = 100.0,
        sigma_angle_gain: float = 5e5,
        schedule: str = "auto",
        early_stopping: bool = True,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        input_noise: float = 0.0,
        n_estimators: int = 1,
        class_conditional: bool = False,
        scaling: str = "auto",
        contamination: str | float = "auto",
        device: str | torch.device = "auto",
        random_state: Any = None,
        verbose: int = 0,
    ) -> None:
        self.latent_dim = latent_dim
        self.compression = compression
        self.anomaly_score = anomaly_score
        self.hidden_layer_sizes = hidden_layer_sizes
        self.image_shape = image_shape
        self.conv_channels = conv_channels
        self.n_neighbors = n_neighbors
        self.knn_backend = knn_backend
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.kl_target = kl_target
        self.sigma_angle_gain = sigma_angle_gain
        self.schedule = schedule
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.input_noise = input_noise
        self.n_estimators = n_estimators
        self.class_conditional = class_conditional
        self.scaling = scaling
        self.contamination = contamination
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _compression(self) -> str:
        return self.compression

    # -- fit ----------------------------------------------------------------------

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
        with fit_context(self):
            return self._fit_validated(X, y)

    def _min_fit_samples(self) -> int:
        # each training row is scored against its n_neighbors nearest others
        return self.n_neighbors + 1

    def _fit(self, X: np.ndarray, y: Any, context: FitContext) -> tuple[np.ndarray, None]:
        n_samples, n_features = X.shape
        hidden = self._check_hidden()
        image_shape = self._check_image_shape(n_features)
        channels = self._check_channels()
        labels, classes = self._check_labels(y, n_samples)
        device = context.device
        init_seed, sample_seed, batch_seed, index_seed, split_seed = spawn_seeds(
            context.seeds, 5
        )

        scaling = self.scaling
        if scaling == "auto":
            scaling = "winsorized" if image_shape is None else "none"
        if scaling == "none" and np.max(np.abs(X)) > RAW_CLIP:
            raise ValueError(
                f"X holds values beyond {RAW_CLIP:g}, which scaling='none' cannot "
                "train on (their squares overflow float32); choose another scaling."
            )
        transform = IdentityTransform() if scaling == "none" else InputTransform(scaling, X)
        self.transform_ = transform
        Z = self._scaled(X)
        sigmoid = image_shape is not None and X.min() >= 0 and X.max() <= 1
        compression = self._compression()
        train_rows, val_rows = self._validation_split(n_samples, split_seed)
        Z_t = to_tensor(Z, device, dtype=torch.float32)
        Z_train = Z_t if val_rows is None else Z_t[torch.as_tensor(train_rows, device=device)]
        train_labels = None if labels is None else labels[train_rows]
        Z_val = None if val_rows is None else Z_t[torch.as_tensor(val_rows, device=device)]
        per_epoch = n_batches(len(train_rows), self.batch_size, train_labels)
        epochs = auto_epochs(per_epoch) if self.epochs == "auto" else self.epochs

        def train_member(seeds: tuple[int, int, int], name: str) -> tuple[Any, dict]:
            member_init, member_sample, member_batch = seeds
            model = build_module(
                lambda: build_vae(
                    n_features,
                    self.latent_dim,
                    hidden,
                    image_shape,
                    sigmoid,
                    channels=channels,
                    spherical=compression != "gaussian",
                ),
                make_generator(member_init),
            ).to(device)
            if image_shape is not None and device.type == "cpu":
                model = model.to(memory_format=torch.channels_last)
            regulariser = (
                GaussianKL()
                if compression == "gaussian"
                else HypersphericalRegulariser(
                    self.latent_dim, compression, self.sigma_angle_gain
                )
            ).to(device)
            validation = None
            if Z_val is not None:

                def validation() -> float:
                    x_hat = model.decode_mean(model.encode(Z_val)[0])
                    return float(row_reconstruction_error(x_hat, Z_val).mean())

            # the conv net trains on one thread: its gradients change with the count
            with Progress(epochs, name, self.verbose) as bar, cpu_threads(
                single=image_shape is not None
            ):
                history = train_vae(
                    model,
                    regulariser,
                    Z_train,
                    train_labels,
                    len(classes),
                    epochs=epochs,
                    batches_per_epoch=per_epoch,
                    learning_rate=self.learning_rate,
                    kl_target=self.kl_target,
                    generator=make_generator(member_sample, device),
                    rng=np.random.default_rng(member_batch),
                    schedule_kind=self.schedule,
                    validation=validation,
                    n_iter_no_change=self.n_iter_no_change,
                    input_noise=self.input_noise,
                    on_epoch=lambda m: bar.update(postfix=f"loss={m['loss']:.4g}"),
                )
            # Rows infer in float64: float32 kernels change a row's result with the
            # batch's shape (~1e-6 relative), and scores must not depend on the
            # other rows. Conv nets infer in float32 (10x faster on a CPU) and
            # accept that round-off.
            if image_shape is None:
                model = model.double()
            model = model.eval()
            for p in model.parameters():
                p.requires_grad_(False)
            return model, history

        # member 0 keeps the seeds of a single model; the others draw their own
        member_seeds = [(init_seed, sample_seed, batch_seed)] + [
            tuple(spawn_seeds(context.seeds, 3)) for _ in range(self.n_estimators - 1)
        ]
        models, histories = [], []
        for i, seeds in enumerate(member_seeds):
            name = "CompVAE" if self.n_estimators == 1 else f"CompVAE {i + 1}/{self.n_estimators}"
            model, history = train_member(seeds, name)  # type: ignore[arg-type]
            models.append(model)
            histories.append(history)

        # scoring reads these fitted copies, so set_params after fit changes nothing
        self.anomaly_score_ = self.anomaly_score
        self.n_neighbors_ = self.n_neighbors
        self._batch_size = self.batch_size
        self.models_ = models
        self.history_ = histories[0]
        self.n_epochs_ = len(histories[0]["loss"])
        if labels is not None:
            self.classes_ = classes
        else:  # absent outside class-conditional mode, also after such a fit
            vars(self).pop("classes_", None)
        self._training_rows = TrainingRows(X, index_seed)
        backend = resolve_backend(self.knn_backend, n_samples)
        n_chunks = -(-n_samples // self._batch_size)
        self._banks, self._part_scales, self._member_scales = [], [], []
        member_scores = []
        for model in models:
            # one pass over the training rows gives the bank and their reconstruction
            # errors; the phases after training take minutes on large data: each has its bar
            with Progress(n_chunks, "CompVAE: encoding the training rows", self.verbose) as bar:
                mu, rec = self._encode(model, Z, device, on_batch=bar.update)
            with Progress(1, f"CompVAE: latent bank ({backend})", self.verbose) as bar:
                bank = LatentBank(mu.float(), backend, self.n_neighbors, index_seed)
                bar.update()
            steps = 1 if backend == "pynndescent" else n_chunks
            with Progress(steps, "CompVAE: leave-one-out scores", self.verbose) as bar:
                knn = bank.leave_one_out_distance(
                    self.n_neighbors_,
                    self._batch_size,
                    self._max_pairs(len(bank), self._batch_size),
                    on_batch=bar.update,
                )
            scales = {"knn": _robust_scale(knn), "reconstruction": _robust_scale(rec)}
            self._banks.append(bank)
            self._part_scales.append(scales)
            self._member_scales.append(
                {name: _robust_scale(_combine(knn, rec, name, scales)) for name in SCORES}
            )
            member_scores.append(_combine(knn, rec, self.anomaly_score_, scales))
        return -self._average(member_scores, self.anomaly_score_), None

    @property
    def model_(self) -> torch.nn.Module:
        """The first member's VAE (the only one when ``n_estimators=1``)."""
        return self.models_[0]

    def _average(self, member_scores: list[np.ndarray], anomaly_score: str) -> np.ndarray:
        """The anomaly score: a single model's own, or the members' mean
        standardised score (median and IQR of each member's training scores)."""
        if len(member_scores) == 1:
            return member_scores[0]
        standardised = [
            (score - scales[anomaly_score][0]) / scales[anomaly_score][1]
            for score, scales in zip(member_scores, self._member_scales)
        ]
        return np.mean(standardised, axis=0)

    def _validation_split(
        self, n_samples: int, seed: int
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Training and held-out rows for early stopping (None: no early stopping)."""
        everything = np.arange(n_samples)
        n_val = int(round(self.validation_fraction * n_samples))
        if not self.early_stopping or n_val < 2 or n_samples - n_val < 2:
            return everything, None
        if self.class_conditional:
            return everything, None  # every class must stay in every batch
        perm = np.random.default_rng(seed).permutation(n_samples)
        return np.sort(perm[n_val:]), np.sort(perm[:n_val])

    def _check_hidden(self) -> tuple[int, ...]:
        hidden = tuple(self.hidden_layer_sizes)
        if not all(_is_count(h) for h in hidden):
            raise ValueError(
                f"hidden_layer_sizes must be positive integers, got {self.hidden_layer_sizes!r}"
            )
        return tuple(int(h) for h in hidden)

    def _check_channels(self) -> tuple[int, ...]:
        channels = tuple(self.conv_channels)
        if not channels or not all(_is_count(c) for c in channels):
            raise ValueError(
                f"conv_channels must be positive integers, got {self.conv_channels!r}"
            )
        return tuple(int(c) for c in channels)

    def _check_image_shape(self, n_features: int) -> tuple[int, int, int] | None:
        if self.image_shape is None:
            return None
        shape = tuple(self.image_shape)
        if len(shape) != 3 or not all(_is_count(s) for s in shape):
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
        if self._compression() == "gaussian":
            raise ValueError(
                "class_conditional=True gathers classes by their latent angles; it needs "
                "a hyperspherical compression ('full', 'first' or 'none'), not 'gaussian'."
            )
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

    def __setstate__(self, state: dict[str, Any]) -> None:
        # states saved before 0.2.0 held an empty classes_ outside class-conditional mode
        classes = state.get("classes_")
        if isinstance(classes, tuple) and not classes and not state.get("class_conditional"):
            state = {k: v for k, v in state.items() if k != "classes_"}
        super().__setstate__(state)

    # -- scoring -----------------------------------------------------------------------

    def _scaled(self, X: np.ndarray) -> np.ndarray:
        """X in the network's units: scaled, clipped to ``+-INPUT_CLIP``."""
        with np.errstate(over="ignore", invalid="ignore"):
            Z = self.transform_.transform(X)
        if not np.all(np.isfinite(Z)):
            raise ValueError(
                "X holds values too large to scale (their scaled form overflows "
                "float64); rescale those features before fitting or scoring."
            )
        limit = RAW_CLIP if self.transform_.kind == "none" else INPUT_CLIP
        return np.clip(Z, -limit, limit)

    def _encode(
        self,
        model: torch.nn.Module,
        Z: np.ndarray,
        device: torch.device,
        on_batch: Callable[[], object] | None = None,
    ) -> tuple[torch.Tensor, np.ndarray]:
        """Latent means (on ``device``) and reconstruction errors of scaled rows."""
        mus, recs = [], []
        dtype = next(model.parameters()).dtype
        # float32 kernels pick their algorithm by the batch's shape, so a row's
        # result would depend on how many rows come with it: run every chunk at
        # one fixed size, the last one padded
        fixed = dtype == torch.float32
        with torch.no_grad():
            for sl in gen_batches(Z.shape[0], self._batch_size):
                n = sl.stop - sl.start
                zb = to_tensor(Z[sl], device, dtype=dtype)
                if fixed and n < self._batch_size:
                    pad = zb.new_zeros((self._batch_size - n, *zb.shape[1:]))
                    zb = torch.cat([zb, pad])
                mu = model.encode(zb)[0]
                x_hat = model.decode_mean(mu)
                mus.append(mu[:n])
                recs.append(row_reconstruction_error(x_hat[:n], zb[:n]).double().cpu().numpy())
                if on_batch is not None:
                    on_batch()
        return torch.cat(mus), np.concatenate(recs)

    @staticmethod
    def _max_pairs(n_bank: int, n_queries: int) -> int:
        """Pairwise distances per kNN chunk, within scikit-learn's ``working_memory``."""
        rows = get_chunk_n_rows(row_bytes=4 * n_bank, max_n_rows=max(n_queries, 1))
        return rows * n_bank

    def score_samples(self, X: Any) -> np.ndarray:
        """Opposite of the anomaly score chosen by ``anomaly_score``.

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
        check_is_fitted(self)
        return self.score_variants(X, (self.anomaly_score_,))[self.anomaly_score_]

    def score_variants(
        self, X: Any, anomaly_scores: tuple[str, ...] = SCORES
    ) -> dict[str, np.ndarray]:
        """``score_samples`` of X under several ``anomaly_score`` choices, in one pass.

        The model, the latent bank and the standardisation of the parts are
        those of the fit; only how the parts are combined differs. Meant for
        comparing the scores of one fitted model without refitting it.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to score, with the training features.
        anomaly_scores : tuple of {"knn", "reconstruction", "combined"}, \
default=("knn", "reconstruction", "combined")
            The variants to compute.

        Returns
        -------
        scores : dict of str to ndarray of shape (n_samples,), dtype float64
            ``scores[name]`` is what ``score_samples`` returns when the detector
            is fitted with ``anomaly_score=name``.
        """
        unknown = [a for a in anomaly_scores if a not in SCORES]
        if unknown:
            raise ValueError(f"anomaly_scores must be among {SCORES}; got {unknown}.")
        X = self._validate_predict_data(X)
        device = self._inference_device()
        out = {name: np.empty(X.shape[0], dtype=np.float64) for name in anomaly_scores}
        with cpu_threads(X.size):
            for sl in gen_batches(X.shape[0], self._batch_size):
                Z = self._scaled(X[sl])
                own = self._training_rows.find(X[sl])
                parts = []
                for model, bank in zip(self.models_, self._banks):
                    mu, rec = self._encode(model, Z, device)
                    pairs = self._max_pairs(len(bank), len(mu))
                    parts.append((bank.mean_distance(mu, self.n_neighbors_, own, pairs), rec))
                for name in anomaly_scores:
                    member_scores = [
                        _combine(knn, rec, name, scales)
                        for (knn, rec), scales in zip(parts, self._part_scales)
                    ]
                    out[name][sl] = -self._average(member_scores, name)
        return out

    def transform_latent(self, X: Any) -> np.ndarray:
        """Latent means of X (the space the kNN score is computed in).

        With ``n_estimators > 1``, the latent means of the first member,
        ``model_`` (each member has its own latent space).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to encode, with the training features.

        Returns
        -------
        mu : ndarray of shape (n_samples, latent_dim), dtype float64
        """
        X = self._validate_predict_data(X)
        with cpu_threads(X.size):
            mu = self._encode(self.model_, self._scaled(X), self._inference_device())[0]
        return mu.double().cpu().numpy()

    def feature_contributions(self, X: Any, *, n_segments: int = 32, rtol: float = 1e-4) -> Any:
        """Each feature's contribution to the anomaly score of each row.

        The anomaly score is ``-score_samples(X)`` (larger is more anomalous);
        a positive contribution pushes the row toward outlier. Contributions
        are computed in the scaled space the network sees; the scaling acts on
        each feature alone and is monotone, so feature j there is feature j of
        X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to explain, with the training features.
        n_segments : int, default=32
            Equal segments of each row's path before they are refined (kNN
            part; see Notes).
        rtol : float, default=1e-4
            Tolerance of the path integral, relative to the variation of the
            kNN distance along the row's path (see Notes).

        Returns
        -------
        contributions : ndarray of shape (n_samples, `n_features_in_`), dtype float64
            When X is a pandas DataFrame, a DataFrame with X's index and
            columns (``feature_names_in_`` when fitted with feature names).

        Notes
        -----
        The reconstruction part is a sum over features, and each feature gets
        its own term exactly: the squared error of feature j of the
        reconstruction of the latent mean, in scaled units.

        The kNN part (the mean distance from the latent mean to its
        ``n_neighbors_`` nearest latent means of the training rows) is
        attributed by integrated gradients: along the straight path in scaled
        space from the baseline row z = 0 (the centre of the scaling: the
        clipped mean with ``"winsorized"``, the mean with ``"standard"``, the
        median with ``"robust"`` and ``"quantile"``; with ``"none"``, the zero
        row), feature j gets the integral of the distance's derivative along
        feature j times ``z_j``. The neighbours are found again at every point
        of the path and a training row's own entry is left out along all of
        it, as in its score. The distance changes neighbours, and the network
        its linear pieces, many times along a path, where its gradient jumps:
        the integral is a trapezoid rule on ``n_segments`` segments, each halved
        (up to 6 times) while the rule misses the change of the distance over
        it by more than ``rtol`` times its share of the distance's total
        variation along the path.

        With ``anomaly_score="combined"`` each part is divided by the
        interquartile range of the training rows' part, and with
        ``n_estimators > 1`` each member's contributions by the interquartile
        range of its training rows' scores and averaged, as in the score.
        The medians subtracted there, and the baseline's kNN distance ``d_b``,
        go to one constant ``c``: every row's contributions satisfy::

            contributions.sum(axis=1) == -score_samples(X) - c

        where ``c`` is the anomaly score of a row with the kNN distance
        ``d_b`` and no reconstruction error: ``d_b`` for ``"knn"``, 0 for
        ``"reconstruction"``, ``(d_b - m_knn) / s_knn - m_rec / s_rec`` for
        ``"combined"`` (m and s the medians and interquartile ranges of the
        training rows' parts) and, with several members, the mean of the
        members' ``(c - m) / s`` (m and s those of the member's training
        scores). The relation holds up to the error of the integral, about
        ``rtol`` times the variation of the distance along the path (exact
        for ``"reconstruction"``), except that:

        - a training row whose own entry is among the baseline's k nearest
          (at most k rows per member, k = ``n_neighbors_``) has its entry
          left out at the baseline too: in its ``c``, ``d_b`` is the
          baseline's distance without that entry, larger by
          ``(d_(k+1) - d_own) / k`` (the baseline's distance to its
          (k+1)-th nearest less that to the entry);
        - with an approximate ``knn_backend`` the neighbours along the path are
          found exactly, so the relation holds with the exact kNN distance in
          place of the approximate one the score uses;
        - a conv net (``image_shape``) runs in float32, so the relation holds
          up to float32 round-off.

        Each row costs from about ``n_segments`` to ``64 * n_segments`` points of
        its path per member, each an encoder evaluation (forward and
        backward) and a kNN search. The fitted detector is not changed.

        Examples
        --------
        >>> import numpy as np
        >>> from skhyper import CompVAEDetector
        >>> rng = np.random.RandomState(0)
        >>> X = rng.normal(size=(200, 5))
        >>> det = CompVAEDetector(epochs=5, random_state=0).fit(X)
        >>> contributions = det.feature_contributions([[0, 0, 8, 0, 0]])
        >>> contributions.shape, int(contributions.argmax())
        ((1, 5), 2)
        >>> rows = rng.normal(size=(20, 5))
        >>> shift = det.feature_contributions(rows).sum(axis=1) + det.score_samples(rows)
        >>> bool(np.ptp(shift) < 1e-2)  # one constant for all rows
        True
        """
        X_in, X = X, self._validate_contributions_call(X, n_segments, rtol)
        device = self._inference_device()
        name, k = self.anomaly_score_, self.n_neighbors_
        # path points per encoder pass: small passes cost their overhead, not their arithmetic
        points = max(self._batch_size, 1024)
        max_rows = self._paths_per_chunk(X.shape[1], n_segments, points)

        def knn_distance(model: torch.nn.Module, bank: LatentBank) -> PathFunction:
            search, pairs = ExactKNN(bank.latents), self._max_pairs(len(bank), points)

            def distance(path: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
                mu = model.encode(path)[0]
                nearest = search.kneighbors(mu.detach(), k + 1, pairs)[1]
                return mean_distance_to(mu, bank.latents, nearest, own[rows])

            return distance

        total = np.zeros(X.shape, dtype=np.float64)
        with cpu_threads(X.size):
            Z = self._scaled(X)
            own = torch.as_tensor(self._training_rows.find(X), device=device)
            for model, bank, scales, member in zip(
                self.models_, self._banks, self._part_scales, self._member_scales
            ):
                z = to_tensor(Z, device, dtype=next(model.parameters()).dtype)
                part = np.zeros(X.shape, dtype=np.float64)
                if name != "knn":
                    with torch.no_grad():
                        for sl in gen_batches(len(z), self._batch_size):
                            error = model.decode_mean(model.encode(z[sl])[0]) - z[sl]
                            part[sl] += (error * error).double().cpu().numpy()
                    if name == "combined":
                        part /= scales["reconstruction"][1]
                if name != "reconstruction":
                    knn = integrated_gradients(
                        knn_distance(model, bank),
                        z,
                        z.new_zeros(z.shape[1]),
                        n_segments=n_segments,
                        rtol=rtol,
                        max_points=points,
                        max_rows=max_rows,
                    ).numpy()
                    part += knn / scales["knn"][1] if name == "combined" else knn
                total += part if len(self.models_) == 1 else part / member[name][1]
        contributions = total / len(self.models_)
        return frame_like(contributions, X_in)

    def _auto_offset(self, train_scores: np.ndarray) -> float:
        q1, q3 = np.percentile(-train_scores, [25, 75])
        return -(q3 + 1.5 * (q3 - q1))


def _combine(
    knn: np.ndarray,
    rec: np.ndarray,
    anomaly_score: str,
    scales: dict[str, tuple[float, float]],
) -> np.ndarray:
    """One model's anomaly score (higher = more anomalous) from its two parts."""
    if anomaly_score == "knn":
        return knn
    if anomaly_score == "reconstruction":
        return rec
    (k_loc, k_scale), (r_loc, r_scale) = scales["knn"], scales["reconstruction"]
    return (knn - k_loc) / k_scale + (rec - r_loc) / r_scale


def _is_count(value: Any) -> bool:
    """A positive integer, and not a bool (``True`` is no layer width)."""
    return isinstance(value, Integral) and not isinstance(value, (bool, np.bool_)) and value >= 1


def _robust_scale(values: np.ndarray) -> tuple[float, float]:
    """Median and interquartile range (1 where the range is 0)."""
    q1, med, q3 = np.percentile(values, [25, 50, 75])
    return float(med), float(q3 - q1) if q3 > q1 else 1.0


def _signature_without(function: Any, *names: str) -> inspect.Signature:
    """``function``'s signature with the parameters ``names`` left out."""
    signature = inspect.signature(function)
    kept = [p for name, p in signature.parameters.items() if name not in names]
    return signature.replace(parameters=kept)


class VMFDetector(CompVAEDetector):
    """The vMF-like ablation of :class:`CompVAEDetector`.

    Only the first angle of the latent means is compressed toward the pole;
    the other angles keep their isotropic targets. This is
    ``CompVAEDetector(compression="first")`` under its own name, so that it
    has a row of its own in comparisons and searches.

    Parameters
    ----------
    **params : dict
        The parameters of :class:`CompVAEDetector`, with the same defaults,
        except ``compression`` (fixed to ``"first"``).

    Attributes
    ----------
    models_, model_, transform_, anomaly_score_, n_neighbors_, n_epochs_, device_, offset_, \
training_scores_, history_, classes_, n_features_in_, feature_names_in_ :
        As :class:`CompVAEDetector`'s.

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

    def __init__(self, **params: Any) -> None:
        if "compression" in params:
            raise TypeError(
                "VMFDetector compresses the first angle only and takes no "
                "'compression' parameter; use CompVAEDetector(compression=...)."
            )
        super().__init__(**params)
        del self.compression

    # scikit-learn reads the parameters from the signature: CompVAE's, less one
    __init__.__signature__ = _signature_without(CompVAEDetector.__init__, "compression")  # type: ignore[attr-defined]

    def _compression(self) -> str:
        return "first"
