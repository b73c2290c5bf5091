"""Generated mutation check: single-line mutants made mechanically over five areas.

``mutation_check.py`` holds mutants written by hand for the changes the project
planned for. This script makes the others mechanically, with Python's ``ast``,
from the current text of the files of five areas: the SparKer engine, CompVAE's
training, the plain-state serialisation, the ONNX export and the attribution
(integrated gradients). Over each file it makes

* ``cmp``: every comparison operator negated (``<`` and ``>=``, ``<=`` and ``>``,
  ``==`` and ``!=``, ``is`` and ``is not``, ``in`` and ``not in``), one operator
  of a chain at a time;
* ``const``: every numeric constant doubled and halved (``0`` becomes ``1``;
  an int ``n`` becomes ``2n`` and ``n // 2``);
* ``if``: every ``if`` / ``elif`` / ``while`` / conditional-expression condition
  forced ``True`` and forced ``False``;
* ``bool``: every ``True`` / ``False`` constant negated.

A mutant changes the text of one node in place (a multi-line condition is
replaced as a whole); one whose tree equals the original's (``0.0 / 2``) or
another mutant's is dropped. Left out, as they change what a message or a
warning's frame says and not what is computed: constants inside ``raise``
statements, ``warnings.warn`` calls and f-strings, ``stacklevel=`` values, and
docstrings and annotations.

Each mutant's id is ``path:line:kind`` (``kind`` e.g. ``cmp:<->=``,
``const:0.5->1.0``, ``if:True``, ``bool:False->True``; a ``#n`` suffix tells
apart equal kinds on one line). Mutants come in file, line and column order, so
``--sample N --seed S`` (stratified: N split evenly over the areas, the rest of
an area's share going to others) draws the same set for the same tree.

The run reuses ``mutation_check.py``'s machinery: the working tree is copied once
(without history or caches) into a temporary folder, each mutant is written
there, the area's test files run in the copy with ``pytest -x -q`` on one thread
under a time limit, and the file is put back; the repository is never written
to. The area's test files are first run on the unmutated copy, and the run stops
if they fail there. Killed: the tests fail, error or run past the limit;
survived: they pass.

    python benchmarks/generated_mutants.py --list              # every mutant, not run
    python benchmarks/generated_mutants.py --count             # how many per area
    python benchmarks/generated_mutants.py --sample 200 --seed 0
    python benchmarks/generated_mutants.py --areas export --only 'skhyper/export.py:275:if:True'
    python benchmarks/generated_mutants.py --rerun survivors.txt   # ids, one a line

The summary gives the kill rate per area and overall and lists the survivors;
``--markdown PATH`` writes the table there too.
"""

from __future__ import annotations

import argparse
import ast
import io
import random
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mutation_check import (  # noqa: E402
    ROOT,
    check_imported_from,
    copy_repository,
    first_failure,
    last_line,
    run_tests,
)


@dataclass(frozen=True)
class Area:
    name: str
    # path -> names of the top-level functions or classes (or Class.method) mutated; None: all
    files: dict[str, tuple[str, ...] | None]
    tests: tuple[str, ...]


AREAS: tuple[Area, ...] = (
    Area(
        "sparker",
        {"skhyper/_sparker/kernels.py": None, "skhyper/_sparker/twosample.py": None},
        ("tests/test_kernels_pins.py", "tests/test_sparker_pinning.py", "tests/test_sparker.py",
         "tests/test_sparker_api.py"),
    ),
    Area(
        "training",
        {
            "skhyper/_vae/training.py": None,
            "skhyper/compvae.py": ("CompVAEDetector._fit", "CompVAEDetector._validation_split"),
        },
        ("tests/test_training_pins.py", "tests/test_training.py",
         # test_compvae.py's tests of the fit (the whole file takes two minutes)
         *(f"tests/test_compvae.py::{name}" for name in (
             "test_reconstruction_and_combined_scores",
             "test_planted_manifold_anomalies_are_found",
             "test_same_random_state_gives_identical_scores",
             "test_history_and_progress",
             "test_early_stopping_ends_training_on_the_held_out_rows",
             "test_early_stopping_never_trains_on_its_validation_rows",
             "test_validation_split_partitions_the_rows",
             "test_no_early_stopping_without_two_rows_to_hold_out",
             "test_class_conditional_classes_gather_on_their_axes",
             "test_class_conditional_errors",
             "test_ensemble_members_differ_and_their_standardised_scores_are_averaged",
             "test_image_shape_chooses_the_conv_net_and_rows_the_mlp",
         ))),
    ),
    Area(
        "serialization",
        {"skhyper/_utils/serialization.py": None, "skhyper/persistence.py": None},
        ("tests/test_serialization_pins.py", "tests/test_persistence.py"),
    ),
    Area(
        "export",
        {"skhyper/export.py": None},
        ("tests/test_export_pins.py", "tests/test_export.py"),
    ),
    Area(
        "attribution",
        {"skhyper/_utils/attribution.py": None},
        ("tests/test_attribution_pins.py", "tests/test_explain.py"),
    ),
)


@dataclass(frozen=True)
class Mutant:
    id: str
    area: str
    path: str
    line: int
    kind: str
    original: str  # the whole source text of the file
    mutated: str

    @property
    def change(self) -> tuple[str, str]:
        """The first line that differs: (original, mutated), stripped."""
        pairs = zip(self.original.splitlines(), self.mutated.splitlines())
        return next(((a.strip(), b.strip()) for a, b in pairs if a != b), ("", ""))

    def tests(self, repo: Path) -> tuple[str, ...]:
        """The area's test files (or test ids) that exist in ``repo``."""
        area = next(a for a in AREAS if a.name == self.area)
        return tuple(t for t in area.tests if (repo / t.split("::")[0]).exists())


NEGATED = {
    ast.Lt: ast.GtE, ast.GtE: ast.Lt, ast.Gt: ast.LtE, ast.LtE: ast.Gt,
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
    ast.In: ast.NotIn, ast.NotIn: ast.In,
}
SYMBOL = {
    ast.Lt: "<", ast.GtE: ">=", ast.Gt: ">", ast.LtE: "<=", ast.Eq: "==", ast.NotEq: "!=",
    ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in",
}


def _numbers(value: int | float) -> list[int | float]:
    """What a numeric constant becomes: doubled and halved (0 -> 1; ints stay ints)."""
    if isinstance(value, int):
        out = [1] if value == 0 else [value * 2, value // 2]
    else:
        out = [1.0] if value == 0.0 else [value * 2, value / 2]
    return [v for v in dict.fromkeys(out) if v != value or type(v) is not type(value)]


class _Spans(ast.NodeVisitor):
    """Collect (node, kind, replacement text) for every mutable node in the selected code."""

    def __init__(self, lines: list[str], selected: tuple[str, ...] | None) -> None:
        self.lines = lines
        self.selected = selected
        self.found: list[tuple[int, int, int, int, str, str]] = []
        self._scope: list[str] = []
        self._skip = 0  # inside a raise, a warnings.warn call or an annotation

    # -- what is in scope ---------------------------------------------------------
    def _in_selection(self) -> bool:
        if self.selected is None:
            return True
        name = ".".join(self._scope)
        return any(name == s or name.startswith(s + ".") for s in self.selected)

    def _scoped(self, node: ast.AST, name: str) -> None:
        self._scope.append(name)
        self.generic_visit(node)
        self._scope.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        for dec in node.decorator_list:
            self.visit(dec)
        self._scope.append(node.name)
        self._skip += 1
        for a in (*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs,
                  node.args.vararg, node.args.kwarg):
            if a is not None and a.annotation is not None:
                self.visit(a.annotation)
        if node.returns is not None:
            self.visit(node.returns)
        self._skip -= 1
        for d in (*node.args.defaults, *node.args.kw_defaults):
            if d is not None:
                self.visit(d)
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]  # the docstring
        for stmt in body:
            self.visit(stmt)
        self._scope.pop()

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._scoped(node, node.name)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._skip += 1
        self.visit(node.annotation)
        self._skip -= 1
        if node.value is not None:
            self.visit(node.value)

    def visit_Raise(self, node: ast.Raise) -> None:
        self._skip += 1
        self.generic_visit(node)
        self._skip -= 1

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        self._skip += 1  # an f-string: a message or a name
        self.generic_visit(node)
        self._skip -= 1

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "warn":
            self._skip += 1
            self.generic_visit(node)
            self._skip -= 1
            return
        self.visit(func)
        for arg in node.args:
            self.visit(arg)
        for kw in node.keywords:
            if kw.arg != "stacklevel":
                self.visit(kw.value)

    # -- the mutants ----------------------------------------------------------------
    def _add(self, node: ast.AST, kind: str, text: str) -> None:
        if self._skip or not self._in_selection():
            return
        self.found.append((node.lineno, node.col_offset, node.end_lineno, node.end_col_offset,
                           kind, text))

    def visit_Compare(self, node: ast.Compare) -> None:
        for i, op in enumerate(node.ops):
            flipped = NEGATED[type(op)]()
            new = ast.Compare(left=node.left, ops=[*node.ops[:i], flipped, *node.ops[i + 1:]],
                              comparators=node.comparators)
            kind = f"cmp:{SYMBOL[type(op)]}->{SYMBOL[type(flipped)]}".replace(" ", "_")
            self._add(node, kind, f"({ast.unparse(new)})")
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        value = node.value
        if isinstance(value, bool):
            self._add(node, f"bool:{value}->{not value}", repr(not value))
        elif isinstance(value, (int, float)) and not isinstance(value, complex):
            for new in _numbers(value):
                self._add(node, f"const:{value!r}->{new!r}", repr(new))

    def _condition(self, test: ast.expr) -> None:
        self._add(test, "if:True", "True")
        self._add(test, "if:False", "False")

    def visit_If(self, node: ast.If) -> None:
        self._condition(node.test)
        self.generic_visit(node)

    def visit_While(self, node: ast.While) -> None:
        self._condition(node.test)
        self.generic_visit(node)

    def visit_IfExp(self, node: ast.IfExp) -> None:
        self._condition(node.test)
        self.generic_visit(node)


def _offset(lines: list[str], line: int, col: int) -> int:
    """Character offset of an ast (1-based line, utf-8 byte column) position."""
    before = sum(len(text) for text in lines[: line - 1])
    return before + len(lines[line - 1].encode()[:col].decode())


def mutants_of(area: Area, path: str, source: str) -> list[Mutant]:
    lines = source.splitlines(keepends=True)
    tree = ast.parse(source)
    spans = _Spans(lines, area.files[path])
    if tree.body and isinstance(tree.body[0], ast.Expr) and isinstance(
            getattr(tree.body[0], "value", None), ast.Constant):
        tree.body = tree.body[1:]  # the module docstring
    spans.visit(tree)
    original_dump = ast.dump(ast.parse(source))
    seen = {original_dump}
    out: list[Mutant] = []
    per_line: dict[str, int] = {}
    for line, col, end_line, end_col, kind, text in sorted(spans.found, key=lambda s: s[:4]):
        start, end = _offset(lines, line, col), _offset(lines, end_line, end_col)
        mutated = source[:start] + text + source[end:]
        try:
            dump = ast.dump(ast.parse(mutated))
        except SyntaxError:
            continue
        if dump in seen:  # equal to the original or to an earlier mutant
            continue
        seen.add(dump)
        base = f"{path}:{line}:{kind}"
        n = per_line.get(base, 0)
        per_line[base] = n + 1
        out.append(Mutant(base if n == 0 else f"{base}#{n + 1}", area.name, path, line, kind,
                          source, mutated))
    return out


def generate(root: Path = ROOT, areas: tuple[Area, ...] = AREAS) -> list[Mutant]:
    """Every mutant of the selected areas, in area, file, line and column order."""
    out: list[Mutant] = []
    for area in areas:
        for path in area.files:
            out.extend(mutants_of(area, path, (root / path).read_text()))
    return out


def stratified_sample(mutants: list[Mutant], n: int, seed: int) -> list[Mutant]:
    """``n`` mutants drawn evenly over the areas (an area's unused share goes to the others)."""
    by_area: dict[str, list[Mutant]] = {}
    for m in mutants:
        by_area.setdefault(m.area, []).append(m)
    names = sorted(by_area, key=lambda a: len(by_area[a]))
    rng = random.Random(seed)
    chosen: list[Mutant] = []
    left = n
    for i, name in enumerate(names):
        share = left // (len(names) - i)
        pool = by_area[name]
        picked = rng.sample(pool, min(share, len(pool)))
        chosen.extend(picked)
        left -= len(picked)
    return interleaved(mutants, {m.id for m in chosen})


def interleaved(mutants: list[Mutant], keep: set[str]) -> list[Mutant]:
    """The kept mutants, one area after another in turn (each in file and line order), so
    that a run stopped early has covered the areas alike."""
    queues = [[m for m in mutants if m.area == a.name and m.id in keep] for a in AREAS]
    out: list[Mutant] = []
    for i in range(max((len(q) for q in queues), default=0)):
        out.extend(q[i] for q in queues if i < len(q))
    return out


RESULT = re.compile(r"^\[\d+/\d+\] (\S+): (killed|killed \(timeout\)|survived) \((\d+) s\) ?(.*)$")


def read_log(path: Path) -> dict[str, tuple[str, float, str]]:
    """The results an earlier run printed: id -> (status, seconds, note)."""
    out = {}
    for line in path.read_text().splitlines():
        match = RESULT.match(line)
        if match:
            out[match[1]] = (match[2], float(match[3]), match[4])
    return out


def summary(rows: list[tuple[Mutant, str, float, str]], total: dict[str, int]) -> list[str]:
    order = {m.id: i for i, m in enumerate(sorted((r[0] for r in rows),
                                                   key=lambda m: (m.path, m.line)))}
    rows = sorted(rows, key=lambda r: ([a.name for a in AREAS].index(r[0].area), order[r[0].id]))
    out = ["| area | mutants generated | run | killed | survived | kill rate |",
           "|---|---:|---:|---:|---:|---:|"]
    all_run = all_killed = 0
    for area in AREAS:
        ran = [r for r in rows if r[0].area == area.name]
        if not ran and area.name not in total:
            continue
        killed = sum(r[1].startswith("killed") for r in ran)
        rate = f"{killed / len(ran):.1%}" if ran else "-"
        out.append(f"| {area.name} | {total.get(area.name, 0)} | {len(ran)} | {killed} | "
                   f"{len(ran) - killed} | {rate} |")
        all_run += len(ran)
        all_killed += killed
    rate = f"{all_killed / all_run:.1%}" if all_run else "-"
    out.append(f"| **all** | {sum(total.values())} | {all_run} | {all_killed} | "
               f"{all_run - all_killed} | {rate} |")
    survivors = [r for r in rows if r[1] == "survived"]
    out.append("")
    out.append(f"survivors ({len(survivors)}):")
    for m, _, _, _ in survivors:
        before, after = m.change
        out.append(f"- `{m.id}`: `{before[:100]}` -> `{after[:100]}`")
    return out


def export_commit(target: Path, commit: str) -> Path:
    """The files of ``commit`` (``git archive``; the working tree untouched) under ``target``."""
    repo = target / "repo"
    repo.mkdir()
    data = subprocess.run(["git", "archive", "--format=tar", commit], cwd=ROOT,
                          capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(repo, filter="data")
    return repo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--areas", default=",".join(a.name for a in AREAS),
                        help="comma-separated areas (default all: %(default)s)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--count", action="store_true", help="count the mutants per area")
    parser.add_argument("--sample", type=int, metavar="N",
                        help="run N mutants drawn at random, evenly over the areas")
    parser.add_argument("--seed", type=int, default=0, help="the sample's seed (default 0)")
    parser.add_argument("--only", action="append", metavar="ID", help="run this mutant id")
    parser.add_argument("--rerun", type=Path, metavar="FILE",
                        help="run the mutant ids listed in FILE (one a line)")
    parser.add_argument("--timeout", type=float,
                        help="seconds per mutant's test run, past which it is killed "
                             "(default: three times the area's baseline plus 30 s)")
    parser.add_argument("--commit", metavar="REV",
                        help="mutate the files of this commit (e.g. HEAD) instead of the "
                             "working tree: others' unfinished edits stay out of the run")
    parser.add_argument("--overlay", action="append", metavar="PATH", default=[],
                        help="with --commit: copy this file of the working tree over the "
                             "commit's (e.g. a test file written since)")
    parser.add_argument("--resume", type=Path, action="append", metavar="LOG",
                        help="take the results an earlier run printed to LOG (its "
                             "[i/N] lines) for the mutants it ran, and run only the others")
    parser.add_argument("--markdown", type=Path, help="also write the summary table here")
    args = parser.parse_args(argv)
    # a kill ends the running tests' process group and removes the copy, as Ctrl-C does
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    wanted = args.areas.split(",")
    unknown = sorted(set(wanted) - {a.name for a in AREAS})
    if unknown:
        raise SystemExit(f"unknown area(s) {unknown}")
    areas = tuple(a for a in AREAS if a.name in wanted)

    with tempfile.TemporaryDirectory(prefix="skhyper-generated-mutants-") as tmp:
        # the copy's text is what is mutated: the tree may change under a long run
        if args.commit:
            repo = export_commit(Path(tmp), args.commit)
            for path in args.overlay:
                (repo / path).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(ROOT / path, repo / path)
        else:
            repo = copy_repository(Path(tmp))
        mutants = generate(repo, areas)
        total: dict[str, int] = {}
        for m in mutants:
            total[m.area] = total.get(m.area, 0) + 1
        if args.count:
            for area in areas:
                print(f"{area.name:14s} {total.get(area.name, 0):5d}  {', '.join(area.files)}")
            print(f"{'all':14s} {len(mutants):5d}")
            return 0
        ids = list(args.only or [])
        if args.rerun:
            ids += [s.strip() for s in args.rerun.read_text().splitlines() if s.strip()]
        if ids:
            known = {m.id: m for m in mutants}
            missing = [i for i in ids if i not in known]
            if missing:
                print(f"not found in this tree (the code moved on): {missing}", flush=True)
            mutants = [known[i] for i in dict.fromkeys(ids) if i in known]
        elif args.sample is not None:
            mutants = stratified_sample(mutants, args.sample, args.seed)
        if args.list:
            for m in mutants:
                print(f"{m.id:60s} {m.area}")
            return 0
        done: dict[str, tuple[str, float, str]] = {}
        for log in args.resume or []:
            done.update(read_log(log))
        rows = [(m, *done[m.id]) for m in mutants if m.id in done]
        if rows:
            print(f"{len(rows)} mutants' results taken from {', '.join(map(str, args.resume))}")
        mutants = [m for m in mutants if m.id not in done]

        check_imported_from(repo)
        source = args.commit or "the working tree"
        print(f"copy of {source} in {repo}; {len(mutants)} mutants", flush=True)
        limits: dict[tuple[str, ...], float] = {}
        for tests in sorted({m.tests(repo) for m in mutants}, key=len):
            status, seconds, output = run_tests(repo, tests, args.timeout or 600.0)
            print(f"baseline {' '.join(tests)}: {status} in {seconds:.0f} s", flush=True)
            if status != "passed":
                print(output[-1500:])
                raise SystemExit("the unmutated copy fails its tests: " + last_line(output))
            limits[tests] = args.timeout or 3 * seconds + 30
        start = time.monotonic()
        for i, m in enumerate(mutants, 1):
            target = repo / m.path
            target.write_text(m.mutated)
            try:
                tests = m.tests(repo)
                result, seconds, output = run_tests(repo, tests, limits[tests])
            finally:
                target.write_text(m.original)
            status = {"failed": "killed", "timeout": "killed (timeout)"}.get(result, "survived")
            note = first_failure(output) if result == "failed" else last_line(output)
            rows.append((m, status, seconds, note))
            print(f"[{i}/{len(mutants)}] {m.id}: {status} ({seconds:.0f} s) {note}", flush=True)
        print(f"ran {len(mutants)} mutants in {time.monotonic() - start:.0f} s", flush=True)

    lines = summary(rows, total)
    print()
    print("\n".join(lines))
    if args.markdown:
        args.markdown.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
