"""Data sets and one-class splits for ``python -m skhyper compare`` and the benchmarks.

A one-class split has training rows that are all normal and labelled test
rows (1 = anomaly). Two rules make them:

- :func:`builtin_split`, for data with a normal mask (the built-in data
  sets): the normal rows are shuffled and 70% train; the test set is the
  other 30% plus anomalies drawn at random, ``anomaly_ratio`` per test
  normal.
- :func:`one_class_split`, for data labelled 0 = normal, 1 = anomaly (files,
  the benchmark protocols): the normal rows are shuffled and 70% (at most
  ``max_train``) train; the test set is the other normals plus every anomaly
  (at most ``max_test`` rows in all, drawn at random); features standardised
  on the training rows.

:func:`load_splits` names the data:

- ``"digits"`` (ships with scikit-learn, no download): one-class digits,
  every digit in turn (or only ``normal_class``); the other nine digits are
  the anomalies; pixels are scaled to [0, 1] (divided by 16);
  :func:`builtin_split`.
- ``"breast_cancer"`` (ships with scikit-learn): benign = normal, malignant
  = anomaly; :func:`builtin_split` with ``n_splits`` shuffles (default 5,
  seeds ``seed, seed + 1, ...``); features standardised on the training set.
- a path to an ``.npz`` file (keys ``X`` and ``y``) or a ``.csv`` file with a
  header and a label column (``label_column``, default the first of
  ``label``, ``y``, ``target``, ``outlier``, ``anomaly``, ``class``). Labels:
  ``{0, 1}`` with 1 = anomaly or ``{-1, +1}`` with -1 = anomaly;
  :func:`one_class_split` with ``n_splits`` shuffles (default 1).

A file that cannot be used raises a ``ValueError`` whose message is one line
naming the file and the problem (the command line prints it as it is, so it
names the command's options where one fixes the problem).
"""

from __future__ import annotations

import csv
import os
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np

from .metrics import as_outlier_labels

__all__ = [
    "OneClassSplit",
    "builtin_split",
    "load_split",
    "load_splits",
    "one_class_split",
    "planted_bump_split",
    "read_labelled_file",
]

SEED = 0
LABEL_CANDIDATES = ("label", "y", "target", "outlier", "anomaly", "class")
_MIN_NORMAL_ROWS = 8
# beyond this a feature's squares overflow float64, so StandardScaler gives NaN
_MAX_STANDARDISABLE = 1e150


@dataclass
class OneClassSplit:
    """A one-class split: training rows (normal only) and labelled test rows.

    Attributes
    ----------
    name : str
        Short name, e.g. ``"digit 3"`` or ``"data.csv seed 1"``.
    protocol : str
        One line saying how the split was made.
    X_train : ndarray of shape (n_train, n_features)
    X_test : ndarray of shape (n_test, n_features)
    y_test : ndarray of shape (n_test,)
        1 = anomaly, 0 = normal.
    """

    name: str
    protocol: str
    X_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray  # 1 = anomaly


# ------------------------------------------------------------------------ splits


def builtin_split(
    X: np.ndarray, normal: np.ndarray, anomaly_ratio: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split for labelled data with a normal mask (the built-in data sets).

    The normal rows are shuffled with ``seed`` and 70% train. The test rows
    are the other 30% plus anomalies drawn at random, ``anomaly_ratio`` per
    test normal (at least one, at most every anomaly).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    normal : ndarray of bool of shape (n_samples,)
        True for the normal rows.
    anomaly_ratio : float
        Test anomalies per test normal.
    seed : int
        Seeds the shuffle and the draw of the anomalies.

    Returns
    -------
    X_train : ndarray of shape (n_train, n_features)
    X_test : ndarray of shape (n_test, n_features)
        The test normals first, then the anomalies.
    y_test : ndarray of shape (n_test,)
        1 = anomaly.

    Examples
    --------
    >>> import numpy as np
    >>> from skhyper.datasets import builtin_split
    >>> X = np.arange(20.0).reshape(-1, 1)
    >>> X_train, X_test, y_test = builtin_split(X, X[:, 0] < 10, 0.5, seed=0)
    >>> len(X_train), len(X_test), int(y_test.sum())
    (7, 5, 2)
    """
    rng = np.random.default_rng(seed)
    idx_n = rng.permutation(np.flatnonzero(normal))
    n_train = int(round(0.7 * len(idx_n)))
    train, test_n = idx_n[:n_train], idx_n[n_train:]
    idx_a = np.flatnonzero(~normal)
    n_a = min(len(idx_a), max(1, int(round(anomaly_ratio * len(test_n)))))
    test_a = rng.choice(idx_a, size=n_a, replace=False)
    test = np.r_[test_n, test_a]
    y_test = np.r_[np.zeros(len(test_n), int), np.ones(n_a, int)]
    return X[train], X[test], y_test


def one_class_split(
    X: np.ndarray,
    y: np.ndarray,
    seed: int = SEED,
    *,
    train_frac: float = 0.7,
    max_train: int = 10_000,
    max_test: int = 10_000,
    standardize: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The tabular / embeddings protocol for data labelled 0 = normal, 1 = anomaly.

    Normal rows are shuffled with ``seed``; the first 70% (at most
    ``max_train``) train. Test = the other normals plus every anomaly; when
    that exceeds ``max_test`` rows, ``max_test`` of them are drawn uniformly
    at random with ``seed`` (the contamination rate is kept in expectation).
    With ``standardize``, a ``StandardScaler`` fitted on the training rows
    transforms both.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
        0 = normal, 1 = anomaly.
    seed : int, default=0
        Seeds the shuffle and the draw of the test rows.
    train_frac : float, default=0.7
        Fraction of the normal rows that train.
    max_train, max_test : int, default=10000
        Caps on the training and test rows.
    standardize : bool, default=True
        Standardise both sets with the training rows' means and deviations.

    Returns
    -------
    X_train : ndarray of shape (n_train, n_features)
    X_test : ndarray of shape (n_test, n_features)
    y_test : ndarray of shape (n_test,)
        1 = anomaly.

    Examples
    --------
    >>> import numpy as np
    >>> from skhyper.datasets import one_class_split
    >>> X = np.arange(40.0).reshape(-1, 2)
    >>> y = (np.arange(20) >= 15).astype(int)
    >>> X_train, X_test, y_test = one_class_split(X, y, seed=0)
    >>> len(X_train), len(X_test), int(y_test.sum())
    (10, 10, 5)
    """
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed)
    normal = rng.permutation(np.flatnonzero(y == 0))
    n_train = min(int(round(train_frac * len(normal))), max_train)
    train = normal[:n_train]
    test = np.r_[normal[n_train:], np.flatnonzero(y == 1)]
    if len(test) > max_test:
        test = np.sort(rng.choice(test, size=max_test, replace=False))
    X_train, X_test = X[train], X[test]
    if standardize:
        scaler = StandardScaler().fit(X_train)
        X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    return X_train, X_test, y[test]


def planted_bump_split(
    seed: int = SEED, *, n_reference: int = 2000, n_data: int = 500, n_bump: int = 15
) -> OneClassSplit:
    """A collective anomaly: a tight bump of rows inside the bulk of the data.

    The reference (``X_train``) is ``n_reference`` rows of a standard normal
    in 4 dimensions; the data (``X_test``) are ``n_data - n_bump`` such rows
    plus ``n_bump`` rows of ``N((1.5, 1.5, 0, 0), 0.1^2 I)``, labelled 1.
    A bump row alone is ordinary (1.5 standard deviations out on two
    features, where normal rows are common); together they are an excess
    of density, which a two-sample test of the data against the reference
    finds and a one-class detector fitted on the reference hardly sees. The
    ``bump`` case of the two-sample benchmarks, smaller.

    Parameters
    ----------
    seed : int, default=0
        Seeds every draw.
    n_reference, n_data, n_bump : int, default=2000, 500, 15
        Rows of the reference, of the data, and of the bump among the data.

    Returns
    -------
    split : OneClassSplit
        ``X_train`` the reference, ``X_test`` the data, ``y_test`` 1 on the
        bump's rows (the last ones).

    Examples
    --------
    >>> from skhyper.datasets import planted_bump_split
    >>> split = planted_bump_split(0)
    >>> split.X_train.shape, split.X_test.shape, int(split.y_test.sum())
    ((2000, 4), (500, 4), 15)
    """
    rng = np.random.default_rng(seed)
    reference = rng.normal(size=(n_reference, 4))
    bump = rng.normal([1.5, 1.5, 0.0, 0.0], 0.1, size=(n_bump, 4))
    data = np.r_[rng.normal(size=(n_data - n_bump, 4)), bump]
    y = np.r_[np.zeros(n_data - n_bump, int), np.ones(n_bump, int)]
    protocol = (
        f"generated: reference {n_reference} rows of N(0, I_4); data {n_data - n_bump} such "
        f"rows + {n_bump} in a bump N((1.5, 1.5, 0, 0), 0.1^2 I) (the anomalies); seed {seed}"
    )
    return OneClassSplit("planted bump", protocol, reference, data, y)


# ------------------------------------------------------------------------- files


def _read_csv(path: str, label_column: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Features and raw labels of a CSV file with a header row."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.reader(fh) if r]
    if len(rows) < 2:
        raise ValueError(f"{path}: needs a header row and at least one data row.")
    header = [h.strip() for h in rows[0]]
    if label_column is None:
        found = [h for h in header if h.lower() in LABEL_CANDIDATES]
        if not found:
            raise ValueError(
                f"{path}: no label column found among {header[:10]}...; "
                "name it with --label-column."
            )
        label_column = found[0]
    if label_column in header:
        li = header.index(label_column)
    elif label_column.lstrip("-").isdigit():
        li = int(label_column)
        if not 0 <= li < len(header):
            raise ValueError(
                f"{path}: --label-column {label_column} is out of range: the file has "
                f"{len(header)} columns (0 to {len(header) - 1})."
            )
    else:
        raise ValueError(f"{path}: no column named {label_column!r} in {header}.")
    body = rows[1:]
    bad = [i for i, r in enumerate(body) if len(r) != len(header)]
    if bad:
        raise ValueError(
            f"{path}: row {bad[0] + 2} has {len(body[bad[0]])} fields, "
            f"the header has {len(header)}."
        )
    feats = [j for j in range(len(header)) if j != li]
    X = np.empty((len(body), len(feats)), dtype=np.float64)
    for i, r in enumerate(body):
        for k, j in enumerate(feats):
            try:
                X[i, k] = float(r[j])
            except ValueError:
                raise ValueError(
                    f"{path}: feature column {header[j]!r} (index {j}) must be numeric; "
                    f"row {i + 2} holds {r[j]!r}. Drop or encode non-numeric columns "
                    "first, or name the label column with --label-column."
                ) from None
    y = np.array([r[li].strip() for r in body])
    try:
        y = y.astype(np.float64)
    except ValueError:
        raise ValueError(
            f"{path}: label column {header[li]!r} must be numeric "
            "(0/1 with 1 = anomaly, or -1/+1 with -1 = anomaly)."
        ) from None
    return X, y


def _read_npz(path: str) -> tuple[np.ndarray, np.ndarray]:
    """``X`` (as float64) and raw ``y`` of an ``.npz`` file."""
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("X", "y") if k not in z.files]
            if missing:
                raise ValueError(f"{path}: missing key(s) {missing}; found {z.files}.")
            return np.asarray(z["X"], dtype=np.float64), np.asarray(z["y"])
    except (zipfile.BadZipFile, EOFError, OSError, TypeError) as exc:
        raise ValueError(f"{path}: not a readable .npz file ({exc}).") from None
    except ValueError as exc:
        if str(exc).startswith(path):
            raise
        raise ValueError(f"{path}: not a readable .npz file ({exc}).") from None


def read_labelled_file(
    path: str, label_column: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Read a labelled ``.npz`` or ``.csv`` file for a one-class split.

    Parameters
    ----------
    path : str
        An ``.npz`` file with keys ``X`` and ``y``, or a ``.csv`` file with a
        header row, numeric feature columns and a numeric label column.
    label_column : str, default=None
        CSV only: the label column's name or integer index; None takes the
        first column named ``label``, ``y``, ``target``, ``outlier``,
        ``anomaly`` or ``class`` (case-insensitive).

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), dtype float64
    y : ndarray of shape (n_samples,)
        1 = anomaly, 0 = normal (from ``{0, 1}`` labels, or ``{-1, +1}`` with
        -1 = anomaly).

    Raises
    ------
    ValueError
        With a one-line message naming the file, when it is missing, of
        another type, unreadable, not numeric, not 2-D, holds NaN or
        infinity, has rows and labels of different lengths, labels other than
        the above, or fewer than 8 normal rows.

    Examples
    --------
    >>> import os, tempfile
    >>> from skhyper.datasets import read_labelled_file
    >>> path = os.path.join(tempfile.mkdtemp(), "d.csv")
    >>> with open(path, "w") as fh:
    ...     _ = fh.write("a,b,label\\n" + "0,1,0\\n" * 9 + "5,5,1\\n")
    >>> X, y = read_labelled_file(path)
    >>> X.shape, int(y.sum())
    ((10, 2), 1)
    """
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such file.")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npz":
        X, y = _read_npz(path)
    elif ext == ".csv":
        try:
            X, y = _read_csv(path, label_column)
        except UnicodeDecodeError:
            raise ValueError(f"{path}: not a UTF-8 text .csv file.") from None
    else:
        raise ValueError(f"{path}: unsupported file type {ext!r} (use .npz or .csv).")
    if X.ndim != 2:
        raise ValueError(f"{path}: X must be 2-D, got shape {X.shape}.")
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{path}: X contains NaN or infinity.")
    huge = np.flatnonzero(np.max(np.abs(X), axis=0, initial=0.0) > _MAX_STANDARDISABLE)
    if huge.size:
        raise ValueError(
            f"{path}: feature column(s) {huge[:5].tolist()} hold values beyond "
            f"{_MAX_STANDARDISABLE:g}, too large to standardise in float64; rescale them."
        )
    y01 = as_outlier_labels(np.asarray(y).ravel())
    if len(y01) != len(X):
        raise ValueError(f"{path}: X has {len(X)} rows but y has {len(y01)}.")
    n_normal = int((y01 == 0).sum())
    if n_normal < _MIN_NORMAL_ROWS:
        raise ValueError(f"{path}: only {n_normal} normal rows.")
    return X, y01


# ---------------------------------------------------------------------- data sets


def _digits_splits(
    normal_class: int | None, anomaly_ratio: float, seed: int
) -> list[OneClassSplit]:
    from sklearn.datasets import load_digits

    if normal_class is not None and not 0 <= int(normal_class) <= 9:
        raise ValueError(f"--normal-class must be a digit 0-9, got {normal_class}.")
    X, t = load_digits(return_X_y=True)
    digits = range(10) if normal_class is None else [int(normal_class)]
    out = []
    for c in digits:
        Xtr, Xte, yte = builtin_split(X / 16.0, t == c, anomaly_ratio, seed)
        protocol = (
            f"sklearn load_digits one-class: digit {c} normal; train = 70% of its "
            f"rows ({len(Xtr)}), test = the other {int((yte == 0).sum())} plus "
            f"{int(yte.sum())} random other digits; pixels / 16; seed {seed}"
        )
        out.append(OneClassSplit(f"digit {c}", protocol, Xtr, Xte, yte))
    return out


def _breast_cancer_splits(
    anomaly_ratio: float, seed: int, n_splits: int
) -> list[OneClassSplit]:
    from sklearn.datasets import load_breast_cancer
    from sklearn.preprocessing import StandardScaler

    X, t = load_breast_cancer(return_X_y=True)
    out = []
    for s in range(seed, seed + n_splits):
        # target 1 = benign (normal), 0 = malignant (anomaly)
        Xtr, Xte, yte = builtin_split(X, t == 1, anomaly_ratio, s)
        scaler = StandardScaler().fit(Xtr)
        protocol = (
            f"sklearn load_breast_cancer: benign normal; train = 70% of benign "
            f"({len(Xtr)}), test = the other {int((yte == 0).sum())} benign plus "
            f"{int(yte.sum())} random malignant; standardised on train; seed {s}"
        )
        out.append(
            OneClassSplit(
                f"breast_cancer seed {s}",
                protocol,
                scaler.transform(Xtr),
                scaler.transform(Xte),
                yte,
            )
        )
    return out


def load_splits(
    dataset: str = "digits",
    *,
    label_column: str | None = None,
    normal_class: int | None = None,
    anomaly_ratio: float = 0.5,
    seed: int = SEED,
    n_splits: int | None = None,
    max_train: int = 10_000,
    max_test: int = 10_000,
) -> list[OneClassSplit]:
    """Load a data set and make the one-class splits described in the module docstring.

    Parameters
    ----------
    dataset : str, default="digits"
        ``"digits"``, ``"breast_cancer"``, or a path to a ``.npz`` / ``.csv`` file.
    label_column : str, default=None
        CSV only: name (or integer index) of the label column.
    normal_class : int, default=None
        ``digits`` only: the one digit that is normal; None runs every digit.
    anomaly_ratio : float, default=0.5
        Built-in data sets: anomalies in the test set per test normal.
    seed : int, default=0
        Seed of the (first) shuffle.
    n_splits : int, default=None
        Shuffles of ``breast_cancer`` and files (seeds ``seed, seed + 1, ...``);
        None: 5 for ``breast_cancer``, 1 for a file.
    max_train, max_test : int, default=10000
        Caps for ``.npz`` / ``.csv`` data.

    Returns
    -------
    splits : list of OneClassSplit

    Raises
    ------
    ValueError
        With a one-line message, for an unknown data set, a digit outside
        0-9, or a file :func:`read_labelled_file` rejects.

    Examples
    --------
    >>> from skhyper.datasets import load_splits
    >>> splits = load_splits("breast_cancer", n_splits=2)
    >>> [s.name for s in splits]
    ['breast_cancer seed 0', 'breast_cancer seed 1']
    >>> splits[0].X_train.shape, int(splits[0].y_test.sum())
    ((250, 30), 54)
    """
    if dataset == "digits":
        return _digits_splits(normal_class, anomaly_ratio, seed)
    if dataset == "breast_cancer":
        return _breast_cancer_splits(anomaly_ratio, seed, 5 if n_splits is None else n_splits)
    if not os.path.isfile(dataset):
        raise ValueError(
            f"--dataset {dataset!r}: not 'digits', 'breast_cancer' or an existing .npz / .csv file."
        )
    X, y01 = read_labelled_file(dataset, label_column)
    name = os.path.basename(dataset)
    out = []
    for s in range(seed, seed + (1 if n_splits is None else n_splits)):
        Xtr, Xte, yte = one_class_split(X, y01, s, max_train=max_train, max_test=max_test)
        protocol = (
            f"{name}: normal rows shuffled (seed {s}), 70% train ({len(Xtr)}); test = "
            f"other normals + anomalies ({len(Xte)} rows, {int(yte.sum())} anomalies); "
            "standardised on train"
        )
        out.append(
            OneClassSplit(
                name if n_splits in (None, 1) else f"{name} seed {s}", protocol, Xtr, Xte, yte
            )
        )
    return out


def load_split(dataset: str = "digits", **kwargs: Any) -> OneClassSplit:
    """The first split of :func:`load_splits` (digit 0 for ``"digits"``).

    Parameters
    ----------
    dataset : str, default="digits"
        As in :func:`load_splits`.
    **kwargs : dict
        The other parameters of :func:`load_splits`.

    Returns
    -------
    split : OneClassSplit
    """
    if dataset == "digits" and kwargs.get("normal_class") is None:
        kwargs["normal_class"] = 0
    return load_splits(dataset, **kwargs)[0]
