"""
GridSearchCV, SparKer's toys and blockwise scoring on a dask cluster
====================================================================

Three things run on dask workers without changing the estimators:

1. a ``GridSearchCV`` over skhyper detectors and IsolationForest, under
   ``joblib.parallel_config(backend="dask")``;
2. SparKer's null toys (``n_jobs``), which give the same p-value as on one
   process, because each toy is seeded by its index;
3. :func:`skhyper.dask.score_blocks`, which scores a dask array chunk by
   chunk on the workers.

Each worker runs one task at a time with one torch / BLAS thread
(``threads_per_worker=1``, the thread variables in ``env`` and
``client.run(torch.set_num_threads, 1)``), so that two workers on two cores
do not oversubscribe them: with two torch threads each, the same toys ran
eight times slower here. Here the cluster is a
``LocalCluster``; on a real cluster connect to its scheduler instead::

    client = Client("tcp://scheduler-address:8786")

and keep the rest. Run it with ``python dask_gridsearch.py``
(``pip install -e ".[dask]"``).
"""

import joblib
import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from skhyper import CompVAEDetector, SparKerDetector
from skhyper.metrics import outlier_roc_auc_scorer

ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def main() -> None:
    import dask.array as da
    from distributed import Client, LocalCluster

    from skhyper.dask import score_blocks

    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, env=ONE_THREAD,
        dashboard_address=":0",
    )
    with cluster, Client(cluster) as client:
        import torch

        # a worker may have imported torch before ``env`` applied: set it there too
        client.run(torch.set_num_threads, 1)
        print("torch threads per worker:", client.run(torch.get_num_threads))

        # -- 1. a search over detectors, fitted on the workers ----------------
        rng = np.random.RandomState(0)
        X = np.r_[rng.normal(size=(300, 6)), rng.uniform(-6, 6, size=(15, 6))]
        y = np.r_[np.zeros(300), np.ones(15)]  # 1 = outlier, used only to score folds
        pipe = Pipeline([("scale", StandardScaler()), ("det", IsolationForest())])
        grid = [
            {"det": [CompVAEDetector(epochs=20, random_state=0)],
             "det__latent_dim": [4, 8]},
            {"det": [IsolationForest(random_state=0)], "det__n_estimators": [50, 200]},
        ]
        search = GridSearchCV(
            pipe, grid, scoring=outlier_roc_auc_scorer, n_jobs=-1,
            cv=StratifiedKFold(n_splits=3, shuffle=True, random_state=0),
        )
        with joblib.parallel_config(backend="dask"):
            search.fit(X, y)
        print("best:", search.best_params_["det"].__class__.__name__,
              round(search.best_score_, 3))

        # -- 2. SparKer's null toys on the workers ------------------------------
        reference = rng.normal(size=(4000, 4))
        data = np.r_[rng.normal(size=(970, 4)),
                     rng.normal([1.5, 1.5, 0, 0], 0.1, size=(30, 4))]
        params = dict(n_permutations=50, random_state=0)
        with joblib.parallel_config(backend="dask"):
            on_dask = SparKerDetector(n_jobs=-1, **params).fit(data, X_ref=reference)
        here = SparKerDetector(n_jobs=1, **params).fit(data, X_ref=reference)
        print("p on dask:", on_dask.pvalue_, " p here:", here.pvalue_)

        # -- 3. scoring a large array block by block ----------------------------
        big = da.random.RandomState(1).normal(size=(200_000, 4), chunks=(50_000, 4))
        scores = score_blocks(here, big, method="score_samples")
        print("scored", scores.shape[0], "rows; lowest score", float(scores.min().compute()))


if __name__ == "__main__":
    main()
