"""Tests for ``python -m skhyper compare`` with tiny settings."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest

from skhyper.__main__ import main as skhyper_main
from skhyper.compare import format_table, load_compare_data, main, run_compare


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def test_digits_quick_with_plot_and_csv(tmp_path, capsys):
    png, out = tmp_path / "roc.png", tmp_path / "res.csv"
    rc = main(
        ["--quick", "--methods", "iforest,knn", "--plot", str(png), "--output", str(out)]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "load_digits one-class" in captured.out
    assert "--quick" in captured.out
    assert "IsolationForest" in captured.out and "AUROC" in captured.out
    assert "[1/2] IsolationForest" in captured.err  # progress
    if _has("matplotlib"):
        assert png.stat().st_size > 0
    text = out.read_text().splitlines()
    assert text[0].startswith("dataset,method,auroc,ap,fpr95,fit_s,score_s")
    assert len(text) == 1 + 2 * 2  # --quick: two splits, two methods


def test_default_run_is_every_digit_with_peers_and_spread(capsys, monkeypatch, tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib.figure

    scales = []
    monkeypatch.setattr(
        matplotlib.figure.Figure,
        "savefig",
        lambda fig, *a, **k: scales.extend(ax.get_xscale() for ax in fig.axes if ax.get_visible()),
    )
    rc = main(["--epochs", "2", "--n-permutations", "3", "--plot", str(tmp_path / "r.png")])
    out, err = capsys.readouterr()
    assert rc == 0, err
    for d in range(10):
        assert f"split {d + 1}/10: digit {d}" in err  # a progress line per split...
    assert err.count("[6/6] kNN (k=5)") == 10  # ...and per method
    table = out.split("method", 1)[1]
    for name in ("CompVAEDetector", "VMFDetector", "SparKerDetector (reference mode)",
                 "IsolationForest", "LOF (novelty)", "kNN (k=5)"):
        assert name in table
    assert "±" in table and "over 10 splits" in table
    assert "sees the test set" in out and "median p =" in out
    assert scales and set(scales) == {"log"}


def test_plot_fails_soft_without_matplotlib(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    png = tmp_path / "roc.png"
    rc = main(["--quick", "--methods", "iforest", "--plot", str(png)])
    assert rc == 0
    assert "matplotlib is not installed" in capsys.readouterr().out
    assert not png.exists()


def test_npz_and_csv_inputs(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(size=(120, 3)), rng.normal(4.0, 1.0, size=(12, 3))]
    y = np.r_[np.zeros(120, int), np.ones(12, int)]
    npz = tmp_path / "d.npz"
    np.savez(npz, X=X, y=y)
    res = tmp_path / "r.json"
    assert main(["--dataset", str(npz), "--methods", "iforest", "--output", str(res)]) == 0
    rows = json.loads(res.read_text())["results"]
    assert rows[0]["label"] == "IsolationForest" and rows[0]["auroc"] > 0.9

    csv_path = tmp_path / "d.csv"
    lines = ["a,b,is_out,c"] + [
        f"{r[0]},{r[1]},{-1 if t else 1},{r[2]}" for r, t in zip(X, y)
    ]
    csv_path.write_text("\n".join(lines) + "\n")
    rc = main(["--dataset", str(csv_path), "--label-column", "is_out", "--methods", "knn"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "3 features" in out and "12 anomalies" in out


def _exit_code(argv):
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's own errors
        return exc.code


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--methods", "nope"], "unknown method"),
        (["--dataset", "missing.npz"], "not 'digits'"),
        (["--normal-class", "12"], "digit 0-9"),
        (["--max-test", "-5"], "--max-test: must be at least"),
        (["--epochs", "0"], "--epochs: must be at least 1"),
        (["--anomaly-ratio", "-1"], "positive number"),
        (["--seed", "x"], "not an integer"),
        (["--output", "/no/such/folder/r.csv"], "does not exist"),
        (["--output", "{tmp}"], "is a folder"),
        (["--output", "{tmp}/r.txt"], ".csv or .json"),
        (["--plot", "{tmp}/roc.xyz", "--output", "{tmp}/r.csv"], "unsupported image type"),
        (["--plot", "/no/such/folder/roc.png"], "does not exist"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(argv, message, capsys, tmp_path):
    if any("roc.xyz" in a for a in argv):
        pytest.importorskip("matplotlib")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert _exit_code(argv) == 2
    out, err = capsys.readouterr()
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "split 1/" not in err  # rejected before any model was fitted
    assert not (tmp_path / "r.csv").exists()


def test_corrupt_npz_and_out_of_range_label_column_exit_2(tmp_path, capsys):
    bad = tmp_path / "d.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip archive")
    assert main(["--dataset", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "not a readable .npz file" in err and len(err.strip().splitlines()) == 1
    p = tmp_path / "d.csv"
    p.write_text("a,b,label\n1,2,0\n" * 20)
    for column in ("3", "-1"):
        assert main(["--dataset", str(p), "--label-column", column]) == 2
        err = capsys.readouterr().err
        assert "out of range" in err and len(err.strip().splitlines()) == 1


def test_results_are_written_before_a_failing_plot(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    import matplotlib.figure

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", boom)
    out = tmp_path / "r.json"
    rc = main(["--quick", "--methods", "iforest", "--plot", str(tmp_path / "r.png"),
               "--output", str(out)])
    assert rc == 0
    assert json.loads(out.read_text())["results"][0]["label"] == "IsolationForest"
    assert "could not write" in capsys.readouterr().out


def test_csv_without_label_column_names_the_problem(tmp_path, capsys):
    p = tmp_path / "d.csv"
    p.write_text("a,b\n1,2\n3,4\n")
    assert main(["--dataset", str(p)]) == 2
    assert "--label-column" in capsys.readouterr().err


def test_failed_method_is_reported_not_fatal():
    data = load_compare_data("breast_cancer")
    res = run_compare(data, ["iforest"], progress=None)
    assert not res[0].error and 0.5 < res[0].auroc <= 1.0
    res[0].error = "boom"
    assert "boom" in format_table(res)


@pytest.mark.skipif(not _has("skhyper.compvae"), reason="skhyper.compvae not present")
def test_compvae_and_vmf_quick(capsys):
    rc = main(["--quick", "--epochs", "2", "--methods", "compvae,vmf,iforest"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "CompVAEDetector" in out and "VMFDetector" in out
    # the output says which network and score the VAE rows use
    settings = next(line for line in out.splitlines() if line.startswith("settings:"))
    assert "MLP on the flat rows" in settings and "anomaly_score='combined'" in settings
    assert "CompVAE, reconstruction score" in out


@pytest.mark.skipif(not _has("skhyper.sparker"), reason="skhyper.sparker not present")
def test_sparker_reference_mode_quick(capsys):
    rc = main(["--quick", "--n-permutations", "5", "--methods", "sparker"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "SparKerDetector (reference mode)" in out and "p =" in out


def test_module_entry_point(capsys):
    assert skhyper_main([]) == 2
    assert skhyper_main(["--help"]) == 0
    assert "compare" in capsys.readouterr().out
    assert skhyper_main(["frobnicate"]) == 2
    proc = subprocess.run(
        [sys.executable, "-m", "skhyper", "compare", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0
    assert "--label-column" in proc.stdout
