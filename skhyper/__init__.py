"""skhyper: scikit-learn compatible anomaly detectors built on PyTorch."""

from .compvae import CompVAEDetector, VMFDetector

__version__ = "0.1.0"

__all__ = ["CompVAEDetector", "VMFDetector", "__version__"]
