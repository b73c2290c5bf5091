"""scikit-learn's estimator checks, with fast parameters (as scikit-learn's own
INIT_PARAMS do) and no expected failures."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skhyper import CompVAEDetector, SparKerDetector, VMFDetector

from conftest import CHECKS_SPARKER, CHECKS_VAE

ESTIMATORS = [
    CompVAEDetector(**CHECKS_VAE),
    VMFDetector(**CHECKS_VAE),
    SparKerDetector(**CHECKS_SPARKER),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
