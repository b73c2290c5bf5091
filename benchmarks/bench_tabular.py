"""Tabular protocol: the ADBench Classical sets (43 tabular sets).

The split is ``skhyper.datasets.one_class_split`` with seed 0: normal rows
shuffled, 70% (at most 10,000) train; test = the other normals plus every
anomaly (at most 10,000, drawn at random); standardised on the training rows.
Every method of ``skhyper.evaluation`` runs on the same split (SparKer in
reference mode). Results: ``results/tabular.*``, shown in doc/benchmarks.md.

    python benchmarks/bench_tabular.py                       # all 43 sets
    python benchmarks/bench_tabular.py --datasets cardio,thyroid --methods iforest,knn
"""

import sys

import _oneclass

if __name__ == "__main__":
    sys.exit(_oneclass.main(
        "tabular", ["adbench/classical"],
        "ADBench Classical one-class benchmark (tabular protocol)"))
