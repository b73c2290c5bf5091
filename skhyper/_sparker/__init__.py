"""The SparKer engine (torch and numpy, nothing of scikit-learn).

- :mod:`.options`: the test's settings, defaults and constraints, in one place.
- :mod:`.kernels`: the kernel ensemble, its loss, seeding and training loop.
- :mod:`.twosample`: the two-sample test: prepare, fit the observed split and
  the null toys, calibrate.
"""
