"""skhyper on dask: blockwise scoring, SparKer's toys and searches on a
LocalCluster of two worker processes. Skipped when dask is not installed."""

import pathlib
import runpy
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")

import dask.array as da  # noqa: E402
import joblib  # noqa: E402
from sklearn.ensemble import IsolationForest  # noqa: E402

from skhyper import CompVAEDetector, SparKerDetector, VMFDetector  # noqa: E402
from skhyper.dask import score_blocks  # noqa: E402
from skhyper.stats import sparker_test  # noqa: E402

EXAMPLE = (
    pathlib.Path(__file__).resolve().parents[1] / "doc" / "examples" / "scale_out"
    / "dask_gridsearch.py"
)


@pytest.fixture(scope="module")
def client():
    one_thread = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, env=one_thread,
        dashboard_address=":0",
    )
    with cluster, distributed.Client(cluster) as c:
        import torch

        c.run(torch.set_num_threads, 1)
        yield c


def data(n=2000, d=4, seed=0):
    rng = np.random.default_rng(seed)
    return np.r_[rng.normal(size=(n, d)), rng.normal(2.5, 0.2, size=(n // 20, d))]


@pytest.fixture(scope="module")
def fitted():
    X = data()
    ref = np.random.default_rng(1).normal(size=(3000, 4))
    fast = dict(latent_dim=4, hidden_layer_sizes=(16,), epochs=5, random_state=0)
    return X, [
        CompVAEDetector(**fast).fit(X[:600]),
        VMFDetector(**fast).fit(X[:600]),
        SparKerDetector(n_permutations=0, random_state=0).fit(X, X_ref=ref),
        IsolationForest(random_state=0).fit(X),
    ]


@pytest.mark.parametrize("method", ["score_samples", "decision_function", "predict"])
def test_blockwise_scores_equal_local_scores(client, fitted, method):
    X, detectors = fitted
    lazy_X = da.from_array(X, chunks=(333, 2))
    for det in detectors:
        lazy = score_blocks(det, lazy_X, method)
        assert isinstance(lazy, da.Array) and lazy.shape == (len(X),)
        local = getattr(det, method)(X)
        np.testing.assert_allclose(lazy.compute(), local, rtol=0, atol=1e-10)


def test_blockwise_dataframe_keeps_feature_names(client):
    pd = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    frame = pd.DataFrame(data(), columns=["a", "b", "c", "d"])
    det = IsolationForest(random_state=0).fit(frame)
    lazy = score_blocks(det, dd.from_pandas(frame, npartitions=3))
    np.testing.assert_allclose(lazy.compute(), det.score_samples(frame), rtol=0, atol=1e-10)


def test_estimator_enters_the_graph_once():
    X = data()
    det = IsolationForest(n_estimators=10, random_state=0).fit(X)
    lazy = score_blocks(det, da.from_array(X, chunks=(100, 4)))
    graph = dict(lazy.__dask_graph__())
    holding = [k for k, v in graph.items() if v is det or getattr(v, "value", None) is det]
    assert len(holding) <= 1
    n_chunks = -(-len(X) // 100)
    assert len(graph) <= 2 * n_chunks + 1  # chunks, their scores, one estimator


def test_score_blocks_bad_input():
    det = IsolationForest(random_state=0).fit(data())
    with pytest.raises(ValueError, match="method must be one of"):
        score_blocks(det, da.zeros((10, 4)), "fit")
    with pytest.raises(TypeError, match="dask array or a dask DataFrame"):
        score_blocks(det, np.zeros((10, 4)))
    with pytest.raises(ValueError, match="2-D"):
        score_blocks(det, da.zeros(10))


def test_sparker_toys_on_dask_equal_one_process(client):
    X = data(n=600)
    ref = np.random.default_rng(2).normal(size=(2000, 4))
    params = dict(n_permutations=30, n_steps=60, random_state=0)
    serial = SparKerDetector(n_jobs=1, **params).fit(X, X_ref=ref)
    with joblib.parallel_config(backend="dask"):
        spread = SparKerDetector(n_jobs=-1, **params).fit(X, X_ref=ref)
    assert spread.pvalue_ == serial.pvalue_
    np.testing.assert_array_equal(spread.null_statistics_, serial.null_statistics_)
    np.testing.assert_array_equal(spread.null_scale_statistics_, serial.null_scale_statistics_)
    np.testing.assert_array_equal(spread.centers_, serial.centers_)
    with joblib.parallel_config(backend="dask"):
        res = sparker_test(X, ref, n_jobs=-1, **params)
    assert res.pvalue == serial.pvalue_
    np.testing.assert_array_equal(res.null_statistics, serial.null_statistics_)


def test_dask_gridsearch_example_runs(capsys):
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    out = capsys.readouterr().out
    assert "torch threads per worker" in out and ": 1" in out
    assert "best:" in out
    p_dask, p_here = (float(v) for v in
                      out.split("p on dask:")[1].split("\n")[0].split("p here:"))
    assert p_dask == p_here
    assert "scored 200000 rows" in out


def test_import_skhyper_does_not_import_dask():
    code = "import skhyper, skhyper.stats, sys; print('dask' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_score_blocks_checks_columns_before_building_the_graph():
    """A wrong width or wrong names fail at the call, not at ``.compute()``."""
    import dask.dataframe as dd
    import pandas as pd

    X = np.random.RandomState(0).normal(size=(60, 3))
    det = IsolationForest(random_state=0).fit(pd.DataFrame(X, columns=["a", "b", "c"]))
    with pytest.raises(ValueError, match="expecting 3 features"):
        score_blocks(det, da.from_array(X[:, :2], chunks=(20, 2)))
    with pytest.raises(ValueError, match="expecting 3 features"):
        score_blocks(det, dd.from_pandas(pd.DataFrame(X[:, :2], columns=["a", "b"]), npartitions=2))
    with pytest.raises(ValueError, match="feature names"):
        score_blocks(det, dd.from_pandas(pd.DataFrame(X, columns=["a", "c", "b"]), npartitions=2))
