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
    assert len(text) == 3


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


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--methods", "nope"], "unknown method"),
        (["--dataset", "missing.npz"], "not 'digits'"),
        (["--normal-class", "12"], "digit 0-9"),
    ],
)
def test_bad_arguments_exit_2(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


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


@pytest.mark.skipif(not _has("skhyper.sparker"), reason="skhyper.sparker not present")
def test_sparker_reference_mode_quick(capsys):
    rc = main(["--quick", "--n-permutations", "5", "--methods", "sparker"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "SparKer two-sample test" in out and "p =" in out


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
