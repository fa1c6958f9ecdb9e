"""The architecture's rules, enforced: the import contracts in pyproject.toml (import-linter) and
the readers' torch-free import, each checked in a fresh interpreter."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GOLDEN_RUN = ROOT / "tests" / "data" / "report_golden" / "logdir" / "ddp"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_import_contracts_hold() -> None:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("import-linter is not installed (pip install -e .[test])")
    r = _run(exe)
    assert r.returncode == 0, r.stdout + r.stderr


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The graph's strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, edges = work[-1]
            w = next(edges, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == v:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_cycle_finder_finds_a_circle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle() -> None:
    """Any import counts (module level, inside a function, under TYPE_CHECKING): a circle of modules is one
    unit that cannot be understood, tested or changed alone."""
    grimp = pytest.importorskip("grimp", reason="grimp comes with import-linter (pip install -e .[test])")
    graph = grimp.build_graph("gprof", "gprof_tb", "gprof_tui")
    modules = set(graph.modules)
    imports = {m: set(graph.find_modules_directly_imported_by(m)) & modules for m in modules}
    assert len(imports) > 100
    assert _cycles(imports) == []


def test_readers_import_no_torch() -> None:
    code = ("import sys, gprof.report, gprof.store, gprof.distributed, gprof.export, gprof_tb.plugin, gprof_tui; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    r = _run(sys.executable, "-c", code)
    assert r.returncode == 0, r.stderr


def test_report_of_a_multi_rank_run_runs_without_torch() -> None:
    """The whole text report, analyses and cross-rank section included, formats without torch."""
    code = ("import io, sys; from gprof.commands.report import print_run_report; "
            f"print_run_report({str(GOLDEN_RUN)!r}, io.StringIO()); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    r = _run(sys.executable, "-c", code)
    assert r.returncode == 0, r.stderr


def test_source_files_stay_small() -> None:
    """The style rule: no source file over 500 lines, and the tab's entry point under 100 (a module that
    grows past it has two jobs; split it by responsibility, as fusion_grouping and triton_lowering were)."""
    files = [p for top in ("gprof", "tb_plugin", "tui", "benchmarks", "tests", "examples", "scripts")
             for p in (ROOT / top).rglob("*") if p.suffix in (".py", ".js") and "vendor" not in p.parts]
    assert len(files) > 100
    long = {str(p.relative_to(ROOT)): n for p in files if (n := len(p.read_text().splitlines())) > 500}
    assert long == {}
    assert len((ROOT / "tb_plugin" / "gprof_tb" / "static" / "index.js").read_text().splitlines()) < 100
