"""The architecture, checked: prefdata's folders are layers, a lower layer never imports a higher one, and no module
imports itself back through others (imports inside functions count: a lazy import is still a dependency).

Layers, lowest first: contract -> storage -> formats -> pipeline -> llm -> jobs -> cli. `trainers/` sits above them
all and is never imported by prefdata.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LAYERS = ("contract", "storage", "formats", "pipeline", "llm", "jobs", "cli")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, known: set[str] | frozenset[str] = frozenset()) -> set[str]:
    """Every module ``path`` imports, at any depth of the file, resolved to full dotted names.

    ``from package import module`` depends on the module, not on the package's ``__init__`` (Python imports a parent
    package before any of its modules whatever the spelling, so counting it would make every package "cyclic").
    """
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            submodules = {f"{base}.{alias.name}" for alias in node.names} & set(known)
            found.update(submodules)
            if len(submodules) < len(node.names):  # some names are attributes of ``base`` itself
                found.add(base)
    return found


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] == "trainers":
        return len(LAYERS)
    if parts[0] == "prefdata" and len(parts) > 1 and parts[1] in LAYERS:
        return LAYERS.index(parts[1])
    return None


def _graph() -> dict[str, set[str]]:
    files = sorted((REPO / "prefdata").rglob("*.py")) + sorted((REPO / "trainers").rglob("*.py"))
    modules = {module_name(f): f for f in files}
    return {name: {m for m in imported_modules(f, set(modules)) if m in modules and m != name}
            for name, f in modules.items()}


def test_every_module_lives_in_a_layer():
    loose = [m for m in _graph() if m.startswith("prefdata.") and layer_of(m) is None and m.count(".") == 1
             and m not in ("prefdata.__main__",)]
    assert loose == [], "modules outside the layer folders (contract/storage/formats/pipeline/llm/jobs/cli)"


def test_no_layer_imports_a_higher_one():
    upward = [
        f"{module} (layer {LAYERS[layer_of(module)]}) imports {target}"
        for module, targets in _graph().items()
        if layer_of(module) is not None and layer_of(module) < len(LAYERS)
        for target in sorted(targets)
        if layer_of(target) is not None and layer_of(target) > layer_of(module)
    ]
    assert upward == []


def test_no_layer_imports_the_package_facade():
    """`prefdata/__init__.py` re-exports from the layers; a layer importing it would import every layer it names."""
    facade = [module for module, targets in _graph().items()
              if layer_of(module) is not None and "prefdata" in targets]
    assert facade == []


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a list of modules, or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1 on the current path, 2 finished
    for start in sorted(graph):
        if start in state:
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def test_no_import_cycles():
    assert find_cycle(_graph()) is None


@pytest.mark.parametrize(("graph", "cyclic"), [
    ({"a": {"b"}, "b": {"c"}, "c": set()}, False),
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, True),
    ({"a": {"a2"}, "a2": set(), "b": {"a"}}, False),
])
def test_the_cycle_finder_finds_cycles(graph, cyclic):
    assert (find_cycle(graph) is not None) is cyclic


def test_relative_and_lazy_imports_are_seen(tmp_path, monkeypatch):
    pkg = tmp_path / "prefdata" / "storage"
    pkg.mkdir(parents=True)
    (pkg / "x.py").write_text("def f():\n    from ..jobs import split\n    import prefdata.cli.options\n")
    monkeypatch.setattr(f"{__name__}.REPO", tmp_path)
    known = {"prefdata.jobs.split", "prefdata.cli.options"}
    assert known <= imported_modules(pkg / "x.py", known)
    assert "prefdata.jobs" not in imported_modules(pkg / "x.py", known)  # the module, not its package
