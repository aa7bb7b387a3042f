"""Build the installable MultiSketch extension zip and check it with Blender's own validator.

Blender expects the add-on package at the root of the zip, next to `blender_manifest.toml`. In the
checkout the add-on lives in `multisketch_addon/` and the engine beside it, so this script lays the
package out in a staging folder first: the manifest and the add-on's files at the root, the engine
(`server/`) and `requirements/engine.txt` inside (where `contract.engine_root()` finds them).
The validator is `blender_ext.py`, which the `bpy` module ships; it runs without a Blender binary.

Usage: python scripts/build_extension.py [--output-dir dist]
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MANIFEST = "blender_manifest.toml"
CACHES = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")


def blender_ext_tool() -> tuple[Path, Path]:
    """Paths of Blender's extension tool and of its list of valid tags, found in the installed `bpy` module."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("the bpy module is not installed: pip install -r requirements/dev.txt")
    bpy_dir = Path(next(iter(spec.submodule_search_locations)))
    tools = sorted(bpy_dir.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not tools:
        sys.exit(f"Blender's extension tool (blender_ext.py) is missing from {bpy_dir}")
    scripts = tools[-1].parents[3]
    return tools[-1], scripts / "modules" / "_bpy_internal" / "extensions" / "tags.py"


def run_tool(*args: str) -> None:
    tool, tags = blender_ext_tool()
    subprocess.run([sys.executable, str(tool), *args, "--valid-tags", str(tags)], check=True)


def stage(destination: Path) -> None:
    """Lay out the extension's files in `destination` as they must appear inside the zip."""
    shutil.copytree(REPO / "multisketch_addon", destination, ignore=CACHES)
    shutil.copy2(REPO / MANIFEST, destination / MANIFEST)
    shutil.copytree(REPO / "server", destination / "server", ignore=CACHES)
    (destination / "requirements").mkdir()
    shutil.copy2(REPO / "requirements" / "engine.txt", destination / "requirements" / "engine.txt")


def build(output_dir: Path) -> Path:
    """Stage, validate and zip the extension; returns the zip's path."""
    manifest = tomllib.loads((REPO / MANIFEST).read_text(encoding="utf-8"))
    output_dir.mkdir(parents=True, exist_ok=True)
    archive = output_dir.resolve() / f"{manifest['id']}-{manifest['version']}.zip"
    with tempfile.TemporaryDirectory(prefix="multisketch-build-") as tmp:
        staged = Path(tmp) / manifest["id"]
        stage(staged)
        run_tool("validate", str(staged))
        run_tool("build", "--source-dir", str(staged), "--output-filepath", str(archive))
    run_tool("validate", str(archive))
    return archive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=REPO / "dist", help="where the zip goes (default: dist/)")
    args = parser.parse_args()
    try:
        archive = build(args.output_dir)
    except subprocess.CalledProcessError as exc:
        sys.exit(f"Blender's extension tool failed (exit code {exc.returncode}); see its message above")
    print(archive)


if __name__ == "__main__":
    main()
