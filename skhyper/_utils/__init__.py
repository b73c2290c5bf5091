"""What the public modules share: the estimator base, devices and seeds,
input transforms, progress output and scikit-learn's private helpers.
"""
