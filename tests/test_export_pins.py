"""Pins of the ONNX export (skhyper/export.py) at the edges its general tests do not reach:
rows in the quantile table's first and last intervals, on its knots and past its ends.
benchmarks/generated_mutants.py reports the mutants these kill."""

import numpy as np
import pytest

from skhyper import CompVAEDetector
from skhyper.export import to_onnx

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

TINY = dict(latent_dim=4, hidden_layer_sizes=(16,), epochs=3, batch_size=64, random_state=0)


def run(model, X):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"X": X})[0]


def test_quantile_scaling_at_the_ends_of_its_table():
    """Rows inside the table's first and last intervals are interpolated (not set to the
    end values), rows on knots take the knots' values, rows past the ends the ends'."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(300, 3)) * [1.0, 5.0, 0.2]
    det = CompVAEDetector(scaling="quantile", **TINY).fit(X)
    q = np.asarray(det.transform_.quantiles)  # (n_quantiles, n_features)
    assert np.all(q[1] > q[0]) and np.all(q[-1] > q[-2])
    rows = np.vstack([
        q[0] + 0.5 * (q[1] - q[0]),  # first interval
        q[-2] + 0.25 * (q[-1] - q[-2]),  # last interval
        q[0], q[1], q[-1], q[len(q) // 2],  # knots
        q[0] - 1.0, q[-1] + 1.0,  # past the ends
        q[0] + 1e-3 * (q[1] - q[0]),
    ])
    transformed = det.transform_.transform(rows)
    # the first two rows are strictly between the end values
    assert np.all(transformed[0] > det.transform_.transform(q[:1])[0])
    assert np.all(transformed[1] < det.transform_.transform(q[-1:])[0])
    expected = det.score_samples(rows)
    np.testing.assert_allclose(run(to_onnx(det), rows), expected, rtol=1e-7, atol=1e-9)
