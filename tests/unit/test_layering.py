"""The import layering of docs/architecture.md §1, as import-linter contracts (`[tool.importlinter]` in
pyproject.toml): each part imports only the parts below it, `cli/` alone meets `datamodules/` and `callbacks/`, and no
package's modules import each other in a circle (function-level imports count too)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("lightning_aapt", "datamodules", "callbacks")
LINT = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """`lint-imports` with the repository's contracts on the packages under `root` (its own copy comes first)."""
    return subprocess.run([sys.executable, "-c", LINT, "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
                          cwd=root, capture_output=True, text=True, timeout=300)


def test_import_contracts_hold():
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "2 kept, 0 broken" in done.stdout


def test_the_contracts_see_an_upward_import_and_a_cycle(tmp_path):
    """The contracts themselves: a backbone module that imports inference (upward), whose inference imports the
    backbone back through a function-level import (a cycle), breaks both."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "static"))
    probe = tmp_path / "lightning_aapt" / "backbone" / "probe.py"
    probe.write_text("def f():\n    import lightning_aapt.inference\n")
    done = lint_imports(tmp_path)
    assert done.returncode == 1 and "0 kept, 2 broken" in done.stdout
    assert "lightning_aapt.backbone is not allowed to import lightning_aapt.inference" in done.stdout


def test_architecture_doc_names_every_source_file():
    """docs/architecture.md describes the code file by file: every module of the core, the data modules and the
    callbacks has its row (`path` relative to lightning_aapt/, or from the repository root for the others)."""
    doc = (ROOT / "docs" / "architecture.md").read_text()
    missing = []
    for folder in PACKAGES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.name in ("__init__.py", "__main__.py"):
                continue
            name = path.relative_to(ROOT / "lightning_aapt" if folder == "lightning_aapt" else ROOT).as_posix()
            if f"| `{name}` |" not in doc:
                missing.append(name)
    assert not missing, f"docs/architecture.md has no row for {missing}"
