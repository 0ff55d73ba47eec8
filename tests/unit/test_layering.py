"""The import layering: `lightning_aapt/cli/` is the composition root, the only place where the core library meets
`datamodules/` and `callbacks/`, and no file of the project imports itself back through others (no cycle)."""

import ast
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("lightning_aapt", "datamodules", "callbacks")


def module_file(name: str) -> Path | None:
    """The project file that `import name` loads (a module or a package's __init__), or None outside the project."""
    path = ROOT.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imports(path: Path) -> set[Path]:
    """Project files that `path` imports anywhere in its body (function-level imports count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from pkg import sub` loads pkg/sub.py when it exists, else a name of pkg/__init__.py
            names = [f"{node.module}.{a.name}" if module_file(f"{node.module}.{a.name}") else node.module
                     for a in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] in PACKAGES and (target := module_file(name)) and target != path:
                found.add(target)
    return found


def project_files() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def test_core_imports_neither_datamodules_nor_callbacks():
    cli = ROOT / "lightning_aapt" / "cli"
    offenders = {str(f.relative_to(ROOT)): sorted(str(t.relative_to(ROOT)) for t in imports(f)
                                                  if t.relative_to(ROOT).parts[0] in ("datamodules", "callbacks"))
                 for f in (ROOT / "lightning_aapt").rglob("*.py") if cli not in f.parents}
    assert not {k: v for k, v in offenders.items() if v}


def find_cycle(graph: dict[Path, set[Path]]) -> list[Path] | None:
    """The first import cycle of `graph` (file -> files it imports) as [a, b, ..., a], or None."""
    state: dict[Path, str] = {}
    stack: list[Path] = []

    def visit(f: Path) -> list[Path] | None:
        state[f] = "open"
        stack.append(f)
        for t in graph.get(f, ()):
            if state.get(t) == "open":
                return [*stack[stack.index(t):], t]
            if t not in state and (cycle := visit(t)):
                return cycle
        state[f] = "done"
        stack.pop()
        return None

    for f in graph:
        if f not in state and (cycle := visit(f)):
            return cycle
    return None


def test_no_import_cycle():
    cycle = find_cycle({f: imports(f) for f in project_files()})
    assert cycle is None, "import cycle: " + " -> ".join(str(p.relative_to(ROOT)) for p in cycle)


def test_the_cycle_check_sees_a_cycle(tmp_path, monkeypatch):
    """The checker itself: two files that import each other (one through a function-level import) are reported."""
    pkg = tmp_path / "callbacks"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from callbacks.b import g\n")
    (pkg / "b.py").write_text("from callbacks import a\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    cycle = find_cycle({f: imports(f) for f in project_files()})
    assert cycle is not None and {p.name for p in cycle} == {"a.py", "b.py"} and cycle[0] == cycle[-1]


def test_architecture_doc_names_every_source_file():
    """docs/architecture.md describes the code file by file: every module of the core, the data modules and the
    callbacks has its row (`path` relative to lightning_aapt/, or from the repository root for the others)."""
    doc = (ROOT / "docs" / "architecture.md").read_text()
    missing = []
    for folder in ("lightning_aapt", "datamodules", "callbacks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.name in ("__init__.py", "__main__.py"):
                continue
            name = path.relative_to(ROOT / "lightning_aapt" if folder == "lightning_aapt" else ROOT).as_posix()
            if f"| `{name}` |" not in doc:
                missing.append(name)
    assert not missing, f"docs/architecture.md has no row for {missing}"
