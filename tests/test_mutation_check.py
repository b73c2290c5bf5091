"""The mutation check's own report: no kill rate over mutants it did not run.

The script is loaded from ``benchmarks/``; its test runs are replaced by a
fake ``run_tests`` (no pytest is started), and the copy of the repository by
a tiny folder holding the one file the fake mutants change.
"""

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "mutation_check.py"


@pytest.fixture
def mc(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("mutation_check_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    # its dataclass looks its module up there
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)

    def copy_repository(target):
        repo = tmp_path / "repo"
        (repo / "pkg").mkdir(parents=True)
        (repo / "pkg" / "m.py").write_text("a = 1\nb = 2\n")
        return repo

    monkeypatch.setattr(module, "copy_repository", copy_repository)
    monkeypatch.setattr(module, "check_imported_from", lambda repo: None)
    return module


def mutant(mc, name, original, tests=("tests/test_a.py",)):
    return mc.Mutation(name, "pkg/m.py", original, original + "0", "a changed constant", tests)


def fake_runs(monkeypatch, mc, results):
    """``run_tests`` answers ``results[(test file, text of pkg/m.py)]``; calls are recorded."""
    calls = []

    def run_tests(repo, tests, timeout):
        text = (repo / "pkg" / "m.py").read_text()
        calls.append((tests, text))
        return results(tests, text), 1.0, "1 passed\n"

    monkeypatch.setattr(mc, "run_tests", run_tests)
    return calls


def kill_rates(text):
    return [line for line in text.splitlines() if line.startswith("kill rate")]


@pytest.mark.parametrize("baseline", ["failed", "timeout"])
def test_failing_baseline_stops_without_a_kill_rate(mc, monkeypatch, capsys, baseline):
    monkeypatch.setattr(mc, "MUTATIONS", (
        mutant(mc, "a-changed", "a = 1", ("tests/test_a.py",)),
        mutant(mc, "b-changed", "b = 2", ("tests/test_b.py",)),
    ))
    unmutated = "a = 1\nb = 2\n"
    # test_b fails (or times out) on the unmutated copy; every mutant would be killed
    calls = fake_runs(monkeypatch, mc, lambda tests, text: (
        baseline if text == unmutated and tests == ("tests/test_b.py",)
        else "passed" if text == unmutated else "failed"))

    assert mc.main([]) == 2
    out, err = capsys.readouterr()
    assert not kill_rates(out + err)
    assert "%" not in out + err
    assert "BASELINE FAILED: tests/test_b.py" in err
    assert "not counted: b-changed (baseline fails)" in err
    # only the two baseline runs: no mutant was run against a broken baseline
    assert [tests for tests, _ in calls] == [("tests/test_a.py",), ("tests/test_b.py",)]


def test_mutant_not_found_is_not_counted_and_no_rate(mc, monkeypatch, capsys):
    monkeypatch.setattr(mc, "MUTATIONS", (
        mutant(mc, "a-changed", "a = 1"),
        mutant(mc, "gone", "c = 3"),  # the code moved on: text not found
    ))
    fake_runs(monkeypatch, mc, lambda tests, text: "passed" if text == "a = 1\nb = 2\n"
              else "failed")

    assert mc.main(["--skip-baseline"]) == 1
    out = capsys.readouterr().out
    assert not kill_rates(out)
    assert "%" not in out.split("\n\n")[-1]
    assert "no kill rate: 1 of 2 mutants not counted (1 killed, 0 survived of 1 run)" in out
    assert "not counted: gone (not applicable: text found 0 times)" in out


def test_every_mutant_run_gives_the_rate_and_survivors_fail(mc, monkeypatch, capsys):
    monkeypatch.setattr(mc, "MUTATIONS", (
        mutant(mc, "a-changed", "a = 1"),
        mutant(mc, "b-changed", "b = 2"),
    ))
    # the tests notice a's change, not b's
    calls = fake_runs(monkeypatch, mc, lambda tests, text: "failed" if "a = 10" in text
                      else "passed")

    assert mc.main([]) == 1
    out = capsys.readouterr().out
    assert kill_rates(out) == ["kill rate: 1/2 = 50%"]
    assert "survivors: b-changed" in out
    assert "not counted" not in out
    # each mutant ran on its mutated file, and the file was put back after it
    texts = [text for _, text in calls]
    assert texts == ["a = 1\nb = 2\n", "a = 10\nb = 2\n", "a = 1\nb = 20\n"]


def test_all_killed_exits_zero(mc, monkeypatch, capsys):
    monkeypatch.setattr(mc, "MUTATIONS", (mutant(mc, "a-changed", "a = 1"),))
    fake_runs(monkeypatch, mc, lambda tests, text: "passed" if text == "a = 1\nb = 2\n"
              else "timeout")

    assert mc.main([]) == 0
    assert kill_rates(capsys.readouterr().out) == ["kill rate: 1/1 = 100%"]
