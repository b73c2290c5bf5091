"""The SparKer engine (torch and numpy; scikit-learn only in :mod:`.options`).

- :mod:`.options`: the test's settings, defaults and constraints, and the
  checks of its two samples, in one place.
- :mod:`.kernels`: the kernel ensemble, its loss, seeding and training loop.
- :mod:`.twosample`: the two-sample test: prepare, fit the observed split and
  the null toys, calibrate.
"""
