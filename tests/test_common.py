"""scikit-learn's estimator checks with no expected failures: the VAEs with fast
parameters (as scikit-learn's own INIT_PARAMS do), SparKer with its defaults."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skhyper import CompVAEDetector, LatentEncoder, SparKerDetector, VMFDetector

from conftest import CHECKS_VAE

ESTIMATORS = [
    CompVAEDetector(**CHECKS_VAE),
    VMFDetector(**CHECKS_VAE),
    LatentEncoder(CompVAEDetector(**CHECKS_VAE)),
    # the default detector, as a user first meets it (about 20 s of checks)
    SparKerDetector(random_state=0),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
