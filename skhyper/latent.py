"""LatentEncoder: a fitted CompVAE's latent space as a scikit-learn transformer step."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin, clone
from sklearn.utils.validation import check_is_fitted

from ._utils.compat import HasMethods
from .compvae import CompVAEDetector

__all__ = ["LatentEncoder"]


class LatentEncoder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """The latent means of a :class:`CompVAEDetector` as a transformer.

    ``fit`` fits a clone of ``detector`` and ``transform`` returns the
    latent means of the rows (the space the detector's kNN score is computed
    in, :meth:`CompVAEDetector.transform_latent`). The encoder is then a step
    like a scaler or a PCA: in a ``Pipeline``, or before a
    :class:`~skhyper.SparKerDetector` in
    :func:`~skhyper.sparker.make_reference_pipeline`, which transforms the
    data and the reference with the same fitted encoder and tests the two
    samples in the latent space.

    Parameters
    ----------
    detector : CompVAEDetector, default=None
        The VAE to fit (cloned; not changed). None means
        ``CompVAEDetector()`` with its defaults. A :class:`~skhyper.VMFDetector`
        works alike.

    Attributes
    ----------
    detector_ : CompVAEDetector
        The fitted clone of ``detector``.
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of str
        Names of the features seen during ``fit``; defined only when X has
        feature names that are all strings.

    See Also
    --------
    CompVAEDetector.transform_latent : The same encoding from a fitted detector.
    skhyper.sparker.make_reference_pipeline : Transformers, then a SparKer test.

    Notes
    -----
    A two-sample test in the latent space is calibrated only when the
    encoder treats data and reference rows alike. Fit it on rows that are in
    neither sample (e.g. a training set of the nominal classes) and freeze
    it, ``sklearn.frozen.FrozenEstimator(LatentEncoder(...).fit(X_train))``;
    or let the pipeline fit it on the pooled rows (its default for a
    permutation test). Fitted on the reference alone, the reference rows are
    the VAE's training rows and the data are not: the test then sees that
    difference even when the two samples share one distribution.

    Examples
    --------
    >>> import numpy as np
    >>> from skhyper import CompVAEDetector
    >>> from skhyper.latent import LatentEncoder
    >>> X = np.random.default_rng(0).normal(size=(200, 6))
    >>> enc = LatentEncoder(CompVAEDetector(latent_dim=3, epochs=5, random_state=0))
    >>> enc.fit_transform(X).shape
    (200, 3)
    >>> enc.get_feature_names_out()
    array(['latentencoder0', 'latentencoder1', 'latentencoder2'], dtype=object)
    """

    _parameter_constraints: dict = {
        "detector": [HasMethods(["fit", "transform_latent"]), None],
    }

    def __init__(self, detector: CompVAEDetector | None = None) -> None:
        self.detector = detector

    def fit(self, X: Any, y: Any = None) -> LatentEncoder:
        """Fit a clone of ``detector`` on X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training rows.
        y : array-like of shape (n_samples,), default=None
            Passed to the detector's ``fit`` (class labels, used only with
            ``class_conditional=True``).

        Returns
        -------
        self : LatentEncoder
            This encoder, fitted.
        """
        self._validate_params()
        detector = CompVAEDetector() if self.detector is None else clone(self.detector)
        detector.fit(X, y)
        self.detector_ = detector
        self.n_features_in_ = detector.n_features_in_
        if hasattr(detector, "feature_names_in_"):
            self.feature_names_in_ = detector.feature_names_in_
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        return self

    def transform(self, X: Any) -> np.ndarray:
        """The latent means of the rows of X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to encode, with the training features.

        Returns
        -------
        Z : ndarray of shape (n_samples, latent_dim), dtype float64
            The latent means.
        """
        check_is_fitted(self, "detector_")
        return self.detector_.transform_latent(X)

    @property
    def _n_features_out(self) -> int:
        """The latent dimension (names ``latentencoder0``, ...)."""
        return int(self.detector_.latent_dim)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        detector = CompVAEDetector() if self.detector is None else self.detector
        inner = detector.__sklearn_tags__()
        tags.input_tags = inner.input_tags
        tags.non_deterministic = inner.non_deterministic
        return tags
