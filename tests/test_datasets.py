"""Tests for skhyper.datasets: labelled files, the built-in data sets and their splits."""

from __future__ import annotations

import numpy as np
import pytest

from skhyper import compare
from skhyper.datasets import (
    OneClassSplit,
    _read_csv,
    _read_npz,
    load_split,
    load_splits,
    read_labelled_file,
)


def _rows(n_normal=20, n_anomaly=4, seed=0):
    rng = np.random.default_rng(seed)
    X = np.r_[rng.normal(size=(n_normal, 3)), rng.normal(5.0, 1.0, size=(n_anomaly, 3))]
    y = np.r_[np.zeros(n_normal, int), np.ones(n_anomaly, int)]
    return X, y


def _write_csv(path, header, X, labels, label_at):
    lines = [",".join(header)]
    for row, lab in zip(X, labels):
        cells = [repr(float(v)) for v in row]
        cells.insert(label_at, str(lab))
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ------------------------------------------------------------------------- CSV / NPZ


@pytest.mark.parametrize(
    "header, label_at, label_column",
    [
        (["a", "b", "Label", "c"], 2, None),  # found by name, case-insensitive
        (["target", "a", "b", "c"], 0, None),
        (["a", "b", "is_out", "c"], 2, "is_out"),  # named
        (["a", "b", "c", "w"], 3, "3"),  # by index
    ],
)
def test_csv_label_column_is_found_and_dropped_from_features(
    tmp_path, header, label_at, label_column
):
    X, y = _rows()
    path = _write_csv(tmp_path / "d.csv", header, X, y, label_at)
    X_read, y_read = read_labelled_file(str(path), label_column)
    np.testing.assert_allclose(X_read, X)
    np.testing.assert_array_equal(y_read, y)
    assert X_read.dtype == np.float64


def test_csv_minus_one_is_the_anomaly(tmp_path):
    X, y = _rows()
    path = _write_csv(tmp_path / "d.csv", ["a", "b", "y", "c"], X, np.where(y == 1, -1, 1), 2)
    _, y_read = read_labelled_file(str(path))
    np.testing.assert_array_equal(y_read, y)


def test_npz_reading(tmp_path):
    X, y = _rows()
    path = tmp_path / "d.npz"
    np.savez(path, X=X.astype(np.float32), y=np.where(y == 1, -1, 1))
    X_read, y_read = read_labelled_file(str(path))
    np.testing.assert_allclose(X_read, X.astype(np.float32))
    assert X_read.dtype == np.float64
    np.testing.assert_array_equal(y_read, y)
    # the raw readers keep the labels as stored
    assert set(_read_npz(str(path))[1]) == {-1, 1}


def test_raw_csv_reader_keeps_raw_labels(tmp_path):
    X, y = _rows()
    path = _write_csv(tmp_path / "d.csv", ["a", "label", "b", "c"], X, 1 - 2 * y, 1)
    assert set(_read_csv(str(path), None)[1]) == {-1.0, 1.0}


def _bad_files(tmp_path):
    """(path, label_column, words of the message) for each kind of unusable file."""
    X, y = _rows()
    out = []

    def text(name, body, label_column=None, words="", encoding="utf-8"):
        p = tmp_path / name
        p.write_bytes(body.encode(encoding) if isinstance(body, str) else body)
        out.append((p, label_column, words))

    text("header_only.csv", "a,b,label\n", words="needs a header row")
    text("ragged.csv", "a,b,label\n1,2,0\n1,2\n", words="row 3 has 2 fields")
    text("words.csv", "a,b,label\n1,x,0\n" * 2, words="must be numeric")
    text("labels.csv", "a,b,label\n1,2,no\n", words="label column 'label' must be numeric")
    text("nolabel.csv", "a,b\n1,2\n", words="no label column found")
    text("named.csv", "a,b,label\n1,2,0\n", label_column="cls", words="no column named 'cls'")
    text("index.csv", "a,b,label\n1,2,0\n", label_column="7", words="out of range")
    text("latin1.csv", "a,é,label\n1,2,0\n", words="not a UTF-8", encoding="latin-1")
    text("data.txt", "a,b,label\n1,2,0\n", words="unsupported file type '.txt'")
    text("corrupt.npz", b"PK\x03\x04 not a zip", words="not a readable .npz file")
    np.savez(tmp_path / "nokey.npz", X=X)
    out.append((tmp_path / "nokey.npz", None, "missing key(s) ['y']"))
    np.savez(tmp_path / "three_d.npz", X=X.reshape(len(X), 3, 1), y=y)
    out.append((tmp_path / "three_d.npz", None, "X must be 2-D"))
    Xn = X.copy()
    Xn[0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", X=Xn, y=y)
    out.append((tmp_path / "nan.npz", None, "NaN or infinity"))
    np.savez(tmp_path / "lengths.npz", X=X, y=y[:-1])
    out.append((tmp_path / "lengths.npz", None, f"X has {len(X)} rows but y has {len(y) - 1}"))
    np.savez(tmp_path / "few.npz", X=X[13:], y=y[13:])
    out.append((tmp_path / "few.npz", None, "only 7 normal rows"))
    out.append((tmp_path / "missing.csv", None, "no such file"))
    return out


def test_bad_files_raise_one_line_naming_the_file(tmp_path):
    for path, label_column, words in _bad_files(tmp_path):
        with pytest.raises(ValueError) as info:
            read_labelled_file(str(path), label_column)
        message = str(info.value)
        assert message.startswith(f"{path}: "), message
        assert words in message, (path.name, message)
        assert "\n" not in message


# -------------------------------------------------------------------- data sets


def test_file_splits_follow_the_file_protocol(tmp_path):
    X, y = _rows(n_normal=50, n_anomaly=10)
    path = tmp_path / "d.npz"
    np.savez(path, X=X, y=y)
    splits = load_splits(str(path), n_splits=2, seed=3)
    assert [s.name for s in splits] == ["d.npz seed 3", "d.npz seed 4"]
    for s in splits:
        assert isinstance(s, OneClassSplit)
        assert len(s.X_train) == 35 and len(s.X_test) == 15 + 10
        assert int(s.y_test.sum()) == 10
        # standardised on the training rows
        np.testing.assert_allclose(s.X_train.mean(axis=0), 0, atol=1e-12)
        assert "70% train (35)" in s.protocol
    assert not np.array_equal(splits[0].X_train, splits[1].X_train)
    (one,) = load_splits(str(path), max_test=12)
    assert one.name == "d.npz" and len(one.X_test) == 12


def test_builtin_data_sets():
    digits = load_splits("digits")
    assert [s.name for s in digits] == [f"digit {c}" for c in range(10)]
    assert all(s.X_train.max() <= 1.0 for s in digits)  # pixels / 16
    first = load_split("digits")
    assert first.name == "digit 0"
    np.testing.assert_array_equal(first.X_test, digits[0].X_test)
    (three,) = load_splits("digits", normal_class=3, anomaly_ratio=1.0)
    assert int(three.y_test.sum()) == int((three.y_test == 0).sum())
    cancer = load_splits("breast_cancer")
    assert [s.name for s in cancer] == [f"breast_cancer seed {s}" for s in range(5)]
    assert load_split("breast_cancer", seed=2).name == "breast_cancer seed 2"


@pytest.mark.parametrize(
    "dataset, kwargs, words",
    [
        ("digits", {"normal_class": 10}, "digit 0-9"),
        ("nowhere.csv", {}, "not 'digits', 'breast_cancer' or an existing"),
    ],
)
def test_bad_data_set_names(dataset, kwargs, words):
    with pytest.raises(ValueError, match=words):
        load_splits(dataset, **kwargs)


def test_compare_keeps_its_names():
    assert compare.load_compare_data is load_split
    assert compare.load_compare_splits is load_splits
    assert compare.CompareData is OneClassSplit
    assert compare._read_csv is _read_csv and compare._read_npz is _read_npz


def test_a_column_too_large_to_standardise_is_one_clear_error(tmp_path):
    """A 1e300 column used to reach every method as 'Input X contains NaN'."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    X[:, 2] *= 1e300
    path = tmp_path / "huge.csv"
    body = [",".join(map(repr, map(float, r))) + f",{int(i >= 36)}" for i, r in enumerate(X)]
    rows = ["a,b,c,label", *body]
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(ValueError, match=r"column\(s\) \[2\].*too large to standardise"):
        compare.load_compare_data(str(path))
