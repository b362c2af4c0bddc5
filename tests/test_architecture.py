"""The package's floor plan: no import cycle between modules, no arrow back up between the
subpackages (ARCHITECTURE.md's layers), a short top level, no module over 400 lines. Reads the
source with ``ast``: imports inside functions count too."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "orchestrator"

# Lower layers never import higher ones; a subpackage may import its own layer's others only as listed.
LAYERS = [
    {"errors", "fileio", "config", "yamlstrict", ""},   # the top level ("" = orchestrator/__init__)
    {"registry"},
    {"data", "store"},
    {"spec", "results"},
    {"train"},
    {"fused"},
    {"sweep", "submit"},
    {"cli"},
]


def modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        parts = p.relative_to(PKG).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules ``name`` imports (``from .x import y`` is module ``x.y`` when that is a module)."""
    pkg = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    if name == "":
        pkg = []
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[:len(pkg) - (node.level - 1)] + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "orchestrator":
                base = node.module.split(".")[1:]
            else:
                continue
            for a in node.names:
                cand = ".".join(base + [a.name])
                out.add(cand if cand in known else ".".join(base))
        elif isinstance(node, ast.Import):
            out |= {".".join(a.name.split(".")[1:]) for a in node.names if a.name.split(".")[0] == "orchestrator"}
    out.discard(name)
    return {m for m in out if m in known}


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {n: imports(n, p, set(mods)) for n, p in mods.items()}


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(g.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(g):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def package(module: str) -> str:
    first = module.split(".")[0]
    return first if (PKG / first).is_dir() else module


def layer(pkg: str) -> int:
    return next(i for i, names in enumerate(LAYERS) if pkg in names)


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a"}}) is None


def test_no_module_imports_itself_back():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_subpackage_imports_a_higher_layer():
    up = []
    for mod, deps in graph().items():
        for dep in deps:
            a, b = package(mod), package(dep)
            if a != b and layer(b) > layer(a):
                up.append(f"{mod} -> {dep}")
    assert not up, "arrows back up (ARCHITECTURE.md's layers): " + ", ".join(sorted(up))


def test_every_subpackage_has_a_layer_and_a_map():
    for d in sorted(p for p in PKG.iterdir() if (p / "__init__.py").is_file()):
        layer(d.name)
        doc = ast.get_docstring(ast.parse((d / "__init__.py").read_text())) or ""
        listed = {m.stem for m in d.glob("*.py") if m.stem != "__init__"}
        missing = sorted(m for m in listed if f"{m}" not in doc.split())
        assert not missing, f"orchestrator/{d.name}/__init__.py's map leaves out: {', '.join(missing)}"


def test_a_short_top_level_and_short_modules():
    top = sorted(p.name for p in PKG.glob("*.py"))
    assert len(top) <= 6, f"orchestrator/ holds {len(top)} modules at its top: {top}"
    long = {str(p.relative_to(PKG)): n for p in PKG.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert not long, f"modules over 400 lines: {long}"


def test_architecture_md_names_every_subpackage():
    text = (PKG.parent / "ARCHITECTURE.md").read_text()
    assert len(text.splitlines()) < 80
    subs = sorted(p.name for p in PKG.iterdir() if (p / "__init__.py").is_file())
    missing = [s for s in subs if f"`{s}/`" not in text]
    assert not missing, f"ARCHITECTURE.md does not name: {missing}"
