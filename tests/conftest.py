import os

# lets scikit-learn's estimator checks run their array-API input check
os.environ.setdefault("SCIPY_ARRAY_API", "1")
