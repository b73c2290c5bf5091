"""skhyper: scikit-learn compatible anomaly detectors built on PyTorch."""

from .compvae import CompVAEDetector, VMFDetector
from ._version import __version__
from .sparker import SparKerDetector

__all__ = ["CompVAEDetector", "VMFDetector", "SparKerDetector", "__version__"]
