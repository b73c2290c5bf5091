"""scikit-learn's estimator checks, with fast parameters (as scikit-learn's own
INIT_PARAMS do) and no expected failures."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skhyper import CompVAEDetector, SparKerDetector, VMFDetector

FAST_VAE = dict(latent_dim=4, hidden_layer_sizes=(16,), epochs=3, batch_size=64, random_state=0)

FAST_SPARKER = dict(n_kernels=4, n_steps=40, n_permutations=4, random_state=0)

ESTIMATORS = [
    CompVAEDetector(**FAST_VAE),
    VMFDetector(**FAST_VAE),
    SparKerDetector(**FAST_SPARKER),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
