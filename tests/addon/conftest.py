"""The add-on against the real bpy module: registered once per session from this checkout, unregistered at the end.

Blender's user folder is a fresh temporary one (set before bpy loads), so no real preferences are
read or written. The add-on is enabled at import time, as an extension of a local repository that
points at the repository root, so test modules can reach its modules through `addon_module()`.
Fixtures: `empty_scene` (a factory-startup scene with nothing in it) and `imported_sketch` (a shared
multi-object sketch imported with its stroke table).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="multisketch-blender-user-"))

import bpy  # noqa: E402
import pytest  # noqa: E402

from tests.conftest import MULTIOBJECT, REPO  # noqa: E402

ADDON_PACKAGE = "bl_ext.dev.multisketch_addon"
SHARED_SKETCH = "basketball5"  # 53 strokes, 3 objects: small enough to import in every test

import addon_utils  # noqa: E402  (importable once bpy has put Blender's script modules on the path)


def _enable_addon() -> ModuleType:
    enabled = sys.modules.get(ADDON_PACKAGE)
    if enabled is not None and getattr(enabled, "__addon_enabled__", False):
        return enabled
    preferences = bpy.context.preferences
    if not any(repo.module == "dev" for repo in preferences.extensions.repos):
        preferences.extensions.repos.new(name="dev", module="dev", custom_directory=str(REPO), source="USER")

    def _raise(exc: BaseException) -> None:
        raise exc

    return addon_utils.enable(ADDON_PACKAGE, default_set=True, handle_error=_raise)


_enable_addon()


def addon_module(name: str) -> ModuleType:
    """One of the add-on's modules, e.g. addon_module("scene_model")."""
    return sys.modules[f"{ADDON_PACKAGE}.{name}"]


def reset_scene() -> bpy.types.Scene:
    """An empty factory-startup scene (preferences and the add-on stay) at frame 1."""
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    scene = bpy.context.scene
    scene.frame_start = scene.frame_current = 1
    return scene


def import_shared_sketch(name: str = SHARED_SKETCH, with_table: bool = True) -> bpy.types.Collection:
    """Import a sketch of the shared multi-object set into the current scene; returns its collection."""
    folder = MULTIOBJECT / name
    table = str(folder / "objects.tsv") if with_table else ""
    return addon_module("importer").import_sketch(bpy.context, str(folder / "sketch.svg"), table)


@pytest.fixture(scope="session", autouse=True)
def addon() -> Iterator[ModuleType]:
    """The registered add-on package; unregistered when the session ends."""
    yield sys.modules[ADDON_PACKAGE]
    addon_utils.disable(ADDON_PACKAGE, default_set=True)


@pytest.fixture
def empty_scene() -> bpy.types.Scene:
    return reset_scene()


@pytest.fixture
def imported_sketch(empty_scene: bpy.types.Scene) -> bpy.types.Collection:
    return import_shared_sketch()


def engine_python() -> str:
    """The interpreter that runs the engine in tests that start a real job.

    This one when it has torch; else (a Blender-only environment such as the bpy 5.3 one, which never
    has torch) $MULTISKETCH_ENGINE_PYTHON, or the checkout's .venv.
    """
    if importlib.util.find_spec("torch") is not None:
        return sys.executable
    return os.environ.get("MULTISKETCH_ENGINE_PYTHON") or str(REPO / ".venv" / "bin" / "python")


def addon_preferences() -> bpy.types.AddonPreferences:
    return bpy.context.preferences.addons[ADDON_PACKAGE].preferences


@pytest.fixture
def sketch_for_tiny_job(imported_sketch: bpy.types.Collection, tmp_path: Path) -> bpy.types.Collection:
    """The shared sketch, set up for the smallest real job: tiny prior, 32 px, 2 frames, 2 steps per stage."""
    prefs = addon_preferences()
    prefs.python_path, prefs.cache_dir, prefs.device = engine_python(), str(tmp_path / "cache"), "cpu"
    settings = bpy.context.scene.multisketch
    settings.prompt, settings.prior, settings.size, settings.frames = "a player dunks a ball", "tiny", 32, 2
    settings.quality, settings.steps = "CUSTOM", 2
    return imported_sketch
