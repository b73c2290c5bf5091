"""The CompVAE engine (torch only, nothing of scikit-learn).

- :mod:`.coordinates`: the Cartesian <-> hyperspherical transform.
- :mod:`.networks`: encoders and decoders, MLP and convolutional, and the VAE.
- :mod:`.losses`: the hyperspherical regulariser, the Gaussian KL, reconstruction.
- :mod:`.training`: the epoch schedule and the training loop.
- :mod:`.neighbors`: the latent bank and its kNN backends.
"""
