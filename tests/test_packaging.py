"""The extension zip: valid for Blender, complete, and it installs and enables in a fresh Blender."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import REPO

BUILD_SCRIPT = REPO / "scripts" / "build_extension.py"
OPERATORS = (
    "import_svg",
    "new_object",
    "assign_to_object",
    "suggest_grouping",
    "animate",
    "cancel",
    "create_engine_env",
    "clear_animation",
)

# Runs in a Blender whose user folders are all empty: installs the zip the way the Preferences'
# "Install from Disk" does, then reports what Blender sees.
INSTALL_AND_INSPECT = """
import json, sys
import bpy
bpy.ops.extensions.package_install_files(filepath=sys.argv[-1], repo="user_default", enable_on_install=True)
package = "bl_ext.user_default.multisketch"
contract = sys.modules.get(package + ".contract")
operators = {}
for name in json.loads(sys.argv[-2]):
    try:
        getattr(bpy.ops.multisketch, name).get_rna_type()
        operators[name] = True
    except KeyError:
        operators[name] = False
print("REPORT " + json.dumps({
    "enabled": package in bpy.context.preferences.addons,
    "operators": operators,
    "engine_root": str(contract.engine_root()) if contract else None,
    "extensions_dir": bpy.utils.user_resource("EXTENSIONS"),
    "heavy_modules": sorted(m for m in ("torch", "diffusers", "transformers") if m in sys.modules),
}))
"""


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, str(BUILD_SCRIPT), "--output-dir", str(out)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return Path(done.stdout.strip().splitlines()[-1])


def _build_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_extension", BUILD_SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _validate(folder: Path) -> subprocess.CompletedProcess:
    tool, tags = _build_module().blender_ext_tool()
    return subprocess.run(
        [sys.executable, str(tool), "validate", str(folder), "--valid-tags", str(tags)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_manifest_passes_blenders_validator(tmp_path: Path) -> None:
    staged = tmp_path / "multisketch"
    _build_module().stage(staged)
    done = _validate(staged)
    assert done.returncode == 0, done.stdout + done.stderr


def test_validator_catches_a_broken_manifest(tmp_path: Path) -> None:
    staged = tmp_path / "multisketch"
    _build_module().stage(staged)
    manifest = staged / "blender_manifest.toml"
    manifest.write_text(manifest.read_text().replace('blender_version_min = "5.0.0"', 'blender_version_min = "5.0"'))
    done = _validate(staged)
    assert done.returncode != 0 and "blender_version_min" in done.stdout + done.stderr


def test_zip_has_the_addon_at_its_root_and_the_engine_inside(archive: Path) -> None:
    names = zipfile.ZipFile(archive).namelist()
    assert "blender_manifest.toml" in names
    assert "__init__.py" in names and "contract.py" in names
    assert "server/protocol.py" in names and "server/__main__.py" in names
    assert "requirements/engine.txt" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or "/." in f"/{n}"]
    assert not [n for n in names if n.startswith(("tests/", "multisketch_addon/", ".venv/"))]


def test_zip_installs_and_enables_in_a_fresh_blender_user_folder(archive: Path, tmp_path: Path) -> None:
    user = tmp_path / "blender-user"
    env = {**os.environ, "BLENDER_USER_RESOURCES": str(user)}
    for kind in ("CONFIG", "SCRIPTS", "EXTENSIONS", "DATAFILES"):
        env[f"BLENDER_USER_{kind}"] = str(user / kind.lower())
    done = subprocess.run(
        [sys.executable, "-c", INSTALL_AND_INSPECT, json.dumps(OPERATORS), str(archive)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    reports = [line for line in done.stdout.splitlines() if line.startswith("REPORT ")]
    assert done.returncode == 0 and reports, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(reports[-1].removeprefix("REPORT "))
    assert Path(report["extensions_dir"]).is_relative_to(user), "Blender did not use the fresh user folder"
    assert report["enabled"], done.stdout[-3000:] + done.stderr[-3000:]
    assert report["operators"] == dict.fromkeys(OPERATORS, True)
    assert report["heavy_modules"] == [], "enabling the add-on loaded the engine's heavy modules into Blender"
    installed = Path(report["extensions_dir"]) / "user_default" / "multisketch"
    assert Path(report["engine_root"]) == installed
    assert (installed / "server" / "protocol.py").is_file()
    assert (installed / "requirements" / "engine.txt").is_file()


def test_the_engine_reports_the_extensions_version() -> None:
    import tomllib

    import server

    manifest = tomllib.loads((REPO / "blender_manifest.toml").read_text(encoding="utf-8"))
    assert server.__version__ == manifest["version"]
