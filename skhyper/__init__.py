"""skhyper: scikit-learn compatible anomaly detectors built on PyTorch."""

from .compvae import CompVAEDetector, VMFDetector
from .sparker import SparKerDetector

__version__ = "0.2.0.dev0"

__all__ = ["CompVAEDetector", "VMFDetector", "SparKerDetector", "__version__"]
