"""Tabular protocol (spec/benchmarks.md): the ADBench Classical sets.

    python benchmarks/bench_tabular.py                       # all 43 sets
    python benchmarks/bench_tabular.py --datasets cardio,thyroid --methods iforest,knn
"""

import sys

import _oneclass

if __name__ == "__main__":
    sys.exit(_oneclass.main(
        "tabular", ["adbench/classical"],
        "ADBench Classical one-class benchmark (tabular protocol)"))
