"""plot_kernels takes a fitted SparKerDetector or a sparker_test result, and says
in one line what to pass otherwise."""

import numpy as np
import pytest

from skhyper import SparKerDetector
from skhyper.stats import sparker_test

from conftest import SPARKER as FAST
from conftest import bump_sample

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from skhyper.plotting import plot_kernels  # noqa: E402

# features in different units, so that the drawing must go through the scaling
UNITS = np.array([100.0, 0.01, 5.0, 1.0])


@pytest.fixture
def axes():
    fig, pair = plt.subplots(1, 2)
    yield pair
    plt.close(fig)


def _centres(ax):
    return np.array([p.center for p in ax.patches])


def test_a_test_result_draws_as_the_detector_it_equals(axes):
    data, ref, _, _ = bump_sample(0, n_data=300, n_ref=900)
    data, ref = data * UNITS, ref * UNITS
    det = SparKerDetector(**FAST).fit(data, X_ref=ref)
    res = sparker_test(data, ref, **FAST)
    plot_kernels(det, data, ax=axes[0])
    plot_kernels(res, data, ax=axes[1])
    np.testing.assert_allclose(_centres(axes[1]), _centres(axes[0]), atol=1e-9)
    radii = {p.get_radius() for ax in axes for p in ax.patches}
    assert radii == {det.width_} == {res.kernels.width}
    np.testing.assert_allclose(
        axes[1].collections[0].get_offsets(), axes[0].collections[0].get_offsets(), atol=1e-9
    )
    # the kernels alone draw the same
    fig, ax = plt.subplots()
    try:
        plot_kernels(res.kernels, data, ax=ax)
        np.testing.assert_allclose(_centres(ax), _centres(axes[0]), atol=1e-9)
    finally:
        plt.close(fig)


def test_what_to_pass_is_said_in_one_line():
    data, ref, _, _ = bump_sample(0, n_data=200, n_ref=600)
    res = sparker_test(data, ref, **FAST)
    pipe_like = [("det", SparKerDetector())]
    for wrong in (pipe_like, res.null_statistics, SparKerDetector):
        with pytest.raises(TypeError, match="sparker_test result") as info:
            plot_kernels(wrong, data)
        assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="X has 3 features, but the test was run on 4"):
        plot_kernels(res, data[:, :3])
    bare = type(res.kernels)(res.kernels.centers, res.kernels.amplitudes, res.kernels.width)
    with pytest.raises(ValueError, match="carry no transform"):
        plot_kernels(bare, data)
