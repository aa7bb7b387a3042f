"""Lint, the add-on's type check, and the wall between the two halves (Blender never loads torch)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

# What Blender's process must never load, and what the engine's process must never need.
HEAVY_FOR_BLENDER = {"torch", "diffusers", "transformers", "svgpathtools", "imageio", "scipy"}
BLENDER_ONLY = {"bpy", "bpy_extras", "bmesh", "mathutils", "addon_utils", "gpu", "blf", "idprop"}
# The engine modules the add-on may read (pure Python, through multisketch_addon/contract.py).
CONTRACT_MODULES = {"protocol", "tables", "errors", "svg", "files"}


def _python_files(folder: str) -> list[Path]:
    return sorted(p for p in (REPO / folder).rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module a file imports (absolute names; relative ones keep their leading dots)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            found.append((node.lineno, base))
            if not node.module:  # `from . import x` imports the sibling module x
                found += [(node.lineno, base + alias.name) for alias in node.names]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module" and node.args:
            argument = node.args[0]
            if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                found.append((node.lineno, argument.value))
            elif isinstance(argument, ast.JoinedStr):  # f"{package}.server.{name}": keep the literal parts
                found.append((node.lineno, "".join(v.value for v in argument.values if isinstance(v, ast.Constant))))
    return found


def _top(name: str) -> str:
    return name.lstrip(".").split(".")[0]


def test_ruff_finds_nothing_in_the_repository() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_addon_type_checks_against_fake_bpy_module() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", "mypy.ini"], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _addon_violations(path: Path) -> list[str]:
    found = []
    for line, name in _imports(path):
        parts = name.lstrip(".").split(".")
        engine_module = parts[parts.index("server") + 1] if "server" in parts[:-1] else ""
        if _top(name) in HEAVY_FOR_BLENDER or (engine_module and engine_module not in CONTRACT_MODULES):
            found.append(f"{path.name}:{line} imports {name}")
    return found


def _engine_violations(path: Path) -> list[str]:
    return [f"{path.name}:{line} imports {name}" for line, name in _imports(path) if _top(name) in BLENDER_ONLY]


def test_type_check_still_catches_wrong_bpy_calls(tmp_path: Path) -> None:
    sample = tmp_path / "sample_panel.py"
    sample.write_text(
        "import bpy\n\n\n"
        "def draw(layout: bpy.types.UILayout, scene: bpy.types.Scene) -> int:\n"
        "    layout.label(txt='typo in a keyword')\n"
        "    scene.frame_set('one')\n"
        "    return layout\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(REPO / "mypy.ini"), str(sample)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert {"[call-arg]", "[arg-type]", "[return-value]"} <= set(done.stdout.split()), done.stdout


@pytest.mark.parametrize("path", _python_files("multisketch_addon"), ids=lambda p: p.name)
def test_addon_never_imports_the_engines_heavy_modules(path: Path) -> None:
    assert _addon_violations(path) == []


@pytest.mark.parametrize("path", _python_files("server"), ids=lambda p: str(p.relative_to(REPO / "server")))
def test_engine_never_imports_blender(path: Path) -> None:
    assert _engine_violations(path) == []


def test_import_scan_catches_forbidden_imports_in_every_form(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import torch.nn\nfrom bpy.types import Operator\nfrom . import scene_model\nfrom .server import tables\n"
        "import importlib\nimportlib.import_module(f'{__package__}.server.schedule')\n",
        encoding="utf-8",
    )
    assert _addon_violations(sample) == ["sample.py:1 imports torch.nn", "sample.py:6 imports .server.schedule"]
    assert _engine_violations(sample) == ["sample.py:2 imports bpy.types"]
