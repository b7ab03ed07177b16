"""The shape of the house: every import of the package, read from the source (the lazy
ones inside functions too), has no loop and never points up the pipeline or out of its
folder's job. Read statically, so a loop hidden behind a lazy import still counts."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("engine", "fhir_r4", "service", "cohort", "reviewer", "rulebook", "cli", "schemas")

# What each folder may import (besides itself). The CLI is the top: it may use all.
ALLOWED = {
    "": {"engine", "fhir_r4"},  # the front door
    "engine": set(),
    "fhir_r4": {"engine"},
    "cohort": {"engine", "fhir_r4"},
    "service": {"engine", "fhir_r4", "cohort"},
    "reviewer": {"engine", "fhir_r4", "cohort"},
    "rulebook": {"engine", "fhir_r4", "cohort", "reviewer"},
    "schemas": {"engine", "fhir_r4"},
    "cli": {"", *FOLDERS},
}

# The pipeline's order inside engine/: a module imports only its own rank or lower.
# Rank 0 is the shared vocabulary every stage may read (the record's models, the facts,
# the condition language, the catalogue, errors and the engine's identity).
ENGINE_RANK = {
    **dict.fromkeys(("errors", "identity", "vocabulary", "safetext", "dosing", "models",
                     "courses", "facts", "conditions", "catalogue", "signoff", "prose"), 0),
    **dict.fromkeys(("load", "parsecache"), 1),
    "validate": 2,
    **dict.fromkeys(("ruleset", "rulecache", "words"), 3),
    "compile": 4,
    "evaluate": 5,
    **dict.fromkeys(("decide", "texts", "branches"), 6),
    "explain": 7,
    "render": 8,
    "pipeline": 9,
}


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _exists(name: str) -> bool:
    rel = ROOT.joinpath(*name.split(".")) if name else ROOT
    return rel.with_suffix(".py").is_file() or (rel / "__init__.py").is_file()


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports ('' is the front door)."""
    files = [ROOT / "__init__.py"] + [p for d in FOLDERS for p in (ROOT / d).glob("*.py")]
    graph: dict[str, set[str]] = {}
    for path in files:
        me = _module(path)
        package = me if path.name == "__init__.py" else me.rpartition(".")[0]
        edges = graph.setdefault(me, set())
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".") if package else []
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + (node.module.split(".") if node.module else []))
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("cledecide"):
                target = node.module.removeprefix("cledecide").lstrip(".")  # type: ignore[union-attr]
            else:
                continue
            assert _exists(target), f"{path}:{node.lineno}: no module {target!r}"
            for alias in node.names:  # `from . import ruleset` imports a module
                sub = f"{target}.{alias.name}".lstrip(".")
                edges.add(sub if _exists(sub) else target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_loops() -> None:
    loops = _cycles(import_graph())
    assert not loops, f"import loops: {loops}"


def test_the_loop_check_finds_a_loop() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_folder_imports_beyond_its_job() -> None:
    bad = []
    for module, targets in import_graph().items():
        folder = module.split(".")[0]
        for target in targets:
            other = target.split(".")[0]
            if other != folder and other not in ALLOWED[folder]:
                bad.append(f"{module} -> {target}")
    assert not bad, bad


def test_engine_imports_never_point_up_the_pipeline() -> None:
    graph = import_graph()
    engine = {m.split(".", 1)[1] for m in graph if m.startswith("engine.")}
    assert engine <= set(ENGINE_RANK), f"rank these new modules: {engine - set(ENGINE_RANK)}"
    bad = [f"{m} ({ENGINE_RANK[m]}) -> {t} ({ENGINE_RANK[t]})"
           for m in engine for t in (x.split(".", 1)[1] for x in graph[f"engine.{m}"]
                                     if x.startswith("engine."))
           if ENGINE_RANK[t] > ENGINE_RANK[m]]
    assert not bad, bad


def test_the_code_passes_ruff() -> None:
    """The lint of pyproject.toml (make test runs it first): here too, so that a pytest
    run before landing sees what CI would refuse."""
    import importlib.util
    import subprocess
    import sys
    if importlib.util.find_spec("ruff") is None:
        import pytest
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", str(ROOT)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
