"""The package's import graph: no cycles (module- or function-level), and layers that only look down.

Read from the source with `ast` (nothing is imported): every `import ogdata.x` / `from ogdata.x import y`
/ `from ogdata import x` anywhere in a module — at the top or inside a function — is an edge. Imports
under `if TYPE_CHECKING:` are not. A parent package's __init__ running on import is not an edge
(every import would pass through ogdata/__init__.py otherwise).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "ogdata"

# lowest layer first; a module may import only from its own layer's modules or lower layers
LAYERS = [
    ["ogdata.errors", "ogdata.config", "ogdata.progress", "ogdata.console"],
    ["ogdata.spaces", "ogdata.ids"],
    ["ogdata.envs"],        # markets: nothing of files, measures or policies
    ["ogdata.storage"],
    ["ogdata.dataset"],
    ["ogdata.measures"],
    ["ogdata.policies"],
    ["ogdata.catalogue"],
    ["ogdata.generate", "ogdata.hub"],
    ["ogdata.cards"],
    ["ogdata.resolve"],
    ["ogdata.publishing", "ogdata.writing", "ogdata.combine", "ogdata.ray"],
    ["ogdata.cli", "ogdata.profile", "ogdata.__main__", "ogdata"],
]


def _modules() -> dict[str, Path]:
    out = {}
    for f in PKG.rglob("*.py"):
        parts = list(f.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    tree = ast.parse(path.read_text())
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for n in node.orelse:
                visit(n)
            return
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "ogdata" or a.name.startswith("ogdata."):
                    out.add(a.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = name if is_pkg else name.rsplit(".", 1)[0]
                for _ in range(node.level - 1):
                    pkg = pkg.rsplit(".", 1)[0]
                base = f"{pkg}.{base}" if base else pkg
            if base == "ogdata" or base.startswith("ogdata."):
                for a in node.names:
                    sub = f"{base}.{a.name}"
                    out.add(sub if sub in modules else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    out.discard(name)
    return {m for m in out if m in modules}


def graph() -> dict[str, set[str]]:
    mods = _modules()
    return {m: _imports(p, m, mods) for m, p in mods.items()}


def _layer(module: str) -> int:
    best, rank = -1, None
    for i, names in enumerate(LAYERS):
        for n in names:
            if (module == n or module.startswith(n + ".")) and len(n) > best:
                best, rank = len(n), i
    assert rank is not None, f"{module} is in no layer: add it to LAYERS in tests/test_imports.py"
    return rank


def test_no_import_cycles():
    g = graph()
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def dfs(u: str) -> None:
        state[u] = 1
        stack.append(u)
        for v in sorted(g[u]):
            if state.get(v) == 1:
                cycles.append(stack[stack.index(v):] + [v])
            elif v not in state:
                dfs(v)
        stack.pop()
        state[u] = 2

    for m in sorted(g):
        if m not in state:
            dfs(m)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_layers_only_look_down():
    bad = sorted(f"{m} (layer {_layer(m)}) imports {d} (layer {_layer(d)})"
                 for m, deps in graph().items() for d in deps if _layer(d) > _layer(m))
    assert not bad, "imports that run back up:\n" + "\n".join(bad)


def test_the_checker_sees_function_level_imports(tmp_path):
    src = "def f():\n    from ogdata.hub import download\n    import ogdata.cards\n"
    f = tmp_path / "m.py"
    f.write_text(src)
    mods = {"ogdata.x": f, "ogdata.hub": f, "ogdata.cards": f}
    assert _imports(f, "ogdata.x", mods) == {"ogdata.hub", "ogdata.cards"}


@pytest.mark.parametrize("heavy", ["torch", "zarr", "huggingface_hub", "matplotlib", "d3rlpy", "ray"])
def test_import_ogdata_stays_light(heavy):
    code = f"import sys, ogdata; sys.exit(1 if {heavy!r} in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0, \
        f"`import ogdata` imports {heavy}; load it lazily where it is used"
