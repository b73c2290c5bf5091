"""skhyper: scikit-learn compatible anomaly detectors built on PyTorch."""

from ._version import __version__
from .compvae import CompVAEDetector, VMFDetector
from .sparker import SparKerDetector

__all__ = ["CompVAEDetector", "VMFDetector", "SparKerDetector", "__version__"]
