"""The one place that imports scikit-learn's private helpers.

scikit-learn does not promise these names across releases; if one moves,
this module is the only one to change.
"""

from __future__ import annotations

from numbers import Integral
from typing import Any

import numpy as np
from sklearn.base import _fit_context
from sklearn.utils import _safe_indexing
from sklearn.utils._chunking import get_chunk_n_rows
from sklearn.utils._param_validation import (
    HasMethods,
    StrOptions,
    validate_parameter_constraints,
)
from sklearn.utils._param_validation import Interval as _Interval
from sklearn.utils.validation import _check_sample_weight, _num_samples

__all__ = [
    "RANDOM_STATE",
    "HasMethods",
    "Interval",
    "StrOptions",
    "_check_sample_weight",
    "_fit_context",
    "_num_samples",
    "_safe_indexing",
    "get_chunk_n_rows",
    "validate_parameter_constraints",
]


class Interval(_Interval):
    """scikit-learn's ``Interval``, refusing bools: ``True`` is not the number 1.

    scikit-learn takes ``True`` for ``1`` wherever a number is meant (a bool
    is an ``int``); a flag passed for a count or a rate is a mistake, and the
    parameter error names it.
    """

    def is_satisfied_by(self, val: Any) -> bool:
        return not isinstance(val, (bool, np.bool_)) and super().is_satisfied_by(val)


# scikit-learn's "random_state" constraint, with the seed an int that is not a bool
RANDOM_STATE: list = [None, Interval(Integral, 0, 2**32 - 1, closed="both"), np.random.RandomState]
