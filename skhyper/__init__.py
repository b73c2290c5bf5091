"""skhyper: scikit-learn compatible anomaly detectors built on PyTorch."""

from ._version import __version__
from .compvae import CompVAEDetector, VMFDetector
from .latent import LatentEncoder
from .sparker import SparKerDetector

__all__ = ["CompVAEDetector", "LatentEncoder", "SparKerDetector", "VMFDetector", "__version__"]
