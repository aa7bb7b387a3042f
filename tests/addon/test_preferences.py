"""The add-on's preferences and "Create Engine Environment", without network (local requirement files)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace

import bpy
import pytest

from tests.addon.conftest import ADDON_PACKAGE, addon_module

preferences = addon_module("preferences")
contract = addon_module("contract")


@pytest.fixture
def prefs(tmp_path: Path):
    addon_prefs = bpy.context.preferences.addons[ADDON_PACKAGE].preferences
    saved = {name: getattr(addon_prefs, name) for name in ("python_path", "cache_dir", "model", "device")}
    online = bpy.context.preferences.system.use_online_access
    bpy.context.preferences.system.use_online_access = True
    yield addon_prefs
    bpy.context.preferences.system.use_online_access = online
    for name, value in saved.items():
        setattr(addon_prefs, name, value)


@pytest.fixture(scope="module")
def env_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache folder for the environment tests: a venv takes seconds to make, so they share it."""
    return tmp_path_factory.mktemp("env-cache")


def _requirements(tmp_path: Path, text: str) -> str:
    path = tmp_path / "requirements.txt"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_defaults_name_the_paper_model_and_a_user_cache_folder(prefs, tmp_path: Path) -> None:
    prefs.property_unset("model")
    prefs.property_unset("cache_dir")
    assert prefs.model == contract.protocol.DEFAULT_MODEL
    default_cache = preferences.cache_folder(bpy.context)
    assert default_cache == Path(bpy.utils.extension_path_user(ADDON_PACKAGE, create=False))
    prefs.cache_dir = str(tmp_path)
    assert preferences.cache_folder(bpy.context) == tmp_path
    prefs.cache_dir = "~/multisketch jobs"
    assert preferences.cache_folder(bpy.context) == Path.home() / "multisketch jobs"
    prefs.cache_dir = "multisketch jobs"  # relative: never to the folder Blender was started in
    assert preferences.cache_folder(bpy.context) == Path.home() / "multisketch jobs"


def test_create_engine_env_installs_and_sets_the_engine_python(prefs, env_cache: Path, tmp_path: Path) -> None:
    prefs.cache_dir, prefs.python_path = str(env_cache), ""
    result = bpy.ops.multisketch.create_engine_env(requirements=_requirements(tmp_path, "# nothing to install\n"))
    assert result == {"FINISHED"}
    python = Path(prefs.python_path)
    assert python.is_relative_to(env_cache) and python.is_file()
    version = subprocess.run([python, "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True)
    assert Path(version.stdout.strip()) == env_cache / preferences.ENV_FOLDER


def test_failing_install_shows_pips_message_and_keeps_the_setting(prefs, env_cache: Path, tmp_path: Path) -> None:
    prefs.cache_dir, prefs.python_path = str(env_cache), "/the/previous/python"
    bad = _requirements(tmp_path, "torch >= = 2 !!\n")
    with pytest.raises(RuntimeError) as error:
        bpy.ops.multisketch.create_engine_env(requirements=bad)
    message = str(error.value)
    assert "Could not install the engine's packages" in message and "Invalid requirement" in message
    assert prefs.python_path == "/the/previous/python"


def test_unusable_base_python_is_named(prefs, tmp_path: Path) -> None:
    prefs.cache_dir, prefs.python_path = str(tmp_path / "cache"), ""
    not_python = tmp_path / "python.txt"
    not_python.write_text("not a program\n")
    with pytest.raises(RuntimeError) as error:
        bpy.ops.multisketch.create_engine_env(base_python=str(not_python), requirements=_requirements(tmp_path, ""))
    message = str(error.value)
    assert "Could not create the environment" in message and "python.txt" in message
    assert prefs.python_path == ""


def test_offline_blender_is_told_how_to_allow_the_download(prefs, tmp_path: Path) -> None:
    prefs.cache_dir = str(tmp_path / "cache")
    bpy.context.preferences.system.use_online_access = False
    assert not bpy.ops.multisketch.create_engine_env.poll()  # greyed out, its tooltip says why
    with pytest.raises(RuntimeError, match="Allow Online Access"):
        bpy.ops.multisketch.create_engine_env()
    assert not (tmp_path / "cache").exists()
    labels: list[str] = []

    class Layout:  # records what the preferences draw
        def column(self, **_options) -> Layout:
            return self

        def label(self, text: str = "", **_options) -> None:
            labels.append(text)

        def prop(self, *_args, **_options) -> None:
            pass

        operator = prop

    preferences.MultiSketchPreferences.draw(SimpleNamespace(layout=Layout()), bpy.context)
    explained = [line for line in labels if line in preferences.OFFLINE_LINES]
    assert len(explained) == 3 and all(len(line) < 80 for line in explained)  # several short lines, not one cut off
