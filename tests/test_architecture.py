"""The layout's rules, checked on the source: no import cycles, layers import downwards only, every module says
what it is for. Imports are read from the syntax tree, including those inside functions and under TYPE_CHECKING."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import ROOT

SRC = ROOT / "src"
# Entry points users type (python -m src.<name>): thin shims onto src.commands, never imported by library code.
SHIMS = {"src.run_baseline_v2", "src.run_optimization", "src.run_optimized_eval", "src.consolidate_results",
         "src.experiment", "src.local_eval", "src.api_eval", "src.demo_curve_eval", "src.verify_splits",
         "src.setup_models", "src.tipping_point.runner", "src.tipping_point.analyzer", "src.plan", "src.rehearse"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> tuple[set[str], set[str]]:
    """(project modules imported, third-party top-level packages imported) by one module, anywhere in it."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    internal, external = set(), set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(up + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        for target in targets:
            if not target.startswith("src"):
                external.add(target.split(".")[0])
                continue
            while target and target not in modules:
                target = target.rsplit(".", 1)[0] if "." in target else ""
            # importing a package you live in (its __init__) is not an edge: Python has already run it
            if target and target != name and not name.startswith(target + "."):
                internal.add(target)
    return internal, external


@pytest.fixture(scope="module")
def graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    modules = _modules()
    internal, external = {}, {}
    for name, path in modules.items():
        internal[name], external[name] = _imports(name, path, modules)
    return internal, external


def _closure(start: str, edges: dict[str, set[str]]) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in edges.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_there_are_no_import_cycles(graph):
    internal, _ = graph
    cycles = sorted(f"{a} -> ... -> {a}" for a in internal if a in _closure(a, internal))
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_library_modules_never_import_commands_or_entry_points(graph):
    internal, _ = graph
    bad = [(m, t) for m, targets in internal.items() for t in targets
           if not m.startswith("src.commands") and m not in SHIMS and (t.startswith("src.commands") or t in SHIMS)]
    assert not bad, bad


def test_entry_points_are_thin_shims_onto_commands():
    for name in SHIMS:
        path = SRC / (name.removeprefix("src.").replace(".", "/") + ".py")
        code = [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        assert len(code) <= 8, f"{path} is not a thin shim"
        assert any("from src.commands." in ln for ln in code), path


@pytest.mark.parametrize("layer, forbidden", [
    ("src.consolidation", ("dspy", "litellm", "src.backends", "src.evaluation", "src.optimization",
                           "src.commands", "src.studies", "src.tasks.base", "src.tasks.domains")),
    ("src.report", ("dspy", "litellm", "src.backends", "src.evaluation", "src.optimization", "src.tasks",
                    "src.consolidation")),
    ("src.stats", ("dspy", "src.backends", "src.tasks", "src.results", "src.consolidation")),
    ("src.results", ("dspy", "src.backends", "src.evaluation", "src.optimization", "src.consolidation")),
    ("src.registry", ("dspy", "src.backends", "src.tasks", "src.evaluation", "src.results")),
    ("src.tasks", ("src.backends", "src.evaluation", "src.optimization", "src.results", "src.consolidation")),
    ("src.sandbox", ("dspy", "src.tasks", "src.backends", "src.results")),
])
def test_layers_import_downwards_only(graph, layer, forbidden):
    """Everything a layer reaches, transitively, stays below it; consolidation never touches a model."""
    internal, external = graph
    for module in [m for m in internal if m == layer or m.startswith(layer + ".")]:
        reach = _closure(module, internal) | {module}
        reached = reach | {pkg for m in reach for pkg in external[m]}
        hits = sorted(r for r in reached for f in forbidden if r == f or r.startswith(f + "."))
        assert not hits, f"{module} reaches {hits}"


def test_the_sandbox_child_imports_only_the_standard_library(graph):
    internal, external = graph
    assert not internal["src.sandbox.child"]
    assert external["src.sandbox.child"] <= {"__future__", "json", "os", "sys", "ctypes", "resource", "platform",
                                             "builtins", "faulthandler", "traceback", "types", "signal", "select",
                                             "errno", "time", "struct", "stat", "fcntl", "secrets", "hmac"}


def test_every_module_and_package_says_what_it_is_for():
    missing = [str(p.relative_to(ROOT)) for p in SRC.rglob("*.py")
               if not ast.get_docstring(ast.parse(p.read_text(encoding="utf-8")))]
    assert not missing, missing


def test_private_dspy_apis_are_touched_in_one_module_only():
    private = ("_get_structured_outputs_response_format", "_has_open_ended_mapping", "_set_random_seeds",
               "_set_num_trials_from_num_candidates", "_estimate_lm_calls", "AUTO_RUN_SETTINGS", "MIN_MINIBATCH_SIZE")
    users = sorted({str(p.relative_to(ROOT)) for p in SRC.rglob("*.py") for name in private
                    if name in p.read_text(encoding="utf-8")})
    assert users == ["src/backends/dspy_compat.py"], users


def test_no_module_is_much_over_400_lines():
    sizes = {str(p.relative_to(ROOT)): sum(1 for _ in p.open(encoding="utf-8")) for p in SRC.rglob("*.py")}
    assert not {p: n for p, n in sizes.items() if n > 450}, sorted(sizes.items(), key=lambda kv: -kv[1])[:5]
